-- OFD: Heo et al., "A Comprehensive Overhaul of Feature Distillation"
-- (ICCV 2019). The student's pre-ReLU block features pass a connector
-- (1x1 conv + BN) into the teacher's channels and are compared with the
-- teacher's pre-ReLU features under a partial L2: positions where the
-- student is below a negative teacher target cost nothing. Negative
-- teacher values are first raised to a per-channel margin, the expected
-- value of the teacher's pre-activation given that it is negative,
-- computed from the teacher's batch-norm scale and shift. Layer i of k is
-- weighted 1/2^(k-i); the sum is divided by the batch size. Published
-- weight: 0.001 (the reference divides by 1000).
local distill = require "distill"
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local OFD = base.class("OFD", { teacher = true, probe = true, preact = true, teacher_bns = true })

-- Standard normal CDF via erfc (Numerical Recipes' erfcc, |rel err| < 1.2e-7).
local function normal_cdf(x)
  local z = math.abs(x) / math.sqrt(2)
  local t = 1 / (1 + 0.5 * z)
  local erfc = t * math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196
    + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398
    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
  local upper = 0.5 * erfc   -- P(X > |x|)
  return x >= 0 and 1 - upper or upper
end
OFD.normal_cdf = normal_cdf

--- E[x | x < 0] for x ~ N(shift, scale^2), per channel of a BN layer.
function OFD.margins_from_bn(bn)
  local gamma, beta = bn.weight:totable(), bn.bias:totable()
  local margins = {}
  for c = 1, #gamma do
    local s, m = math.abs(gamma[c]), beta[c]
    local below = s > 0 and normal_cdf(-m / s) or 0
    if below > 0.001 then
      margins[c] = -s * math.exp(-(m / s) ^ 2 / 2) / math.sqrt(2 * math.pi) / below + m
    else
      margins[c] = -3 * s
    end
  end
  return distill.tensor(margins, "float32"):view{1, #margins, 1, 1}
end

--- ofd{probe = {student =, teacher =} (pre-ReLU outputs),
---     teacher_bns = {bn, ...} (the teacher's BN layers before each block ReLU)}
function OFD:init(opts, given)
  local probe = base.probe("ofd", opts, given)
  self.options = base.options("ofd", opts, { teacher_bns = false })
  local bns = self.options.teacher_bns or (given and given.teacher_bns)
  self.options.teacher_bns = nil
  local s_feats, t_feats = base.block_features(probe.student), base.block_features(probe.teacher)
  if #s_feats ~= #t_feats then
    error(("distillers.ofd: the student has %d block features and the teacher %d")
      :format(#s_feats, #t_feats), 2)
  end
  if type(bns) ~= "table" or #bns ~= #t_feats then
    error(("distillers.ofd: teacher_bns must list the teacher's %d batch-norm layers that "
      .. "produce its pre-ReLU block features (models expose them as model:get_bn_before_relu())")
      :format(#t_feats), 2)
  end
  self.layers = #t_feats
  self.connectors = nn.ModuleList()
  for i = 1, #t_feats do
    local s_channels, t_channels = s_feats[i]:size(2), t_feats[i]:size(2)
    local conv = nn.Conv2d(s_channels, t_channels, 1, { bias = false })
    nn.init.normal_(conv.weight, 0, math.sqrt(2 / t_channels))
    self.connectors:append(nn.Sequential(conv, nn.BatchNorm2d(t_channels)))
    self:register_buffer("margin" .. i, OFD.margins_from_bn(bns[i]))
  end
end

local function partial_l2(source, target, margin)
  target = distill.maximum(target, margin)
  if source:size(3) < target:size(3) then
    target = F.adaptive_avg_pool2d(target, { source:size(3), source:size(4) })
  end
  local keep = distill.maximum(source:gt(target), target:gt(0)):float()
  return ((source - target):pow(2) * keep):sum()
end

function OFD:loss(student_out, teacher_out)
  local s_feats = base.block_features(student_out)
  local t_feats = base.block_features(teacher_out)
  local total
  for i = 1, self.layers do
    local source = self.connectors[i](s_feats[i])
    local term = partial_l2(source, t_feats[i]:detach(), self["margin" .. i])
      / 2 ^ (self.layers - i)
    total = total and total + term or term
  end
  return total / student_out.logits:size(1)
end

return OFD

-- AB: Heo, Lee, Yun and Choi, "Knowledge Transfer via Distillation of
-- Activation Boundaries Formed by Hidden Neurons" (AAAI 2019). The student
-- learns where the teacher's neurons are active, not how strongly: each
-- pre-ReLU block feature of the student passes a connector into the
-- teacher's shape, and a squared hinge with margin m pushes it above +m
-- where the teacher's pre-ReLU value is positive and below -m where it is
-- not:
--   l(s, t) = sum( relu(m - s)^2 [t > 0] + relu(s + m)^2 [t <= 0] )
-- (the reference writes the two hinges as (s -+ m)^2 under masks; the
-- values and gradients are the same). Block i of k is weighted 2^(i-k),
-- the sum is divided by the batch size and scaled by 3/1000, as in the
-- CRD code base.
--
-- The published method uses this loss to initialise the student (and the
-- connectors) in a pre-training stage of its own, 30 epochs in the CRD
-- code base, and then trains the student with cross-entropy alone: the
-- `ab` method of config.paper_methods is that stage plus a CE term (see
-- distill.stages). As a term of the main objective it works too.
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"
local regressor = require "distill.distillers.regressor"

local AB = base.class("AB", { teacher = true, probe = true, preact = true })

--- ab{probe = {student =, teacher =} (pre-ReLU outputs), margin = 1}
function AB:init(opts, given)
  local probe = base.probe("ab", opts, given)
  self.options = base.options("ab", opts, { margin = 1 }, { margin = "nonnegative" })
  local s_feats, t_feats = base.block_features(probe.student), base.block_features(probe.teacher)
  if #s_feats ~= #t_feats or #s_feats == 0 then
    error(("distillers.ab: the student has %d block features and the teacher %d (they must pair up)")
      :format(#s_feats, #t_feats), 2)
  end
  self.layers = #t_feats
  self.connectors = nn.ModuleList()
  for i = 1, #t_feats do
    local s, t = s_feats[i], t_feats[i]
    if s:dim() ~= 4 or t:dim() ~= 4 then
      error(("distillers.ab: block feature %d must be 4-d in both models"):format(i), 2)
    end
    local s_shape, t_shape = s:shape(), t:shape()
    if s_shape[2] == t_shape[2] and s_shape[3] == t_shape[3] and s_shape[4] == t_shape[4] then
      self.connectors:append(nn.Identity())
    else
      -- conv + BN without ReLU: the connector's output is a pre-activation
      local conv = regressor.conv("ab", s_shape, t_shape, ("block feature %d"):format(i))
      self.connectors:append(nn.Sequential(conv, nn.BatchNorm2d(t_shape[2])))
    end
  end
end

-- The squared hinge of a connector output against the teacher's
-- pre-activation: +1 marks the teacher's active neurons, -1 the others.
local function boundary_loss(source, target, margin)
  local sign = target:gt(0):float() * 2 - 1
  return F.relu(margin - source * sign):pow(2):sum()
end

function AB:loss(student_out, teacher_out)
  local s_feats = base.block_features(student_out)
  local t_feats = base.block_features(teacher_out)
  if #s_feats ~= self.layers or #t_feats ~= self.layers then
    error(("distillers.ab: built for %d block features, got %d (student) and %d (teacher)")
      :format(self.layers, #s_feats, #t_feats), 2)
  end
  local total
  for i = 1, self.layers do
    local source, target = self.connectors[i](s_feats[i]), t_feats[i]:detach()
    if table.concat(source:shape(), ",") ~= table.concat(target:shape(), ",") then
      error(("distillers.ab: block %d: the connector gives %s but the teacher's feature is %s")
        :format(i, regressor.shape_text(source:shape()), regressor.shape_text(target:shape())), 2)
    end
    local term = boundary_loss(source, target, self.options.margin) * 2 ^ (i - self.layers)
    total = total and total + term or term
  end
  return total * (3 / 1000 / student_out.logits:size(1))
end

return AB

-- VID: Ahn et al., "Variational Information Distillation for Knowledge
-- Transfer" (CVPR 2019). For each block feature, a regressor (1x1 conv,
-- ReLU, 1x1 conv, ReLU, 1x1 conv, no biases, as in the authors' code that
-- the CRD code base uses) predicts the mean of a Gaussian over the
-- teacher's feature from the student's, with a learnt per-channel
-- variance softplus(log_scale) + eps; the loss is the Gaussian negative
-- log-likelihood without its constant,
--   mean(((mu - t)^2 / var + log var) / 2),
-- per block (the larger map average-pooled to the smaller one's
-- resolution), summed over the blocks. log_scale starts where the
-- variance is init_pred_var. Published weight: 1.
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"
local features = require "distill.distillers.features"

local VID = base.class("VID", { teacher = true, probe = true })

-- One block's regressor and variance.
local VIDLayer = nn.class("VIDLayer")

function VIDLayer:init(in_channels, mid_channels, out_channels, log_scale)
  self.in_channels, self.out_channels = in_channels, out_channels
  self.regressor = nn.Sequential(
    nn.Conv2d(in_channels, mid_channels, 1, { bias = false }), nn.ReLU(),
    nn.Conv2d(mid_channels, mid_channels, 1, { bias = false }), nn.ReLU(),
    nn.Conv2d(mid_channels, out_channels, 1, { bias = false }))
  self:register_parameter("log_scale", F.full({ out_channels }, log_scale))
end

-- log(1 + e^x), as torch's softplus: x itself above 20
local function softplus(x)
  return (x:clamp(nil, 20):exp() + 1):log() + F.relu(x - 20)
end

-- The log-likelihood's mean over {B, C, H, W}: its log var part is a
-- per-channel constant, so it is averaged over the channels alone.
function VIDLayer:negative_log_likelihood(s, t, eps)
  local mean = self.regressor(s)
  local var = softplus(self.log_scale) + eps
  local scaled = (mean - t):pow(2) / var:view{ 1, -1, 1, 1 }
  return (scaled:mean() + var:log():mean()) * 0.5
end

--- vid{probe = {student =, teacher =}, init_pred_var = 5, eps = 1e-5,
---     mid_channels = the teacher block's channels}
function VID:init(opts, given)
  self.options = base.options("vid", opts, { init_pred_var = 5, eps = 1e-5, mid_channels = false })
  local probe = base.probe("vid", opts, given)
  local o = self.options
  if type(o.eps) ~= "number" or not (o.eps >= 0) then
    error(("distillers.vid: eps must be a non-negative number, got %s"):format(tostring(o.eps)), 2)
  end
  if type(o.init_pred_var) ~= "number" or not (o.init_pred_var > o.eps) then
    error(("distillers.vid: init_pred_var must be a number above eps (%g), got %s")
      :format(o.eps, tostring(o.init_pred_var)), 2)
  end
  if o.mid_channels ~= false and (math.type(o.mid_channels) ~= "integer" or o.mid_channels < 1) then
    error(("distillers.vid: mid_channels must be a positive integer (or false: the teacher's "
      .. "channels), got %s"):format(tostring(o.mid_channels)), 2)
  end
  local s_feats = base.block_features(probe.student)
  local t_feats = base.block_features(probe.teacher)
  if #s_feats ~= #t_feats or #s_feats == 0 then
    error(("distillers.vid: needs block features in both models, one teacher block per student "
      .. "block; got %d and %d"):format(#s_feats, #t_feats), 2)
  end
  -- the variance is softplus(log_scale) + eps = init_pred_var
  local log_scale = math.log(math.exp(o.init_pred_var - o.eps) - 1)
  self.layers = nn.ModuleList()
  for i = 1, #s_feats do
    local s, t = s_feats[i], t_feats[i]
    features.check_maps("vid", "block feature", i, s, t)
    self.layers:append(VIDLayer(s:size(2), o.mid_channels or t:size(2), t:size(2), log_scale))
  end
end

function VID:loss(student_out, teacher_out)
  local s_feats = base.block_features(student_out)
  local t_feats = base.block_features(teacher_out)
  features.check_count("vid", s_feats, t_feats, "block features")
  if #s_feats ~= #self.layers then
    error(("distillers.vid: the models have %d block features; the distiller was built for %d "
      .. "(from its probe)"):format(#s_feats, #self.layers), 2)
  end
  local total
  for i = 1, #s_feats do
    local layer, what = self.layers[i], "block feature " .. i
    features.check_pair("vid", what, s_feats[i], t_feats[i], 4)
    features.check_channels("vid", "student", what, s_feats[i], layer.in_channels)
    features.check_channels("vid", "teacher", what, t_feats[i], layer.out_channels)
    local s, t = features.same_resolution(s_feats[i], t_feats[i])
    local term = layer:negative_log_likelihood(s, t, self.options.eps)
    total = total and total + term or term
  end
  return total
end

return VID

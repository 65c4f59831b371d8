-- FSP: Yim et al., "A Gift from Knowledge Distillation: Fast Optimization,
-- Network Minimization and Transfer Learning" (CVPR 2017). The "flow of
-- solution procedure" between two consecutive features of a model is the
-- matrix G = top . bot^T / HW (B x C_top x C_bot), the larger map first
-- average-pooled to the smaller one's resolution (the CRD code base's
-- rule); the loss is the mean squared difference of the student's and the
-- teacher's matrices, summed over the consecutive pairs of the stem and
-- block features (feats without the pooled vector).
--
-- FSP compares matrices of equal size, so it needs equal channel counts at
-- every feature (the CRD code base refuses other pairs). With connectors =
-- "auto" (the default) a feature whose widths differ gets a learnt linear
-- channel map M (C_t x C_s, a 1x1 convolution without bias): the student's
-- matrix becomes M_top G M_bot^T, the FSP matrix of the mapped features,
-- computed on the small matrix instead of the feature maps. "none" refuses
-- such pairs. The CRD code base trains FSP as a pre-training stage of the
-- student's feature layers before plain cross-entropy training; as a term
-- of the objective its published weight is 50.
local distill = require "distill"
local nn = require "distill.nn"
local base = require "distill.distillers.base"
local features = require "distill.distillers.features"

local FSP = base.class("FSP", { teacher = true, probe = true })

local CONNECTORS = { auto = true, none = true }

-- the stem and block features: feats without the pooled vector
local function flow_features(out)
  local list = {}
  for i = 1, #out.feats - 1 do
    list[i] = out.feats[i]
  end
  return list
end

--- fsp{probe = {student =, teacher =}, connectors = "auto"|"none"}
function FSP:init(opts, given)
  self.options = base.options("fsp", opts, { connectors = "auto" })
  local probe = base.probe("fsp", opts, given)
  local o = self.options
  if not CONNECTORS[o.connectors] then
    error(("distillers.fsp: connectors must be \"auto\" or \"none\", got %s")
      :format(tostring(o.connectors)), 2)
  end
  local s_feats, t_feats = flow_features(probe.student), flow_features(probe.teacher)
  if #s_feats ~= #t_feats then
    error(("distillers.fsp: the student has %d stem and block features and the teacher %d")
      :format(#s_feats, #t_feats), 2)
  end
  if #s_feats < 2 then
    error("distillers.fsp: needs at least two features (stem and a block) to form a flow matrix", 2)
  end
  self.s_channels, self.t_channels, self.mapped = {}, {}, {}
  for i = 1, #s_feats do
    local s, t = s_feats[i], t_feats[i]
    features.check_maps("fsp", "feature", i, s, t)
    local cs, ct = s:size(2), t:size(2)
    self.s_channels[i], self.t_channels[i] = cs, ct
    if cs ~= ct then
      if o.connectors == "none" then
        error(("distillers.fsp: feature %d has %d channels in the student and %d in the teacher; "
          .. "FSP matrices need equal widths (connectors = \"auto\" learns a channel map)")
          :format(i, cs, ct), 2)
      end
      local connector = nn.Linear(cs, ct, { bias = false })
      -- a random map that keeps the matrices' scale
      nn.init.normal_(connector.weight, 0, 1 / math.sqrt(cs))
      self:add_module("connector" .. i, connector)
      self.mapped[i] = true
    end
  end
end

-- {B, C_top, C_bot} flow matrices of consecutive features
local function flow_matrices(list)
  local out = {}
  for i = 1, #list - 1 do
    local bot, top = features.same_resolution(list[i], list[i + 1])
    local b, hw = bot:size(1), bot:size(3) * bot:size(4)
    local bot_rows = bot:reshape{ b, bot:size(2), hw }
    local top_rows = top:reshape{ b, top:size(2), hw }
    out[i] = distill.bmm(top_rows, bot_rows:transpose(2, 3)) / hw
  end
  return out
end

function FSP:loss(student_out, teacher_out)
  local s_feats, t_feats = flow_features(student_out), flow_features(teacher_out)
  features.check_count("fsp", s_feats, t_feats, "stem and block features")
  if #s_feats ~= #self.s_channels then
    error(("distillers.fsp: the models have %d stem and block features; the distiller was built "
      .. "for %d (from its probe)"):format(#s_feats, #self.s_channels), 2)
  end
  for i = 1, #s_feats do
    local what = "feature " .. i
    features.check_pair("fsp", what, s_feats[i], t_feats[i], 4)
    features.check_channels("fsp", "student", what, s_feats[i], self.s_channels[i])
    features.check_channels("fsp", "teacher", what, t_feats[i], self.t_channels[i])
  end
  local g_t = distill.no_grad(function() return flow_matrices(t_feats) end)
  local g_s = flow_matrices(s_feats)
  local total
  for i = 1, #g_s do
    local g = g_s[i]
    if self.mapped[i + 1] then
      g = distill.matmul(self["connector" .. (i + 1)].weight, g)
    end
    if self.mapped[i] then
      g = distill.matmul(g, self["connector" .. i].weight:t())
    end
    local term = (g - g_t[i]):pow(2):mean()
    total = total and total + term or term
  end
  return total
end

return FSP

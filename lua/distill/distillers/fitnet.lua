-- FitNet: Romero et al., "FitNets: Hints for Thin Deep Nets" (ICLR 2015).
-- A regressor (conv + BN + ReLU, as in the CRD code base) maps the
-- student's hint feature onto the teacher's; the loss is their MSE.
-- Published weight: 100, hint = the third feature (feats[3]).
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"
local regressor = require "distill.distillers.regressor"

local FitNet = base.class("FitNet", { teacher = true, probe = true })

--- fitnet{probe = {student =, teacher =}, hint_layer = 3}
function FitNet:init(opts, given)
  local probe = base.probe("fitnet", opts, given)
  self.options = base.options("fitnet", opts, { hint_layer = 3 }, { hint_layer = "positive_integer" })
  local layer = self.options.hint_layer
  local s_feat, t_feat = probe.student.feats[layer], probe.teacher.feats[layer]
  if not s_feat or not t_feat or s_feat:dim() ~= 4 or t_feat:dim() ~= 4 then
    error(("distillers.fitnet: hint_layer %s must select a 4-d feature of both models")
      :format(tostring(layer)), 2)
  end
  local t_channels = t_feat:size(2)
  local conv = regressor.conv("fitnet", s_feat:shape(), t_feat:shape(), "hint",
    "choose another hint_layer")
  self.regressor = nn.Sequential(conv, nn.BatchNorm2d(t_channels), nn.ReLU())
end

function FitNet:loss(student_out, teacher_out)
  local layer = self.options.hint_layer
  local hint = self.regressor(student_out.feats[layer])
  return F.mse_loss(hint, teacher_out.feats[layer])
end

return FitNet

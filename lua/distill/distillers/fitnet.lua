-- FitNet: Romero et al., "FitNets: Hints for Thin Deep Nets" (ICLR 2015).
-- A regressor (conv + BN + ReLU, as in the CRD code base) maps the
-- student's hint feature onto the teacher's; the loss is their MSE.
-- Published weight: 100, hint = the third feature (feats[3]).
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local FitNet = base.class("FitNet", { teacher = true, probe = true })

local function shape_text(shape)
  return "{" .. table.concat(shape, ", ") .. "}"
end

--- fitnet{probe = {student =, teacher =}, hint_layer = 3}
function FitNet:init(opts, given)
  local probe = base.probe("fitnet", opts, given)
  self.options = base.options("fitnet", opts, { hint_layer = 3 })
  local layer = self.options.hint_layer
  local s_feat, t_feat = probe.student.feats[layer], probe.teacher.feats[layer]
  if not s_feat or not t_feat or s_feat:dim() ~= 4 or t_feat:dim() ~= 4 then
    error(("distillers.fitnet: hint_layer %s must select a 4-d feature of both models")
      :format(tostring(layer)), 2)
  end
  local s, t = s_feat:shape(), t_feat:shape()
  local conv
  if s[3] == 2 * t[3] then
    conv = nn.Conv2d(s[2], t[2], 3, { stride = 2, padding = 1 })
  elseif s[3] * 2 == t[3] then
    -- half the teacher's resolution: a transposed convolution, as the CRD
    -- code base does
    conv = nn.ConvTranspose2d(s[2], t[2], 4, { stride = 2, padding = 1 })
  elseif s[3] >= t[3] then
    conv = nn.Conv2d(s[2], t[2], { 1 + s[3] - t[3], 1 + s[4] - t[4] })
  else
    -- Only the half-resolution case has a regressor (as in the CRD code
    -- base); say so rather than train something else.
    error(("distillers.fitnet: student hint %s is smaller than the teacher's %s and not half "
      .. "its size; only a student hint of half the teacher's resolution gets a "
      .. "transposed-convolution regressor (choose another hint_layer)")
      :format(shape_text(s), shape_text(t)), 2)
  end
  self.regressor = nn.Sequential(conv, nn.BatchNorm2d(t[2]), nn.ReLU())
end

function FitNet:loss(student_out, teacher_out)
  local layer = self.options.hint_layer
  local hint = self.regressor(student_out.feats[layer])
  return F.mse_loss(hint, teacher_out.feats[layer])
end

return FitNet

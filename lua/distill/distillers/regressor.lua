-- The convolution that maps a student feature onto a teacher feature's
-- resolution, as the CRD code base's ConvReg chooses it (FitNet's
-- regressor, AB's connectors): a 3x3 stride-2 conv when the student's
-- feature is twice the teacher's resolution, a 4x4 stride-2 transposed
-- conv when it is half, a (1+Hs-Ht) x (1+Ws-Wt) conv when it is larger or
-- equal. Any other student feature smaller than the teacher's has no
-- regressor there, and asking for one is an error naming the distiller.
local nn = require "distill.nn"

local regressor = {}

local function shape_text(shape)
  return "{" .. table.concat(shape, ", ") .. "}"
end
regressor.shape_text = shape_text

--- regressor.conv(who, s_shape, t_shape, what[, advice]): the conv from a
-- student feature of shape s_shape {N, C, H, W} to the teacher's t_shape;
-- `who` names the distiller, `what` the feature and `advice` what to do
-- instead, in errors.
function regressor.conv(who, s_shape, t_shape, what, advice)
  local s, t = s_shape, t_shape
  if s[3] == 2 * t[3] then
    return nn.Conv2d(s[2], t[2], 3, { stride = 2, padding = 1 })
  elseif s[3] * 2 == t[3] then
    return nn.ConvTranspose2d(s[2], t[2], 4, { stride = 2, padding = 1 })
  elseif s[3] >= t[3] and s[4] >= t[4] then
    return nn.Conv2d(s[2], t[2], { 1 + s[3] - t[3], 1 + s[4] - t[4] })
  end
  -- Only the half-resolution case has a regressor (as in the CRD code
  -- base); say so rather than train something else.
  error(("distillers.%s: student %s %s is smaller than the teacher's %s and not half its size; "
    .. "only a student feature of half the teacher's resolution gets a transposed-convolution "
    .. "regressor%s"):format(who, what, shape_text(s), shape_text(t),
    advice and (" (" .. advice .. ")") or ""), 3)
end

return regressor

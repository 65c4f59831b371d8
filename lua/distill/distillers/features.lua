-- What the feature distillers of the RepDistiller zoo (SP, PKT, CC, NST,
-- FSP, VID) share: checks on the features they are given, with errors
-- that name the distiller, and bringing two feature maps to one
-- resolution.
local distill = require "distill"
local F = require "distill.functional"

local features = {}

local function shape_text(x)
  return "{" .. table.concat(x:shape(), ", ") .. "}"
end
features.shape_text = shape_text

--- Errors unless the student's and the teacher's lists have equal length.
function features.check_count(name, s_list, t_list, what)
  if #s_list ~= #t_list then
    error(("distillers.%s: the student has %d %s and the teacher %d")
      :format(name, #s_list, what, #t_list), 3)
  end
end

--- Errors unless s and t are tensors of `dims` dimensions (any when nil)
-- over the same batch; `what` names the feature in the message.
function features.check_pair(name, what, s, t, dims)
  for _, pair in ipairs { { "student", s }, { "teacher", t } } do
    local role, x = pair[1], pair[2]
    if not distill.is_tensor(x) then
      error(("distillers.%s: the %s's %s must be a tensor, got %s"):format(name, role, what, type(x)), 3)
    end
    if dims and x:dim() ~= dims then
      error(("distillers.%s: the %s's %s must be %d-d, got %s")
        :format(name, role, what, dims, shape_text(x)), 3)
    end
  end
  if s:size(1) ~= t:size(1) then
    error(("distillers.%s: the student's %s %s and the teacher's %s differ in batch size")
      :format(name, what, shape_text(s), shape_text(t)), 3)
  end
end

--- Errors unless feature x has `channels` channels (dim 2), the number
-- the distiller's own layers were sized for from its probe.
function features.check_channels(name, role, what, x, channels)
  if x:size(2) ~= channels then
    error(("distillers.%s: the %s's %s %s has %d channels; the distiller was built for %d "
      .. "(from its probe)"):format(name, role, what, shape_text(x), x:size(2), channels), 3)
  end
end

--- Errors unless the student's and the teacher's feature `i` (`what`
-- names such a feature in the message) are both 4-d maps.
function features.check_maps(name, what, i, s, t)
  if s:dim() ~= 4 or t:dim() ~= 4 then
    error(("distillers.%s: %s %d must be a 4-d map in both models, got %s and %s")
      :format(name, what, i, shape_text(s), shape_text(t)), 3)
  end
end

--- x as a {N, -1} matrix.
function features.rows(x)
  return x:reshape{ x:size(1), -1 }
end

--- a and b, the larger average-pooled to the smaller one's resolution
-- (the CRD code base's rule for feature maps of different sizes).
function features.same_resolution(a, b)
  local ha, hb = a:size(3), b:size(3)
  if ha > hb then
    a = F.adaptive_avg_pool2d(a, { hb, b:size(4) })
  elseif ha < hb then
    b = F.adaptive_avg_pool2d(b, { ha, a:size(4) })
  end
  return a, b
end

return features

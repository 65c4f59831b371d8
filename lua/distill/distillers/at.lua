-- AT: Zagoruyko and Komodakis, "Paying More Attention to Attention" (ICLR
-- 2017). Each block feature becomes a spatial attention map
-- normalize(mean_c(f^p)); the loss is the mean squared difference of the
-- maps, summed over the blocks. Published: p = 2, weight 1000.
local F = require "distill.functional"
local base = require "distill.distillers.base"

local AT = base.class("AT", { teacher = true })

--- at{p = 2}
AT.init = base.options_init("at", { p = 2 }, { p = "positive" })

local function attention(f, p)
  local b = f:size(1)
  return F.normalize(f:pow(p):mean(2):view{b, -1}, { dim = 2 })
end

function AT:loss(student_out, teacher_out)
  local s_feats = base.block_features(student_out)
  local t_feats = base.block_features(teacher_out)
  if #s_feats ~= #t_feats then
    error(("distillers.at: the student has %d block features and the teacher %d")
      :format(#s_feats, #t_feats), 2)
  end
  local total
  for i = 1, #s_feats do
    local s, t = s_feats[i], t_feats[i]
    -- different resolutions are pooled to the smaller one
    if s:size(3) > t:size(3) then
      s = F.adaptive_avg_pool2d(s, { t:size(3), t:size(4) })
    elseif s:size(3) < t:size(3) then
      t = F.adaptive_avg_pool2d(t, { s:size(3), s:size(4) })
    end
    local term = (attention(s, self.options.p) - attention(t, self.options.p)):pow(2):mean()
    total = total and total + term or term
  end
  return total
end

return AT

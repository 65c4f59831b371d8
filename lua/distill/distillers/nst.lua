-- NST: Huang and Wang, "Like What You Like: Knowledge Distill via Neuron
-- Selectivity Transfer" (2017). Each channel of a block feature is a
-- sample of its layer's distribution over spatial positions (flattened,
-- L2-normalised over the positions); the loss is the squared maximum mean
-- discrepancy between the student's and the teacher's channels under the
-- polynomial kernel k(x, y) = (x.y + c)^degree:
--   mean k(t, t') + mean k(s, s') - 2 mean k(s, t)
-- per block feature (the larger map average-pooled to the smaller one's
-- resolution), summed over the blocks. The kernel matrices are batched
-- matrix products (B x C_a x C_b), never the B x C x C x HW products of a
-- broadcast formulation. With the published kernel (degree 2, c = 0) and
-- maps of fewer positions than channels (deep blocks), the sum of squared
-- channel products is taken from the positions' Gram matrices instead,
--   sum_ij (a_i . b_j)^2 = ||A B^T||_F^2 = <A^T A, B^T B>_F,
-- which are B x HW x HW: far smaller there, and so is what the loss holds
-- for backward. Published (CRD code base): degree 2, c = 0, weight 50.
local distill = require "distill"
local F = require "distill.functional"
local base = require "distill.distillers.base"
local features = require "distill.distillers.features"

local NST = base.class("NST", { teacher = true })

--- nst{degree = 2, c = 0}; degree = 1 is the linear kernel.
function NST:init(opts)
  self.options = base.options("nst", opts, { degree = 2, c = 0 })
  local o = self.options
  if math.type(o.degree) ~= "integer" or o.degree < 1 then
    error(("distillers.nst: degree must be a positive integer, got %s"):format(tostring(o.degree)), 2)
  end
  if type(o.c) ~= "number" or o.c ~= o.c then
    error(("distillers.nst: c must be a number, got %s"):format(tostring(o.c)), 2)
  end
end

-- {B, C, H, W} -> {B, C, HW} with unit rows
local function channel_distributions(f)
  return F.normalize(f:reshape{ f:size(1), f:size(2), -1 }, { dim = 3 })
end

-- {B, C, HW} -> {B, HW, HW}
local function position_gram(x)
  return distill.bmm(x:transpose(2, 3), x)
end

local function mean_kernel(a, b, o, grams)
  if grams then
    local count = a:size(1) * a:size(2) * b:size(2)
    if a == b then
      return grams.a:pow(2):sum() / count
    end
    return (grams.a * grams.b):sum() / count
  end
  local k = distill.bmm(a, b:transpose(2, 3))
  if o.c ~= 0 then
    k = k + o.c
  end
  if o.degree ~= 1 then
    k = k:pow(o.degree)
  end
  return k:mean()
end

function NST:loss(student_out, teacher_out)
  local o = self.options
  local s_feats = base.block_features(student_out)
  local t_feats = base.block_features(teacher_out)
  features.check_count("nst", s_feats, t_feats, "block features")
  local total
  for i = 1, #s_feats do
    local what = "block feature " .. i
    features.check_pair("nst", what, s_feats[i], t_feats[i], 4)
    local s, t = features.same_resolution(s_feats[i], t_feats[i])
    s, t = channel_distributions(s), channel_distributions(t)
    local positions = s:size(3)
    local s_grams, t_grams
    if o.degree == 2 and o.c == 0 and positions * positions < s:size(2) * t:size(2) then
      s_grams = { a = position_gram(s) }
      t_grams = distill.no_grad(function() return { a = position_gram(t) } end)
    end
    local teacher_term = distill.no_grad(function() return mean_kernel(t, t, o, t_grams) end)
    local cross = mean_kernel(s, t, o, s_grams and { a = s_grams.a, b = t_grams.a })
    local term = mean_kernel(s, s, o, s_grams) - cross * 2 + teacher_term
    total = total and total + term or term
  end
  if not total then
    error("distillers.nst: the models have no block features (feats = {stem, blocks..., pooled})", 2)
  end
  return total
end

return NST

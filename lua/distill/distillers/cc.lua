-- CC: Peng et al., "Correlation Congruence for Knowledge Distillation"
-- (ICCV 2019): the student matches the correlations between the batch's
-- samples, not only each sample's features. Two forms:
--   form = "residual" (default): the code the CRD code base runs with the
--     published weight, as the paper's authors gave it to them. Both pooled
--     features pass a trainable Linear to feat_dim; with the residuals
--     d_i = |e_s,i - e_t,i|, the loss is mean_i sum_k d_i,k d_i+1,k over
--     consecutive samples of the batch.
--   form = "gaussian": the paper's equations. On L2-normalised pooled
--     features, the B x B correlation matrices of a Gaussian RBF kernel
--     exp(-gamma ||x - y||^2) = exp(-2 gamma) exp(2 gamma x.y), expanded
--     in a Taylor series to `order`, are compared by their mean squared
--     difference. No embedding: B x B matrices need no common width.
-- Published weight: 0.02 (residual form).
local distill = require "distill"
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"
local features = require "distill.distillers.features"

local CC = base.class("CC", { teacher = true, probe = true })

local FORMS = { residual = true, gaussian = true }

--- cc{probe = {student =, teacher =}, form = "residual", feat_dim = 128,
---    gamma = 0.4, order = 2}; feat_dim is the residual form's, gamma
-- and order the gaussian form's.
function CC:init(opts, given)
  self.options = base.options("cc", opts, { form = "residual", feat_dim = 128, gamma = 0.4, order = 2 })
  local o = self.options
  if not FORMS[o.form] then
    error(("distillers.cc: form must be \"residual\" or \"gaussian\", got %s"):format(tostring(o.form)), 2)
  end
  if math.type(o.feat_dim) ~= "integer" or o.feat_dim < 1 then
    error(("distillers.cc: feat_dim must be a positive integer, got %s"):format(tostring(o.feat_dim)), 2)
  end
  if type(o.gamma) ~= "number" or not (o.gamma > 0) then
    error(("distillers.cc: gamma must be a positive number, got %s"):format(tostring(o.gamma)), 2)
  end
  if math.type(o.order) ~= "integer" or o.order < 1 then
    error(("distillers.cc: order must be a positive integer, got %s"):format(tostring(o.order)), 2)
  end
  if o.form == "residual" then
    local probe = base.probe("cc", opts, given)
    self.s_dim = features.rows(probe.student.pooled):size(2)
    self.t_dim = features.rows(probe.teacher.pooled):size(2)
    self.embed_s = nn.Linear(self.s_dim, o.feat_dim)
    self.embed_t = nn.Linear(self.t_dim, o.feat_dim)
  end
end

-- Taylor series of the Gaussian kernel in the cosine similarities, by
-- Horner's rule: sum_p exp(-2g) (2g)^p / p! sim^p.
local function gaussian_correlation(f, gamma, order)
  local unit = F.normalize(features.rows(f), { dim = 2 })
  local sim = unit:mm(unit:t())
  local coefficients, c = {}, math.exp(-2 * gamma)
  for p = 0, order do
    coefficients[p] = c
    c = c * 2 * gamma / (p + 1)
  end
  local corr = distill.full_like(sim, coefficients[order])
  for p = order - 1, 0, -1 do
    corr = corr * sim + coefficients[p]
  end
  return corr
end

function CC:loss(student_out, teacher_out)
  local o = self.options
  local s, t = student_out.pooled, teacher_out.pooled
  features.check_pair("cc", "pooled feature", s, t)
  if o.form == "gaussian" then
    local corr_t = distill.no_grad(function() return gaussian_correlation(t, o.gamma, o.order) end)
    return F.mse_loss(gaussian_correlation(s, o.gamma, o.order), corr_t)
  end
  s, t = features.rows(s), features.rows(t)
  if s:size(2) ~= self.s_dim or t:size(2) ~= self.t_dim then
    error(("distillers.cc: pooled features of widths %d (student) and %d (teacher); the "
      .. "embeddings were built for %d and %d (from the probe)")
      :format(s:size(2), t:size(2), self.s_dim, self.t_dim), 2)
  end
  local residual = (self.embed_s(s) - self.embed_t(t)):abs()
  local b = residual:size(1)
  if b < 2 then
    -- no consecutive pair: nothing to correlate
    return residual:sum() * 0
  end
  return (residual:narrow(1, 1, b - 1) * residual:narrow(1, 2, b - 1)):sum(2):mean()
end

return CC

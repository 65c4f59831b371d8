-- PKT: Passalis and Tefas, "Learning Deep Representations with
-- Probabilistic Knowledge Transfer" (ECCV 2018). Each model's pooled
-- features become a conditional distribution over the batch: cosine
-- similarities mapped to [0, 1] and divided by their row sums. The loss is
-- the KL divergence of the student's distribution from the teacher's,
-- averaged over the B x B entries, with eps in both logarithm arguments
-- (the authors' code, which the CRD code base uses). Published weight:
-- 30000.
local distill = require "distill"
local base = require "distill.distillers.base"
local features = require "distill.distillers.features"

local PKT = base.class("PKT", { teacher = true })

--- pkt{eps = 1e-7}
function PKT:init(opts)
  self.options = base.options("pkt", opts, { eps = 1e-7 })
  local eps = self.options.eps
  if type(eps) ~= "number" or not (eps > 0) then
    error(("distillers.pkt: eps must be a positive number, got %s"):format(tostring(eps)), 2)
  end
end

local function conditional_probabilities(f, eps)
  local rows = features.rows(f)
  -- the norm's gradient is 0 at a zero row, where sqrt's would be infinite
  local unit = rows / (rows:norm(2, 2, true) + eps)
  local similarity = (unit:mm(unit:t()) + 1) / 2
  return similarity / similarity:sum(2, true)
end

function PKT:loss(student_out, teacher_out)
  local s, t = student_out.pooled, teacher_out.pooled
  features.check_pair("pkt", "pooled feature", s, t)
  local eps = self.options.eps
  local p_t = distill.no_grad(function() return conditional_probabilities(t, eps) end)
  local p_s = conditional_probabilities(s, eps)
  return (p_t * ((p_t + eps) / (p_s + eps)):log()):mean()
end

return PKT

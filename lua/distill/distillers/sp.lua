-- SP: Tung and Mori, "Similarity-Preserving Knowledge Distillation" (ICCV
-- 2019). A batch's B x B matrix of inner products between the samples'
-- flattened feature maps, each row L2-normalised, is what the student
-- matches: ||G_t - G_s||_F^2 / B^2. Student and teacher may differ in
-- width and resolution, since only the B x B matrices are compared. The
-- CRD and mdistiller code bases apply it to the last block feature.
-- Published weight: 3000.
local distill = require "distill"
local F = require "distill.functional"
local base = require "distill.distillers.base"
local features = require "distill.distillers.features"

local SP = base.class("SP", { teacher = true })

local VALID_BLOCKS = { last = true, all = true }

--- sp{blocks = "last"}: "last" compares the last block feature, "all"
-- sums the loss over every block feature.
function SP:init(opts)
  self.options = base.options("sp", opts, { blocks = "last" })
  if not VALID_BLOCKS[self.options.blocks] then
    error(("distillers.sp: blocks must be \"last\" or \"all\", got %s")
      :format(tostring(self.options.blocks)), 2)
  end
end

-- Row-normalised Gram matrix of the batch.
local function similarity(f)
  local rows = features.rows(f)
  return F.normalize(rows:mm(rows:t()), { dim = 2 })
end

function SP:loss(student_out, teacher_out)
  local s_feats = base.block_features(student_out)
  local t_feats = base.block_features(teacher_out)
  features.check_count("sp", s_feats, t_feats, "block features")
  if #s_feats == 0 then
    error("distillers.sp: the models have no block features (feats = {stem, blocks..., pooled})", 2)
  end
  local first = self.options.blocks == "last" and #s_feats or 1
  local total
  for i = first, #s_feats do
    local s, t = s_feats[i], t_feats[i]
    features.check_pair("sp", "block feature " .. i, s, t)
    local b = s:size(1)
    local g_t = distill.no_grad(function() return similarity(t) end)
    local term = (g_t - similarity(s)):pow(2):sum() / (b * b)
    total = total and total + term or term
  end
  return total
end

return SP

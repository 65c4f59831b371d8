-- FSECD: Ye, Chen and Lai, "Contrastive Knowledge Distillation Method Based
-- on Feature Space Embedding" (2023), as this project defines it
-- (docs/distillers.md): the student's pooled feature is embedded into the
-- teacher's feature space by a learned linear map, then contrasted with
-- the batch's teacher features by the fused C op (distill.fsecd_loss).
-- In a data-parallel run the contrast is over the whole batch: every rank's
-- embeddings, teacher features and labels are gathered (the gradient flows
-- back to each rank's own rows), because the batch size changes FSECD's
-- result (the paper's Table 2); gather = false contrasts each rank's share.
local nn = require "distill.nn"
local dist = require "distill.dist"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local FSECD = base.class("FSECD", { teacher = true, probe = true })

local VALID_FEATURES = { pooled = true, logits = true }

--- fsecd{probe = {student =, teacher =}, policy = "instance", tau = 0.1,
---       symmetric = false, feature = "pooled", embed = "linear"|"identity",
---       eps = 1e-8, gather = true}
-- embed defaults to "identity" when the widths match, "linear" otherwise.
function FSECD:init(opts, given)
  local probe = base.probe("fsecd", opts, given)
  self.options = base.options("fsecd", opts, {
    policy = "instance", tau = 0.1, symmetric = false, feature = "pooled",
    embed = false, eps = 1e-8, gather = true,
  }, { policy = { "instance", "class" }, tau = "positive", symmetric = "boolean", feature = { "pooled", "logits" },
       embed = { false, "linear", "identity" }, eps = "positive", gather = "boolean" })
  local o = self.options
  if type(o.gather) ~= "boolean" then
    error(("distillers.fsecd: gather must be true or false, got %s"):format(tostring(o.gather)), 2)
  end
  self.global_batch = o.gather and dist.size() > 1
  if not VALID_FEATURES[o.feature] then
    error(("distillers.fsecd: feature must be \"pooled\" or \"logits\", got %s")
      :format(tostring(o.feature)), 2)
  end
  if o.policy ~= "instance" and o.policy ~= "class" then
    error(("distillers.fsecd: policy must be \"instance\" or \"class\", got %s")
      :format(tostring(o.policy)), 2)
  end
  local ds = probe.student[o.feature]:view{probe.student[o.feature]:size(1), -1}:size(2)
  local dt = probe.teacher[o.feature]:view{probe.teacher[o.feature]:size(1), -1}:size(2)
  local embed = o.embed or (ds == dt and "identity" or "linear")
  if embed == "identity" and ds ~= dt then
    error(("distillers.fsecd: embed = \"identity\" needs equal widths, got student %d and "
      .. "teacher %d"):format(ds, dt), 2)
  elseif embed ~= "identity" and embed ~= "linear" then
    error(("distillers.fsecd: embed must be \"linear\" or \"identity\", got %s")
      :format(tostring(embed)), 2)
  end
  o.embed = embed
  if embed == "linear" then
    self.embed = nn.Linear(ds, dt)
  end
end

function FSECD:loss(student_out, teacher_out, labels)
  local o = self.options
  local fs = student_out[o.feature]
  fs = fs:view{fs:size(1), -1}
  local ft = teacher_out[o.feature]
  ft = ft:view{ft:size(1), -1}
  local z = self.embed and self.embed(fs) or fs
  if self.global_batch then
    z, ft, labels = dist.all_gather(z), dist.all_gather(ft), dist.all_gather(labels)
  end
  return F.fsecd_loss(z, ft, labels, {
    policy = o.policy, tau = o.tau, symmetric = o.symmetric, eps = o.eps,
  })
end

return FSECD

-- Cross-entropy on the student's logits: the supervised term every run has.
local F = require "distill.functional"
local base = require "distill.distillers.base"

local CE = base.class("CE", { teacher = false })

--- ce{label_smoothing = 0}
function CE:init(opts)
  self.options = base.options("ce", opts, { label_smoothing = 0 }, { label_smoothing = "unit" })
end

function CE:loss(student_out, _, labels)
  return F.cross_entropy(student_out.logits, labels,
    { label_smoothing = self.options.label_smoothing })
end

return CE

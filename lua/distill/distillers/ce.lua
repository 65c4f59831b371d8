-- Cross-entropy on the student's logits: the supervised term every run has.
local F = require "distill.functional"
local base = require "distill.distillers.base"

local CE = base.class("CE", { teacher = false })

--- ce{label_smoothing = 0}
CE.init = base.options_init("ce", { label_smoothing = 0 }, { label_smoothing = "unit" })

function CE:loss(student_out, _, labels)
  return F.cross_entropy(student_out.logits, labels,
    { label_smoothing = self.options.label_smoothing })
end

return CE

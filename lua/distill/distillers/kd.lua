-- KD: Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
-- Network" (2015). KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over
-- the batch. Protocol weights: 0.1 CE + 0.9 KD, T = 4.
local F = require "distill.functional"
local base = require "distill.distillers.base"

local KD = base.class("KD", { teacher = true })

--- kd{T = 4}
KD.init = base.options_init("kd", { T = 4 }, { T = "positive" })

function KD:loss(student_out, teacher_out)
  return F.kd_loss(student_out.logits, teacher_out.logits, self.options.T)
end

return KD

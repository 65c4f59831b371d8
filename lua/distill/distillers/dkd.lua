-- DKD: Zhao et al., "Decoupled Knowledge Distillation" (CVPR 2022).
-- KD split into the target-class part (TCKD: binary target vs rest) and the
-- non-target part (NCKD: distribution over the other classes):
--   loss = min(epoch / warmup, 1) * (alpha * TCKD + beta * NCKD), both * T^2.
-- Published: alpha 1, beta 8 (2 for ResNet56/110 teachers, 6 for WRN-40-2
-- and VGG13 teachers), T 4, 20 warm-up epochs.
local distill = require "distill"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local DKD = base.class("DKD", { teacher = true })

--- dkd{alpha = 1, beta = 8, T = 4, warmup = 20}
DKD.init = base.options_init("dkd", { alpha = 1, beta = 8, T = 4, warmup = 20 },
  { alpha = "nonnegative", beta = "nonnegative", T = "positive", warmup = "nonnegative" })

-- one-hot of the 1-based labels, as float32 B x C
local function one_hot(labels, classes)
  local b = labels:size(1)
  local hot = distill.zeros{b, classes}
  for i = 1, b do
    hot[i][labels[i]] = 1
  end
  return hot
end

function DKD:loss(student_out, teacher_out, labels, _, epoch)
  local o = self.options
  local s, t = student_out.logits / o.T, teacher_out.logits / o.T
  local b, classes = s:size(1), s:size(2)
  local target = one_hot(labels, classes)
  local other = 1 - target

  -- TCKD: KL between the binary distributions [p_target, 1 - p_target]
  local ps, pt = F.softmax(s, 2), F.softmax(t, 2)
  local function binary(p)
    return distill.cat({ (p * target):sum(2, true), (p * other):sum(2, true) }, 2)
  end
  local tckd = F.kl_div(binary(ps):log(), binary(pt), { reduction = "sum" }) * (o.T * o.T / b)

  -- NCKD: KL over the non-target classes (target logit pushed to -1000)
  local mask = target * 1000
  local nckd = F.kl_div(F.log_softmax(s - mask, 2), F.softmax(t - mask, 2),
    { reduction = "sum" }) * (o.T * o.T / b)

  local warm = 1
  if o.warmup and o.warmup > 0 then
    warm = math.min((epoch or o.warmup) / o.warmup, 1)
  end
  return (tckd * o.alpha + nckd * o.beta) * warm
end

return DKD

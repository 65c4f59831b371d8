-- distill.F: the differentiable functions, torch.nn.functional style.
--
-- Most entries are the C engine's functions (forward and backward in C);
-- a few are compositions written here. Options go in a trailing table:
--   F.conv2d(x, w, b, {stride = 1, padding = 1, dilation = 1, groups = 1})
--   F.cross_entropy(logits, labels, {reduction = "mean", label_smoothing = 0.1})
-- Dims and class labels count from 1.
local core = require "distill.core"

local F = {}

--- Kullback-Leibler distillation loss of Hinton et al.: KL(softmax(t/T) ||
-- softmax(s/T)) * T^2, averaged over the batch.
function F.kd_loss(student_logits, teacher_logits, temperature)
  local T = temperature or 4
  local log_p = core.log_softmax(student_logits / T, 2)
  local q = core.softmax(teacher_logits / T, 2)
  return core.kl_div(log_p, q, { reduction = "batchmean" }) * (T * T)
end

--- Flattens dims start..finish (default 2..-1) of x.
function F.flatten(x, start_dim, end_dim)
  return x:flatten(start_dim or 2, end_dim or -1)
end

-- Everything else comes straight from the engine, looked up on first use so
-- that F keeps working as the engine grows.
return setmetatable(F, {
  __index = function(self, name)
    local fn = core[name]
    if type(fn) == "function" then
      rawset(self, name, fn)
      return fn
    end
    return nil
  end,
})

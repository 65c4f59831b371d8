-- Gradient checking by central finite differences.
--
-- gradcheck(fn, inputs, opts) compares the gradients that backward() puts
-- on every input with requires_grad against numerical ones. fn receives the
-- inputs and returns a tensor or a list of tensors. Rather than needing a
-- scalar output, the check weighs each output y_k with a fixed random
-- tensor r_k and differentiates f = sum_k <y_k, r_k>; backward is seeded
-- with r_k, so fn may be any op, scalar or not.
--
-- Inputs that require grad must be contiguous leaves (test non-contiguous
-- paths by transposing or narrowing inside fn). Returns ok, report.
local distill = require "distill"

local M = {}

local function as_list(result)
  if distill.is_tensor(result) then
    return { result }
  end
  return result
end

local function flat(t)
  return t:contiguous():view{-1}
end

local function weighted_sum(outputs, weights)
  local total = 0.0
  for k, out in ipairs(outputs) do
    local y, r = flat(out), flat(weights[k])
    for i = 1, y:numel() do
      total = total + y[i] * r[i]
    end
  end
  return total
end

local function positions(numel, limit, rng)
  local list = {}
  if numel <= limit then
    for i = 1, numel do
      list[i] = i
    end
  else
    for i = 1, limit do
      list[i] = rng(numel)
    end
  end
  return list
end

--- opts: eps (1e-2), atol (1e-2), rtol (1e-2), max_checks per input (64), seed.
function M.gradcheck(fn, inputs, opts)
  local callable = type(fn) == "function" or (type(getmetatable(fn)) == "table" and getmetatable(fn).__call)
  if not callable then
    error(("gradcheck: argument #1: expected the function to check, got %s"):format(type(fn)), 2)
  end
  if type(inputs) ~= "table" then
    error(("gradcheck: argument #2: expected a list of inputs (tensors), got %s"):format(type(inputs)), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("gradcheck: argument #3: expected options {eps =, atol =, rtol =, max_checks =, seed =}, got %s")
      :format(type(opts)), 2)
  end
  opts = opts or {}
  local eps, atol, rtol = opts.eps or 1e-2, opts.atol or 1e-2, opts.rtol or 1e-2
  local max_checks = opts.max_checks or 64
  local seed = opts.seed or 1234

  local checked = {}
  for index, x in ipairs(inputs) do
    if distill.is_tensor(x) and x.requires_grad then
      assert(x.is_leaf, "gradcheck: input " .. index .. " requiring grad must be a leaf")
      assert(x:is_contiguous(), "gradcheck: input " .. index .. " must be contiguous")
      x.grad = nil
      checked[#checked + 1] = index
    end
  end
  assert(#checked > 0, "gradcheck: no input requires grad")

  local outputs = as_list(fn(table.unpack(inputs)))
  local saved_rng = distill.get_rng_state()
  distill.manual_seed(seed)
  local weights = {}
  for k, out in ipairs(outputs) do
    weights[k] = distill.randn(out:shape())
  end
  distill.set_rng_state(saved_rng)
  for k, out in ipairs(outputs) do
    if out.requires_grad then
      out:backward(weights[k], { retain_graph = k < #outputs })
    end
  end

  local function objective()
    return distill.no_grad(function()
      return weighted_sum(as_list(fn(table.unpack(inputs))), weights)
    end)
  end

  local state = seed
  local function rng(n)   -- a small LCG: positions must not disturb distill's RNG
    state = (state * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (state >> 20) % n + 1
  end

  local failures, worst = {}, 0.0
  for _, index in ipairs(checked) do
    local x = inputs[index]
    local grad = x.grad and flat(x.grad)
    local values = distill.no_grad(function() return x:view{-1} end)
    for _, j in ipairs(positions(x:numel(), max_checks, rng)) do
      local original = values[j]
      distill.no_grad(function() values[j] = original + eps end)
      local plus = objective()
      distill.no_grad(function() values[j] = original - eps end)
      local minus = objective()
      distill.no_grad(function() values[j] = original end)
      local numeric = (plus - minus) / (2 * eps)
      local analytic = grad and grad[j] or 0.0
      local err = math.abs(numeric - analytic)
      local allowed = atol + rtol * math.abs(numeric)
      worst = math.max(worst, err / allowed)
      if err > allowed and #failures < 10 then
        failures[#failures + 1] = ("input %d element %d: analytic %.6g, numeric %.6g"):format(
          index, j, analytic, numeric)
      end
    end
  end
  if #failures > 0 then
    return false, "gradcheck failed:\n  " .. table.concat(failures, "\n  ")
  end
  return true, ("gradcheck passed (worst error %.3g of the tolerance)"):format(worst)
end

--- Raises with the report when the check fails.
function M.assert_gradcheck(fn, inputs, opts)
  local ok, report = M.gradcheck(fn, inputs, opts)
  if not ok then
    error(report, 2)
  end
  return report
end

return M

-- bench_elementwise.lua - per-call time and bandwidth of the batch-norm,
-- ReLU and elementwise passes of a training step, on the activation shapes
-- of the CIFAR ResNets at batch 64.
--
-- Usage (from the repository root):
--   DISTILL_BUILD=build lua5.4 scripts/distill scripts/bench_elementwise.lua [repeats] [--json]
--     [--only PATTERN]   (ops whose name matches the Lua pattern)
--     [--step]           (instead: the batch-norm and elementwise kernel time of
--                         one ResNet56 -> ResNet20 distillation step at batch 64,
--                         from per-op best times times the calls a step makes)
-- Threads come from OMP_NUM_THREADS; compare with
--   /usr/bin/python3 scripts/bench_elementwise_torch.py --threads N [repeats]
--
-- Each figure is the best of `repeats` calls (after a warm-up call) of the
-- time the engine's profiler charges to the op's kind (batchnorm or
-- elementwise), so Lua dispatch and the autograd leaf accumulation are
-- left out and only the kernels count. A backward is timed as the kernels
-- one node's backward runs. GB/s counts the bytes the op must move at
-- least (each float32 input read once, each output written once).
local distill = require "distill"

local repeats, as_json, only, step = 20, false, nil, false
for i, a in ipairs(arg) do
  if a == "--json" then
    as_json = true
  elseif a == "--step" then
    step = true
  elseif a == "--only" then
    only = arg[i + 1]
  elseif tonumber(a) and arg[i - 1] ~= "--only" then
    repeats = math.tointeger(tonumber(a)) or repeats
  end
end

local shapes = {
  { 64, 16, 32, 32 },
  { 64, 64, 8, 8 },
  { 64, 32, 32, 32 },
  { 64, 256, 8, 8 },
}

local prof = distill.profile

-- Seconds the profiler charged to `kind` during one call of f.
local function charged(kind, f)
  prof.start()
  f()
  prof.stop()
  local r = prof.report()[kind]
  return r and r.seconds or 0
end

local function best(kind, f)
  charged(kind, f)
  local b = math.huge
  for _ = 1, repeats do
    b = math.min(b, charged(kind, f))
  end
  return b
end

local function numel(shape)
  local n = 1
  for _, d in ipairs(shape) do
    n = n * d
  end
  return n
end

-- Ops: name, profiler kind, floats moved per element, and a builder that
-- returns the function to time for a shape.
local function bn_params(c)
  local w = distill.rand{ c } + 0.5
  local b = distill.randn{ c }
  return w, b, distill.zeros{ c }, distill.ones{ c }
end

-- A graph y = f(leaves) kept for repeated backward through its last node.
local function backward_of(make)
  return function(shape)
    local y = make(shape)
    local g = distill.randn(shape)
    return function() y:backward(g, { retain_graph = true }) end
  end
end

local ops = {
  { "bn_train_fwd", "batchnorm", 2, function(shape)
    local x = distill.randn(shape)
    local w, b, rm, rv = bn_params(shape[2])
    return function()
      distill.no_grad(function() return distill.batch_norm(x, rm, rv, w, b, { training = true }) end)
    end
  end },
  { "bn_eval_fwd", "batchnorm", 2, function(shape)
    local x = distill.randn(shape)
    local w, b, rm, rv = bn_params(shape[2])
    return function()
      distill.no_grad(function() return distill.batch_norm(x, rm, rv, w, b, { training = false }) end)
    end
  end },
  { "bn_train_bwd", "batchnorm", 3, backward_of(function(shape)
    local x = distill.randn(shape)
    local w, b, rm, rv = bn_params(shape[2])
    x.requires_grad = true
    w.requires_grad = true
    b.requires_grad = true
    return distill.batch_norm(x, rm, rv, w, b, { training = true })
  end) },
  { "relu_fwd", "elementwise", 2, function(shape)
    local x = distill.randn(shape)
    return function() distill.no_grad(function() return x:relu() end) end
  end },
  { "relu_bwd", "elementwise", 3, backward_of(function(shape)
    local x = distill.randn(shape)
    x.requires_grad = true
    return x:relu()
  end) },
  { "add", "elementwise", 3, function(shape)
    local x, y = distill.randn(shape), distill.randn(shape)
    return function() distill.no_grad(function() return x + y end) end
  end },
  { "add_relu", "elementwise", 3, function(shape)
    local x, y = distill.randn(shape), distill.randn(shape)
    return function() distill.no_grad(function() return (x + y):relu() end) end
  end },
  { "mul", "elementwise", 3, function(shape)
    local x, y = distill.randn(shape), distill.randn(shape)
    return function() distill.no_grad(function() return x * y end) end
  end },
  { "add_", "elementwise", 3, function(shape)
    local x, y = distill.randn(shape), distill.randn(shape)
    return function() distill.no_grad(function() return x:add_(y) end) end
  end },
  { "mul_scalar", "elementwise", 2, function(shape)
    local x = distill.randn(shape)
    return function() distill.no_grad(function() return x * 0.5 end) end
  end },
}

-- Calls per distillation step (teacher ResNet56 in eval mode under no_grad,
-- student ResNet20 trained) at each stage's activation shape: the stem and
-- stage 1 at 16x32x32, stages 2 and 3 at 32x16x16 and 64x8x8 (their first
-- block adds a downsample batch norm).
local step_shapes = { { 64, 16, 32, 32 }, { 64, 32, 16, 16 }, { 64, 64, 8, 8 } }
local step_calls = {
  bn_train_fwd = { 7, 7, 7 }, bn_train_bwd = { 7, 7, 7 }, bn_eval_fwd = { 19, 19, 19 },
  relu_fwd = { 7 + 19, 6 + 18, 6 + 18 }, relu_bwd = { 7, 6, 6 }, add = { 3 + 9, 3 + 9, 3 + 9 },
}

local function run_step()
  local by_op, totals = {}, { batchnorm = 0, elementwise = 0 }
  for si, shape in ipairs(step_shapes) do
    for _, op in ipairs(ops) do
      local name, kind, build = op[1], op[2], op[4]
      local calls = step_calls[name]
      if calls then
        local s = best(kind, build(shape)) * calls[si]
        by_op[name] = (by_op[name] or 0) + s
        totals[kind] = totals[kind] + s
        collectgarbage()
      end
    end
  end
  print(("kernel time of one ResNet56 -> ResNet20 distillation step (batch 64), best of %d, "
    .. "OMP_NUM_THREADS=%s"):format(repeats, os.getenv("OMP_NUM_THREADS") or "default"))
  for _, name in ipairs{ "bn_train_fwd", "bn_train_bwd", "bn_eval_fwd", "relu_fwd", "relu_bwd", "add" } do
    print(("  %-14s %8.2f ms/step"):format(name, by_op[name] * 1e3))
  end
  print(("  %-14s %8.2f ms/step"):format("batchnorm", totals.batchnorm * 1e3))
  print(("  %-14s %8.2f ms/step"):format("elementwise", totals.elementwise * 1e3))
end

if step then
  distill.manual_seed(1)
  run_step()
  return
end

local results = {}
distill.manual_seed(1)
for _, shape in ipairs(shapes) do
  local n = numel(shape)
  for _, op in ipairs(ops) do
    local name, kind, floats, build = op[1], op[2], op[3], op[4]
    if not only or name:match(only) then
      local s = best(kind, build(shape))
      results[#results + 1] = {
        op = name, shape = table.concat(shape, "x"), ms = s * 1e3, gbs = floats * 4 * n / s * 1e-9,
      }
      collectgarbage()
    end
  end
end

if as_json then
  local parts = {}
  for _, r in ipairs(results) do
    parts[#parts + 1] = ('{"op":"%s","shape":"%s","ms":%.5f,"gbs":%.3f}'):format(r.op, r.shape,
      r.ms, r.gbs)
  end
  print("[" .. table.concat(parts, ",") .. "]")
else
  print(("best of %d, OMP_NUM_THREADS=%s"):format(repeats, os.getenv("OMP_NUM_THREADS") or "default"))
  print(("%-14s %-12s %10s %8s"):format("op", "shape", "ms/call", "GB/s"))
  for _, r in ipairs(results) do
    print(("%-14s %-12s %10.4f %8.2f"):format(r.op, r.shape, r.ms, r.gbs))
  end
end

-- bench_layers.lua - the CIFAR ResNets' convolution layers one by one, ours
-- against PyTorch (scripts/bench_layers_torch.py, channels-last oneDNN), at
-- batch 64: ms of the forward under no_grad and of forward + backward
-- (input and weight gradients), best of --repeats, the two sides
-- alternating --rounds times and each keeping its best. The table is the
-- one docs/performance.md gives per host and kernel set.
--
--   distill scripts/bench_layers.lua [--batch 64] [--repeats 10] [--rounds 2] [--threads 2]
--
-- The kernel sets are ours (DISTILL_ISA) and PyTorch's (DNNL_MAX_CPU_ISA,
-- ATEN_CPU_CAPABILITY) from the environment; compare like with like, e.g.
--   DISTILL_ISA=avx2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 distill scripts/bench_layers.lua
local distill = require "distill"

local opts = { batch = 64, repeats = 10, rounds = 2, threads = 2 }
do
  local i = 1
  while i <= #arg do
    local key = arg[i]:match("^%-%-(%a+)$")
    local value = tonumber(arg[i + 1] or "")
    if not key or opts[key] == nil or not value then
      error("bench_layers: expected --batch/--repeats/--rounds/--threads N, got " .. arg[i], 0)
    end
    opts[key] = math.tointeger(value) or value
    i = i + 2
  end
end

-- cin, cout, size, kernel, stride, the path ours takes ("auto" algorithm)
local LAYERS = {
  { 32, 64, 32, 3, 1 }, { 64, 64, 32, 3, 1 }, { 128, 128, 16, 3, 1 }, { 256, 256, 8, 3, 1 },
  { 16, 16, 32, 3, 1 }, { 32, 32, 16, 3, 1 }, { 64, 64, 8, 3, 1 },
  { 64, 128, 32, 3, 2 }, { 128, 256, 16, 3, 2 }, { 16, 32, 32, 3, 2 }, { 32, 64, 16, 3, 2 },
  { 3, 32, 32, 3, 1 }, { 3, 16, 32, 3, 1 },
  { 64, 128, 32, 1, 2 }, { 128, 256, 16, 1, 2 }, { 16, 32, 32, 1, 2 }, { 32, 64, 16, 1, 2 },
}

local function key(l) return table.concat(l, ",", 1, 5) end

local function best(fn)
  fn()
  local t = math.huge
  for _ = 1, opts.repeats do
    local t0 = distill.wallclock()
    fn()
    t = math.min(t, distill.wallclock() - t0)
  end
  return t * 1e3
end

local function ours(l)
  local cin, cout, size, k, stride = table.unpack(l)
  distill.manual_seed(0)
  local x = distill.randn{ opts.batch, cin, size, size }
  local w = distill.randn{ cout, cin, k, k } * math.sqrt(2 / (cin * k * k))
  local o = { stride = stride, padding = k // 2 }
  local dy = distill.randn(distill.no_grad(function() return distill.conv2d(x, w, nil, o) end)
    :shape())
  local xg, wg = x:clone(), w:clone()
  xg.requires_grad, wg.requires_grad = true, true
  local fwd = best(function()
    distill.no_grad(function() return distill.conv2d(x, w, nil, o) end)
  end)
  local fb = best(function()
    xg.grad, wg.grad = nil, nil
    distill.conv2d(xg, wg, nil, o):backward(dy)
  end)
  return { fwd, fb }
end

local function theirs()
  local specs = {}
  for _, l in ipairs(LAYERS) do specs[#specs + 1] = key(l) end
  local cmd = ("/usr/bin/python3 scripts/bench_layers_torch.py --batch %d --repeats %d "
    .. "--threads %d %s"):format(opts.batch, opts.repeats, opts.threads, table.concat(specs, " "))
  local p = assert(io.popen(cmd))
  local text = p:read("a")
  if not p:close() then error("bench_layers: the PyTorch side failed:\n" .. text, 0) end
  local out = {}
  for spec, f, fb in text:gmatch('"([%d,]+)": %[([%d.e+-]+), ([%d.e+-]+)%]') do
    out[spec] = { tonumber(f), tonumber(fb) }
  end
  return out
end

local function path(l)
  local _, _, _, k, stride = table.unpack(l)
  if k == 3 and stride == 1 and l[1] >= 16 and l[2] >= 16 then return "Winograd" end
  return "im2col + GEMM"
end

local mine, torch = {}, {}
for _ = 1, opts.rounds do
  for _, l in ipairs(LAYERS) do
    local r, k = ours(l), key(l)
    mine[k] = mine[k] and { math.min(mine[k][1], r[1]), math.min(mine[k][2], r[2]) } or r
  end
  for k, r in pairs(theirs()) do
    torch[k] = torch[k] and { math.min(torch[k][1], r[1]), math.min(torch[k][2], r[2]) } or r
  end
end

local cpu = distill.cpu_info()
print(("%s; ours: kernels %s; PyTorch: DNNL_MAX_CPU_ISA=%s; batch %d, %d threads, best of %d x %d")
  :format(cpu.model, cpu.isa, os.getenv("DNNL_MAX_CPU_ISA") or "(best)", opts.batch,
    opts.threads, opts.repeats, opts.rounds))
print("| layer | ours fwd | PyTorch fwd | ratio | ours fwd+bwd | PyTorch fwd+bwd | ratio | path |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
local sums = { 0, 0, 0, 0 }
for _, l in ipairs(LAYERS) do
  local k = key(l)
  local a, b = mine[k], torch[k] or { 0 / 0, 0 / 0 }
  for i = 1, 2 do
    sums[i] = sums[i] + a[i]
    sums[i + 2] = sums[i + 2] + b[i]
  end
  local name = ("%d→%d, %dx%d%s%s"):format(l[1], l[2], l[3], l[3], l[4] == 1 and ", 1x1" or "",
    l[5] == 2 and ", stride 2" or "")
  print(("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %s |"):format(name, a[1], b[1],
    b[1] / a[1], a[2], b[2], b[2] / a[2], path(l)))
end
print(("| all | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | |"):format(sums[1], sums[3],
  sums[3] / sums[1], sums[2], sums[4], sums[4] / sums[2]))
print("(ratio = PyTorch time / ours: above 1, ours is faster)")

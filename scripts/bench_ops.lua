-- bench_ops.lua - conv2d forward, backward-data and backward-weight per 3x3
-- layer shape of the CIFAR ResNets (ResNet8x4/32x4: 32..256 channels;
-- ResNet20/56: 16..64 channels), ms and GF/s, at batch 64.
--
-- Usage: DISTILL_BUILD=./build lua5.4 scripts/bench_ops.lua [options]
--   --batch B      images per batch (64)
--   --repeats R    timed runs per measurement, best kept (5)
--   --nets LIST    r8x4,r20 (default both); r8x4 covers ResNet8x4/32x4,
--                  r20 covers ResNet20/56 (same layer shapes, more blocks)
--   --compare      also run the OpenBLAS baseline (DISTILL_CONV_BLAS=1, in a
--                  child process, since conv_algo.c reads the switch once) and
--                  print before/after side by side
--   --raw          machine-readable lines (used by --compare)
--   --cpu          time with os.clock() (process CPU time, all threads)
--                  instead of the wall clock: on a shared machine, run with
--                  OMP_NUM_THREADS=1 --cpu for per-core figures that other
--                  processes disturb far less than wall time
-- Run from the repository root.
local build = os.getenv("DISTILL_BUILD") or "./build"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local distill = require "distill"

local opts = { batch = 64, repeats = 5, nets = "r8x4,r20", compare = false, raw = false,
  cpu = false }
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    if a == "--compare" then opts.compare = true
    elseif a == "--raw" then opts.raw = true
    elseif a == "--cpu" then opts.cpu = true
    elseif a == "--batch" or a == "--repeats" or a == "--nets" then
      local v = arg[i + 1] or error("bench_ops: " .. a .. " needs a value")
      opts[a:sub(3)] = a == "--nets" and v or assert(tonumber(v), a .. " needs a number")
      i = i + 1
    else
      error("bench_ops: unknown option " .. a)
    end
    i = i + 1
  end
end

local clock = opts.cpu and os.clock or distill.wallclock
  or (distill.profile and distill.profile.now) or error("bench_ops: no wall clock in this build")

local nets = {
  r8x4 = {
    { cin = 3, cout = 32, size = 32, stride = 1 },
    { cin = 32, cout = 64, size = 32, stride = 1 },
    { cin = 64, cout = 64, size = 32, stride = 1 },
    { cin = 64, cout = 128, size = 32, stride = 2 },
    { cin = 128, cout = 128, size = 16, stride = 1 },
    { cin = 128, cout = 256, size = 16, stride = 2 },
    { cin = 256, cout = 256, size = 8, stride = 1 },
  },
  r20 = {
    { cin = 3, cout = 16, size = 32, stride = 1 },
    { cin = 16, cout = 16, size = 32, stride = 1 },
    { cin = 16, cout = 32, size = 32, stride = 2 },
    { cin = 32, cout = 32, size = 16, stride = 1 },
    { cin = 32, cout = 64, size = 16, stride = 2 },
    { cin = 64, cout = 64, size = 8, stride = 1 },
  },
}

-- Best wall time of `repeats` runs of f (after one warm-up run).
local function best_time(f)
  f()
  local best = math.huge
  for _ = 1, opts.repeats do
    local t0 = clock()
    f()
    best = math.min(best, clock() - t0)
  end
  return best
end

-- {fwd, data, weight} seconds for one layer shape.
local function measure(l)
  local batch = opts.batch
  distill.manual_seed(1)
  local out = l.size // l.stride
  local x = distill.randn{ batch, l.cin, l.size, l.size }
  local w = distill.randn{ l.cout, l.cin, 3, 3 }
  local copts = { stride = l.stride, padding = 1 }
  local fwd = best_time(function()
    distill.no_grad(function() return distill.conv2d(x, w, nil, copts) end)
  end)
  -- backward-data: only x needs a gradient; backward-weight: only w. The
  -- graph is kept (retain_graph) and .grad from the warm-up run, so each
  -- timing is one backward through the conv node plus one accumulation
  -- pass into .grad.
  local g = distill.randn{ batch, l.cout, out, out }
  x.requires_grad = true
  local y = distill.conv2d(x, w, nil, copts)
  local data = best_time(function() y:backward(g, { retain_graph = true }) end)
  x.requires_grad = false
  x.grad = nil
  w.requires_grad = true
  y = distill.conv2d(x, w, nil, copts)
  local weight = best_time(function() y:backward(g, { retain_graph = true }) end)
  w.requires_grad = false
  collectgarbage()
  return { fwd, data, weight }, 2.0 * batch * l.cout * out * out * l.cin * 9
end

local function layer_name(net, l)
  return ("%s %d->%d %dx%d s%d"):format(net, l.cin, l.cout, l.size, l.size, l.stride)
end

local function net_list()
  local list = {}
  for name in opts.nets:gmatch("[^,]+") do
    local layers = nets[name] or error("bench_ops: unknown net " .. name)
    list[#list + 1] = { name = name, layers = layers }
  end
  return list
end

-- Raw lines "name|fwd|data|weight|flops" for --compare's parent.
local function run_raw()
  for _, net in ipairs(net_list()) do
    for _, l in ipairs(net.layers) do
      local t, flops = measure(l)
      print(("%s|%.9f|%.9f|%.9f|%.0f"):format(layer_name(net.name, l), t[1], t[2], t[3], flops))
    end
  end
end

-- The baseline's raw lines, from a child process with DISTILL_CONV_BLAS=1.
local function baseline()
  local cmd = ("DISTILL_CONV_BLAS=1 lua5.4 %q --raw --batch %d --repeats %d --nets %q%s"):format(
    arg[0], opts.batch, opts.repeats, opts.nets, opts.cpu and " --cpu" or "")
  local p = assert(io.popen(cmd))
  local rows = {}
  for line in p:lines() do
    local name, f, d, w = line:match("^(.-)|([%d.e-]+)|([%d.e-]+)|([%d.e-]+)|")
    if name then rows[name] = { tonumber(f), tonumber(d), tonumber(w) } end
  end
  assert(p:close(), "bench_ops: baseline run failed")
  return rows
end

if opts.raw then
  run_raw()
  return
end

local base = opts.compare and baseline() or nil
local kinds = { "fwd", "data", "weight" }
print(("conv2d 3x3 (padding 1), batch %d, best of %d, %s, %s time; ms and GF/s%s"):format(
  opts.batch, opts.repeats, os.getenv("DISTILL_CONV_BLAS") == "1" and "OpenBLAS" or "dt_gemm",
  opts.cpu and "CPU" or "wall",
  base and " (OpenBLAS before -> dt_gemm after)" or ""))
local totals, btotals = { 0, 0, 0 }, { 0, 0, 0 }
for _, net in ipairs(net_list()) do
  for _, l in ipairs(net.layers) do
    local t, flops = measure(l)
    local name = layer_name(net.name, l)
    local cells = {}
    for k = 1, 3 do
      totals[k] = totals[k] + t[k]
      local b = base and base[name]
      if b then
        btotals[k] = btotals[k] + b[k]
        cells[k] = ("%s %6.1f->%6.1f ms %5.0f->%5.0f GF/s x%.2f"):format(kinds[k], b[k] * 1e3,
          t[k] * 1e3, flops / b[k] * 1e-9, flops / t[k] * 1e-9, b[k] / t[k])
      else
        cells[k] = ("%s %7.2f ms %6.1f GF/s"):format(kinds[k], t[k] * 1e3, flops / t[k] * 1e-9)
      end
    end
    print(("%-24s %s"):format(name, table.concat(cells, " | ")))
  end
end
local function total_line(t)
  return ("forward %.1f, backward-data %.1f, backward-weight %.1f"):format(t[1] * 1e3,
    t[2] * 1e3, t[3] * 1e3)
end
if base then print("total ms before (OpenBLAS): " .. total_line(btotals)) end
print("total ms" .. (base and " after (dt_gemm): " or ": ") .. total_line(totals))

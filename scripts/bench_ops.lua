-- bench_ops.lua - GFLOP/s of conv2d forward, backward-data and
-- backward-weight for the 3x3 convolutions of a ResNet8x4 at batch 64, and
-- the fraction of plain sgemm speed they reach.
--
-- Usage: DISTILL_BUILD=./build lua5.4 scripts/bench_ops.lua [batch] [repeats]
-- (run from the repository root). The sgemm yardstick is distill.mm of the
-- forward product's shape, M = out channels, K = in channels * 9,
-- N = 16 images' output positions (16 rather than the whole batch to keep
-- the operand small); all three passes do the same number of flops.
local build = os.getenv("DISTILL_BUILD") or "./build"
package.cpath = build .. "/?.so;" .. package.cpath
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
local distill = require "distill"

local batch = tonumber(arg[1]) or 64
local repeats = tonumber(arg[2]) or 5
local clock = distill.wallclock or os.time
if not distill.wallclock then
  io.stderr:write("bench_ops: distill.wallclock missing, timing with os.time (coarse)\n")
end

local layers = {
  { cin = 32, cout = 64, size = 32, stride = 1 },
  { cin = 64, cout = 64, size = 32, stride = 1 },
  { cin = 64, cout = 128, size = 32, stride = 2 },
  { cin = 128, cout = 128, size = 16, stride = 1 },
  { cin = 128, cout = 256, size = 16, stride = 2 },
  { cin = 256, cout = 256, size = 8, stride = 1 },
}

-- Best wall time of `repeats` runs of f (after one warm-up run).
local function best_time(f)
  f()
  local best = math.huge
  for _ = 1, repeats do
    local t0 = clock()
    f()
    best = math.min(best, clock() - t0)
  end
  return best
end

local function gflops(flops, seconds)
  return flops / seconds * 1e-9
end

print(("conv2d 3x3 (padding 1) at batch %d, best of %d; GF/s and fraction of sgemm"):format(batch, repeats))
print(("%-26s %9s %9s %9s %9s %6s %6s %6s"):format("layer", "fwd", "bwd-data", "bwd-wt", "sgemm",
  "fwd%", "data%", "wt%"))
local totals = { 0, 0, 0 }
for _, l in ipairs(layers) do
  distill.manual_seed(1)
  local out = l.size // l.stride
  local x = distill.randn{ batch, l.cin, l.size, l.size }
  local w = distill.randn{ l.cout, l.cin, 3, 3 }
  local opts = { stride = l.stride, padding = 1 }
  local flops = 2.0 * batch * l.cout * out * out * l.cin * 9

  local fwd = best_time(function()
    distill.no_grad(function() return distill.conv2d(x, w, nil, opts) end)
  end)

  -- backward-data: only x needs a gradient; backward-weight: only w.
  -- The graph is kept (retain_graph) and the leaf's .grad is kept from the
  -- warm-up run, so each timing is one backward through the conv node plus
  -- one in-place accumulation pass into .grad (no fresh allocation).
  local g = distill.randn{ batch, l.cout, out, out }
  x.requires_grad = true
  local y = distill.conv2d(x, w, nil, opts)
  local bwd_data = best_time(function()
    y:backward(g, { retain_graph = true })
  end)
  x.requires_grad = false
  x.grad = nil
  w.requires_grad = true
  y = distill.conv2d(x, w, nil, opts)
  local bwd_wt = best_time(function()
    y:backward(g, { retain_graph = true })
  end)
  w.requires_grad = false
  y = nil

  local sgemm = 0
  if distill.mm then
    local images = math.min(batch, 16)
    local a = distill.randn{ l.cout, l.cin * 9 }
    local b = distill.randn{ l.cin * 9, images * out * out }
    local t = best_time(function() return distill.mm(a, b) end)
    sgemm = gflops(2.0 * l.cout * l.cin * 9 * images * out * out, t)
  end
  local f, d, wt = gflops(flops, fwd), gflops(flops, bwd_data), gflops(flops, bwd_wt)
  totals[1], totals[2], totals[3] = totals[1] + fwd, totals[2] + bwd_data, totals[3] + bwd_wt
  local name = ("%d->%d %dx%d s%d"):format(l.cin, l.cout, l.size, l.size, l.stride)
  local function pct(v)
    return sgemm > 0 and ("%5.0f%%"):format(100 * v / sgemm) or "   n/a"
  end
  print(("%-26s %9.1f %9.1f %9.1f %9.1f %6s %6s %6s"):format(name, f, d, wt, sgemm, pct(f), pct(d), pct(wt)))
  collectgarbage()
end
print(("total time (ms): forward %.1f, backward-data %.1f, backward-weight %.1f"):format(
  totals[1] * 1e3, totals[2] * 1e3, totals[3] * 1e3))

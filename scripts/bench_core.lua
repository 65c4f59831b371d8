-- bench_core.lua - GFLOP/s of distill's mm against cblas_sgemm called
-- directly from C (the bench_sgemm program CMake builds), then one core's
-- FMA peak and the engine's own GEMM on the conv products for every kernel
-- set the CPU runs (the bench_gemm program, --summary; run it without
-- --summary for the per-product table).
--
--   distill scripts/bench_core.lua [sizes...]
--
-- The build directory is $DISTILL_BUILD, else ./build; it provides both
-- distill/core.so and bench_sgemm. Times are wall-clock (distill.wallclock,
-- CLOCK_MONOTONIC): os.clock() adds up the CPU time of all BLAS threads.
-- Each size is timed as the best of several single products after a
-- warm-up, the same protocol bench_sgemm follows. The two sides alternate
-- for a few rounds and each keeps its best, so that load from other
-- processes on a shared machine hits both alike.
local build = os.getenv("DISTILL_BUILD") or "./build"
package.cpath = build .. "/?.so;" .. package.cpath
if not package.path:find("lua/?.lua", 1, true) then
  package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
end

local distill = require "distill"

local sizes = {}
for i = 1, #arg do
  sizes[#sizes + 1] = assert(math.tointeger(tonumber(arg[i])), "sizes must be integers")
end
if #sizes == 0 then
  sizes = { 256, 512, 1024, 2048 }
end

-- Enough repeats for a stable best time without taking long.
local function repeats_for(n)
  if n <= 256 then return 50 end
  if n <= 512 then return 20 end
  if n <= 1024 then return 10 end
  return 5
end

local function bench_distill(n, repeats)
  distill.manual_seed(0)
  local a, b = distill.randn{n, n}, distill.randn{n, n}
  for _ = 1, 2 do
    distill.mm(a, b):free()   -- warm-up: BLAS threads, page faults
  end
  local best = math.huge
  for _ = 1, repeats do
    local t0 = distill.wallclock()
    local c = distill.mm(a, b)
    local dt = distill.wallclock() - t0
    c:free()
    if dt < best then best = dt end
  end
  a:free()
  b:free()
  return 2 * n * n * n / best * 1e-9
end

local function bench_direct(n, repeats)
  local exe = build .. "/bench_sgemm"
  local pipe = io.popen(string.format("%q %d %d 2>&1", exe, n, repeats))
  local out = pipe:read("a")
  pipe:close()
  local size, gflops = out:match("^(%d+)%s+([%d.]+)")
  if not size then
    error(string.format("bench_core: could not run %s (build it with cmake --build %s): %s",
      exe, build, out), 0)
  end
  return tonumber(gflops)
end

local cpu = distill.cpu_info()
print(("%s, kernels %s (runs %s)"):format(cpu.model, cpu.isa, table.concat(cpu.isas, ", ")))
print(string.format("%-6s %14s %14s %8s", "N", "distill.mm", "direct sgemm", "ratio"))
print(string.format("%-6s %14s %14s %8s", "", "GFLOP/s", "GFLOP/s", ""))
local rounds = 5
for _, n in ipairs(sizes) do
  local reps = repeats_for(n)
  local ours, direct = 0, 0
  for _ = 1, rounds do
    ours = math.max(ours, bench_distill(n, reps))
    direct = math.max(direct, bench_direct(n, reps))
  end
  print(string.format("%-6d %14.2f %14.2f %8.3f", n, ours, direct, ours / direct))
end

-- The engine's GEMM (the conv products) against each set's FMA peak.
local pipe = io.popen(string.format("%q 5 8 --summary 2>&1", build .. "/bench_gemm"))
local summary = pipe:read("a")
if not pipe:close() then
  error("bench_core: bench_gemm failed: " .. summary, 0)
end
io.write("\n", summary)

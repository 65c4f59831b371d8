-- bench_crd.lua - CRD's memory-bank scores (distill.crd_scores) forward and
-- backward at the shapes CRD trains with, and PyTorch's way of computing the
-- same (index_select of the named rows, then bmm, as the CRD reference code
-- does) side by side in one run.
--
-- Usage (from the repository root):
--   lua5.4 scripts/distill scripts/bench_crd.lua [--repeats R] [--no-torch]
-- Threads come from OMP_NUM_THREADS (PyTorch is given the same count).
-- Each figure is the best of R wall-clock calls after a warm-up: forward
-- (the scores) and forward + backward (the gradient to the embeddings). The
-- last two shapes sit either side of the bank size where the kernel stops
-- multiplying the whole bank and reads the named rows one by one.
local distill = require "distill"

local repeats, with_torch = 5, true
do
  local i = 1
  while i <= #arg do
    if arg[i] == "--repeats" then
      repeats = math.tointeger(tonumber(arg[i + 1])) or error("bench_crd: --repeats needs an integer", 0)
      i = i + 1
    elseif arg[i] == "--no-torch" then
      with_torch = false
    else
      error("bench_crd: unknown option " .. arg[i], 0)
    end
    i = i + 1
  end
end

-- name, bank rows N, batch B, rows named per sample K+1, embedding size D
local shapes = {
  { "CIFAR-100 CRD (K 16384)", 50000, 64, 16385, 128 },
  { "Fashion-MNIST study CRD", 60000, 64, 16385, 128 },
  { "demo student CRD (K 4096)", 10000, 64, 4097, 128 },
  { "ImageNet CRD (K 16384, B 256)", 1281167, 256, 16385, 128 },
  { "bank 32x the rows per sample", 16384, 64, 512, 128 },
  { "bank 33x the rows per sample", 16896, 64, 512, 128 },
}

local function best(f)
  f()
  local t = math.huge
  for _ = 1, repeats do
    -- the last call's tensors go back to the storage cache, as a training
    -- step's do, so a call does not pay for fresh pages
    collectgarbage()
    local t0 = distill.wallclock()
    f()
    t = math.min(t, distill.wallclock() - t0)
  end
  return t
end

local function ours(n, b, k1, d)
  distill.manual_seed(1)
  local bank = distill.randn { n, d } * 0.1
  local idx = distill.randint(1, n + 1, { b, k1 })
  local v = distill.randn { b, d } * 0.1
  v.requires_grad = true
  local forward = best(function() return distill.crd_scores(bank, idx, v, 0.07) end)
  local both = best(function()
    v.grad = nil
    distill.crd_scores(bank, idx, v, 0.07):sum():backward()
  end)
  return forward, both
end

local function torch_times()
  local lines = {}
  for _, s in ipairs(shapes) do
    lines[#lines + 1] = table.concat({ s[2], s[3], s[4], s[5] }, " ")
  end
  local input = os.tmpname()
  local f = assert(io.open(input, "w"))
  f:write(table.concat(lines, "\n"), "\n")
  f:close()
  local threads = os.getenv("OMP_NUM_THREADS") or ""
  local cmd = ("/usr/bin/python3 scripts/bench_crd_torch.py %d %s < %s 2>&1"):format(repeats, threads, input)
  local pipe = assert(io.popen(cmd))
  local out = pipe:read("a")
  pipe:close()
  os.remove(input)
  local times = {}
  for fwd, both in out:gmatch("(%S+) (%S+)\n") do
    times[#times + 1] = { tonumber(fwd), tonumber(both) }
  end
  if #times ~= #shapes then
    io.stderr:write("bench_crd: no PyTorch figures (", out:sub(1, 200), ")\n")
    return nil
  end
  return times
end

local torch = with_torch and torch_times() or nil
print(("isa %s, %s threads, best of %d"):format(distill.isa(), os.getenv("OMP_NUM_THREADS") or "default", repeats))
print(("%-31s %8s %6s %6s | %9s %9s | %9s %9s | %5s"):format("shape", "N", "B", "K+1",
  "fwd ms", "f+b ms", "torch fwd", "torch f+b", "ratio"))
for i, s in ipairs(shapes) do
  local fwd, both = ours(s[2], s[3], s[4], s[5])
  local t = torch and torch[i]
  print(("%-31s %8d %6d %6d | %9.1f %9.1f | %9s %9s | %5s"):format(s[1], s[2], s[3], s[4],
    fwd * 1e3, both * 1e3, t and ("%.1f"):format(t[1] * 1e3) or "-",
    t and ("%.1f"):format(t[2] * 1e3) or "-", t and ("%.2f"):format(t[2] / both) or "-"))
end

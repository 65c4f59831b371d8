-- Data-parallel benchmark (issue 14), run by scripts/bench_dist.sh:
--
--   [mpirun -np R] scripts/distill scripts/bench_dist.lua --label NAME --out FILE
--       [--teacher resnet56 --student resnet20 --batch 64 --steps 20 --warmup 3]
--   scripts/distill scripts/bench_dist.lua --report FILE...
--
-- A measurement: the distillation step of bench_train.lua (teacher forward,
-- 0.1 CE + 0.9 KD(T=4) + FSECD over the gathered batch, backward with the
-- gradients averaged over the ranks in buckets, SGD step) on random
-- CIFAR-shaped data, batch = the global batch split over the ranks; then
-- the sum of gradient-sized buffers over the ranks alone, for the bandwidth
-- the transport gives. Rank 1 appends one JSON line to FILE.
--
-- --report prints the table of the measurements and an estimate of the
-- step time on 8 and 32 machines over 10 and 25 Gbit/s links (a ring
-- all-reduce moves 2 (N - 1) / N of the gradient bytes through each
-- machine's link), from the measured 1-process step time and gradient size.
local distill = require "distill"
local dist = require "distill.dist"
local json = require "distill.json"

local opts = { teacher = "resnet56", student = "resnet20", batch = 64, steps = 20, warmup = 3,
  label = "run", out = nil, report = nil, classes = 100 }
do
  local i, files = 1, {}
  while i <= #arg do
    local key = arg[i]:match("^%-%-([%w_]+)$")
    if key == "report" then
      opts.report = files
    elseif key then
      opts[key] = tonumber(arg[i + 1]) or arg[i + 1]
      i = i + 1
    elseif opts.report then
      files[#files + 1] = arg[i]
    else
      error("bench_dist: unexpected argument " .. arg[i], 0)
    end
    i = i + 1
  end
end

local function median(list)
  local sorted = { table.unpack(list) }
  table.sort(sorted)
  return sorted[(#sorted + 1) // 2]
end

-- ------------------------------------------------------------- measure

local function measure()
  dist.init()
  local models, distillers = distill.models, distill.distillers
  local rank, ranks = dist.rank(), dist.size()
  distill.manual_seed(1)
  local teacher = models.build(opts.teacher, { num_classes = opts.classes })
  local student = models.build(opts.student, { num_classes = opts.classes })
  teacher:eval()
  local objective = distillers.objective({ { distiller = "ce", weight = 0.1 },
    { distiller = "kd", weight = 0.9, T = 4 }, { distiller = "fsecd", weight = 1 } },
    { student = student, teacher = teacher, input_shape = { 3, 32, 32 } })
  local params = student:parameters()
  for _, p in ipairs(objective:parameters()) do
    params[#params + 1] = p
  end
  local opt = distill.optim.SGD(params, { lr = 0.05, momentum = 0.9, weight_decay = 5e-4 })
  local ddp = dist.DistributedDataParallel(params)
  local run_teacher = require("distill.distillers.base").frozen_teacher(teacher)
  local first, last = dist.share(opts.batch)
  local b = last - first + 1
  distill.manual_seed(100 + rank)
  local x = distill.randn{ b, 3, 32, 32 }
  local y = distill.randint(1, opts.classes + 1, { b })
  local forward_opts = { features = true }
  local loss_opts = { local_scale = b * ranks / opts.batch }
  local times = {}
  local waited_before, stepped_before
  for step = 1, opts.warmup + opts.steps do
    if step == opts.warmup + 1 then
      dist.barrier()
      local s = ddp:stats()
      waited_before, stepped_before = s.wait_seconds, s.backward_seconds
    end
    local t0 = distill.wallclock()
    local t_out = run_teacher(x, forward_opts)
    local s_out = student:forward(x, forward_opts)
    local total = objective:loss(s_out, t_out, y, nil, 1, loss_opts)
    opt:zero_grad()
    ddp:backward(total)
    opt:step()
    if step > opts.warmup then
      times[#times + 1] = distill.wallclock() - t0
    end
  end
  local stats = ddp:stats()
  local step_time = median(times)
  -- the slowest rank sets the pace: take the largest median
  local paces = dist.all_gather(distill.tensor{ step_time }):totable()
  step_time = math.max(table.unpack(paces))
  local wait = (stats.wait_seconds - waited_before) / opts.steps
  local backward = (stats.backward_seconds - stepped_before) / opts.steps
  -- the transport alone: sums of the gradients' size
  local grad = distill.zeros{ stats.floats }
  local sums = {}
  for i = 1, 8 do
    dist.barrier()
    local t0 = distill.wallclock()
    dist.all_reduce(grad)
    if i > 2 then
      sums[#sums + 1] = distill.wallclock() - t0
    end
  end
  local sum_time = median(sums)
  if dist.is_main() then
    local result = {
      label = opts.label, ranks = ranks, threads = tonumber(os.getenv("OMP_NUM_THREADS") or "0"),
      teacher = opts.teacher, student = opts.student, batch = opts.batch, isa = distill.isa(),
      step_seconds = step_time, images_per_s = opts.batch / step_time,
      backward_seconds = backward, wait_seconds = wait, buckets = stats.buckets,
      started_early = stats.started_early, grad_bytes = stats.floats * 4,
      allreduce_seconds = sum_time,
      -- bus bandwidth of a ring all-reduce (as NCCL's tests report it)
      bus_gbit_s = ranks > 1 and (2 * (ranks - 1) / ranks * stats.floats * 4 * 8 / sum_time / 1e9) or 0,
    }
    local f = assert(io.open(opts.out, "a"))
    f:write(json.encode(result), "\n")
    f:close()
  end
end

-- -------------------------------------------------------------- report

local function report(files)
  local rows = {}
  for _, path in ipairs(files) do
    for line in io.lines(path) do
      if line:match("%S") then
        rows[#rows + 1] = json.decode(line)
      end
    end
  end
  if #rows == 0 then
    error("bench_dist: no measurements in " .. table.concat(files, ", "), 0)
  end
  local base
  for _, r in ipairs(rows) do
    if r.ranks == 1 then
      base = base or r
    end
  end
  print(("Distillation step %s -> %s, global batch %d, kernels %s"):format(rows[1].teacher,
    rows[1].student, rows[1].batch, rows[1].isa))
  print()
  print("| setup | ranks x threads | img/s | vs 1 process | step ms | waiting for sums | buckets started during backward | all-reduce of the gradients | bus bandwidth |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
  for _, r in ipairs(rows) do
    print(("| %s | %d x %d | %.1f | %s | %.1f | %s | %s | %s | %s |"):format(r.label, r.ranks, r.threads,
      r.images_per_s, base and ("%.2f"):format(r.images_per_s / base.images_per_s) or "-",
      r.step_seconds * 1000,
      r.ranks > 1 and ("%.1f ms (%.0f%%)"):format(r.wait_seconds * 1000, 100 * r.wait_seconds / r.step_seconds) or "-",
      r.ranks > 1 and ("%d of %d"):format(r.started_early, r.buckets) or "-",
      r.ranks > 1 and ("%.1f ms"):format(r.allreduce_seconds * 1000) or "-",
      r.ranks > 1 and ("%.2f Gbit/s"):format(r.bus_gbit_s) or "-"))
  end
  if not base then
    return
  end
  local bytes = base.grad_bytes
  print()
  print(("Estimate for N machines like this one (2 cores each, 1 rank x 2 threads), gradients %.2f MB "
    .. "per step, ring all-reduce at the link rate with 50 us per message, %d buckets:"):format(
    bytes / 1e6, rows[#rows].buckets or 1))
  print("per-machine batch = the 1-process batch (global batch grows with N); 'hidden' assumes the sums")
  print("overlap backward completely, 'exposed' that none of them do.")
  print()
  print("| machines | link | all-reduce ms | step ms (hidden .. exposed) | scaling efficiency |")
  print("|---:|---|---:|---:|---:|")
  local step = base.step_seconds
  local backward = base.backward_seconds > 0 and base.backward_seconds or step * 0.6
  for _, n in ipairs { 8, 32 } do
    for _, gbit in ipairs { 10, 25 } do
      local buckets = rows[#rows].buckets or 1
      local comm = 2 * (n - 1) / n * bytes * 8 / (gbit * 1e9) + 2 * (n - 1) * buckets * 50e-6
      local hidden = step + math.max(0, comm - backward)
      local exposed = step + comm
      print(("| %d | %d Gbit/s | %.1f | %.1f .. %.1f | %.0f%% .. %.0f%% |"):format(n, gbit, comm * 1000,
        hidden * 1000, exposed * 1000, 100 * step / exposed, 100 * step / hidden))
    end
  end
end

if opts.report then
  report(opts.report)
else
  if not opts.out then
    error("bench_dist: --out FILE is required", 0)
  end
  measure()
end

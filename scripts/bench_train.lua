-- Training-step benchmark (issue 9): distillation step, student CE step and
-- teacher eval forward, on random data.
--
--   lua5.4 scripts/distill scripts/bench_train.lua --teacher resnet32x4 \
--       --student resnet8x4 --batch 64 --steps 20 --warmup 3 [--only distill|ce|eval]
--       [--no-profile] [--json] [--no-fold]
--   ... --rss-steps 500 [--rss-early 50] [--rss-tolerance 0.05]
--
-- With --rss-steps N it instead runs the distillation step N times and
-- checks memory is flat: VmRSS after N steps within --rss-tolerance (a
-- fraction) of VmRSS after --rss-early steps; exits 1 otherwise.
--
-- distillation step: teacher eval forward under no_grad, student forward and
-- backward of 0.1 CE + 0.9 KD(T=4) + 1.0 FSECD (instance InfoNCE on a linear
-- embedding of the student's pooled feature into the teacher's), SGD step
-- (lr 0.05, momentum 0.9, weight decay 5e-4) over student + embedding.
-- The teacher runs as the trainer runs it (distillers.base.frozen_teacher):
-- a batch-norm-folded copy with in-place ReLUs, built and checked before
-- the timed steps; --no-fold (or DISTILL_FOLD_TEACHER=0) runs the
-- original teacher instead.
-- Threads: OMP_NUM_THREADS (the driver sets 2). Timings: median/min/max of
-- --steps steps after --warmup untimed ones; images/s from the median.
-- The per-op profile is taken over separate (untimed-for-the-median) steps
-- so its timers never touch the reported figures.
local distill = require "distill"
local F = distill.F
local distillers = distill.distillers
local base = require "distill.distillers.base"

local opts = {
  teacher = "resnet32x4", student = "resnet8x4", batch = 64, steps = 20, warmup = 3,
  only = nil, profile = true, json = false, classes = 100, profile_steps = 5, fold = true,
  rss_steps = nil, rss_early = 50, rss_tolerance = 0.05,
}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local key = a:match("^%-%-([%w_%-]+)$")
    if key == "no-profile" then
      opts.profile = false
    elseif key == "no-fold" then
      opts.fold = false
    elseif key == "json" then
      opts.json = true
    elseif key then
      key = key:gsub("%-", "_")
      local v = arg[i + 1]
      if v == nil then
        error("bench_train: --" .. key .. " needs a value")
      end
      opts[key] = tonumber(v) or v
      i = i + 1
    else
      error("bench_train: unexpected argument " .. a)
    end
    i = i + 1
  end
end

local clock = distill.profile.now   -- CLOCK_MONOTONIC seconds

local function peak_rss_mb()
  local f = io.open("/proc/self/status", "r")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  local kb = s:match("VmHWM:%s*(%d+)")
  return kb and tonumber(kb) / 1024
end

local function rss_mb()
  local f = io.open("/proc/self/status", "r")
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) / 1024
end

distill.manual_seed(0)
local models = distill.models
local B = opts.batch
local teacher = models.create(opts.teacher, { num_classes = opts.classes })
local student = models.create(opts.student, { num_classes = opts.classes })
teacher:eval()
student:train()
local x = distill.randn { B, 3, 32, 32 }
local y = distill.randint(1, opts.classes + 1, { B })

local probe = distillers.probe(student, teacher, { 2, 3, 32, 32 })
-- folded (and checked against the teacher) here, outside the timed steps
local teacher_run = base.frozen_teacher(teacher, { fold = opts.fold }):prepare(x)
local kd = distillers.kd { T = 4 }
local fsecd = distillers.fsecd { probe = probe, policy = "instance", embed = "linear" }

local params = {}
for _, p in ipairs(student:parameters()) do
  params[#params + 1] = p
end
for _, p in ipairs(fsecd:parameters()) do
  params[#params + 1] = p
end
local opt = distill.optim.SGD(params, { lr = 0.05, momentum = 0.9, weight_decay = 5e-4 })
local ce_opt = distill.optim.SGD(student:parameters(), { lr = 0.05, momentum = 0.9, weight_decay = 5e-4 })

local workloads = {}

workloads.distill = function()
  opt:zero_grad()
  local t_out = teacher_run(x, { features = true })
  local s_out = student:forward(x, { features = true })
  local loss = F.cross_entropy(s_out.logits, y) * 0.1
    + kd:loss(s_out, t_out) * 0.9
    + fsecd:loss(s_out, t_out, y) * 1.0
  loss:backward()
  opt:step()
  return loss
end

workloads.ce = function()
  ce_opt:zero_grad()
  local logits = student:forward(x)
  if type(logits) == "table" and logits.logits then
    logits = logits.logits
  end
  local loss = F.cross_entropy(logits, y)
  loss:backward()
  ce_opt:step()
  return loss
end

workloads.eval = function()
  return teacher_run(x)
end

local function stats(times)
  local s = table.move(times, 1, #times, 1, {})
  table.sort(s)
  local n = #s
  local median = n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
  return { median = median, min = s[1], max = s[n] }
end

local KINDS = { "conv_forward", "conv_backward_data", "conv_backward_weight", "batchnorm",
  "pooling", "elementwise", "gemm", "loss", "optimizer", "other", "untimed" }

local function run(name)
  local fn = workloads[name]
  for _ = 1, opts.warmup do
    fn()
  end
  local times = {}
  for i = 1, opts.steps do
    local t0 = clock()
    local r = fn()
    if i == 1 and r and r.item and name ~= "eval" then
      assert(r:item() == r:item(), "loss is NaN")
    end
    times[i] = clock() - t0
  end
  local st = stats(times)
  st.images_per_s = B / st.median
  local prof
  if opts.profile then
    distill.profile.start()
    for _ = 1, opts.profile_steps do
      fn()
    end
    distill.profile.stop()
    prof = distill.profile.report()
  end
  return st, prof
end

-- Memory flatness (issue 9): RSS after rss_steps steps vs after rss_early.
local function check_rss_flat()
  local early
  local t0 = clock()
  for i = 1, opts.rss_steps do
    workloads.distill()
    if i % 50 == 0 or i == opts.rss_early then
      local rss = rss_mb()
      if i == opts.rss_early then
        early = rss
      end
      local gc = distill.core.gc_stats()
      print(("step %4d  RSS %7.1f MB  peak %7.1f MB  live tensors %6.1f MB  Lua heap %6.1f MB  "
        .. "minor/major collections %d/%d  %.1f s"):format(i, rss, peak_rss_mb() or 0,
        distill.core.live_bytes() / 2 ^ 20, collectgarbage("count") / 1024, gc.minor, gc.major,
        clock() - t0))
    end
  end
  assert(early, "bench_train: --rss-early must not exceed --rss-steps")
  local final = rss_mb()
  local growth = (final - early) / early
  print(("RSS after %d steps %.1f MB, after %d steps %.1f MB: %+.1f%% (tolerance %.0f%%)")
    :format(opts.rss_early, early, opts.rss_steps, final, 100 * growth, 100 * opts.rss_tolerance))
  os.exit(growth > opts.rss_tolerance and 1 or 0)
end
if opts.rss_steps then
  check_rss_flat()
end

local order = opts.only and { opts.only } or { "distill", "ce", "eval" }
local cpu = distill.cpu_info()
if not opts.json then
  print(("%s, kernels %s, OMP_NUM_THREADS=%s"):format(cpu.model, cpu.isa,
    os.getenv("OMP_NUM_THREADS") or "unset"))
end
local titles = {
  distill = ("distill step %s -> %s%s"):format(opts.teacher, opts.student,
    teacher_run.folded and " (folded)" or ""),
  ce = ("CE step %s"):format(opts.student),
  eval = ("eval forward %s%s"):format(opts.teacher, teacher_run.folded and " (folded)" or ""),
}
local results = {}
for _, name in ipairs(order) do
  local st, prof = run(name)
  results[name] = st
  if not opts.json then
    print(("%-40s batch %3d: median %8.1f ms  min %8.1f  max %8.1f  %7.1f img/s")
      :format(titles[name], B, st.median * 1e3, st.min * 1e3, st.max * 1e3, st.images_per_s))
    if prof then
      local wall = prof.wall
      print(("  profile over %d steps (%.1f ms/step):"):format(opts.profile_steps,
        wall / opts.profile_steps * 1e3))
      for _, k in ipairs(KINDS) do
        local e = prof[k]
        if e.seconds > 0 then
          print(("    %-22s %8.2f ms/step %5.1f%%  %6d calls/step"):format(k,
            e.seconds / opts.profile_steps * 1e3, 100 * e.seconds / wall,
            e.calls // opts.profile_steps))
        end
      end
    end
  end
end
local peak = peak_rss_mb()
if opts.json then
  local parts = {}
  for _, name in ipairs(order) do
    local st = results[name]
    parts[#parts + 1] = ('"%s": {"median": %.6f, "min": %.6f, "max": %.6f, "images_per_s": %.3f}')
      :format(name, st.median, st.min, st.max, st.images_per_s)
  end
  parts[#parts + 1] = ('"peak_rss_mb": %.1f'):format(peak or 0)
  parts[#parts + 1] = ('"rss_mb": %.1f'):format(rss_mb())
  parts[#parts + 1] = ('"isa": "%s"'):format(cpu.isa)
  print("{" .. table.concat(parts, ", ") .. "}")
else
  print(("peak RSS (VmHWM) %.1f MB, RSS now %.1f MB"):format(peak or 0, rss_mb()))
end

-- distill.trainer: the training loop of `distill train` and `distill distill`.
--
--   local trainer = require "distill.trainer"
--   local summary = trainer.run{config = cfg, mode = "distill"}      -- a resolved config
--   trainer.run{config_path = "scripts/configs/x.lua", overrides = {"epochs=3"}}
--   trainer.run{resume = "runs/x"}                                   -- continue a run
--
-- One epoch: the teacher (if any) runs in eval mode under no_grad with
-- features (and pre-ReLU features when a term needs them), the student runs
-- with features, the objective gives the weighted total and every term's
-- value, backward, objective:after_backward(), one optimizer step over the
-- student's and the distillers' parameters. The lr schedule steps once per
-- epoch. After each epoch: test top-1/top-5, metrics.jsonl/csv, curves,
-- last.safetensors (and best.safetensors when the test accuracy improved).
--
-- Determinism: distill.manual_seed(seed) before anything is built; the
-- loader's order and augmentation depend only on (seed, epoch); the global
-- RNG state is saved with each checkpoint and restored on resume, so a
-- resumed run repeats the uninterrupted run's numbers exactly.
--
-- Data parallel (started by mpirun or srun, distill.dist; docs/distributed.md):
-- every rank builds the same run; batch_size is the global batch and each
-- rank takes its share of every batch; rank 1's parameters and buffers are
-- broadcast at start and after a resume; gradients are averaged over the
-- ranks in buckets during backward; rank 1 alone prints and writes the run
-- directory; evaluation is shared out and summed.
local distill = require "distill"
local config = require "distill.config"
local dist = require "distill.dist"
local log = require "distill.log"
local run_dir = require "distill.run_dir"
local teacher_base = require "distill.distillers.base"
local stages = require "distill.stages"
local interrupt = require "distill.interrupt"
local errors = require "distill.errors"
local args = require "distill.args"

local trainer = {}

-- ------------------------------------------------------------------ data

--- Train and test datasets and loaders of a config (distill.data.datasets);
-- in a distributed run, this rank's share of every batch.
function trainer.build_data(cfg)
  args.table("trainer.build_data", 1, cfg, "a resolved config")
  args.check(math.type(cfg.batch_size) == "integer" and type(cfg.data) == "table", "trainer.build_data", 1,
    "a resolved config (with batch_size and data)", cfg)
  local datasets = require "distill.data.datasets"
  local ranks = dist.size()
  if cfg.batch_size < ranks then
    error(("trainer: batch_size %d is the global batch, split over the ranks: it must be at "
      .. "least the number of ranks (%d)"):format(cfg.batch_size, ranks), 0)
  end
  return datasets.loaders(cfg.data, { batch_size = cfg.batch_size, workers = cfg.workers,
    seed = cfg.seed, shard = dist.rank(), shards = ranks })
end

-- ---------------------------------------------------------------- models

--- Builds a model from a config's spec: "resnet8x4", {model = "resnet8x4"}
-- (a config's student or teacher), {model = {family = "fmnist", name =
-- "fmnist_resnet_s", widths = {...}}}; see distill.models.build.
function trainer.build_model(spec, num_classes)
  args.check(type(spec) == "string" or type(spec) == "table", "trainer.build_model", 1,
    "a model spec (a name or a table)", spec)
  args.integer("trainer.build_model", 2, num_classes, 1, true)
  if type(spec) == "table" and spec.model ~= nil then
    spec = spec.model
  end
  return require("distill.models").build(spec, { num_classes = num_classes })
end

--- The model state of a checkpoint file (ours or a plain state dict).
function trainer.load_model_state(path)
  args.string("trainer.load_model_state", 1, path, "a checkpoint path")
  local ck = require("distill.checkpoint").load(path)
  if type(ck.model) == "table" then
    return ck.model, ck.meta
  end
  return ck, nil
end

-- ------------------------------------------------------------- objective

--- The objective of cfg.method, its distillers built against the two
-- models (teacher: nil when no term needs one).
function trainer.build_objective(cfg, student, teacher, input_shape, n_train)
  args.check(type(cfg) == "table" and type(cfg.methods) == "table" and cfg.method ~= nil,
    "trainer.build_objective", 1, "a resolved config (with methods and method)", cfg)
  args.table("trainer.build_objective", 2, student, "the student model")
  args.table("trainer.build_objective", 3, teacher, "the teacher model or nil", true)
  args.table("trainer.build_objective", 4, input_shape, "the input shape (a list)")
  args.integer("trainer.build_objective", 5, n_train, 0)
  return require("distill.distillers").objective(cfg.methods[cfg.method], {
    student = student, teacher = teacher, input_shape = input_shape, dataset_size = n_train,
  })
end

-- ------------------------------------------------------- optim, schedule

function trainer.build_optimizer(cfg, params)
  args.check(type(cfg) == "table" and type(cfg.optimizer) == "table", "trainer.build_optimizer", 1,
    "a config with an optimizer table", cfg)
  args.table("trainer.build_optimizer", 2, params, "a list of parameters")
  local optim = require "distill.optim"
  local o = cfg.optimizer
  local trainable = {}
  for _, p in ipairs(params) do
    if p.requires_grad then
      trainable[#trainable + 1] = p
    end
  end
  if o.name == "SGD" then
    return optim.SGD(trainable, { lr = o.lr, momentum = o.momentum, weight_decay = o.weight_decay,
      nesterov = o.nesterov })
  elseif o.name == "Adam" or o.name == "AdamW" then
    return optim[o.name](trainable, { lr = o.lr, weight_decay = o.weight_decay })
  end
  error(("trainer: optimizer.name must be SGD, Adam or AdamW, got %s"):format(tostring(o.name)), 0)
end

function trainer.build_schedule(cfg, opt)
  args.check(type(cfg) == "table" and type(cfg.schedule) == "table", "trainer.build_schedule", 1,
    "a config with a schedule table", cfg)
  args.check(type(opt) == "table" and type(opt.param_groups) == "table", "trainer.build_schedule", 2,
    "an optimizer", opt)
  local schedule = require "distill.schedule"
  local s = cfg.schedule
  local warmup = s.warmup_epochs and s.warmup_epochs > 0
    and { epochs = s.warmup_epochs, start_factor = 0.1 } or nil
  if s.name == "MultiStepLR" then
    return schedule.MultiStepLR(opt, { milestones = s.milestones, gamma = s.gamma, warmup = warmup })
  elseif s.name == "CosineAnnealingLR" then
    return schedule.CosineAnnealingLR(opt, { T_max = s.T_max or cfg.epochs, warmup = warmup })
  elseif s.name == "constant" then
    return schedule.MultiStepLR(opt, { milestones = {}, warmup = warmup })
  end
  error(("trainer: schedule.name must be MultiStepLR, CosineAnnealingLR or constant, got %s")
    :format(tostring(s.name)), 0)
end

-- ------------------------------------------------------------- accuracy

--- Correct top-1 and top-5 counts of a batch (ties count in the target's favour).
function trainer.topk_correct(logits, target)
  args.check(distill.is_tensor(logits) and logits:dim() == 2, "trainer.topk_correct", 1,
    "the logits (a 2-d tensor)", logits)
  args.check(distill.is_tensor(target) and target:dim() == 1, "trainer.topk_correct", 2,
    "the targets (a 1-d tensor)", target)
  local b = logits:size(1)
  local target_logit = logits:gather(2, target:view{ b, 1 })
  local rank = logits:gt(target_logit):sum(2)
  local top1 = rank:lt(1):sum():item()
  local top5 = rank:lt(5):sum():item()
  return top1, top5
end

--- Test loss (cross-entropy), top-1 and top-5 (%) of model over a loader;
-- a loader sharded over the ranks gives the whole split's figures on every
-- rank (each rank runs its share, the counts are summed).
function trainer.evaluate(model, loader, opts)
  args.check(type(model) == "table" and type(model.eval) == "function", "trainer.evaluate", 1, "a model", model)
  args.check(type(loader) == "table" and type(loader.epoch) == "function", "trainer.evaluate", 2,
    "a loader (with :epoch)", loader)
  args.table("trainer.evaluate", 3, opts, "an options table or nil", true)
  opts = opts or {}
  local F = distill.F
  local was_training = model.training
  model:eval()
  local n, loss_sum, c1, c5 = 0, 0, 0, 0
  distill.no_grad(function()
    for batch in loader:epoch(1) do
      local logits = model(batch.input)
      local b = logits:size(1)
      loss_sum = loss_sum + F.cross_entropy(logits, batch.target):item() * b
      local t1, t5 = trainer.topk_correct(logits, batch.target)
      c1, c5, n = c1 + t1, c5 + t5, n + b
      if opts.on_batch then
        opts.on_batch(n)
      end
    end
  end)
  model:train(was_training)
  if (loader.shards or 1) > 1 then
    n, loss_sum, c1, c5 = table.unpack(dist.sum_numbers{ n, loss_sum, c1, c5 })
  end
  if n == 0 then
    return { loss = 0 / 0, top1 = 0, top5 = 0, n = 0 }
  end
  return { loss = loss_sum / n, top1 = 100 * c1 / n, top5 = 100 * c5 / n, n = n }
end

-- ------------------------------------------------------------------- run

--- Writes into cfg the values its `false` defaults stood for (the data's
-- root, classes and statistics, the run directory, the cosine period), so
-- that the resolved config of a run directory shows what the run used.
function trainer.fill_resolved(cfg, data)
  args.check(type(cfg) == "table" and type(cfg.data) == "table" and type(cfg.schedule) == "table",
    "trainer.fill_resolved", 1, "a resolved config", cfg)
  args.check(type(data) == "table" and type(data.train) == "table", "trainer.fill_resolved", 2,
    "the run's data (trainer.build_data's result)", data)
  local d = cfg.data
  local stats = require("distill.data.datasets").stats(d.dataset)
  if d.num_classes == false then
    d.num_classes = data.num_classes
  end
  if d.mean == false and stats.mean then
    d.mean = stats.mean
  end
  if d.std == false and stats.std then
    d.std = stats.std
  end
  if d.root == false and type(data.train.root) == "string" then
    d.root = data.train.root
  end
  if cfg.schedule.name == "CosineAnnealingLR" and cfg.schedule.T_max == false then
    cfg.schedule.T_max = cfg.epochs
  end
  return cfg
end

--- A teacher checkpoint that is missing is an error that says how to get
-- one: train it (with the teacher config when one is shipped) or convert a
-- PyTorch one.
--- The shipped config whose run writes the checkpoint at path (its
-- run_dir's best.safetensors), or nil.
function trainer.config_that_writes(path)
  args.string("trainer.config_that_writes", 1, path, "a checkpoint path")
  local wanted = path:gsub("^%./", "")
  for _, entry in ipairs(require("distill.configs").list()) do
    local ok, cfg = pcall(config.load, entry.path)
    if ok and type(cfg.run_dir) == "string"
        and (cfg.run_dir:gsub("^%./", ""):gsub("/+$", "")) .. "/best.safetensors" == wanted then
      return entry.path
    end
  end
  return nil
end

function trainer.check_teacher_checkpoint(cfg)
  args.check(type(cfg) == "table" and type(cfg.teacher) == "table" and type(cfg.teacher.checkpoint) == "string",
    "trainer.check_teacher_checkpoint", 1, "a config with teacher.checkpoint (a path)", cfg)
  local path = cfg.teacher.checkpoint
  local f = io.open(path, "rb")
  if f then
    f:close()
    return
  end
  local model = cfg.teacher.model
  local name = type(model) == "table" and model.name or tostring(model)
  local shipped = trainer.config_that_writes(path)
  local train = shipped and ("distill train " .. shipped)
    or ("a config that trains %s (`distill train CONFIG --set run_dir=...`)"):format(name)
  error(("trainer: the teacher checkpoint %s does not exist (relative paths are taken from the "
    .. "directory distill runs in, here %s). Train the teacher first: %s; or convert a PyTorch "
    .. "checkpoint with scripts/convert_torch.py (docs/workflow.md); or point --set "
    .. "teacher.checkpoint=FILE at one"):format(path, require("lfs").currentdir(), train), 0)
end

--- The parameters an optimizer steps (what data parallel averages).
function trainer.trained_parameters(optimizer)
  args.check(type(optimizer) == "table" and type(optimizer.param_groups) == "table",
    "trainer.trained_parameters", 1, "an optimizer", optimizer)
  local list = {}
  for _, group in ipairs(optimizer.param_groups) do
    for _, p in ipairs(group.params) do
      list[#list + 1] = p
    end
  end
  return list
end

--- Everything a run needs, built in a fixed order after manual_seed.
function trainer.setup(cfg, mode)
  args.table("trainer.setup", 1, cfg, "a config table")
  args.check(mode == "train" or mode == "distill", "trainer.setup", 2, "the mode \"train\" or \"distill\"", mode)
  config.validate(cfg, mode)
  local data = trainer.build_data(cfg)     -- synthetic data re-seeds, so first
  trainer.fill_resolved(cfg, data)
  distill.manual_seed(cfg.seed)
  local student = trainer.build_model(cfg.student, data.num_classes)
  if cfg.sync_bn then
    require("distill.nn").convert_sync_batchnorm(student)
  end
  local teacher
  if mode == "distill" and stages.needs(cfg.methods[cfg.method]).teacher then
    teacher = trainer.build_model(cfg.teacher, data.num_classes)
    trainer.check_teacher_checkpoint(cfg)
    local state = trainer.load_model_state(cfg.teacher.checkpoint)
    teacher:load_state_dict(state)
    teacher:eval()
  end
  local objective = trainer.build_objective(cfg, student, teacher, data.input_shape, #data.train)
  local params = {}
  for _, p in ipairs(student:parameters()) do
    params[#params + 1] = p
  end
  for _, p in ipairs(objective:parameters()) do
    params[#params + 1] = p
  end
  local optimizer = trainer.build_optimizer(cfg, params)
  local scheduler = trainer.build_schedule(cfg, optimizer)
  local staged = stages.build(cfg, objective, { student = student, teacher = teacher,
    input_shape = data.input_shape, dataset_size = #data.train }, trainer.build_optimizer)
  local ddp
  if dist.size() > 1 then
    dist.broadcast_module(student)
    dist.broadcast_module(objective)
    ddp = dist.DistributedDataParallel(trainer.trained_parameters(optimizer))
    for _, stage in ipairs(staged) do
      dist.broadcast_module(stage.objective)
      stage.ddp = dist.DistributedDataParallel(trainer.trained_parameters(stage.optimizer))
    end
  end
  return {
    cfg = cfg, data = data, student = student, teacher = teacher, objective = objective,
    optimizer = optimizer, scheduler = scheduler, preact = objective:needs_preact(), ddp = ddp,
    stages = staged,
    teacher_preact = require("distill.distillers").needs(objective.terms).teacher_preact,
    -- the frozen teacher's forward: a batch-norm-folded copy while it is in eval mode
    teacher_run = teacher and teacher_base.frozen_teacher(teacher) or nil,
  }
end

-- The epoch's sums over every rank (the same list on each, in the same
-- order), so that the record is the whole batch's, as one process sees it.
local function reduce_sums(seen, c1, c5, total_sum, sums, names)
  if dist.size() == 1 then
    return seen, c1, c5, total_sum, sums
  end
  local list = { seen, c1, c5, total_sum }
  for i, name in ipairs(names) do
    list[4 + i] = sums[name] or 0
  end
  local reduced = dist.sum_numbers(list)
  local reduced_sums = {}
  for i, name in ipairs(names) do
    reduced_sums[name] = reduced[4 + i]
  end
  return reduced[1], reduced[2], reduced[3], reduced[4], reduced_sums
end

-- One training epoch; returns the record's train part.
local function train_epoch(run, epoch, logger, on_batch)
  local student, teacher, objective, optimizer = run.student, run.teacher, run.objective, run.optimizer
  local loader = run.data.train_loader
  local preact = run.preact
  student:train(run.train_student ~= false)
  objective:train(true)
  if teacher then
    teacher:eval()
  end
  local lr = optimizer.param_groups[1].lr
  local batches = #loader
  logger:epoch_begin(epoch, run.cfg.epochs, batches)
  local sums, seen, total_sum, c1, c5 = {}, 0, 0, 0, 0
  local t0 = distill.wallclock()
  local i = 0
  local forward_opts = { features = true, preact = preact }
  -- Data parallel: a term that is a mean over this rank's share is scaled
  -- by share * ranks / batch, so that the ranks' mean gradient is the
  -- whole batch's; a term computed over the gathered batch is not.
  local ranks, n_train, global_batch = dist.size(), #run.data.train, run.cfg.batch_size
  local logged_at, logged_seen = t0, 0   -- a step record's speed is since the previous one
  local loss_opts = {}
  local teacher_opts = { features = true, preact = preact or run.teacher_preact }
  for batch in loader:epoch(epoch) do
    i = i + 1
    local x, y = batch.input, batch.target
    local b = y:size(1)
    loss_opts.local_scale = ranks > 1 and b * ranks / math.min(global_batch, n_train - (i - 1) * global_batch)
      or nil
    local t_out
    if teacher then
      t_out = run.teacher_run(x, teacher_opts)
    end
    local s_out = student:forward(x, forward_opts)
    local total, parts, weights = objective:loss(s_out, t_out, y, batch, epoch, loss_opts)
    optimizer:zero_grad()
    if run.ddp then
      run.ddp:backward(total)
    else
      total:backward()
    end
    objective:after_backward()
    optimizer:step()
    local loss_value = total:item()
    if loss_opts.local_scale then
      loss_value = 0
      for name, v in pairs(parts) do
        loss_value = loss_value + v * weights[name]
      end
    end
    if loss_value ~= loss_value then
      error(("trainer: the loss became NaN at epoch %d, batch %d (lower the lr?)"):format(epoch, i), 0)
    end
    local t1, t5 = trainer.topk_correct(s_out.logits:detach(), y)
    seen, c1, c5 = seen + b, c1 + t1, c5 + t5
    total_sum = total_sum + loss_value * b
    for name, v in pairs(parts) do
      sums[name] = (sums[name] or 0) + v * b
    end
    local now = distill.wallclock()
    local global_step = (epoch - 1) * batches + i
    if logger:step_due(global_step) then
      -- this batch's losses (rank 1's share in a distributed run)
      local step_record = { epoch = epoch, step = i, global_step = global_step, lr = lr,
        train_loss = loss_value, images_per_s = (seen - logged_seen) * ranks / math.max(now - logged_at, 1e-9) }
      for name, v in pairs(parts) do
        step_record["train_" .. name] = v
      end
      logger:step(step_record)
      logged_at, logged_seen = now, seen
    end
    local elapsed = now - t0
    -- this rank's running figures; the speed is the whole run's
    local step = { epoch = epoch, batch = i, batches = batches, loss = total_sum / seen,
      acc = 100 * c1 / seen, images_per_s = seen * ranks / math.max(elapsed, 1e-9), elapsed = elapsed }
    logger:batch(i, step)
    if on_batch then
      on_batch(step)
    end
  end
  local elapsed = distill.wallclock() - t0
  local names = objective:names()
  seen, c1, c5, total_sum, sums = reduce_sums(seen, c1, c5, total_sum, sums, names)
  local record = { epoch = epoch, lr = lr, train_loss = total_sum / math.max(seen, 1),
    train_top1 = 100 * c1 / math.max(seen, 1), train_top5 = 100 * c5 / math.max(seen, 1),
    images_per_s = seen / math.max(elapsed, 1e-9) }
  for _, name in ipairs(names) do
    record["train_" .. name] = (sums[name] or 0) / math.max(seen, 1)
  end
  return record
end

local guarded_session

--- Runs (or resumes) a training run. opts:
--   config = resolved config table | config_path = file (+ overrides = {"k=v"})
--   mode = "train" | "distill"; resume = run dir; overwrite = true (fresh run in
--   an existing dir); progress = "auto"|"bar"|"lines"|"none"; out = file handle;
--   on_batch = function(step), called after every training batch with
--     {epoch =, batch =, batches =, loss =, acc =, images_per_s =, elapsed =}
--     (loss and acc: the epoch's running means); an error it raises stops
--     the run where it is, as a crash would (--resume continues it).
-- The run directory (config, checkpoints, resume) is distill.run_dir's.
-- Returns the summary table (also written to run_dir/summary.json) and the run.
function trainer.run(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("trainer.run: expected an options table, got " .. type(opts), 2)
  end
  if opts.on_batch ~= nil and type(opts.on_batch) ~= "function" then
    error("trainer.run: on_batch must be a function, got " .. type(opts.on_batch), 2)
  end
  dist.init()   -- when mpirun or srun started this process; nothing otherwise
  local was_enabled = interrupt.enable()
  local results = table.pack(pcall(dist.run_or_abort, guarded_session, opts))
  if not was_enabled then
    interrupt.disable()
  end
  if not results[1] then
    error(results[2], 0)
  end
  return table.unpack(results, 2, results.n)
end

-- The run's start line (rank 1).
local function describe(run, cfg, mode, dir)
  local function model_name(spec)
    return tostring(type(spec.model) == "table" and spec.model.name or spec.model)
  end
  local ranks = dist.size() > 1 and (", %d ranks"):format(dist.size()) or ""
  return ("%s: %s %s, %s -> %s, %d train / %d test samples, %d epoch%s%s, run dir %s"):format(
    mode, cfg.name, cfg.method, run.teacher and model_name(cfg.teacher) or "no teacher",
    model_name(cfg.student), #run.data.train, #run.data.test, cfg.epochs,
    cfg.epochs == 1 and "" or "s", ranks, dir)
end

-- A resumed run on every rank: rank 1's state (every rank read the same
-- checkpoint) and a word when the number of ranks changed.
local function resume(session, run, logger)
  local best = run_dir.restore(session, run)
  dist.broadcast_module(run.student)
  dist.broadcast_module(run.objective)
  local before, now = session.checkpoint.meta.ranks or 1, dist.size()
  logger:resume_at(session.start_epoch - 1, stages.completed(run.stages, session.checkpoint))
  if session.start_epoch > session.cfg.epochs then
    logger:print(("%s has finished its %d epoch%s: nothing to do (--set epochs=N trains it further)")
      :format(session.dir, session.cfg.epochs, session.cfg.epochs == 1 and "" or "s"))
  else
    logger:print(("resuming %s at epoch %d of %d"):format(session.dir, session.start_epoch,
      session.cfg.epochs))
  end
  if before ~= now then
    logger:print(("note: this run ran on %d rank(s) and now runs on %d: the global batch, the data "
      .. "order and the augmentation stay the same, but batch-norm statistics (without sync_bn) "
      .. "and the order of floating-point sums change, so the numbers will not repeat an "
      .. "uninterrupted run exactly"):format(before, now))
  end
  return best
end

-- log.txt's line for a session: what ran, from which commit.
local function session_header(mode, resumed)
  local git = require("distill.checkout").git_state()
  return ("distill %s, %s; %s"):format(mode, resumed and "resumed" or "new run",
    git and ("git commit %s%s"):format(git.commit, git.dirty and " (with uncommitted changes)" or "")
      or "no git checkout")
end

local function run_session(opts, where)
  local session = run_dir.open(opts)
  local cfg, dir, mode = session.cfg, session.dir, session.mode
  where.session = session
  dist.check_same(mode .. "\n" .. config.serialize(cfg), "config")
  dist.check_same(dist.code_fingerprint(), "code")
  dist.barrier()   -- every rank has looked at the run directory before rank 1 writes it

  local run = trainer.setup(cfg, mode)
  run.mode, run.config_source, run.overrides = mode, session.config_source, session.overrides
  local main = dist.is_main()
  local logger = log.new(main and dir or nil, { progress = main and (opts.progress or cfg.progress)
      or "none", out = opts.out, term_names = run.objective:names(), plot = cfg.plot,
    lines_per_epoch = cfg.log_every > 0 and cfg.log_every or 10, log_steps = cfg.log_steps,
    fresh = not opts.resume, header = main and session_header(mode, opts.resume ~= nil) or nil })
  where.run, where.logger = run, logger

  if session.note then
    logger:print(session.note)
  end
  local best = { top1 = -1, epoch = 0 }
  if session.checkpoint then
    best = resume(session, run, logger)
    where.saved_epoch = session.start_epoch - 1
  else
    if opts.resume then
      -- resumed before its first checkpoint: it starts over, so do its step records
      logger:keep_steps(0, function() return false end)
    end
    run_dir.begin(session)
    logger:print(describe(run, cfg, mode, dir))
  end
  where.begun = true

  stages.run(run, session, logger, { train_epoch = train_epoch, best = best, on_batch = opts.on_batch })
  local started = distill.wallclock()
  local last
  for epoch = session.start_epoch, cfg.epochs do
    local t_epoch = distill.wallclock()
    local record = train_epoch(run, epoch, logger, opts.on_batch)
    -- per-rank batch-norm running statistics differ: rank 1's are the
    -- run's (as DistributedDataParallel's buffer broadcast)
    dist.broadcast_module(run.student)
    if epoch % cfg.eval_every == 0 or epoch == cfg.epochs then
      local test = trainer.evaluate(run.student, run.data.test_loader)
      record.test_loss, record.test_top1, record.test_top5 = test.loss, test.top1, test.top5
    end
    run.scheduler:step()
    record.epoch_time = distill.wallclock() - t_epoch
    record.time = (logger.records[#logger.records] and logger.records[#logger.records].time or 0)
      + record.epoch_time
    local improved = record.test_top1 and record.test_top1 > best.top1
    if improved then
      best.top1, best.epoch = record.test_top1, epoch
    end
    -- the checkpoint and the metrics of an epoch are written whole
    interrupt.held(function()
      run_dir.save_epoch(session, run, epoch, best, record, improved)
      where.saved_epoch = epoch
      logger:epoch_end(record)
    end)
    last = record
  end

  local records = logger.records
  last = records[#records] or last or {}
  local summary = {
    name = cfg.name, method = cfg.method, mode = mode, run_dir = dir,
    epochs = cfg.epochs, epochs_done = last.epoch or 0,
    best_top1 = best.top1, best_epoch = best.epoch,
    last_top1 = last.test_top1, last_top5 = last.test_top5, last_train_loss = last.train_loss,
    wall_time = distill.wallclock() - started, ranks = dist.size(),
  }
  run_dir.finish(session, summary)
  if last.test_top1 then
    logger:print(("done: best test top-1 %.2f%% (epoch %d), last %.2f%%; %s"):format(
      best.top1, best.epoch, last.test_top1, dir))
  end
  run.data.train_loader:close()
  run.data.test_loader:close()
  logger:close()
  return summary, run
end

-- The one line that says where an interrupted run stopped and how to go on.
local function stopped_message(where)
  local session, logger = where.session, where.logger
  if not session or not where.begun then
    return "interrupted while setting up the run" .. (session and (", before anything was written to "
      .. session.dir) or "")
  end
  local at = ""
  if logger and logger.epoch then
    at = (" at epoch %d/%d"):format(logger.epoch, logger.epochs or session.cfg.epochs)
    if logger.batch_index and logger.num_batches then
      local batch, batches = logger.batch_index, logger.num_batches
      at = at .. (batch == 0 and " (before its first batch)" or batch >= batches and " (testing)"
        or (" (batch %d/%d)"):format(batch, batches))
    end
  end
  local resume = ("distill %s --resume %s"):format(session.mode, session.dir)
  if (where.saved_epoch or 0) > 0 then
    return ("interrupted%s; last checkpoint %s/last.safetensors (epoch %d); resume with: %s"):format(
      at, session.dir, where.saved_epoch, resume)
  end
  return ("interrupted%s, before the first checkpoint; start it again with: %s"):format(at, resume)
end

-- After a Ctrl-C: the progress line ended, the finished epochs' metrics and
-- curves on disk, the loader threads stopped.
local function clean_up_after_stop(where)
  log.end_progress_lines()
  if where.logger and where.logger.run_dir and #where.logger.records > 0 then
    pcall(where.logger.write_metrics, where.logger)
    pcall(where.logger.draw_curves, where.logger)
  end
  local data = where.run and where.run.data
  for _, loader in ipairs { data and data.train_loader, data and data.test_loader } do
    pcall(loader.close, loader)
  end
end

-- run_session, with a Ctrl-C turned into one clean Stopped error.
guarded_session = function(opts)
  local where = {}
  local results = table.pack(xpcall(run_session, function(err)
    if interrupt.is_interrupt(err) then
      return setmetatable({ message = stopped_message(where) }, interrupt.Stopped)
    end
    return errors.capture(err)
  end, opts, where))
  if results[1] then
    return table.unpack(results, 2, results.n)
  end
  local err = results[2]
  if where.logger then
    -- log.txt says how the session ended, as the console did
    pcall(where.logger.write_text, where.logger, (interrupt.is_stopped(err) and "stopped: "
      or "error: ") .. (interrupt.is_stopped(err) and err.message or errors.display(err)))
    pcall(where.logger.close, where.logger)
  end
  if interrupt.is_stopped(err) then
    interrupt.held(clean_up_after_stop, where)
    interrupt.clear()
    interrupt.stop(err.message)
  end
  error(err, 0)
end

return trainer

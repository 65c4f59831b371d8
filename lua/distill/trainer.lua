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
local distill = require "distill"
local config = require "distill.config"
local log = require "distill.log"
local files = require "distill.files"
local json = require "distill.json"
local checkpoint = require "distill.checkpoint"
local teacher_base = require "distill.distillers.base"
local datasets = require "distill.data.datasets"
local models = require "distill.models"
local distillers = require "distill.distillers"

local trainer = {}

-- ------------------------------------------------------------------ data

--- Train and test datasets and loaders of a config (distill.data.datasets).
function trainer.build_data(cfg)
  return datasets.loaders(cfg.data, { batch_size = cfg.batch_size, workers = cfg.workers, seed = cfg.seed })
end

-- ---------------------------------------------------------------- models

--- Builds a model from a config's spec: "resnet8x4", {model = "resnet8x4"}
-- (a config's student or teacher), {model = {family = "fmnist", name =
-- "fmnist_resnet_s", widths = {...}}}; see distill.models.build.
function trainer.build_model(spec, num_classes)
  if type(spec) == "table" and spec.model ~= nil then
    spec = spec.model
  end
  return models.build(spec, { num_classes = num_classes })
end

--- The model state of a checkpoint file (ours or a plain state dict).
function trainer.load_model_state(path)
  local ck = checkpoint.load(path)
  if type(ck.model) == "table" then
    return ck.model, ck.meta
  end
  return ck, nil
end

-- ------------------------------------------------------------- objective

--- The objective of cfg.method, its distillers built against the two
-- models (teacher: nil when no term needs one).
function trainer.build_objective(cfg, student, teacher, input_shape, n_train)
  return distillers.objective(cfg.methods[cfg.method], {
    student = student, teacher = teacher, input_shape = input_shape, dataset_size = n_train,
  })
end

-- ------------------------------------------------------- optim, schedule

function trainer.build_optimizer(cfg, params)
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
  local b = logits:size(1)
  local target_logit = logits:gather(2, target:view{ b, 1 })
  local rank = logits:gt(target_logit):sum(2)
  local top1 = rank:lt(1):sum():item()
  local top5 = rank:lt(5):sum():item()
  return top1, top5
end

--- Test loss (cross-entropy), top-1 and top-5 (%) of model over a loader.
function trainer.evaluate(model, loader, opts)
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
  if n == 0 then
    return { loss = 0 / 0, top1 = 0, top5 = 0, n = 0 }
  end
  return { loss = loss_sum / n, top1 = 100 * c1 / n, top5 = 100 * c5 / n, n = n }
end

-- ------------------------------------------------------------------- run

local function term_names(objective)
  local names = {}
  for i, term in ipairs(objective.terms) do
    names[i] = term.name
  end
  return names
end

local function default_run_dir(cfg)
  return "runs/" .. cfg.name .. (cfg.method ~= "ce" and ("-" .. cfg.method) or "")
end

--- Everything a run needs, built in a fixed order after manual_seed.
function trainer.setup(cfg, mode)
  config.validate(cfg, mode)
  local data = trainer.build_data(cfg)     -- synthetic data re-seeds, so first
  distill.manual_seed(cfg.seed)
  local student = trainer.build_model(cfg.student, data.num_classes)
  local teacher
  if mode == "distill" and distillers.needs(cfg.methods[cfg.method]).teacher then
    teacher = trainer.build_model(cfg.teacher, data.num_classes)
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
  return {
    cfg = cfg, data = data, student = student, teacher = teacher, objective = objective,
    optimizer = optimizer, scheduler = scheduler, preact = objective:needs_preact(),
    -- the frozen teacher's forward: a batch-norm-folded copy while it is in eval mode
    teacher_run = teacher and teacher_base.frozen_teacher(teacher) or nil,
  }
end

local function checkpoint_object(run, epoch, best, record)
  local cfg = run.cfg
  return {
    model = run.student:state_dict(),
    objective = run.objective:state_dict(),
    optimizer = run.optimizer:state_dict(),
    scheduler = run.scheduler:state_dict(),
    meta = {
      epoch = epoch,
      rng = distill.get_rng_state(),
      best_top1 = best.top1,
      best_epoch = best.epoch,
      test_top1 = record.test_top1 or -1,
      test_top5 = record.test_top5 or -1,
      method = cfg.method,
      name = cfg.name,
      mode = run.mode,
      model_spec = cfg.student.model,
      num_classes = run.data.num_classes,
      input_shape = run.data.input_shape,
      data = { dataset = cfg.data.dataset, mean = cfg.data.mean or nil, std = cfg.data.std or nil,
               root = cfg.data.root or nil },
      config = config.serialize(cfg),
      config_source = run.config_source,
      overrides = run.overrides,
    },
  }
end

-- One training epoch; returns the record's train part.
local function train_epoch(run, epoch, logger)
  local student, teacher, objective, optimizer = run.student, run.teacher, run.objective, run.optimizer
  local loader = run.data.train_loader
  local preact = run.preact
  student:train()
  objective:train(true)
  if teacher then
    teacher:eval()
  end
  local lr = optimizer.param_groups[1].lr
  logger:epoch_begin(epoch, run.cfg.epochs, #loader)
  local sums, seen, total_sum, c1, c5 = {}, 0, 0, 0, 0
  local t0 = distill.wallclock()
  local i = 0
  local forward_opts = { features = true, preact = preact }
  for batch in loader:epoch(epoch) do
    i = i + 1
    local x, y = batch.input, batch.target
    local b = y:size(1)
    local t_out
    if teacher then
      t_out = run.teacher_run(x, forward_opts)
    end
    local s_out = student:forward(x, forward_opts)
    local total, parts = objective:loss(s_out, t_out, y, batch, epoch)
    optimizer:zero_grad()
    total:backward()
    objective:after_backward()
    optimizer:step()
    local loss_value = total:item()
    if loss_value ~= loss_value then
      error(("trainer: the loss became NaN at epoch %d, batch %d (lower the lr?)"):format(epoch, i), 0)
    end
    local t1, t5 = trainer.topk_correct(s_out.logits:detach(), y)
    seen, c1, c5 = seen + b, c1 + t1, c5 + t5
    total_sum = total_sum + loss_value * b
    for name, v in pairs(parts) do
      sums[name] = (sums[name] or 0) + v * b
    end
    local elapsed = distill.wallclock() - t0
    logger:batch(i, { loss = total_sum / seen, acc = 100 * c1 / seen,
      images_per_s = seen / math.max(elapsed, 1e-9), elapsed = elapsed })
  end
  local elapsed = distill.wallclock() - t0
  local record = { epoch = epoch, lr = lr, train_loss = total_sum / math.max(seen, 1),
    train_top1 = 100 * c1 / math.max(seen, 1), train_top5 = 100 * c5 / math.max(seen, 1),
    images_per_s = seen / math.max(elapsed, 1e-9) }
  for _, name in ipairs(term_names(objective)) do
    record["train_" .. name] = (sums[name] or 0) / math.max(seen, 1)
  end
  return record
end

--- Runs (or resumes) a training run. opts:
--   config = resolved config table | config_path = file (+ overrides = {"k=v"})
--   mode = "train" | "distill"; resume = run dir; overwrite = true (fresh run in
--   an existing dir); progress = "auto"|"bar"|"lines"|"none"; out = file handle;
--   stop_after = {epoch =, batch =} (tests: raise after that batch).
-- Returns the summary table (also written to run_dir/summary.json).
function trainer.run(opts)
  opts = opts or {}
  local mode = opts.mode or "train"
  local cfg, config_source
  local overrides = opts.overrides or {}
  local run_dir
  if opts.resume then
    run_dir = opts.resume:gsub("/+$", "")
    local run_info_text = files.read(run_dir .. "/run.json")
    local source = files.read(run_dir .. "/config.source.lua")
    if not run_info_text or not source then
      error(("trainer: %s is not a run directory (no run.json / config.source.lua)"):format(run_dir), 0)
    end
    local info = json.decode(run_info_text)
    mode = info.mode or mode
    local all = {}
    for _, o in ipairs(info.overrides or {}) do
      all[#all + 1] = o
    end
    for _, o in ipairs(overrides) do
      all[#all + 1] = o
    end
    overrides = all
    config_source = source
    cfg = config.load_string(source, overrides, run_dir .. "/config.source.lua")
    cfg.run_dir = run_dir
  else
    if opts.config then
      cfg = opts.config
      config_source = opts.config_source or config.serialize(cfg)
    else
      config_source = config.read_source(opts.config_path)
      cfg = config.load(opts.config_path, overrides)
    end
    run_dir = (cfg.run_dir and cfg.run_dir ~= "") and cfg.run_dir or default_run_dir(cfg)
    cfg.run_dir = run_dir
  end

  local start_epoch = 1
  local resume_ck
  if opts.resume then
    if files.exists(run_dir .. "/last.safetensors") then
      resume_ck = checkpoint.load(run_dir .. "/last.safetensors")
      start_epoch = resume_ck.meta.epoch + 1
    end
  elseif files.exists(run_dir .. "/last.safetensors") or files.exists(run_dir .. "/metrics.jsonl") then
    if not opts.overwrite then
      error(("trainer: %s already holds a run; continue it with --resume %s, or start over with "
        .. "--overwrite (or --set run_dir=...)"):format(run_dir, run_dir), 0)
    end
    for _, f in ipairs { "last.safetensors", "best.safetensors", "metrics.jsonl", "metrics.csv",
      "summary.json", "curves.svg", "curves.png" } do
      os.remove(run_dir .. "/" .. f)
    end
  end

  local run = trainer.setup(cfg, mode)
  run.mode, run.config_source, run.overrides = mode, config_source, overrides
  local logger = log.new(run_dir, { progress = opts.progress or cfg.progress, out = opts.out,
    term_names = term_names(run.objective), plot = cfg.plot,
    lines_per_epoch = cfg.log_every > 0 and cfg.log_every or 10 })

  local best = { top1 = -1, epoch = 0 }
  if resume_ck then
    run.student:load_state_dict(resume_ck.model)
    run.objective:load_state_dict(resume_ck.objective)
    run.optimizer:load_state_dict(resume_ck.optimizer)
    run.scheduler:load_state_dict(resume_ck.scheduler)
    for i, group in ipairs(run.optimizer.param_groups) do
      group.lr = run.scheduler:get_last_lr()[i] or group.lr
    end
    distill.set_rng_state(resume_ck.meta.rng)
    best.top1, best.epoch = resume_ck.meta.best_top1, resume_ck.meta.best_epoch
    local kept = {}
    for _, r in ipairs(log.read_metrics(run_dir .. "/metrics.jsonl")) do
      if r.epoch <= resume_ck.meta.epoch then
        kept[#kept + 1] = r
      end
    end
    logger:set_records(kept)
    logger:print(("resuming %s at epoch %d/%d"):format(run_dir, start_epoch, cfg.epochs))
  else
    files.write(run_dir .. "/config.lua", "-- resolved config of this run (functions shown as "
      .. "comments; see config.source.lua)\n" .. config.serialize(cfg))
    files.write(run_dir .. "/config.source.lua", config_source)
    local cpu = distill.cpu_info()
    files.write(run_dir .. "/run.json", json.encode({ mode = mode, overrides = overrides,
      config_path = opts.config_path or "", started = os.date("!%Y-%m-%dT%H:%M:%SZ"),
      isa = cpu.isa, cpu = cpu.model, version = distill.version }) .. "\n")
    logger:print(("%s: %s %s, %s -> %s, %d train / %d test samples, %d epochs, run dir %s"):format(
      mode, cfg.name, cfg.method, run.teacher and tostring(type(cfg.teacher.model) == "table"
        and cfg.teacher.model.name or cfg.teacher.model) or "no teacher",
      tostring(type(cfg.student.model) == "table" and cfg.student.model.name or cfg.student.model),
      #run.data.train, #run.data.test, cfg.epochs, run_dir))
  end

  local started = distill.wallclock()
  local last
  for epoch = start_epoch, cfg.epochs do
    local t_epoch = distill.wallclock()
    if opts.stop_after and opts.stop_after.epoch == epoch then
      local stop_batch = opts.stop_after.batch
      local original = logger.batch
      logger.batch = function(self, i, stats)
        original(self, i, stats)
        if i >= stop_batch then
          error("trainer: stopped (stop_after)", 0)
        end
      end
    end
    local record = train_epoch(run, epoch, logger)
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
    local ck = checkpoint_object(run, epoch, best, record)
    checkpoint.save(run_dir .. "/last.safetensors", ck)
    if improved then
      checkpoint.save(run_dir .. "/best.safetensors", ck)
    end
    logger:epoch_end(record)
    last = record
  end

  local records = logger.records
  last = records[#records] or last or {}
  local summary = {
    name = cfg.name, method = cfg.method, mode = mode, run_dir = run_dir,
    epochs = cfg.epochs, epochs_done = last.epoch or 0,
    best_top1 = best.top1, best_epoch = best.epoch,
    last_top1 = last.test_top1, last_top5 = last.test_top5, last_train_loss = last.train_loss,
    wall_time = distill.wallclock() - started,
  }
  files.write(run_dir .. "/summary.json", json.encode(summary) .. "\n")
  if last.test_top1 then
    logger:print(("done: best test top-1 %.2f%% (epoch %d), last %.2f%%; %s"):format(
      best.top1, best.epoch, last.test_top1, run_dir))
  end
  run.data.train_loader:close()
  run.data.test_loader:close()
  return summary, run
end

return trainer

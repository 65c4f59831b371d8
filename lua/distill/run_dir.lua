-- distill.run_dir: a training run's directory, where it is and what it
-- holds (docs/workflow.md): config.lua, config.source.lua and run.json,
-- written when a run starts, which --resume rebuilds it from;
-- last.safetensors (and best.safetensors) after every epoch; summary.json
-- at the end. The logger (distill.log) writes the metrics and curves.
-- In a distributed run every rank opens and restores the session (the
-- directory must be on a file system they share); rank 1 alone writes.
--
--   local run_dir = require "distill.run_dir"
--   local session = run_dir.open{config_path = "x.lua", overrides = {"epochs=3"}, mode = "train"}
--   local session = run_dir.open{resume = "runs/x"}
--     --> {dir, mode, cfg, config_source, overrides, config_path, checkpoint, start_epoch,
--          note (the stale temporaries it removed)}
--   run_dir.begin(session)                        -- a fresh run: its config and run.json
--   local best = run_dir.restore(session, run)   -- a resumed run
--   run_dir.save_epoch(session, run, epoch, best, record, improved)
--   run_dir.finish(session, summary)
local distill = require "distill"
local config = require "distill.config"
local dist = require "distill.dist"
local checkpoint = require "distill.checkpoint"
local files = require "distill.files"
local json = require "distill.json"
local args = require "distill.args"

-- What a fresh run writes; --overwrite removes them first.
local RUN_FILES = { "last.safetensors", "best.safetensors", "metrics.jsonl", "metrics.csv",
  "summary.json", "curves.svg", "curves.png", "stages.jsonl", "steps.jsonl", "log.txt" }

-- Every file a run writes through a temporary (files.write: <name>.tmp;
-- checkpoint.save: <name>.tmp.XXXXXX, mkstemp's six letters).
local OWN_FILES = { "config.lua", "config.source.lua", "run.json" }
for _, name in ipairs(RUN_FILES) do
  OWN_FILES[#OWN_FILES + 1] = name
end

local run_dir = {}

--- Removes the temporaries that a write interrupted by a crash or SIGKILL
-- left beside the run's own files (<file>.tmp, <file>.tmp.XXXXXX): they are
-- never read, and a checkpoint's can be as large as the checkpoint. Only
-- the run's own names: other files of the directory (a sweep's sweep.pid
-- being written, a user's) are left alone. Returns the note to show, or nil.
function run_dir.remove_stale_temporaries(dir)
  if type(dir) ~= "string" or dir == "" then
    error("run_dir.remove_stale_temporaries: expected a run directory (a string), got " .. type(dir), 2)
  end
  local lfs = require "lfs"
  if lfs.attributes(dir, "mode") ~= "directory" then
    return nil
  end
  local own = {}
  for _, name in ipairs(OWN_FILES) do
    own[name] = true
  end
  local removed, failed, bytes = {}, {}, 0
  for name in lfs.dir(dir) do
    local target = name:match("^(.+)%.tmp$") or name:match("^(.+)%.tmp%.%w%w%w%w%w%w$")
    local path = dir .. "/" .. name
    if target and own[target] and lfs.symlinkattributes(path, "mode") == "file" then
      local size = lfs.attributes(path, "size") or 0
      if os.remove(path) then
        removed[#removed + 1] = name
        bytes = bytes + size
      else
        failed[#failed + 1] = name
      end
    end
  end
  if #removed == 0 and #failed == 0 then
    return nil
  end
  table.sort(removed)
  table.sort(failed)
  local parts = {}
  if #removed > 0 then
    parts[#parts + 1] = ("removed %d stale temporary file%s (%.1f MB) of a write that was interrupted: %s")
      :format(#removed, #removed == 1 and "" or "s", bytes / 1e6, table.concat(removed, ", "))
  end
  if #failed > 0 then
    parts[#parts + 1] = ("cannot remove the stale temporary file%s %s (ignored, never read)")
      :format(#failed == 1 and "" or "s", table.concat(failed, ", "))
  end
  return ("note: %s: %s"):format(dir, table.concat(parts, "; "))
end

--- runs/<name>, with -<method> for distillation methods.
function run_dir.default(cfg)
  args.check(type(cfg) == "table" and type(cfg.name) == "string", "run_dir.default", 1,
    "a config (with a name)", cfg)
  return "runs/" .. cfg.name .. (cfg.method ~= "ce" and ("-" .. cfg.method) or "")
end

-- The session of a resumed run: its own config source, mode and overrides
-- (the new overrides after the stored ones), and its last checkpoint.
local function open_resumed(opts)
  local dir = opts.resume:gsub("/+$", "")
  local run_info = files.read(dir .. "/run.json")
  local source = files.read(dir .. "/config.source.lua")
  if not run_info or not source then
    error(("trainer: %s is not a run directory (no run.json / config.source.lua)%s"):format(dir,
      dist.size() > 1 and " on this rank's machine: every rank reads the run directory, so it "
        .. "must be on a file system all ranks share" or ""), 0)
  end
  local ok, info = pcall(json.decode, run_info)
  if not ok or type(info) ~= "table" then
    error(("trainer: %s/run.json is not valid JSON (%s): the run cannot be resumed from it")
      :format(dir, tostring(ok and type(info) or info)), 0)
  end
  local overrides = {}
  for _, list in ipairs { info.overrides or {}, opts.overrides or {} } do
    for _, o in ipairs(list) do
      overrides[#overrides + 1] = o
    end
  end
  local cfg = config.load_string(source, overrides, dir .. "/config.source.lua")
  cfg.run_dir = dir
  local session = { dir = dir, mode = info.mode or opts.mode or "train", cfg = cfg,
    config_source = source, overrides = overrides, config_path = opts.config_path, start_epoch = 1,
    note = dist.is_main() and run_dir.remove_stale_temporaries(dir) or nil }
  if files.exists(dir .. "/last.safetensors") then
    local ck = checkpoint.load(dir .. "/last.safetensors")
    if type(ck.meta) ~= "table" or math.type(ck.meta.epoch) ~= "integer" or type(ck.model) ~= "table" then
      error(("trainer: %s/last.safetensors has no training state (model and meta.epoch): it was not "
        .. "written by distill's trainer, so the run cannot be resumed from it"):format(dir), 0)
    end
    session.checkpoint = ck
    session.start_epoch = ck.meta.epoch + 1
  end
  return session
end

-- The session of a new run; a directory that already holds a run is an
-- error unless opts.overwrite, which clears it.
local function open_fresh(opts)
  local overrides = opts.overrides or {}
  local cfg, source
  if opts.config then
    cfg = opts.config
    source = opts.config_source or config.serialize(cfg)
  else
    source = config.read_source(opts.config_path)
    cfg = config.load(opts.config_path, overrides)
  end
  local dir = (cfg.run_dir and cfg.run_dir ~= "") and cfg.run_dir or run_dir.default(cfg)
  cfg.run_dir = dir
  if files.exists(dir .. "/last.safetensors") or files.exists(dir .. "/metrics.jsonl") then
    if not opts.overwrite then
      error(("trainer: %s already holds a run; continue it with --resume %s, or start over with "
        .. "--overwrite (or --set run_dir=...)"):format(dir, dir), 0)
    end
    if dist.is_main() then
      for _, f in ipairs(RUN_FILES) do
        os.remove(dir .. "/" .. f)
      end
    end
  end
  return { dir = dir, mode = opts.mode or "train", cfg = cfg, config_source = source,
    overrides = overrides, config_path = opts.config_path, start_epoch = 1,
    note = dist.is_main() and run_dir.remove_stale_temporaries(dir) or nil }
end

--- The session of a run: opts as trainer.run's (config | config_path,
-- overrides, mode, resume, overwrite, config_source).
function run_dir.open(opts)
  if type(opts) ~= "table" then
    error("run_dir.open: expected options {config = | config_path = | resume =, ...}", 2)
  end
  if opts.resume then
    return open_resumed(opts)
  end
  return open_fresh(opts)
end

--- Writes what a fresh run is rebuilt from: the resolved config (for
-- reading), the config source and run.json (mode, overrides, machine).
function run_dir.begin(session)
  args.check(type(session) == "table" and type(session.dir) == "string", "run_dir.begin", 1,
    "a session (run_dir.open's result)", session)
  if not dist.is_main() then
    return
  end
  local dir, cfg = session.dir, session.cfg
  files.mkdir(dir)
  files.write(dir .. "/config.lua", "-- resolved config of this run (functions shown as "
    .. "comments; see config.source.lua)\n" .. config.serialize(cfg))
  files.write(dir .. "/config.source.lua", session.config_source)
  local cpu = distill.cpu_info()
  local git = require("distill.checkout").git_state() or {}
  files.write(dir .. "/run.json", json.encode({ mode = session.mode, overrides = session.overrides,
    config_path = session.config_path or "", started = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    isa = cpu.isa, cpu = cpu.model, version = distill.version, ranks = dist.size(),
    git_commit = git.commit, git_dirty = git.dirty }) .. "\n")
end

--- Restores a resumed run's student, objective, optimizer, schedule and
-- RNG from the session's checkpoint. Returns the best test top-1 so far
-- {top1 =, epoch =}.
function run_dir.restore(session, run)
  args.check(type(session) == "table" and type(session.checkpoint) == "table", "run_dir.restore", 1,
    "a resumed session (run_dir.open's result, with a checkpoint)", session)
  args.check(type(run) == "table" and type(run.student) == "table", "run_dir.restore", 2,
    "a run (trainer.setup's result)", run)
  local ck = session.checkpoint
  run.student:load_state_dict(ck.model)
  run.objective:load_state_dict(ck.objective)
  run.optimizer:load_state_dict(ck.optimizer)
  run.scheduler:load_state_dict(ck.scheduler)
  for i, group in ipairs(run.optimizer.param_groups) do
    group.lr = run.scheduler:get_last_lr()[i] or group.lr
  end
  distill.set_rng_state(ck.meta.rng)
  return { top1 = ck.meta.best_top1, epoch = ck.meta.best_epoch }
end

-- Everything a resumed run and `distill eval` need from an epoch's end.
local function checkpoint_object(session, run, epoch, best, record)
  local cfg = session.cfg
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
      ranks = dist.size(),
      test_top1 = record.test_top1 or -1,
      test_top5 = record.test_top5 or -1,
      method = cfg.method,
      name = cfg.name,
      mode = session.mode,
      model_spec = cfg.student.model,
      num_classes = run.data.num_classes,
      input_shape = run.data.input_shape,
      data = { dataset = cfg.data.dataset, mean = cfg.data.mean or nil, std = cfg.data.std or nil,
               root = cfg.data.root or nil },
      config = config.serialize(cfg),
      config_source = session.config_source,
      overrides = session.overrides,
    },
  }
end

--- Saves last.safetensors after an epoch, and best.safetensors when the
-- test accuracy improved; `extra` entries are added to the checkpoint (a
-- pre-training stage's state, distill.stages).
function run_dir.save_epoch(session, run, epoch, best, record, improved, extra)
  args.check(type(session) == "table" and type(session.dir) == "string", "run_dir.save_epoch", 1,
    "a session (run_dir.open's result)", session)
  args.check(type(run) == "table" and type(run.student) == "table", "run_dir.save_epoch", 2,
    "a run (trainer.setup's result)", run)
  args.integer("run_dir.save_epoch", 3, epoch, 0)
  args.table("run_dir.save_epoch", 4, best, "the best-so-far {top1 =, epoch =}")
  args.table("run_dir.save_epoch", 5, record, "the epoch's record")
  args.table("run_dir.save_epoch", 7, extra, "a table of extra entries or nil", true)
  if not dist.is_main() then
    return
  end
  local ck = checkpoint_object(session, run, epoch, best, record)
  for key, value in pairs(extra or {}) do
    ck[key] = value
  end
  checkpoint.save(session.dir .. "/last.safetensors", ck)
  if improved then
    checkpoint.save(session.dir .. "/best.safetensors", ck)
  end
end

--- Writes summary.json.
function run_dir.finish(session, summary)
  args.check(type(session) == "table" and type(session.dir) == "string", "run_dir.finish", 1,
    "a session (run_dir.open's result)", session)
  args.table("run_dir.finish", 2, summary, "the run's summary")
  if not dist.is_main() then
    return
  end
  files.write(session.dir .. "/summary.json", json.encode(summary) .. "\n")
end

return run_dir

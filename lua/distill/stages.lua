-- distill.stages: pre-training stages that run before a method's main
-- epochs, from the same config and in the same run directory: AB's
-- initialisation of the student through its connectors, FT's paraphraser,
-- FitNet's hint stage (docs/configs.md, "Stages").
--
-- A method entry lists its stages under `stages`, before its main terms:
--   ab = { stages = { { name = "ab_init", epochs = 30, train = "student+distillers",
--                       terms = { { distiller = "ab", weight = 1 } } } },
--          { distiller = "ce", weight = 1 } },
-- Stage keys: name (a word, unique), epochs (>= 0; 0 skips the stage),
-- terms (as a method's), train ("student+distillers" by default, "student"
-- or "distillers": whose parameters the stage's optimizer steps) and
-- optimizer (overrides of the config's optimizer, e.g. {lr = 0.01}). A
-- stage trains at a constant learning rate with its own optimizer; the
-- main epochs then start with a fresh one, as the reference code bases do.
--
-- A stage term named like a main term (its `name`, else its distiller)
-- is that term's distiller: what the stage trains (FT's paraphraser) is
-- what the main epochs use. A distiller with a `stage_loss` method (FT)
-- trains by it in a stage and by `loss` in the main epochs.
--
-- Progress: every stage epoch prints a line "stage NAME epoch k/n ...",
-- appends a record {stage =, epoch =, lr =, train_loss =, train_<term> =,
-- ...} to stages.jsonl in the run directory, and saves last.safetensors
-- with a `stage` entry {name, epoch, objective, optimizer} (meta.epoch = 0).
-- A run resumed from such a checkpoint continues in that stage; a run whose
-- checkpoint has no `stage` entry is past its stages and does not redo them.
local distill = require "distill"
local dist = require "distill.dist"
local files = require "distill.files"
local json = require "distill.json"
local log = require "distill.log"
local run_dir = require "distill.run_dir"
local base = require "distill.distillers.base"
local args = require "distill.args"

local stages = {}

local STAGE_KEYS = { name = true, epochs = true, terms = true, train = true, optimizer = true }
local TRAIN = { student = true, distillers = true, ["student+distillers"] = true }

stages.RECORDS = "stages.jsonl"

local function fail(message)
  error("config: " .. message, 0)
end

local function sorted(set)
  return require("distill.registry").sorted_keys(set)
end

--- The stage specs of a method entry ({} when it has none).
function stages.list(entry)
  return type(entry) == "table" and type(entry.stages) == "table" and entry.stages or {}
end

-- The name a term goes by in an objective (its `name`, else its distiller).
local function term_name(term)
  return term.name or term.distiller or term[1]
end

local function term_options(term)
  return require("distill.distillers").parse_term(term).options
end

local function same_value(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not same_value(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

-- A stage term that shares a main term's distiller must be of the same
-- distiller, and any options it repeats must be the main term's.
local function check_shared(where, term, main_terms)
  local name = term_name(term)
  for _, main in ipairs(main_terms) do
    if term_name(main) == name then
      local kind, main_kind = term.distiller or term[1], main.distiller or main[1]
      if kind ~= main_kind then
        fail(("%s: term '%s' is a %s but the main term of that name is a %s (name one of them "
          .. "differently)"):format(where, name, tostring(kind), tostring(main_kind)))
      end
      local options = term_options(term)
      if next(options) ~= nil and not same_value(options, term_options(main)) then
        fail(("%s: term '%s' shares the main term's distiller, so its options must be the main "
          .. "term's (give them there only)"):format(where, name))
      end
    end
  end
end

local function check_optimizer(where, opt)
  if opt == nil then
    return
  end
  if type(opt) ~= "table" then
    fail(("%s.optimizer must be a table of overrides, got %s"):format(where, type(opt)))
  end
  local valid = require("distill.config").optimizer_defaults
  for key, value in pairs(opt) do
    if valid[key] == nil then
      fail(("%s.optimizer: unknown key '%s' (valid: %s)"):format(where, tostring(key),
        table.concat(sorted(valid), ", ")))
    elseif type(value) ~= type(valid[key]) then
      fail(("%s.optimizer.%s must be a %s, got %s"):format(where, key, type(valid[key]), type(value)))
    end
  end
  if opt.lr ~= nil and not (opt.lr > 0) then
    fail(("%s.optimizer.lr must be positive, got %s"):format(where, tostring(opt.lr)))
  end
end

--- Checks the stages of cfg's method (config.validate calls it); errors
-- start with "config: methods.<method>.stages[i]".
function stages.validate(cfg)
  args.check(type(cfg) == "table" and type(cfg.methods) == "table" and type(cfg.methods[cfg.method]) == "table",
    "stages.validate", 1, "a resolved config whose method is defined", cfg)
  local entry = cfg.methods[cfg.method]
  local list = entry.stages
  if list == nil then
    return
  end
  local prefix = ("methods.%s.stages"):format(cfg.method)
  if type(list) ~= "table" then
    fail(("%s must be a list of stages {name =, epochs =, terms =}, got %s"):format(prefix, type(list)))
  end
  for key in pairs(list) do
    if math.type(key) ~= "integer" or key < 1 or key > #list then
      fail(("%s must be a list (1, 2, ...), got the key '%s'"):format(prefix, tostring(key)))
    end
  end
  local config = require "distill.config"
  local seen = {}
  for i, stage in ipairs(list) do
    local where = ("%s[%d]"):format(prefix, i)
    if type(stage) ~= "table" then
      fail(("%s must be a table {name =, epochs =, terms =}, got %s"):format(where, type(stage)))
    end
    for key in pairs(stage) do
      if not STAGE_KEYS[key] then
        fail(("%s: unknown key '%s' (valid: %s)"):format(where, tostring(key),
          table.concat(sorted(STAGE_KEYS), ", ")))
      end
    end
    if type(stage.name) ~= "string" or not stage.name:match("^[%w_%-]+$") then
      fail(("%s: 'name' must be a word (letters, digits, _ or -), got %s"):format(where,
        type(stage.name) == "string" and ("'" .. stage.name .. "'") or tostring(stage.name)))
    end
    if seen[stage.name] then
      fail(("%s: the name '%s' is already stage %d's"):format(where, stage.name, seen[stage.name]))
    end
    seen[stage.name] = i
    if math.type(stage.epochs) ~= "integer" or stage.epochs < 0 then
      fail(("%s: 'epochs' must be a non-negative integer, got %s"):format(where, tostring(stage.epochs)))
    end
    if stage.train ~= nil and not TRAIN[stage.train] then
      fail(("%s: 'train' must be one of %s, got %s"):format(where, table.concat(sorted(TRAIN), ", "),
        tostring(stage.train)))
    end
    if type(stage.terms) ~= "table" then
      fail(("%s: 'terms' must be a list of terms {distiller = NAME, weight = W}"):format(where))
    end
    config.check_terms(where .. ".terms", stage.terms)
    for j, term in ipairs(stage.terms) do
      check_shared(("%s.terms[%d]"):format(where, j), term, entry)
    end
    check_optimizer(where, stage.optimizer)
  end
end

--- What the main terms and the stages' terms of a method entry need
-- together (distillers.needs of all of them).
function stages.needs(entry)
  args.table("stages.needs", 1, entry, "a method entry (a list of terms)")
  local distillers = require "distill.distillers"
  local all = {}
  for _, term in ipairs(entry) do
    all[#all + 1] = term
  end
  for _, stage in ipairs(stages.list(entry)) do
    for _, term in ipairs(stage.terms or {}) do
      all[#all + 1] = term
    end
  end
  return distillers.needs(all)
end

-- ---------------------------------------------------------------- build

-- A distiller that trains by its stage_loss (FT's paraphraser) wears this
-- in a stage: its loss is the distiller's stage_loss.
local StageTerm = base.class("StageTerm")

function StageTerm:init(distiller)
  self.inner = distiller
  rawset(self, "needs", distiller.needs)
end

function StageTerm:loss(...)
  return self.inner:stage_loss(...)
end

function StageTerm:after_backward()
  if self.inner.after_backward then
    self.inner:after_backward()
  end
end

-- The parameters a stage's optimizer steps.
local function trained_parameters(train, student, objective)
  local params = {}
  if train ~= "distillers" then
    for _, p in ipairs(student:parameters()) do
      params[#params + 1] = p
    end
  end
  if train ~= "student" then
    for _, p in ipairs(objective:parameters()) do
      params[#params + 1] = p
    end
  end
  return params
end

--- The stages of cfg's method, built after its main objective (whose
-- distillers the stages share by name) from the same build context
-- {student =, teacher =, input_shape =, dataset_size =}; build_optimizer
-- is trainer.build_optimizer. Returns a list of {name, epochs, train,
-- objective, optimizer, preact, teacher_preact}.
function stages.build(cfg, objective, context, build_optimizer)
  args.check(type(cfg) == "table" and type(cfg.methods) == "table" and type(cfg.optimizer) == "table",
    "stages.build", 1, "a resolved config", cfg)
  args.check(type(objective) == "table" and type(objective.terms) == "table", "stages.build", 2,
    "the main objective (distillers.objective's result)", objective)
  args.check(type(context) == "table" and type(context.student) == "table", "stages.build", 3,
    "a build context {student =, teacher =, input_shape =, dataset_size =}", context)
  args.func("stages.build", 4, build_optimizer, "the function that builds an optimizer")
  local distillers = require "distill.distillers"
  local main = {}
  for _, term in ipairs(objective.terms) do
    main[term.name] = term
  end
  local built = {}
  for i, spec in ipairs(stages.list(cfg.methods[cfg.method])) do
    local terms = {}
    for j, term in ipairs(spec.terms) do
      local copy = {}
      for k, v in pairs(term) do
        copy[k] = v
      end
      copy.name = term_name(term)
      local shared = main[copy.name]
      if shared then
        copy.distiller, copy[1] = shared.distiller, nil
      end
      terms[j] = copy
    end
    local stage_objective = distillers.objective(terms, context)
    for _, term in ipairs(stage_objective.terms) do
      if term.distiller.stage_loss then
        term.distiller = StageTerm(term.distiller)
      end
    end
    local train = spec.train or "student+distillers"
    local params = trained_parameters(train, context.student, stage_objective)
    if #params == 0 then
      error(("stages: stage '%s' trains nothing: train = '%s' and its terms have no parameters")
        :format(spec.name, train), 0)
    end
    local settings = {}
    for k, v in pairs(cfg.optimizer) do
      settings[k] = v
    end
    for k, v in pairs(spec.optimizer or {}) do
      settings[k] = v
    end
    local needs = distillers.needs(stage_objective.terms)
    built[i] = {
      name = spec.name, epochs = spec.epochs, train = train, objective = stage_objective,
      optimizer = build_optimizer({ optimizer = settings }, params),
      preact = needs.preact, teacher_preact = needs.teacher_preact,
    }
  end
  return built
end

-- ------------------------------------------------------------------ run

local function write_records(dir, records)
  if not dist.is_main() or not dir then
    return
  end
  local lines = {}
  for i, r in ipairs(records) do
    lines[i] = json.encode(r)
  end
  files.write(dir .. "/" .. stages.RECORDS, #lines > 0 and table.concat(lines, "\n") .. "\n" or "")
end

--- The records of a run directory's stages.jsonl ({} when absent).
function stages.read_records(dir)
  args.string("stages.read_records", 1, dir, "a run directory")
  return log.read_metrics(dir .. "/" .. stages.RECORDS)
end

-- Where a checkpoint left the stages: nil (a fresh run), "done" (the main
-- epochs have begun) or {index =, epoch =} (the last completed stage epoch).
local function progress_of(list, ck)
  if not ck then
    return nil
  end
  if type(ck.stage) ~= "table" then
    return "done"
  end
  for i, stage in ipairs(list) do
    if stage.name == ck.stage.name then
      return { index = i, epoch = ck.stage.epoch }
    end
  end
  error(("stages: the checkpoint is in stage '%s', which this config's method does not have")
    :format(tostring(ck.stage.name)), 0)
end

-- Does the checkpoint's progress `at` include epoch `epoch` of stage `name`?
local function done_by(list, at, name, epoch)
  if at == "done" then
    return true
  elseif at == nil then
    return false
  end
  for i, stage in ipairs(list) do
    if stage.name == name then
      return i < at.index or (i == at.index and type(epoch) == "number" and epoch <= at.epoch)
    end
  end
  return false
end

--- A function (name, epoch) -> whether the checkpoint ck (nil: none) has
-- completed that epoch of the stage of that name, for the stages `list`
-- (stages.build's); a resume keeps the per-step records it says are done.
function stages.completed(list, ck)
  if type(list) ~= "table" then
    error("stages.completed: argument #1: expected the list of built stages, got " .. type(list), 2)
  end
  if ck ~= nil and type(ck) ~= "table" then
    error("stages.completed: argument #2: expected a checkpoint table or nil, got " .. type(ck), 2)
  end
  local at = progress_of(list, ck)
  return function(name, epoch)
    return done_by(list, at, name, epoch)
  end
end

-- The records of the stages before `at` and of its epochs up to at.epoch.
local function kept_records(dir, list, at)
  local kept = {}
  for _, r in ipairs(stages.read_records(dir)) do
    if done_by(list, at, r.stage, r.epoch) then
      kept[#kept + 1] = r
    end
  end
  return kept
end

-- One stage's epochs from `first`.
local function run_stage(run, session, logger, stage, first, context)
  local on_batch = context.on_batch
  local stage_run = {
    cfg = { epochs = stage.epochs, batch_size = run.cfg.batch_size }, data = run.data,
    student = run.student, teacher = run.teacher, ddp = stage.ddp,
    teacher_run = run.teacher_run, objective = stage.objective, optimizer = stage.optimizer,
    preact = stage.preact, teacher_preact = stage.teacher_preact,
    train_student = stage.train ~= "distillers",
  }
  local stage_logger = log.new(nil, { progress = logger.mode, out = logger.out, plot = false,
    term_names = stage.objective:names(), lines_per_epoch = logger.lines_per_epoch,
    label = "stage " .. stage.name, stage = stage.name, parent = logger })
  local hook = on_batch and function(step)
    step.stage = stage.name
    on_batch(step)
  end
  for epoch = first, stage.epochs do
    local t0 = distill.wallclock()
    local record = context.train_epoch(stage_run, epoch, stage_logger, hook)
    record.stage, record.epochs = stage.name, stage.epochs
    record.epoch_time = distill.wallclock() - t0
    context.records[#context.records + 1] = record
    write_records(session.dir, context.records)
    run_dir.save_epoch(session, run, 0, context.best, record, false, { stage = {
      name = stage.name, epoch = epoch,
      objective = stage.objective:state_dict(), optimizer = stage.optimizer:state_dict() } })
    stage_logger:epoch_end(record)
  end
end

--- Runs the stages of a run that are not done yet (trainer.run calls it
-- before the main epochs). context: {train_epoch = the trainer's epoch
-- function, best = the best-so-far table, on_batch = optional hook (its
-- step gets a `stage` field)}.
function stages.run(run, session, logger, context)
  args.check(type(run) == "table" and type(run.student) == "table", "stages.run", 1,
    "a run (trainer.setup's result)", run)
  args.check(type(session) == "table" and type(session.dir) == "string", "stages.run", 2,
    "a session (run_dir.open's result)", session)
  args.check(type(logger) == "table" and type(logger.print) == "function", "stages.run", 3,
    "a logger (log.new's result)", logger)
  args.check(type(context) == "table" and type(context.train_epoch) == "function", "stages.run", 4,
    "a context {train_epoch =, best =, on_batch =}", context)
  local list = run.stages or {}
  local at = progress_of(list, session.checkpoint)
  if #list == 0 or at == "done" then
    return
  end
  context.records = {}
  if at then
    -- a partial epoch's record after the checkpoint is dropped
    context.records = kept_records(session.dir, list, at)
    write_records(session.dir, context.records)
  end
  for i, stage in ipairs(list) do
    local first = 1
    if at and i < at.index then
      first = stage.epochs + 1
    elseif at and i == at.index then
      local ck = session.checkpoint.stage
      stage.objective:load_state_dict(ck.objective)
      stage.optimizer:load_state_dict(ck.optimizer)
      first = at.epoch + 1
    end
    if first <= stage.epochs then
      logger:print(("stage %s: epochs %d-%d of %d, training the %s (lr %g)"):format(stage.name, first,
        stage.epochs, stage.epochs, stage.train:gsub("%+", " and "),
        stage.optimizer.param_groups[1].lr))
      run_stage(run, session, logger, stage, first, context)
    end
  end
end

return stages

-- distill.stages: pre-training stages (AB's initialisation, FT's
-- paraphraser, FitNet's hint stage) run from the config before the main
-- epochs, logged, checkpointed and resumable; bad stage configs are
-- rejected with errors naming the key.
local distill = require "distill"
local config = require "distill.config"
local trainer = require "distill.trainer"
local stages = require "distill.stages"
local log = require "distill.log"
local checkpoint = require "distill.checkpoint"
local h = require "support.helpers"

local tmp = h.tmpdir()

local TEACHER = tmp .. "/teacher/best.safetensors"

local function tiny(overrides)
  local cfg = config.resolve({
    name = "staged",
    student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
    teacher = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 8, 8, 16 } },
                checkpoint = TEACHER },
    data = { dataset = "synthetic", num_classes = 10, synthetic_size = 256, synthetic_test_size = 128,
             synthetic_shape = { 1, 12, 12 } },
    methods = config.staged_methods{ stage_epochs = 2, reviewkd_warmup = 0 },
    method = "ab",
    optimizer = { lr = 0.05 },
    schedule = { milestones = { 2 } },
    epochs = 2, batch_size = 32, seed = 5, workers = 1, plot = false, progress = "none", log_steps = 3,
  })
  cfg.methods.ce = { { distiller = "ce", weight = 1 } }
  return config.apply_overrides(cfg, overrides or {})
end

local capture = h.capture

local function run(overrides, opts)
  opts = opts or {}
  opts.mode = "distill"
  opts.config = tiny(overrides)
  return trainer.run(opts)
end

local function same_tensors(a, b)
  for key, t in pairs(a) do
    if distill.is_tensor(t) and t:dtype() == "float32" then
      if h.max_abs_diff(t, b[key]) ~= 0 then
        return false, key
      end
    end
  end
  return true
end

describe("distill.stages", function()
  setup(function()
    -- a teacher that has learnt something, for the staged runs
    trainer.run{ mode = "train", config = tiny({ "run_dir=" .. tmp .. "/teacher", "method=ce", "epochs=3",
      "schedule.milestones=5", "student.model.widths=4,8,8,16" }) }
  end)

  it("runs a method's stage before its main epochs, logging and checkpointing it", function()
    local dir = tmp .. "/ab"
    local out = capture()
    local summary = run({ "run_dir=" .. dir }, { progress = "lines", out = out })
    assert.are.equal(2, summary.epochs_done)
    local records = stages.read_records(dir)
    assert.are.equal(2, #records)
    for i, r in ipairs(records) do
      assert.are.equal("ab_init", r.stage)
      assert.are.equal(i, r.epoch)
      assert.are.equal(2, r.epochs)
      assert.are.equal(0.05, r.lr)
      assert.is_number(r.train_ab)
    end
    assert.is_true(records[2].train_ab < records[1].train_ab, "the stage lowers the AB loss")
    -- every third step of the stage (its own step count) and of the main epochs
    local steps = log.read_metrics(dir .. "/steps.jsonl")
    local seen = {}
    for _, r in ipairs(steps) do
      seen[#seen + 1] = ("%s:%d:%d"):format(r.stage or "main", r.epoch, r.global_step)
    end
    assert.are.same({ "ab_init:1:3", "ab_init:1:6", "ab_init:2:9", "ab_init:2:12", "ab_init:2:15",
      "main:1:3", "main:1:6", "main:2:9", "main:2:12", "main:2:15" }, seen)
    assert.is_number(steps[1].train_ab)
    assert.is_number(steps[6].train_ce)
    local metrics = log.read_metrics(dir .. "/metrics.jsonl")
    assert.are.equal(2, #metrics)
    assert.is_nil(metrics[1].train_ab, "the main epochs train CE alone")
    assert.is_number(metrics[1].train_ce)
    assert.truthy(out.text:find("stage ab_init: epochs 1-2 of 2, training the student and distillers",
      1, true), out.text)
    assert.truthy(out.text:find("stage ab_init epoch 2/2 batch 8/8", 1, true))
    assert.truthy(out.text:find("\nstage ab_init epoch 1/2  loss", 1, true))
    local stage_line = out.text:find("stage ab_init epoch 2/2  loss", 1, true)
    local main_line = out.text:find("\nepoch 1/2 batch", 1, true)
    assert.is_true(stage_line < main_line, "the stage runs first")
    -- the main checkpoints have no stage entry; the stage changed the student
    assert.is_nil(checkpoint.load(dir .. "/last.safetensors").stage)
    local unstaged = run({ "run_dir=" .. tmp .. "/ab0", "methods.ab.stages.1.epochs=0" })
    assert.are_not.equal(unstaged.last_train_loss, summary.last_train_loss)
    assert.is_nil(io.open(tmp .. "/ab0/stages.jsonl"), "a stage of 0 epochs is skipped")
  end)

  it("trains only the distillers when asked, and shares them with the main terms", function()
    local dir = tmp .. "/ft"
    run({ "run_dir=" .. dir, "method=ft", "epochs=0" })
    local ck = checkpoint.load(dir .. "/last.safetensors")
    assert.are.equal("ft_paraphraser", ck.stage.name)
    assert.are.equal(2, ck.stage.epoch)
    assert.are.equal(0, ck.meta.epoch)
    -- the student is as built: the stage stepped the paraphraser only
    local fresh = trainer.setup(tiny({ "method=ft" }), "distill")
    fresh.data.train_loader:close()
    fresh.data.test_loader:close()
    assert.is_true(same_tensors(fresh.student:state_dict(), ck.model))
    local before = fresh.objective.terms[2].distiller:state_dict()
    local trained = ck.objective.ft
    assert.is_false(same_tensors(before, trained), "the paraphraser trained")
    -- the translator did not move; the stage's distiller is the main term's
    for key, t in pairs(before) do
      if key:match("^translator") and t:dtype() == "float32" then
        assert.are.equal(0, h.max_abs_diff(t, trained[key]), key)
      end
    end
    assert.is_true(same_tensors(trained, (function()
      local inner = {}
      for key, t in pairs(ck.stage.objective.ft) do
        inner[key:gsub("^inner%.", "")] = t
      end
      return inner
    end)()))
    local records = stages.read_records(dir)
    assert.is_true(records[2].train_ft < records[1].train_ft, "the reconstruction improves")
    assert.are.equal(0.05, records[1].lr)
  end)

  it("resumes a run interrupted in its stage with the uninterrupted run's numbers", function()
    local full = tmp .. "/ab"     -- the uninterrupted run of the first spec
    -- in the stage; after it, before the first main checkpoint; in the main epochs
    for i, stop in ipairs { { stage = "ab_init", epoch = 2, batch = 3 }, { epoch = 1, batch = 5 },
                            { epoch = 2, batch = 2 } } do
      local dir = tmp .. "/stopped-" .. i
      local ok, err = pcall(run, { "run_dir=" .. dir }, { on_batch = function(step)
        if step.stage == stop.stage and step.epoch == stop.epoch and step.batch == stop.batch then
          error("stop here", 0)
        end
      end })
      assert.is_false(ok)
      assert.are.equal("stop here", err)
      local out = capture()
      trainer.run{ resume = dir, progress = "lines", out = out }
      assert.are.same(h.without_times(stages.read_records(full)), h.without_times(stages.read_records(dir)))
      assert.are.same(h.without_times(log.read_metrics(full .. "/metrics.jsonl")),
        h.without_times(log.read_metrics(dir .. "/metrics.jsonl")))
      -- the step records after the checkpoint were dropped, not repeated
      assert.are.same(h.without_times(log.read_metrics(full .. "/steps.jsonl")),
        h.without_times(log.read_metrics(dir .. "/steps.jsonl")))
      if stop.stage then
        assert.truthy(out.text:find("stage ab_init: epochs 2-2 of 2", 1, true), out.text)
        assert.is_nil(out.text:find("stage ab_init epoch 1/2", 1, true), "epoch 1 is not redone")
      else
        assert.is_nil(out.text:find("stage ab_init", 1, true), "a run past its stage does not redo it")
      end
    end
  end)

  it("runs FitNet's hint stage where a config asks for it", function()
    local dir = tmp .. "/hint"
    local cfg = tiny({ "run_dir=" .. dir, "epochs=1" })
    cfg.methods.fitnet_hint = {
      stages = { { name = "hint", epochs = 1, train = "student+distillers",
                   terms = { { distiller = "fitnet", weight = 100, hint_layer = 3 } } } },
      { distiller = "ce", weight = 0.1 }, { distiller = "kd", weight = 0.9, T = 4 },
    }
    cfg.method = "fitnet_hint"
    trainer.run{ mode = "distill", config = cfg }
    local records = stages.read_records(dir)
    assert.are.equal(1, #records)
    assert.are.equal("hint", records[1].stage)
    assert.is_number(records[1].train_fitnet)
    assert.is_number(log.read_metrics(dir .. "/metrics.jsonl")[1].train_kd)
  end)

  it("says which stage epochs a checkpoint has completed", function()
    local list = { { name = "a" }, { name = "b" } }
    local in_b = stages.completed(list, { stage = { name = "b", epoch = 2 } })
    assert.is_true(in_b("a", 5))
    assert.is_true(in_b("b", 2))
    assert.is_false(in_b("b", 3))
    assert.is_false(in_b("c", 1))
    assert.is_true(stages.completed(list, { meta = { epoch = 1 } })("b", 9), "past the stages")
    assert.is_false(stages.completed(list, nil)("a", 1), "no checkpoint: nothing done")
    h.fails("stages.completed: argument #1: expected the list of built stages, got nil", stages.completed)
    h.fails("stages.completed: argument #2: expected a checkpoint table or nil, got string",
      stages.completed, list, "x")
  end)

  it("rejects bad stage configs with errors naming the key", function()
    local function rejects(message, edit)
      local cfg = tiny()
      edit(cfg.methods.ab, cfg)
      h.fails(message, config.validate, cfg, "distill")
    end
    rejects("config: methods.ab.stages must be a list of stages {name =, epochs =, terms =}, got string",
      function(m) m.stages = "ab_init" end)
    rejects("config: methods.ab.stages must be a list (1, 2, ...), got the key 'init'",
      function(m) m.stages.init = m.stages[1] end)
    rejects("config: methods.ab.stages[1]: unknown key 'epoch' (valid: epochs, name, optimizer, terms, train)",
      function(m) m.stages[1].epoch = 3 end)
    rejects("config: methods.ab.stages[1]: 'name' must be a word (letters, digits, _ or -), got 'ab init'",
      function(m) m.stages[1].name = "ab init" end)
    rejects("config: methods.ab.stages[1]: 'name' must be a word (letters, digits, _ or -), got nil",
      function(m) m.stages[1].name = nil end)
    rejects("config: methods.ab.stages[2]: the name 'ab_init' is already stage 1's",
      function(m) m.stages[2] = m.stages[1] end)
    for _, bad in ipairs { -1, 1.5, "3" } do
      rejects("config: methods.ab.stages[1]: 'epochs' must be a non-negative integer, got " .. tostring(bad),
        function(m) m.stages[1].epochs = bad end)
    end
    rejects("config: methods.ab.stages[1]: 'train' must be one of distillers, student, student+distillers, "
      .. "got connectors", function(m) m.stages[1].train = "connectors" end)
    rejects("config: methods.ab.stages[1]: 'terms' must be a list of terms",
      function(m) m.stages[1].terms = nil end)
    rejects("config: methods.ab.stages[1].terms: needs at least one term",
      function(m) m.stages[1].terms = {} end)
    rejects("config: methods.ab.stages[1].terms[1]: unknown distiller 'abound' (known: ab, at",
      function(m) m.stages[1].terms[1].distiller = "abound" end)
    rejects("config: methods.ab.stages[1].terms[1]: 'weight' must be a finite number or a function of epoch",
      function(m) m.stages[1].terms[1].weight = "1" end)
    rejects("config: methods.ab.stages[1].terms[1]: term 'ce' is a kd but the main term of that name is a ce",
      function(m) m.stages[1].terms[1] = { distiller = "kd", name = "ce" } end)
    rejects("config: methods.ft.stages[1].terms[1]: term 'ft' shares the main term's distiller, so its "
      .. "options must be the main term's", function(_, cfg)
        cfg.method = "ft"
        cfg.methods.ft.stages[1].terms[1].rate = 0.25
      end)
    rejects("config: methods.ab.stages[1].optimizer: unknown key 'learning_rate' (valid: lr, momentum, name, "
      .. "nesterov, weight_decay)", function(m) m.stages[1].optimizer = { learning_rate = 0.1 } end)
    rejects("config: methods.ab.stages[1].optimizer.lr must be positive, got -0.1",
      function(m) m.stages[1].optimizer = { lr = -0.1 } end)
    rejects("config: methods.ab.stages[1].optimizer.momentum must be a number, got string",
      function(m) m.stages[1].optimizer = { momentum = "0.9" } end)
    rejects("config: methods.ab.stages[1].optimizer must be a table of overrides, got number",
      function(m) m.stages[1].optimizer = 0.1 end)
    -- a stage that has nothing to train, and a checkpoint in a stage the config lacks
    local cfg = tiny({ "run_dir=" .. tmp .. "/nothing" })
    cfg.methods.ab.stages[1].terms = { { distiller = "kd", weight = 1 } }
    cfg.methods.ab.stages[1].train = "distillers"
    h.fails("stages: stage 'ab_init' trains nothing: train = 'distillers' and its terms have no parameters",
      trainer.run, { mode = "distill", config = cfg })
    local dir = tmp .. "/renamed"
    pcall(run, { "run_dir=" .. dir }, { on_batch = function(step)
      if step.epoch == 2 then
        error("stop", 0)
      end
    end })
    h.fails("stages: the checkpoint is in stage 'ab_init', which this config's method does not have",
      trainer.run, { resume = dir, overrides = { "methods.ab.stages.1.name=init" } })
  end)

  it("gives every pair config AB and FT with their 30-epoch stages, and ReviewKD", function()
    for _, pair in ipairs { { "resnet32x4", "resnet8x4", 0.01 }, { "vgg13", "vgg8", 0.05 },
                            { "wrn_40_2", "ShuffleV1", 0.01 }, { "wrn_40_2", "wrn_16_2", 0.01 } } do
      local file = ("scripts/configs/cifar100_%s_%s.lua"):format(pair[1], pair[2])
      for _, method in ipairs { "ab", "ft", "reviewkd" } do
        local cfg = config.load(file, { "method=" .. method })
        config.validate(cfg, "distill")
        assert.is_true(stages.needs(cfg.methods[method]).teacher)
      end
      local cfg = config.load(file, { "method=ab", "methods.ab.stages.1.epochs=2",
        "methods.ft.stages.1.optimizer.momentum=0.5", "methods.ab.stages.1.terms.1.margin=0.5" })
      local ab, ft, reviewkd = cfg.methods.ab, cfg.methods.ft, cfg.methods.reviewkd
      assert.are.equal(2, ab.stages[1].epochs)
      assert.are.equal(0.5, ab.stages[1].terms[1].margin)
      assert.are.equal("ce", ab[1].distiller)
      assert.are.equal(1, #ab)
      assert.are.equal(30, ft.stages[1].epochs)
      assert.are.equal("distillers", ft.stages[1].train)
      assert.are.equal(pair[3], ft.stages[1].optimizer.lr, file)
      assert.are.equal(0.5, ft.stages[1].optimizer.momentum)
      assert.are.equal(200, ft[2].weight)
      assert.are.equal(5, reviewkd[2].weight)
      assert.are.equal(20, reviewkd[2].warmup)
    end
    local cfg = config.load("scripts/configs/fmnist_student_kd.lua", { "method=ft" })
    config.validate(cfg, "distill")
    assert.are.equal(1, cfg.methods.ft.stages[1].epochs)
    assert.are.equal(1, cfg.methods.ab.stages[1].epochs)
  end)
end)

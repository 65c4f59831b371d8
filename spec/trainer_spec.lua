-- distill.trainer on tiny synthetic data: training, distillation, metrics,
-- checkpoints, determinism, evaluation.
local distill = require "distill"
local config = require "distill.config"
local trainer = require "distill.trainer"
local log = require "distill.log"
local checkpoint = require "distill.checkpoint"
local files = require "distill.files"
local json = require "distill.json"
local h = require "support.helpers"

local tmp = h.tmpdir()

local function tiny(overrides, extra)
  local cfg = config.resolve({
    name = "tiny",
    student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
    teacher = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 8, 8, 16 } },
                checkpoint = tmp .. "/teacher/best.safetensors" },
    data = { dataset = "synthetic", num_classes = 10, synthetic_size = 256, synthetic_test_size = 128,
             synthetic_shape = { 1, 12, 12 } },
    methods = config.paper_methods(),
    method = "ce",
    optimizer = { lr = 0.05 },
    schedule = { milestones = { 2 } },
    epochs = 2, batch_size = 32, seed = 5, workers = 1, plot = false, progress = "none", log_steps = 3,
  })
  for k, v in pairs(extra or {}) do
    cfg[k] = v
  end
  return config.apply_overrides(cfg, overrides or {})
end

describe("distill.trainer", function()
  it("trains a model, writes the run directory and learns", function()
    local dir = tmp .. "/teacher"
    local summary = trainer.run{ mode = "train", config = tiny({ "run_dir=" .. dir, "epochs=3",
      "schedule.milestones=5" }, { student = { model = { family = "fmnist", name = "FashionResNet",
      widths = { 4, 8, 8, 16 } } } }), progress = "none" }
    for _, f in ipairs { "config.lua", "config.source.lua", "run.json", "metrics.jsonl", "metrics.csv",
      "summary.json", "last.safetensors", "best.safetensors" } do
      assert.truthy(io.open(dir .. "/" .. f), f)
    end
    local records = log.read_metrics(dir .. "/metrics.jsonl")
    assert.are.equal(3, #records)
    for _, key in ipairs { "epoch", "lr", "train_loss", "train_ce", "train_top1", "train_top5",
      "test_loss", "test_top1", "test_top5", "images_per_s", "time" } do
      assert.is_number(records[3][key], key)
    end
    assert.is_true(records[3].train_loss < records[1].train_loss)
    assert.is_true(summary.best_top1 > 30, "synthetic data is learnable: " .. summary.best_top1)
    assert.are.equal(3, summary.epochs_done)
    local header = io.open(dir .. "/metrics.csv"):read("l")
    assert.are.equal("epoch,lr,train_loss,train_ce,train_top1,train_top5,test_loss,test_top1,test_top5,"
      .. "images_per_s,epoch_time,time", header)
    local ck = checkpoint.load(dir .. "/last.safetensors")
    assert.are.equal(3, ck.meta.epoch)
    assert.is_table(ck.optimizer.state)
    assert.is_table(ck.meta.rng)
    assert.is_string(ck.meta.config)
    -- the resolved config in the run dir loads back
    local saved = assert(loadfile(dir .. "/config.lua"))()
    assert.are.equal(3, saved.epochs)
    -- run.json says which kernels and CPU ran it
    local run_info = json.decode(files.read(dir .. "/run.json"))
    assert.are.equal(distill.isa(), run_info.isa)
    assert.are.equal(distill.cpu_info().model, run_info.cpu)
  end)

  it("is deterministic: same config and seed, same losses", function()
    local a = trainer.run{ mode = "train", config = tiny({ "run_dir=" .. tmp .. "/det_a" }) }
    local b = trainer.run{ mode = "train", config = tiny({ "run_dir=" .. tmp .. "/det_b" }) }
    assert.are.equal(a.last_train_loss, b.last_train_loss)
    assert.are.same(h.without_times(log.read_metrics(tmp .. "/det_a/metrics.jsonl")),
      h.without_times(log.read_metrics(tmp .. "/det_b/metrics.jsonl")))
  end)

  it("calls on_batch after every batch; an error there stops the run, and resume finishes it", function()
    local steps = {}
    trainer.run{ mode = "train", config = tiny({ "run_dir=" .. tmp .. "/batches" }),
      on_batch = function(step) steps[#steps + 1] = step end }
    assert.are.equal(16, #steps)
    assert.are.equal(2, steps[16].epoch)
    assert.are.equal(8, steps[16].batch)
    assert.are.equal(8, steps[16].batches)
    for _, key in ipairs { "loss", "acc", "images_per_s", "elapsed" } do
      assert.is_number(steps[16][key], key)
    end
    local dir = tmp .. "/stopped"
    local ok, err = pcall(trainer.run, { mode = "train", config = tiny({ "run_dir=" .. dir }),
      on_batch = function(step)
        if step.epoch == 2 and step.batch == 3 then
          error("stop here", 0)
        end
      end })
    assert.is_false(ok)
    assert.are.equal("stop here", err)
    assert.are.equal(1, #log.read_metrics(dir .. "/metrics.jsonl"))
    trainer.run{ resume = dir, progress = "none" }
    assert.are.same(h.without_times(log.read_metrics(tmp .. "/det_a/metrics.jsonl")),
      h.without_times(log.read_metrics(dir .. "/metrics.jsonl")))
    -- the step records of the interrupted epoch are not repeated
    assert.are.same(h.without_times(log.read_metrics(tmp .. "/det_a/steps.jsonl")),
      h.without_times(log.read_metrics(dir .. "/steps.jsonl")))
    -- log.txt holds both sessions, and how the first one ended
    local text = files.read(dir .. "/log.txt")
    local first = text:find("distill train, new run", 1, true)
    local stopped = text:find("\nerror: stop here\n", 1, true)
    local second = text:find("distill train, resumed", 1, true)
    local resumed = text:find("\nresuming " .. dir .. " at epoch 2 of 2\n", 1, true)
    assert.is_true(first and stopped and second and resumed
      and first < stopped and stopped < second and second < resumed, text)
    assert.has_error(function()
      trainer.run{ mode = "train", config = tiny({ "run_dir=" .. tmp .. "/x" }), on_batch = 1 }
    end, "trainer.run: on_batch must be a function, got number")
  end)

  it("logs every log_steps-th step to steps.jsonl and the console to log.txt", function()
    local dir = tmp .. "/det_a"   -- 2 epochs of 8 steps, log_steps = 3, progress = "none"
    local steps = log.read_metrics(dir .. "/steps.jsonl")
    local at = {}
    for i, r in ipairs(steps) do
      at[i] = ("%d:%d:%d"):format(r.epoch, r.step, r.global_step)
      for _, key in ipairs { "train_loss", "train_ce", "lr", "images_per_s" } do
        assert.is_number(r[key], key)
      end
      assert.is_nil(r.stage)
    end
    assert.are.same({ "1:3:3", "1:6:6", "2:1:9", "2:4:12", "2:7:15" }, at)
    assert.are.equal(0.05, steps[1].lr)
    -- without console output, log.txt still has the start, progress and epoch lines
    local text = files.read(dir .. "/log.txt")
    assert.truthy(text:match("^== %d+%-%d+%-%d+T[%d:]+Z distill train, new run; "), text)
    assert.truthy(text:find("\ntrain: tiny ce, no teacher -> FashionResNet", 1, true), text)
    assert.truthy(text:find("\nepoch 2/2 batch 8/8 loss ", 1, true), text)
    assert.truthy(text:find("\nepoch 2/2  loss ", 1, true), text)
    -- off with log_steps = 0; a fresh run (--overwrite) starts both files anew
    trainer.run{ mode = "train", config = tiny({ "run_dir=" .. dir, "log_steps=0" }), overwrite = true }
    assert.is_false(files.exists(dir .. "/steps.jsonl"))
    local again = files.read(dir .. "/log.txt")
    assert.are.equal(1, select(2, again:gsub("new run", "")), again)
    trainer.run{ mode = "train", config = tiny({ "run_dir=" .. dir }), overwrite = true }
    h.fails("config: 'log_steps' must be an integer of at least 0, got -1", function()
      config.validate(config.apply_overrides(tiny(), { "log_steps=-1" }), "train")
    end)
  end)

  it("records the checkout's git commit in run.json", function()
    local info = json.decode(files.read(tmp .. "/det_a/run.json"))
    local p = io.popen("git rev-parse HEAD")
    local head = p:read("l")
    p:close()
    assert.are.equal(head, info.git_commit)
    assert.is_boolean(info.git_dirty)
  end)

  it("refuses to overwrite a run unless asked", function()
    local cfg = tiny({ "run_dir=" .. tmp .. "/det_a" })
    local err = h.err(trainer.run, { mode = "train", config = cfg })
    assert.truthy(tostring(err):find("--resume", 1, true))
  end)

  it("distils with KD and FSECD from a teacher checkpoint, logging every term", function()
    for _, method in ipairs { "kd", "fsecd" } do
      local dir = tmp .. "/student-" .. method
      local summary = trainer.run{ mode = "distill",
        config = tiny({ "run_dir=" .. dir, "method=" .. method, "epochs=1" }) }
      assert.are.equal(1, summary.epochs_done)
      local r = log.read_metrics(dir .. "/metrics.jsonl")[1]
      assert.is_number(r.train_ce)
      assert.is_number(r["train_" .. method])
      local ck = checkpoint.load(dir .. "/last.safetensors")
      assert.is_table(ck.objective[method])
      if method == "fsecd" then
        -- the embedding's parameters were in the optimizer with the student's
        local n_student = #trainer.build_model(tiny().student, 10):parameters()
        local n_groups = 0
        for _ in pairs(ck.optimizer.param_groups[1].params) do
          n_groups = n_groups + 1
        end
        assert.are.equal(n_student + 2, n_groups)
      end
    end
  end)

  it("refuses a distillation method under `train`", function()
    assert.has_error(function()
      trainer.run{ mode = "train", config = tiny({ "run_dir=" .. tmp .. "/x", "method=kd" }) }
    end)
  end)

  it("computes top-1 and top-5 counts", function()
    local distill = require "distill"
    local logits = distill.tensor({ { 0, 1, 2, 3, 4, 5, 6 }, { 6, 5, 4, 3, 2, 1, 0 } }, "float32")
    local t1, t5 = trainer.topk_correct(logits, distill.tensor({ 7, 2 }, "int64"))
    assert.are.equal(1, t1)
    assert.are.equal(2, t5)
    t1, t5 = trainer.topk_correct(logits, distill.tensor({ 1, 7 }, "int64"))
    assert.are.equal(0, t1)
    assert.are.equal(0, t5)
  end)

  it("evaluates a checkpoint", function()
    local ck = checkpoint.load(tmp .. "/teacher/best.safetensors")
    local cfg = tiny()
    local data = trainer.build_data(cfg)
    local model = trainer.build_model(ck.meta.model_spec, ck.meta.num_classes)
    model:load_state_dict(ck.model)
    local result = trainer.evaluate(model, data.test_loader)
    assert.are.equal(128, result.n)
    assert.are.equal(ck.meta.best_top1, result.top1)
  end)
end)

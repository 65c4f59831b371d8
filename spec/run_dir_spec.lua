-- distill.run_dir: opening, starting, refusing and resuming run directories.
local config = require "distill.config"
local run_dir = require "distill.run_dir"
local files = require "distill.files"
local json = require "distill.json"
local h = require "support.helpers"

local function cfg_for(dir)
  return config.resolve({
    name = "rd", run_dir = dir or false,
    student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
    data = { dataset = "synthetic", num_classes = 10 },
  })
end

local tmp = h.tmpdir()

describe("distill.run_dir", function()
  it("names a run's default directory after its config and method", function()
    local cfg = cfg_for()
    assert.are.equal("runs/rd", run_dir.default(cfg))
    cfg.method = "kd"
    assert.are.equal("runs/rd-kd", run_dir.default(cfg))
  end)

  it("opens a fresh run and writes what resume rebuilds it from", function()
    local dir = tmp .. "/fresh"
    local session = run_dir.open{ config = cfg_for(dir), mode = "train", overrides = { "epochs=3" } }
    assert.are.equal(dir, session.dir)
    assert.are.equal(dir, session.cfg.run_dir)
    assert.are.equal(1, session.start_epoch)
    assert.is_nil(session.checkpoint)
    run_dir.begin(session)
    local info = json.decode(files.read(dir .. "/run.json"))
    assert.are.equal("train", info.mode)
    assert.are.same({ "epochs=3" }, info.overrides)
    assert.are.equal("rd", assert(load(files.read(dir .. "/config.source.lua")))().name)
    assert.truthy(files.read(dir .. "/config.lua"):find("resolved config", 1, true))
    run_dir.finish(session, { best_top1 = 12.5 })
    assert.are.equal(12.5, json.decode(files.read(dir .. "/summary.json")).best_top1)
  end)

  it("refuses a directory that holds a run unless told to overwrite it", function()
    local dir = tmp .. "/taken"
    files.mkdir(dir)
    files.write(dir .. "/metrics.jsonl", "{}\n")
    files.write(dir .. "/notes.txt", "mine")
    h.fails("trainer: " .. dir .. " already holds a run; continue it with --resume", run_dir.open,
      { config = cfg_for(dir) })
    run_dir.open{ config = cfg_for(dir), overwrite = true }
    assert.is_false(files.exists(dir .. "/metrics.jsonl"))
    assert.is_true(files.exists(dir .. "/notes.txt"), "only the run's own files go")
  end)

  it("resumes with the run's own mode and config, the new overrides after the stored ones", function()
    local dir = tmp .. "/fresh"
    local session = run_dir.open{ resume = dir .. "/", overrides = { "epochs=5" }, mode = "distill" }
    assert.are.equal(dir, session.dir)
    assert.are.equal("train", session.mode)
    assert.are.same({ "epochs=3", "epochs=5" }, session.overrides)
    assert.are.equal(5, session.cfg.epochs)
    assert.are.equal(1, session.start_epoch, "no checkpoint yet: from the first epoch")
    h.fails("trainer: " .. tmp .. " is not a run directory", run_dir.open, { resume = tmp })
    h.fails("run_dir.open: expected options", run_dir.open, nil)
  end)

  it("removes the stale temporaries of its own files that an interrupted write left, with a note", function()
    local dir = tmp .. "/stale"
    files.mkdir(dir)
    local stale = { "last.safetensors.tmp.Ab3dE9", "best.safetensors.tmp.zzzzzz", "run.json.tmp",
      "metrics.jsonl.tmp", "summary.json.tmp" }
    for _, name in ipairs(stale) do
      h.write(dir .. "/" .. name, ("x"):rep(1000))
    end
    -- not the run's: a user's temporaries, a sweep's pid file being written, a directory
    local kept = { "notes.txt.tmp", "sweep.pid.tmp", "last.safetensors.tmp.short", "last.safetensors.tmpX" }
    for _, name in ipairs(kept) do
      h.write(dir .. "/" .. name, "mine")
    end
    files.mkdir(dir .. "/run.json.tmp.ABCDEF")
    local session = run_dir.open{ config = cfg_for(dir) }
    assert.are.equal(("note: %s: removed 5 stale temporary files (0.0 MB) of a write that was interrupted: "
      .. "best.safetensors.tmp.zzzzzz, last.safetensors.tmp.Ab3dE9, metrics.jsonl.tmp, run.json.tmp, "
      .. "summary.json.tmp"):format(dir), session.note)
    for _, name in ipairs(stale) do
      assert.is_false(files.exists(dir .. "/" .. name), name)
    end
    for _, name in ipairs(kept) do
      assert.are.equal("mine", files.read(dir .. "/" .. name), name)
    end
    assert.is_true(files.exists(dir .. "/run.json.tmp.ABCDEF"))
    assert.is_nil(run_dir.open{ config = cfg_for(dir) }.note, "nothing left: no note")
    assert.is_nil(run_dir.remove_stale_temporaries(tmp .. "/absent"))
    h.fails("run_dir.remove_stale_temporaries: expected a run directory", run_dir.remove_stale_temporaries, 7)
  end)

  it("resumes a run beside the garbage of a save killed midway, never reading it", function()
    local dir = tmp .. "/killed_save"
    local config_path = tmp .. "/killed_save.lua"
    h.write(config_path, ([[
return { name = "ks", run_dir = %q, epochs = 1, batch_size = 32, workers = 1, plot = false,
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 64, synthetic_test_size = 32,
           synthetic_shape = { 1, 12, 12 } } }
]]):format(dir))
    local code, out = h.run_distill({ "train", config_path, "--progress", "none" })
    assert.are.equal(0, code, out)
    -- what SIGKILL in the middle of the next epoch's saves leaves: a torn checkpoint and JSON
    local torn = files.read(dir .. "/last.safetensors"):sub(1, 300)
    h.write(dir .. "/last.safetensors.tmp.q1W2e3", torn)
    h.write(dir .. "/metrics.jsonl.tmp", '{"epoch": 2, "test_to')
    h.write(dir .. "/summary.json.tmp", "{")
    code, out = h.run_distill({ "train", "--resume", dir, "--set", "epochs=2", "--progress", "lines" })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("note: " .. dir .. ": removed 3 stale temporary files", 1, true), out)
    assert.truthy(out:find("resuming " .. dir .. " at epoch 2 of 2", 1, true), out)
    assert.are.equal(2, json.decode(files.read(dir .. "/summary.json")).epochs_done)
    assert.is_false(files.exists(dir .. "/last.safetensors.tmp.q1W2e3"))
    assert.is_false(files.exists(dir .. "/metrics.jsonl.tmp"))
  end)
end)

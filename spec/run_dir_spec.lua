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
end)

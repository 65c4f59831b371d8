-- distill.plot and distill.results.plots: the curves of a sweep's runs with
-- one colour per method (and the mean over seeds), and a metric against an
-- axis with error bars, on fabricated run directories. Needs gnuplot.
local plot = require "distill.plot"
local plots = require "distill.results.plots"
local config = require "distill.config"
local json = require "distill.json"
local h = require "support.helpers"

local tmp = h.tmpdir()
local has_gnuplot = plot.gnuplot() ~= nil

-- A run of the study config: config.lua, metrics.csv of `epochs` epochs
-- (test top-1 rising from `start`) and a summary.json.
local function fabricate(dir, method, batch_size, seed, start)
  os.execute("mkdir -p " .. h.sh_quote(dir))
  local cfg = config.load("scripts/configs/fmnist_study.lua",
    { "method=" .. method, "batch_size=" .. batch_size, "seed=" .. seed })
  h.write(dir .. "/config.lua", config.serialize(cfg))
  local lines = { "epoch,lr,train_loss,train_ce,train_top1,test_loss,test_top1" }
  for e = 1, 3 do
    lines[#lines + 1] = ("%d,0.05,%g,%g,%g,%g,%g"):format(e, 2 / e, 1.5 / e, start + 4 * e, 1 / e,
      start + 5 * e)
  end
  h.write(dir .. "/metrics.csv", table.concat(lines, "\n") .. "\n")
  h.write(dir .. "/summary.json", json.encode({ best_top1 = start + 15, last_top1 = start + 15, epochs = 3,
    epochs_done = 3 }))
end

local SWEEP = tmp .. "/sweep"
for _, method in ipairs { "ce", "fsecd" } do
  for _, b in ipairs { 128, 512 } do
    for seed = 1, 2 do
      fabricate(("%s/%s-bs%d-seed%d"):format(SWEEP, method, b, seed), method, b, seed,
        (method == "ce" and 60 or 64) - b / 256 + seed)
    end
  end
end

describe("distill.plot", function()
  it("overlays runs with one colour per group and the groups' mean curves", function()
    if not has_gnuplot then
      return pending("gnuplot is not installed")
    end
    local dirs = { SWEEP .. "/ce-bs128-seed1", SWEEP .. "/ce-bs128-seed2", SWEEP .. "/fsecd-bs128-seed1" }
    local files = assert(plot.overlay(dirs, tmp .. "/groups.svg",
      { groups = { "CE", "CE", "FSECD" }, mean = true, script = tmp .. "/groups.gp" }))
    assert.are.same({ tmp .. "/groups.svg" }, files)
    local svg = h.read(tmp .. "/groups.svg")
    assert.truthy(svg:find("CE (mean of 2)", 1, true))
    assert.truthy(svg:find("FSECD (mean of 1)", 1, true))
    assert.truthy(svg:find("test top-1 accuracy", 1, true))
    -- the mean of the two CE runs' test top-1 at epoch 2: (70.5 + 71.5) / 2
    local script = h.read(tmp .. "/groups.gp")
    assert.truthy(script:find("$mean_1_2 << EOD\n1,66\n2,71\n3,76\nEOD", 1, true), script)
    assert.truthy(script:find("lc rgb '#1f77b4'", 1, true) and script:find("lc rgb '#ff7f0e'", 1, true))
    files = assert(plot.overlay(dirs, tmp .. "/plain", { groups = { "CE", "CE", "FSECD" },
      script = tmp .. "/plain.gp" }))
    assert.are.same({ tmp .. "/plain.svg", tmp .. "/plain.png" }, files)
    local without = h.read(tmp .. "/plain.gp")
    assert.falsy(without:find("mean of", 1, true))
    -- without opts.script no script is left beside the figure
    assert(plot.overlay(dirs, tmp .. "/bare.svg"))
    assert.is_nil(io.open(tmp .. "/bare.gp"))
    local two = h.read(tmp .. "/bare.svg")
    assert.truthy(two:find("learning rate", 1, true), "the lr panel")
    assert.truthy(two:find("ce-bs128-seed1 train_loss", 1, true), "labels keep their underscores")
    h.refuses("plot.overlay: opts.groups must name a group for every run",
      plot.overlay, dirs, tmp .. "/x.svg", { groups = { "CE" } })
  end)

  it("draws a metric against an axis with error bars, log2 for numbers spanning 4x", function()
    if not has_gnuplot then
      return pending("gnuplot is not installed")
    end
    local series = {
      { label = "CE", points = { { x = 128, mean = 71, std = 0.5 }, { x = 512, mean = 69 },
                                 { x = 1024, mean = 68, std = 1 } } },
      { label = "FSECD", points = { { x = 128, mean = 74, std = 0.2 }, { x = 1024, mean = 73 } } },
    }
    local files = assert(plot.metric_vs(series, tmp .. "/vs.svg",
      { xlabel = "batch_size", ylabel = "best_top1", script = tmp .. "/vs.gp" }))
    assert.are.same({ tmp .. "/vs.svg" }, files)
    local script = h.read(tmp .. "/vs.gp")
    assert.truthy(script:find("set logscale x 2", 1, true))
    assert.truthy(script:find("$series_1 << EOD\n128,71,0.5\n512,69,0\n1024,68,1\nEOD", 1, true), script)
    assert.truthy(script:find("with yerrorlines", 1, true))
    assert.truthy(h.read(tmp .. "/vs.svg"):find("FSECD", 1, true))
    local named = { { label = "a", points = { { x = "class", mean = 1 }, { x = "instance", mean = 2 } } } }
    files = assert(plot.metric_vs(named, tmp .. "/names.png", { script = tmp .. "/names.gp" }))
    assert.are.same({ tmp .. "/names.png" }, files)
    assert.truthy(h.read(tmp .. "/names.gp"):find('set xtics ("class" 1, "instance" 2)', 1, true))
    h.refuses("plot.metric_vs: expected a non-empty list of series", plot.metric_vs, {}, tmp .. "/x.svg")
    h.refuses("a point without a mean", plot.metric_vs, { { label = "a", points = { { x = 1 } } } }, tmp .. "/x.svg")
  end)
end)

describe("distill.results.plots and distill plot over a sweep", function()
  it("colours a sweep's runs by method, and plots best top-1 against batch size", function()
    if not has_gnuplot then
      return pending("gnuplot is not installed")
    end
    local files = assert(plots.curves({ SWEEP }, { output = tmp .. "/sweep_curves.svg", mean = true,
      where = { "batch_size=128" } }))
    assert.are.same({ tmp .. "/sweep_curves.svg" }, files)
    local svg = h.read(files[1])
    assert.truthy(svg:find("CE (mean of 2)", 1, true) and svg:find("FSECD (mean of 2)", 1, true))
    files = assert(plots.versus({ SWEEP }, { vs = "batch_size", output = tmp .. "/vs_bs.svg",
      script = tmp .. "/vs_bs.gp" }))
    local script = h.read(tmp .. "/vs_bs.gp")
    -- CE at 128: best_top1 = 60 - 0.5 + seed + 15 -> 75.5, 76.5: mean 76, std sqrt(0.5)
    assert.truthy(script:find("$series_1 << EOD\n128,76,0.707106781187", 1, true), script)
    assert.truthy(h.read(files[1]):find("FSECD", 1, true))
    h.refuses("expected opts.vs", plots.versus, { SWEEP }, {})

    local code, out = h.run_distill({ "plot", SWEEP, "-o", tmp .. "/cli.svg" })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("wrote " .. tmp .. "/cli.svg", 1, true))
    code, out = h.run_distill({ "plot", SWEEP, "--vs", "batch_size", "--metric", "last_top1",
      "-o", tmp .. "/cli_vs" })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("cli_vs.svg, " .. tmp .. "/cli_vs.png", 1, true), out)
    assert.are.equal(2, (h.run_distill({ "plot", SWEEP, "--metric", "last_top1" })), "--metric needs --vs")
  end)
end)

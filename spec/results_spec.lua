-- distill table (distill.results): run directories gathered into mean ±
-- std tables, checked against hand-computed numbers on fabricated runs;
-- and distill.filters, which selects runs for sweep, table and plot.
local results = require "distill.results"
local filters = require "distill.filters"
local config = require "distill.config"
local json = require "distill.json"
local h = require "support.helpers"

local tmp = h.tmpdir()

-- A fabricated run directory: the resolved config.lua of a pair config
-- with the given overrides and, when summary is given, a summary.json.
local function fabricate(dir, pair, overrides, summary)
  os.execute("mkdir -p " .. h.sh_quote(dir))
  local cfg = config.load("scripts/configs/cifar100_" .. pair .. ".lua", overrides)
  h.write(dir .. "/config.lua", "-- resolved config\n" .. config.serialize(cfg))
  if summary then
    h.write(dir .. "/summary.json", json.encode(summary))
  end
end

local function finished(best, last, epochs)
  return { best_top1 = best, last_top1 = last or best, epochs = epochs or 240, epochs_done = epochs or 240,
    wall_time = 100 }
end

-- Table 3 in small: two pairs, three methods, three seeds, with one run
-- missing (fsecd on vgg13 seed 3) and one unfinished (kd on wrn seed 3).
local VALUES = {
  ["resnet56_resnet20"] = { ce = { 69.0, 69.5, 70.0 }, kd = { 70.5, 71.0, 70.0 },
                            fsecd = { 71.5, 71.0, 72.0 } },
  ["vgg13_vgg8"] = { ce = { 70.0, 70.2, 70.4 }, kd = { 73.0, 72.0, 74.0 }, fsecd = { 74.0, 74.5 } },
}
local SWEEP = tmp .. "/table3"
for pair, methods in pairs(VALUES) do
  for method, values in pairs(methods) do
    for seed = 1, 3 do
      local dir = ("%s/%s-%s-seed%d"):format(SWEEP, pair, method, seed)
      if values[seed] then
        fabricate(dir, pair, { "method=" .. method, "seed=" .. seed }, finished(values[seed]))
      end
    end
  end
end
fabricate(SWEEP .. "/unfinished/resnet56_resnet20-kd-seed4", "resnet56_resnet20", { "method=kd", "seed=4" },
  { best_top1 = 10, epochs = 240, epochs_done = 100 })
fabricate(SWEEP .. "/unfinished/vgg13_vgg8-ce-seed4", "vgg13_vgg8", { "method=ce", "seed=4" }, nil)

describe("distill.results", function()
  it("finds run directories under sweep directories and reads them", function()
    local dirs = results.find({ SWEEP })
    assert.are.equal(19, #dirs)
    assert.are.equal(SWEEP .. "/resnet56_resnet20-ce-seed1", dirs[1])
    local run = results.read(dirs[1])
    assert.is_true(run.finished)
    assert.are.equal(69.0, run.summary.best_top1)
    assert.are.equal("ce", results.value(run, "method"))
    assert.are.equal(1, results.value(run, "seed"))
    assert.are.equal("resnet56->resnet20", results.value(run, "pair"))
    assert.are.equal(64, results.value(run, "batch_size"))
    assert.are.equal(0.05, results.value(run, "optimizer.lr"))
    assert.are.equal(4, results.value(run, "methods.kd.2.T"))
    assert.are.equal("150,180,210", results.value(run, "schedule.milestones"))
    assert.are.equal("resnet56_resnet20-ce-seed1", results.value(run, "dir"))
    assert.is_nil(results.value(run, "no.such.key"))
    assert.is_false(results.read(SWEEP .. "/unfinished/resnet56_resnet20-kd-seed4").finished)
    assert.is_false(results.read(SWEEP .. "/unfinished/vgg13_vgg8-ce-seed4").finished)
    h.fails("results: " .. tmp .. "/none is not a directory", results.find, { tmp .. "/none" })
    h.fails("results: " .. tmp .. " is not a run directory (no config.lua)", results.read, tmp)
  end)

  it("computes mean and sample std", function()
    local n, mean, std = results.stats({ 70.5, 71.0, 70.0 })
    assert.are.equal(3, n)
    assert.is_true(math.abs(mean - 70.5) < 1e-12)
    assert.is_true(math.abs(std - 0.5) < 1e-12)       -- sqrt((0 + 0.25 + 0.25) / 2)
    n, mean, std = results.stats({ 74.0, 74.5 })
    assert.are.same({ 2, 74.25 }, { n, mean })
    assert.is_true(math.abs(std - math.sqrt(0.125)) < 1e-12)
    assert.are.same({ 1, 3 }, { results.stats({ 3 }) })
    assert.are.same({ 0 }, { results.stats({}) })
    h.fails("results.stats: expected a list of numbers, got nil", results.stats, nil)
    h.fails("results.markdown: expected a table of results.aggregate", results.markdown, {})
    h.fails("results.csv: expected a table of results.aggregate", results.csv, nil)
    h.fails("results.value: expected (a run of results.read, a key)", results.value, {}, "seed")
  end)

  it("aggregates methods x pairs in the paper's order, marking short and unfinished cells", function()
    local t = results.aggregate(results.load({ SWEEP }), { rows = { "method" }, cols = { "pair" } })
    assert.are.same({ "CE", "KD", "FSECD" },
      { t.rows[1].labels[1], t.rows[2].labels[1], t.rows[3].labels[1] })
    assert.are.same({ "ResNet56->ResNet20", "VGG13->VGG8" }, { t.cols[1].labels[1], t.cols[2].labels[1] })
    assert.are.equal(4, t.expected)
    local kd = t.cells[2][1]
    assert.are.same({ 3, 1 }, { kd.n, kd.unfinished })
    assert.is_true(math.abs(kd.mean - 70.5) < 1e-12 and math.abs(kd.std - 0.5) < 1e-12)
    assert.are.same({}, t.mixed)
    local md = results.markdown(t)
    assert.are.equal(table.concat({
      "| Method | ResNet56->ResNet20 | VGG13->VGG8 |",
      "|---|---|---|",
      "| CE | 69.50 ± 0.50 (n=3) | 70.20 ± 0.20 (n=3, 1 unfinished) |",
      "| KD | 70.50 ± 0.50 (n=3, 1 unfinished) | 73.00 ± 1.00 (n=3) |",
      "| FSECD | 71.50 ± 0.50 (n=3) | 74.25 ± 0.35 (n=2) |",
      "",
      "best_top1: mean ± sample std over the runs of each cell (19 runs; up to 4 a cell)",
      "" }, "\n"), md)
    local csv = results.csv(t)
    local lines = {}
    for line in csv:gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.are.equal("method,ResNet56->ResNet20 mean,ResNet56->ResNet20 std,ResNet56->ResNet20 n,"
      .. "ResNet56->ResNet20 unfinished,VGG13->VGG8 mean,VGG13->VGG8 std,VGG13->VGG8 n,"
      .. "VGG13->VGG8 unfinished",
      lines[1])
    assert.are.equal("FSECD,71.5,0.5,3,0,74.25,0.353553,2,0", lines[4])
    assert.are.equal(4, #lines)
  end)

  it("selects runs with --where, swaps rows and columns and reads other metrics", function()
    local runs = results.load({ SWEEP }, { where = { "method=kd,FSECD", "seed=1,2" } })
    assert.are.equal(8, #runs)
    local t = results.aggregate(runs, { rows = { "pair" }, cols = { "method" }, metric = "last_top1" })
    assert.are.same({ "resnet56->resnet20", "vgg13->vgg8" }, { t.rows[1].values[1], t.rows[2].values[1] })
    assert.are.same({ "kd", "fsecd" }, { t.cols[1].values[1], t.cols[2].values[1] })
    assert.is_true(math.abs(t.cells[2][1].mean - 72.5) < 1e-12)
    local md = results.markdown(t, { digits = 1 })
    assert.truthy(md:find("| Teacher -> Student | KD | FSECD |", 1, true), md)
    assert.truthy(md:find("| VGG13->VGG8 | 72.5 ± 0.7 | 74.2 ± 0.4 |", 1, true), md)
    h.fails("results: metric 'top1' is not in summary.json (available: best_top1, epochs, epochs_done, "
      .. "last_top1, wall_time)", results.aggregate, runs, { metric = "top1" })
    h.fails("results: no run directories (with config.lua) under " .. SWEEP .. " matching --where",
      results.load, { SWEEP }, { where = { "method=crd" } })
  end)

  it("lays out Table 2 (method and pair by batch size) and warns about cells that mix settings", function()
    local dir = tmp .. "/table2"
    local lr = { [128] = 0.1, [512] = 0.4 }
    for _, b in ipairs { 128, 512 } do
      for seed, v in ipairs { 70, 72 } do
        fabricate(("%s/ce-bs%d-seed%d"):format(dir, b, seed), "wrn_40_2_wrn_40_1",
          { "method=ce", "batch_size=" .. b, "optimizer.lr=" .. lr[b], "seed=" .. seed },
          finished(v - b / 128))
      end
    end
    local t = results.aggregate(results.load({ dir }),
      { rows = { "method", "pair" }, cols = { "batch_size" } })
    assert.are.same({}, t.mixed, "lr follows the batch size: no mixing")
    local md = results.markdown(t)
    assert.truthy(md:find("| Method | Teacher -> Student | B=128 | B=512 |\n|---|---|---|---|\n"
      .. "| CE | WRN-40-2->WRN-40-1 | 70.00 ± 1.41 | 67.00 ± 1.41 |", 1, true), md)
    t = results.aggregate(results.load({ dir }), { rows = { "method" }, cols = { "pair" } })
    assert.are.same({ "batch_size", "optimizer.lr" }, t.mixed)
  end)

  it("counts only a run's own method among the config's methods when looking for mixed cells", function()
    local dir = tmp .. "/catalogue"
    fabricate(dir .. "/kd-seed1", "resnet56_resnet20", { "method=kd", "seed=1" }, finished(70))
    -- a config made later, whose catalogue has another setting for FSECD
    -- and one more method: the KD runs are still alike
    fabricate(dir .. "/kd-seed2", "resnet56_resnet20", { "method=kd", "seed=2" }, finished(71))
    local cfg = config.load("scripts/configs/cifar100_resnet56_resnet20.lua",
      { "method=kd", "seed=2", "methods.fsecd.2.T=2" })
    cfg.methods.extra = { { distiller = "ce", weight = 1 } }
    h.write(dir .. "/kd-seed2/config.lua", "-- resolved config\n" .. config.serialize(cfg))
    local t = results.aggregate(results.load({ dir }), { rows = { "method" }, cols = { "pair" } })
    assert.are.same({}, t.mixed)
    fabricate(dir .. "/kd-seed3", "resnet56_resnet20", { "method=kd", "seed=3", "methods.kd.2.T=2" },
      finished(72))
    t = results.aggregate(results.load({ dir }), { rows = { "method" }, cols = { "pair" } })
    assert.are.same({ "methods.kd.2.T" }, t.mixed)
  end)

  it("orders methods as the paper does, then the others", function()
    assert.is_true(results.before("method", "ce", "kd"))
    assert.is_true(results.before("method", "dkd", "fsecd_class"))
    assert.is_true(results.before("method", "fsecd_class", "fsecd"))
    assert.is_true(results.before("method", "fsecd", "aaa_new"))
    assert.is_true(results.before("batch_size", 128, 1024))
    assert.is_true(results.before("pair", "resnet56->resnet20", "vgg13->vgg8"))
    assert.are.equal("FitNet", results.label("method", "fitnet"))
    assert.are.equal("my_method", results.label("method", "my_method"))
    assert.are.equal("WRN-40-2->ShuffleNetV1", results.label("pair", "wrn_40_2->ShuffleV1"))
    assert.are.equal("FashionResNet-T->FashionResNet-S", results.label("pair", "fmnist_resnet_t->fmnist_resnet_s"))
  end)

  it("distill table prints Markdown or CSV, to stdout or a file, and exits 2 on usage errors", function()
    local code, out = h.run_distill({ "table", SWEEP })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("| FSECD | 71.50 ± 0.50 (n=3) | 74.25 ± 0.35 (n=2) |", 1, true), out)
    local file = tmp .. "/t.csv"
    code, out = h.run_distill({ "table", SWEEP, "-o", file, "--where", "pair=VGG13->VGG8" })
    assert.are.equal(0, code, out)
    assert.truthy(h.read(file):find("^method,VGG13%->VGG8 mean,"))
    code, out = h.run_distill({ "table", SWEEP, "--rows", "seed", "--cols", "method", "--format", "md" })
    assert.are.equal(0, code)
    assert.truthy(out:find("warning: cells mix runs that differ in", 1, true), out)
    assert.are.equal(2, (h.run_distill({ "table" })))
    assert.are.equal(2, (h.run_distill({ "table", SWEEP, "--format", "xls" })))
    code, out = h.run_distill({ "table", tmp .. "/none" })
    assert.are.equal(1, code)
    assert.truthy(out:find("is not a directory", 1, true))
  end)
end)

describe("distill.filters", function()
  it("parses key=value lists and accepts values by text, number or label", function()
    local list = filters.parse({ "method=kd,ce", "seed=1", "batch_size=512" }, "x: --where")
    assert.are.same({ key = "method", wanted = { "kd", "ce" } }, list[1])
    assert.is_true(filters.accepts(list[1], "ce"))
    assert.is_false(filters.accepts(list[1], "fsecd"))
    assert.is_true(filters.accepts(list[2], 1.0))
    assert.is_true(filters.accepts(list[3], 512))
    assert.is_false(filters.accepts(list[3], nil))
    assert.is_true(filters.accepts({ key = "method", wanted = { "KD" } }, "kd", "KD"))
    h.fails("x: --where expects key=value[,value...], got 'seed'", filters.parse, { "seed" }, "x: --where")
    h.fails("filters.parse: expected a list", filters.parse, "seed=1")
    local kept = filters.select({ 1, 2, 3, 4 }, { { key = "n", wanted = { "2", "4" } } },
      function(item, f) return filters.accepts(f, item) end)
    assert.are.same({ 2, 4 }, kept)
    h.fails("filters.select: expected (items, filters, matches(item, filter))", filters.select, {}, {})
  end)
end)

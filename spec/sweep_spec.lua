-- distill sweep: sweep files, their expansion into named runs, the local
-- runner (jobs, skip, resume, Ctrl-C, failures, missing teachers) and the
-- emitted commands and Slurm scripts. Real runs: tiny synthetic trainings
-- of a second or two, as child processes of scripts/distill.
local sweep = require "distill.sweep"
local state = require "distill.sweep.state"
local runner = require "distill.sweep.runner"
local emit = require "distill.sweep.emit"
local json = require "distill.json"
local process = require("distill.core").process
local h = require "support.helpers"

local tmp = h.tmpdir()

local function write(path, text)
  h.write(path, text)
  return path
end

-- A tiny classifier on synthetic 12x12 images; methods ce and ce_half
-- (no teacher: trained with `distill train`).
local function tiny_config(name, extra)
  return write(tmp .. "/" .. name .. ".lua", ([[
return {
  name = %q,
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 128, synthetic_test_size = 64,
           synthetic_shape = { 1, 12, 12 } },
  methods = { ce = { { distiller = "ce", weight = 1 } }, ce_half = { { distiller = "ce", weight = 0.5 } } },
  epochs = 1, batch_size = 32, seed = 1, workers = 1, plot = false,
  %s
}
]]):format(name, extra or ""))
end

local CONFIG_A = tiny_config("tiny_a")
local CONFIG_B = tiny_config("tiny_b")

local function spec_file(name, body)
  return write(tmp .. "/" .. name .. ".lua", "return {\n" .. body .. "\n}\n")
end

local function names_of(runs)
  local names = {}
  for i, run in ipairs(runs) do
    names[i] = run.name
  end
  return names
end

-- Waits up to `seconds` for pid; returns its exit code (nil on timeout or a signal).
local function wait_exit(pid, seconds)
  local _, how, code = process.wait({ pid }, seconds)
  if how == "exit" then
    return code
  end
  return nil, how, code
end

local function read_or_empty(path)
  local f = io.open(path, "r")
  if not f then
    return ""
  end
  local text = f:read("a")
  f:close()
  return text
end

-- Polls until predicate() or `seconds` pass; returns whether it held.
local function wait_until(predicate, seconds)
  local waited = 0
  while waited < seconds do
    if predicate() then
      return true
    end
    process.wait({}, 0.05)
    waited = waited + 0.05
  end
  return predicate()
end

-- The ids of live processes whose command line contains text.
local function processes_with(text)
  local lfs = require "lfs"
  local found = {}
  for name in lfs.dir("/proc") do
    if name:match("^%d+$") then
      local cmdline = read_or_empty("/proc/" .. name .. "/cmdline"):gsub("%z", " ")
      local status = read_or_empty("/proc/" .. name .. "/status")
      if cmdline:find(text, 1, true) and not status:find("State:%s+Z") then
        found[#found + 1] = tonumber(name)
      end
    end
  end
  return found
end

-- A process that sleeps with these words as its last arguments, once that shows in
-- /proc (the kernel fills it in a moment after the start).
local function sleeper(...)
  local words = { ... }
  local pid = process.spawn({ "sh", "-c", "sleep 60; exit 0", "sh", table.unpack(words) },
    { output = "/dev/null" })
  assert(wait_until(function()
    return read_or_empty("/proc/" .. pid .. "/cmdline"):find(words[#words], 1, true) ~= nil
  end, 10))
  return pid
end

describe("distill.sweep: sweep files and their runs", function()
  it("expands configs x methods x axes x seeds into stable names of the varying axes only", function()
    local path = spec_file("grid", ([[
  name = "grid", root = %q,
  configs = { %q, %q },
  methods = { "ce", "ce_half" },
  seeds = { 1, 2 },
  axes = { batch_size = { 16, 32 } },
  set = { epochs = 2, ["optimizer.lr"] = function(run) return 0.05 * run.batch_size / 64 end },
]]):format(tmp .. "/runs", CONFIG_A, CONFIG_B))
    local spec = sweep.load(path)
    local runs = sweep.expand(spec)
    assert.are.equal(16, #runs)
    -- seeds outermost: the first half is seed 1
    -- (the configs' common start "tiny_" is left out)
    assert.are.same({ "a-ce-bs16-seed1", "a-ce-bs32-seed1", "a-ce_half-bs16-seed1" },
      { runs[1].name, runs[2].name, runs[3].name })
    assert.are.equal("b-ce_half-bs32-seed2", runs[16].name)
    assert.are.equal(tmp .. "/runs/grid/a-ce-bs32-seed1", runs[2].dir)
    assert.are.same({ "method=ce", "batch_size=32", "seed=1", "epochs=2", "optimizer.lr=0.025",
      "run_dir=" .. runs[2].dir }, runs[2].overrides)
    assert.are.equal("train", runs[2].mode)
    assert.are.equal(0.025, runs[2].cfg.optimizer.lr)
    assert.are.equal(2, runs[2].index)
    -- the same file gives the same names; --only selects without renaming
    assert.are.same(names_of(runs), names_of(sweep.expand(sweep.load(path))))
    local some = sweep.select(runs, { "method=ce_half", "seed=2", "batch_size=32,64" })
    assert.are.same({ "a-ce_half-bs32-seed2", "b-ce_half-bs32-seed2" }, names_of(some))
    assert.are.same({ 12, 16 }, { some[1].index, some[2].index })
    assert.are.equal(2, #sweep.select(runs, { "config=tiny_b", "name=b-ce-bs16-seed1,b-ce-bs16-seed2" }))
    assert.are.equal(8, #sweep.select(runs, { "config=b" }), "a config by its name in run names")
    h.fails("sweep: --only bs: unknown key (valid: batch_size, config, method, name, seed)",
      sweep.select, runs, { "bs=16" })
    h.fails("sweep: --only expects key=value", sweep.select, runs, { "seed" })

    -- one config, one method: only the seeds vary
    local single = sweep.expand(sweep.load(spec_file("seeds", ([[
  configs = { %q }, methods = { "ce" }, seeds = { 1, 2, 3 }, root = %q,
]]):format(CONFIG_A, tmp .. "/runs"))))
    assert.are.same({ "seed1", "seed2", "seed3" }, names_of(single))
    assert.are.equal(tmp .. "/runs/seeds/seed3", single[3].dir, "the sweep's name is its file's")
    -- nothing varies: the config's name
    local one = sweep.expand(sweep.load(spec_file("one", ("configs = { %q }"):format(CONFIG_A))))
    assert.are.same({ "tiny_a" }, names_of(one))
    assert.are.equal("runs/one/tiny_a", one[1].dir)
    assert.are.same({ "run_dir=runs/one/tiny_a" }, one[1].overrides)
  end)

  it("takes explicit runs, exclusions, labels, --set overrides; drops the configs' common start", function()
    local path = spec_file("extra", ([[
  configs = { %q, %q },
  methods = { "ce", "ce_half" },
  labels = { ["data.synthetic_size"] = "n" },
  exclude = function(run) return run.config == "tiny_b" and run.method == "ce_half" end,
  runs = { { config = %q, method = "ce", set = { ["data.synthetic_size"] = 256 } } },
]]):format(CONFIG_A, CONFIG_B, CONFIG_B))
    local runs = sweep.expand(sweep.load(path), { root = tmp .. "/r2", set = { "epochs=3" } })
    assert.are.same({ "a-ce", "a-ce_half", "b-ce", "b-ce-n256" }, names_of(runs))
    assert.are.equal(3, runs[4].cfg.epochs)
    assert.are.equal(256, runs[4].cfg.data.synthetic_size)
    assert.are.equal("epochs=3", runs[1].overrides[2])
    assert.are.equal(tmp .. "/r2/extra/b-ce-n256", runs[4].dir)
  end)

  it("formats --set values that read back as the same value", function()
    assert.are.equal("0.1", sweep.value_text(0.05 * 128 / 64))
    assert.are.equal("0.8", sweep.value_text(0.05 * 1024 / 64))
    assert.are.equal("3", sweep.value_text(3))
    assert.are.equal("1e-05", sweep.value_text(1e-5))
    assert.are.equal("6,8,9", sweep.value_text({ 6, 8, 9 }))
    assert.are.equal("true", sweep.value_text(true))
    h.fails("sweep.value_text: cannot pass a function", sweep.value_text, print)
  end)

  it("rejects invalid sweep files, naming the file and the problem", function()
    local cases = {
      { "configs = { %q }, methodz = { 'ce' }", "unknown key 'methodz' (valid: axes, configs," },
      { "methods = { 'ce' }", "configs: expected the config files of the sweep" },
      { "configs = { %q }, seeds = { 1, 'two' }", "seeds[2]: expected an integer, got two" },
      { "configs = { %q }, seeds = {}", "seeds: expected a non-empty list of values" },
      { "configs = { 'no/such/config.lua' }", "config file no/such/config.lua not found" },
      { "configs = { %q }, set = { run_dir = 'x' }", "set: run_dir is the sweep's to choose" },
      { "configs = { %q }, axes = { method = { 'ce' } }", "axes: 'method' is not an axis key here" },
      { "configs = { %q }, axes = { batch_size = 16 }", "axes.batch_size: expected a non-empty list" },
      { "configs = { %q }, set = { epochz = 3 }", "unknown key 'epochz'" },
      { "configs = { %q }, set = { epochs = 'three' }", "expected a number, got 'three'" },
      { "configs = { %q }, methods = { 'kd' }", "method 'kd' is not defined by this config" },
      { "configs = { %q }, set = { epochs = function(run) return run.nothing.x end }",
        "set['epochs'] failed for run" },
      { "configs = { %q }, seeds = { 1, 1 }", "would share the run directory" },
      { "configs = { %q }, mode = 'fast'", "mode: expected \"train\" or \"distill\"" },
      { "configs = { %q }, exclude = function() return true end", "the sweep has no runs" },
      { "configs = { %q }, runs = { { config = %q, methd = 'ce' } }", "runs[1]: unknown key 'methd'" },
    }
    for i, case in ipairs(cases) do
      local path = spec_file("bad" .. i, case[1]:format(CONFIG_A, CONFIG_A))
      local ok, err = pcall(function() return sweep.expand(sweep.load(path)) end)
      assert.is_false(ok, case[1])
      assert.truthy(tostring(err):find("sweep: " .. path .. ": ", 1, true), tostring(err))
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err) .. "\nexpected: " .. case[2])
    end
    local broken = write(tmp .. "/broken.lua", "return { configs = ")
    h.fails("sweep: " .. broken, sweep.load, broken)
    local not_table = write(tmp .. "/nt.lua", "return 3")
    h.fails("sweep: " .. not_table .. ": a sweep file must return a table, got number", sweep.load, not_table)
    h.fails("sweep.load: expected the path of a sweep file", sweep.load, nil)
    h.fails("sweep.expand: expected a sweep from sweep.load", sweep.expand, {})
  end)

  it("expands the shipped sweeps", function()
    local expected = { fmnist_table3 = 30, fmnist_table2 = 27, fmnist_teacher = 1, cifar100_teachers = 6,
      cifar100_table3 = 324, cifar100_table4 = 270, cifar100_table2 = 54, fmnist_zoo = 30 }
    for name, count in pairs(expected) do
      local spec = sweep.load("scripts/sweeps/" .. name .. ".lua")
      local runs = sweep.expand(spec)
      assert.are.equal(count, #runs, name)
    end
    local t2 = sweep.expand(sweep.load("scripts/sweeps/fmnist_table2.lua"))
    local by_name = {}
    for _, run in ipairs(t2) do
      by_name[run.name] = run
    end
    local r = by_name["fsecd_class-bs1024-seed3"]
    assert.are.equal(0.8, r.cfg.optimizer.lr)
    assert.are.equal(1024, r.cfg.batch_size)
    assert.are.equal(1, r.cfg.schedule.warmup_epochs)
    assert.are.equal("class", r.cfg.methods[r.cfg.method][2].policy)
    assert.are.equal("runs/fmnist_table2/fsecd_class-bs1024-seed3", r.dir)
    assert.are.equal(0, r.cfg.data.train_limit)
    local t3 = sweep.expand(sweep.load("scripts/sweeps/fmnist_table3.lua"))
    assert.are.equal("runs/fmnist_table3/ce-seed1", t3[1].dir)
    assert.are.equal("distill", t3[1].mode)
    local zoo = sweep.expand(sweep.load("scripts/sweeps/fmnist_zoo.lua"))
    assert.are.equal("runs/fmnist_zoo/ce-seed1", zoo[1].dir)
    local zoo_run = zoo[#zoo]
    assert.are.equal("reviewkd", zoo_run.cfg.method)
    assert.are.equal(3, zoo_run.cfg.seed)
    assert.are.equal(0, zoo_run.cfg.data.train_limit, "fmnist_table3's config: all 60000 images")
    local teacher = sweep.expand(sweep.load("scripts/sweeps/cifar100_teachers.lua"))
    assert.are.equal("runs/cifar100_resnet56", teacher[1].dir, "teachers keep their configs' run_dir")
    assert.are.equal("train", teacher[1].mode)
    local c2 = sweep.expand(sweep.load("scripts/sweeps/cifar100_table2.lua"))
    assert.are.equal("runs/cifar100_table2/wrn_40_2_wrn_40_1-ce-bs128-seed1", c2[1].dir)
    assert.are.equal(0.1, c2[1].cfg.optimizer.lr)
  end)

  it("splits the cores between the jobs", function()
    assert.are.equal(4, runner.threads_per_run(2, 1, 8))
    assert.are.equal(1, runner.threads_per_run(4, 1, 2))
    assert.are.equal(2, runner.threads_per_run(2, 2, 8))
    assert.are.equal(1, runner.threads_per_run(3, 1, 2))
    assert.is_true(process.cpu_count() >= 1)
  end)
end)

describe("distill.sweep: run directories", function()
  it("tells new, finished, resumable and conflicting runs apart; names the missing teacher", function()
    local path = spec_file("states", ([[
  configs = { %q }, seeds = { 1, 2 }, root = %q,
]]):format(CONFIG_A, tmp .. "/states"))
    local runs = sweep.expand(sweep.load(path))
    assert.are.equal("new", state.of(runs[1]).status)
    local dir = runs[1].dir
    h.write(tmp .. "/mk", "")
    os.execute("mkdir -p " .. h.sh_quote(dir))
    h.write(dir .. "/run.json", json.encode({ mode = "train", overrides = runs[1].overrides }))
    assert.are.equal("resume", state.of(runs[1]).status)
    h.write(dir .. "/summary.json", json.encode({ epochs = 1, epochs_done = 1, best_top1 = 50 }))
    local st = state.of(runs[1])
    assert.are.equal("done", st.status)
    assert.are.equal(50, st.summary.best_top1)
    h.write(dir .. "/run.json", json.encode({ mode = "train", overrides = { "seed=7" } }))
    st = state.of(runs[1])
    assert.are.equal("conflict", st.status)
    assert.truthy(st.reason:find("was started with other settings (--set seed=7", 1, true), st.reason)
    h.write(dir .. "/run.json", "{")
    assert.are.equal("conflict", state.of(runs[1]).status)
    -- a live process that trains the run (named in sweep.pid, its command line naming the run)
    local other = sleeper(dir)
    h.write(state.pid_file(runs[1]), other .. "\n")
    st = state.of(runs[1])
    assert.are.same({ "running", other }, { st.status, st.pid })
    process.signal(other, "KILL")
    process.wait({ other }, 30)
    assert.are.equal("conflict", state.of(runs[1]).status, "a stale sweep.pid is ignored")
    -- the id reused by a process that trains something else: a sibling run whose directory
    -- starts the same, the run's config with other --set values, anything at all
    for _, args in ipairs {
      { dir .. "0" }, { "run_dir=" .. dir .. "0" }, { "--resume", dir .. "/x" },
      { CONFIG_A, "--set", "seed=2" }, { CONFIG_A }, { "unrelated" } } do
      local stranger = sleeper(table.unpack(args))
      h.write(state.pid_file(runs[1]), stranger .. "\n")
      st = state.of(runs[1])
      process.signal(stranger, "KILL")
      process.wait({ stranger }, 30)
      assert.are.equal("conflict", st.status, table.concat(args, " "))
    end
    -- a run that keeps its config's run_dir: the config with exactly its --set values
    local own = { dir = tmp .. "/own_dir", config_path = CONFIG_A, overrides = { "seed=3", "epochs=2" } }
    os.execute("mkdir -p " .. h.sh_quote(own.dir))
    for _, case in ipairs {
      { "running", { CONFIG_A, "--set", "seed=3", "--set", "epochs=2", "--progress", "lines" } },
      { "new", { CONFIG_A, "--set", "seed=3", "--progress", "lines" } },
      { "new", { CONFIG_A .. "x", "--set", "seed=3", "--set", "epochs=2" } } } do
      local pid = sleeper(table.unpack(case[2]))
      h.write(state.pid_file(own), pid .. "\n")
      st = state.of(own)
      process.signal(pid, "KILL")
      process.wait({ pid }, 30)
      assert.are.equal(case[1], st.status, table.concat(case[2], " "))
    end
    h.write(state.pid_file(runs[1]), "12x\n")
    assert.are.equal("conflict", state.of(runs[1]).status, "a garbled sweep.pid is ignored")
    os.remove(state.pid_file(runs[1]))
    assert.are.same({ "lua5.4", "scripts/distill", "train", "--resume", dir, "--progress", "lines" },
      state.command(runs[1], { status = "resume" }, { program = { "lua5.4", "scripts/distill" } }))
    local argv = state.command(runs[2], { status = "new" },
      { program = { "distill" }, prefix = { "mpirun", "-np", "2" } })
    assert.are.same({ "mpirun", "-np", "2", "distill", "train", CONFIG_A, "--set", "seed=2" },
      { table.unpack(argv, 1, 8) })
    h.fails("state.command: expected (run of sweep.expand", state.command, runs[1], { status = "new" }, {})
    h.fails("state.missing_teacher: expected a run of sweep.expand", state.missing_teacher, {})
    h.fails("state.of: expected a run of sweep.expand", state.of, nil)
    h.fails("state.pid_file: expected a run of sweep.expand", state.pid_file, {})
    assert.are.equal("'a b'", state.shell_word("a b"))
    assert.are.equal("run_dir=x/y", state.shell_word("run_dir=x/y"))

    -- a pair whose teacher checkpoint is missing names the teacher's config and sweep
    local folder = tmp .. "/pair"
    os.execute("mkdir -p " .. h.sh_quote(folder))
    write(folder .. "/teacher.lua", [[
return { name = "tt",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 64, synthetic_test_size = 32,
           synthetic_shape = { 1, 12, 12 } },
  epochs = 1, batch_size = 32, workers = 1, plot = false, run_dir = "]] .. folder .. [[/runs/tt" }
]])
    write(folder .. "/pair.lua", [[
return { name = "pp", method = "kd",
  teacher = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } },
              checkpoint = "]] .. folder .. [[/runs/tt/best.safetensors" },
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 64, synthetic_test_size = 32,
           synthetic_shape = { 1, 12, 12 } },
  methods = { ce = { { distiller = "ce", weight = 1 } },
              kd = { { distiller = "ce", weight = 0.1 }, { distiller = "kd", weight = 0.9, T = 4 } } },
  epochs = 1, batch_size = 32, workers = 1, plot = false }
]])
    local pair_spec = sweep.load(spec_file("pairs", ([[
  configs = { %q }, methods = { "ce", "kd" }, root = %q, teachers = "teachers.lua",
]]):format(folder .. "/pair.lua", tmp .. "/pruns")))
    local pair_runs = sweep.expand(pair_spec)
    assert.are.equal("distill", pair_runs[1].mode)
    assert.is_nil(state.missing_teacher(pair_runs[1], pair_spec), "CE needs no teacher")
    local message = state.missing_teacher(pair_runs[2], pair_spec)
    assert.are.equal("teacher checkpoint " .. folder .. "/runs/tt/best.safetensors is missing; train the "
      .. "teacher first: distill sweep teachers.lua or distill train " .. folder .. "/teacher.lua", message)
  end)
end)

describe("distill sweep: running", function()
  it("runs 3 runs 2 at a time, then skips them all; a failing run does not stop the others", function()
    local root = tmp .. "/run3"
    local path = spec_file("three", ([[
  configs = { %q }, methods = { "ce", "ce_half" }, root = %q,
  runs = { { config = %q, method = "ce", set = { ["data.dataset"] = "image_folder" } } },
]]):format(CONFIG_A, root, CONFIG_A))
    local code, out = h.run_distill({ "sweep", path, "--jobs", "2" })
    assert.are.equal(1, code, out)
    assert.truthy(out:find("sweep three: 3 runs: 3 new, 0 to resume, 0 finished before; 2 at a time", 1,
      true), out)
    for _, name in ipairs { "ce", "ce_half" } do
      local dir = root .. "/three/" .. name
      assert.truthy(out:find("start    three/" .. name .. " (new)", 1, true), out)
      assert.truthy(out:match("done     three/" .. name:gsub("%p", "%%%0")
        .. "  best top%-1 %d+%.%d%d%% %(epoch 1%)"), out)
      local summary = json.read(dir .. "/summary.json")
      assert.are.equal(1, summary.epochs_done)
      assert.truthy(h.read(dir .. "/console.log"):find("== ", 1, true), "the sweep's header line")
      assert.truthy(h.read(dir .. "/console.log"):find("epoch 1/1", 1, true), "the run's own output")
    end
    local bad = root .. "/three/ce-dataset_image_folder"
    assert.truthy(out:find("FAILED   three/ce-dataset_image_folder  exit code 1", 1, true), out)
    assert.truthy(out:find("sweep three: 2 done, 1 failed, 0 skipped (finished before); wall ", 1, true), out)
    assert.truthy(out:find("failed: " .. bad .. ": exit code 1\n    | ", 1, true), out)
    assert.truthy(out:find("    | distill: data: image_folder needs data.root", 1, true),
      "the tail of its log")

    -- again: the finished runs are skipped, the failed one tried again
    code, out = h.run_distill({ "sweep", path, "--jobs", "2", "--only", "method=ce_half,ce" })
    assert.are.equal(1, code)
    assert.truthy(out:find("3 runs: 1 new, 0 to resume, 2 finished before", 1, true), out)
    code, out = h.run_distill({ "sweep", path, "--only", "name=ce,ce_half" })
    assert.are.equal(0, code)
    assert.truthy(out:find("sweep three: 0 done, 0 failed, 2 skipped (finished before)", 1, true), out)
  end)

  it("resumes a run whose child was killed mid-run", function()
    local root = tmp .. "/killed"
    local path = spec_file("killed", ([[
  configs = { %q }, root = %q,
  set = { epochs = 4, ["data.synthetic_size"] = 2048, log_every = 20 },
]]):format(CONFIG_A, root))
    local dir = root .. "/killed/tiny_a"
    local out = tmp .. "/killed.out"
    local pid = h.start_distill({ "sweep", path }, out)
    assert.is_true(wait_until(function()
      return read_or_empty(dir .. "/console.log"):find("epoch 2/4 batch", 1, true) ~= nil
    end, 60), read_or_empty(out))
    local children = processes_with("run_dir=" .. dir)
    assert.are.equal(1, #children)
    process.signal(children[1], "KILL")
    assert.are.equal(1, wait_exit(pid, 60))
    local text = h.read(out)
    assert.truthy(text:find("FAILED   killed/tiny_a  killed by signal KILL", 1, true), text)
    assert.are.equal("resume", state.of(sweep.expand(sweep.load(path))[1]).status)

    local code, again = h.run_distill({ "sweep", path })
    assert.are.equal(0, code, again)
    assert.truthy(again:find("1 run: 0 new, 1 to resume", 1, true), again)
    assert.truthy(again:find("start    killed/tiny_a (resuming)", 1, true), again)
    local console = h.read(dir .. "/console.log")
    -- killed in epoch 2 or, on a fast machine, a little later
    local at = console:match("resuming " .. dir:gsub("%p", "%%%0") .. " at epoch (%d) of 4")
    assert.truthy(at and tonumber(at) >= 2, console)
    assert.are.equal(4, json.read(dir .. "/summary.json").epochs_done)
  end)

  it("stops on SIGINT (exit 130, resumable runs, no children left) and continues when rerun", function()
    local root = tmp .. "/sigint"
    local path = spec_file("sigint", ([[
  configs = { %q }, seeds = { 1, 2, 3 }, root = %q,
  set = { epochs = 6, ["data.synthetic_size"] = 4096, log_every = 20 },
]]):format(CONFIG_A, root))
    local out = tmp .. "/sigint.out"
    local pid = h.start_distill({ "sweep", path, "--jobs", "2" }, out)
    assert.is_true(wait_until(function()
      return read_or_empty(root .. "/sigint/seed1/console.log"):find("epoch 2/6 batch", 1, true) ~= nil
        and read_or_empty(root .. "/sigint/seed2/console.log"):find("epoch 2/6 batch", 1, true) ~= nil
    end, 60), read_or_empty(out))
    process.signal(pid, "INT")
    assert.are.equal(130, wait_exit(pid, 60))
    local text = h.read(out)
    assert.truthy(text:find("sweep: SIGINT: stopping 2 running runs", 1, true), text)
    assert.truthy(text:find("stopped  sigint/seed1", 1, true), text)
    assert.truthy(text:find("stopped  sigint/seed2", 1, true), text)
    assert.truthy(text:find("2 stopped, 1 not started", 1, true), text)
    assert.truthy(text:find("sweep: stopped; 3 runs left: seed1, seed2, seed3. Run the same command again "
      .. "to continue.", 1, true) or text:find("sweep: stopped; 3 runs left: seed2, seed1, seed3.", 1, true),
      text)
    assert.are.same({}, processes_with(root), "no child outlives the sweep")
    for _, seed in ipairs { "seed1", "seed2" } do
      assert.is_nil(io.open(root .. "/sigint/" .. seed .. "/sweep.pid"), "a stopped run keeps no sweep.pid")
    end
    for _, seed in ipairs { "seed1", "seed2" } do
      assert.truthy(io.open(root .. "/sigint/" .. seed .. "/last.safetensors"), "a checkpoint to resume from")
      assert.is_nil(io.open(root .. "/sigint/" .. seed .. "/summary.json"))
    end
    assert.is_nil(io.open(root .. "/sigint/seed3/run.json"), "seed 3 never started")

    local code, again = h.run_distill({ "sweep", path, "--jobs", "2" })
    assert.are.equal(0, code, again)
    assert.truthy(again:find("3 runs: 1 new, 2 to resume, 0 finished before", 1, true), again)
    assert.truthy(again:find("sweep sigint: 3 done, 0 failed, 0 skipped", 1, true), again)
    assert.truthy(h.read(root .. "/sigint/seed1/console.log"):find("resuming", 1, true))
  end)

  it("leaves alone a run that another sweep's child is training, at the start or later", function()
    local root = tmp .. "/elsewhere"
    local path = spec_file("elsewhere",
      -- seed 2 trains long enough for seed 3 to be taken meanwhile
      ("configs = { %q }, seeds = { 1, 2, 3 }, root = %q, set = { epochs = 2, [\"data.synthetic_size\"] = 1024 }")
        :format(CONFIG_A, root))
    local dirs = {}
    for seed = 1, 3 do
      dirs[seed] = root .. "/elsewhere/seed" .. seed
      os.execute("mkdir -p " .. h.sh_quote(dirs[seed]))
    end
    -- seed 1: trained by a live process when the sweep starts
    local first = sleeper("--resume", dirs[1])
    h.write(dirs[1] .. "/sweep.pid", first .. "\n")
    -- seed 2: the file of a killed sweep, its process gone
    local gone = sleeper(dirs[2])
    process.signal(gone, "KILL")
    process.wait({ gone }, 30)
    h.write(dirs[2] .. "/sweep.pid", gone .. "\n")
    local out = tmp .. "/elsewhere.out"
    local pid = h.start_distill({ "sweep", path, "--jobs", "1" }, out)
    -- seed 3: another sweep starts it while this one trains seed 2
    assert.is_true(wait_until(function()
      return read_or_empty(dirs[2] .. "/console.log") ~= ""
    end, 60), read_or_empty(out))
    local third = sleeper("run_dir=" .. dirs[3])
    h.write(dirs[3] .. "/sweep.pid", third .. "\n")
    local code = wait_exit(pid, 120)
    -- emitted commands leave them out too
    local emit_code, emitted = h.run_distill({ "sweep", path, "--emit", "commands" })
    for _, p in ipairs { first, third } do
      process.signal(p, "KILL")
      process.wait({ p }, 30)
    end
    local text = h.read(out)
    assert.are.equal(0, code, text)
    assert.truthy(text:find("sweep elsewhere: 3 runs: 2 new, 0 to resume", 1, true), text)
    assert.truthy(text:find(("running  elsewhere/seed1  trained elsewhere (process %d, %s/sweep.pid): "
      .. "left alone"):format(first, dirs[1]), 1, true), text)
    assert.truthy(text:find(("running  elsewhere/seed3  trained elsewhere (process %d, %s/sweep.pid): "
      .. "left alone"):format(third, dirs[3]), 1, true), text)
    assert.truthy(text:find("done     elsewhere/seed2", 1, true), text)
    assert.truthy(text:find("sweep elsewhere: 1 done, 0 failed, 0 skipped (finished before), 2 running "
      .. "elsewhere", 1, true), text)
    assert.is_nil(io.open(dirs[1] .. "/run.json"))
    assert.is_nil(io.open(dirs[3] .. "/run.json"))
    assert.is_nil(io.open(dirs[2] .. "/sweep.pid"), "the runner removes its pid file when the run ends")
    assert.truthy(h.read(dirs[2] .. "/console.log"):find("--set seed=2", 1, true))
    assert.are.equal(0, emit_code, emitted)
    for seed, p in pairs { [1] = first, [3] = third } do
      assert.truthy(emitted:find(("note: %s is being trained by process %d (another sweep?) (left out)")
        :format(dirs[seed], p), 1, true), emitted)
    end
    assert.is_nil(emitted:find("distill train", 1, true), emitted)
  end)

  it("fails a pair whose teacher is missing at its start and runs the rest", function()
    local folder = tmp .. "/pair"
    local code, out = h.run_distill({ "sweep", tmp .. "/pairs.lua", "--jobs", "2" })
    assert.are.equal(1, code, out)
    assert.truthy(out:find("FAILED   pairs/kd: teacher checkpoint " .. folder .. "/runs/tt/best.safetensors "
      .. "is missing; train the teacher first: distill sweep teachers.lua", 1, true), out)
    assert.truthy(out:find("done     pairs/ce", 1, true), out)
  end)

  it("dry-runs, and exits 2 on usage errors", function()
    local code, out = h.run_distill({ "sweep", tmp .. "/grid.lua", "--dry-run", "--only", "seed=1",
      "--only", "config=tiny_a", "--only", "method=ce" })
    assert.are.equal(0, code, out)
    assert.truthy(out:find("[ 1/16] new      grid/a-ce-bs16-seed1\n    lua5.4 scripts/distill train "
      .. CONFIG_A .. " --set method=ce", 1, true), out)
    for _, args in ipairs { { "sweep" }, { "sweep", "x.lua", "--jobs", "0" },
      { "sweep", "x.lua", "--emit", "pdf" },
      { "sweep", "x.lua", "-o", "y" } } do
      assert.are.equal(2, (h.run_distill(args)), table.concat(args, " "))
    end
    code, out = h.run_distill({ "sweep", tmp .. "/grid.lua", "--only", "seed=9" })
    assert.are.equal(1, code)
    assert.truthy(out:find("--only matches no run", 1, true), out)
  end)

  it("runs a shipped sweep by name from any directory, its scripts/configs paths resolved", function()
    local root = assert(io.popen("pwd")):read("l")
    local away = tmp .. "/away"
    os.execute("mkdir -p " .. h.sh_quote(away))
    local function sweep_in(dir, words)
      return h.sh("cd " .. h.sh_quote(dir) .. " && lua5.4 " .. h.sh_quote(root .. "/scripts/distill")
        .. " sweep " .. words)
    end
    -- by name, with or without .lua; the sweep names scripts/configs/fmnist_study.lua, which is
    -- not there from this directory: the shipped config is found
    for _, name in ipairs { "fmnist_table3", "fmnist_table3.lua" } do
      local out, ok = sweep_in(away, name .. " --dry-run --root " .. h.sh_quote(away .. "/runs")
        .. " --only seed=2 --only method=kd")
      assert.is_true(ok, out)
      assert.truthy(out:find("sweep fmnist_table3: 1 run: 1 new", 1, true), out)
      assert.truthy(out:find(("distill %s/scripts/configs/fmnist_study.lua --set method=kd --set seed=2 "
        .. "--set run_dir=%s/runs/fmnist_table3/kd-seed2 "):format(root, away), 1, true), out)
    end
    assert.is_nil(io.open(away .. "/runs"), "a dry run writes nothing")
    -- a file of that name in the current directory comes first
    h.write(away .. "/fmnist_table3", ("return { name = \"mine\", configs = { %q } }"):format(CONFIG_A))
    local out, ok = sweep_in(away, "fmnist_table3 --dry-run")
    assert.is_true(ok, out)
    assert.truthy(out:find("sweep mine: 1 run", 1, true), out)
    -- no such file or shipped sweep: the shipped ones are named
    out, ok = sweep_in(away, "fmnist_table9")
    assert.is_false(ok, out)
    assert.truthy(out:find("distill sweep: no sweep file fmnist_table9 here, and no shipped sweep of that "
      .. "name (shipped: cifar100_table2, ", 1, true), out)
    assert.truthy(out:find("fmnist_table3, fmnist_teacher, fmnist_zoo; `distill configs` describes them)", 1, true), out)
    -- a config named relative to a sweep file in another folder: next to the sweep file
    os.execute("mkdir -p " .. h.sh_quote(away .. "/sub/cfg"))
    os.execute("cp " .. h.sh_quote(CONFIG_A) .. " " .. h.sh_quote(away .. "/sub/cfg/a.lua"))
    h.write(away .. "/sub/s.lua", "return { name = \"rel\", configs = { \"cfg/a.lua\" } }")
    out, ok = sweep_in(tmp, "away/sub/s.lua --dry-run")
    assert.is_true(ok, out)
    assert.truthy(out:find(" train away/sub/cfg/a.lua ", 1, true), out)
    -- and a path that is nowhere names the sweep file
    h.write(away .. "/sub/t.lua", "return { name = \"gone\", configs = { \"scripts/configs/nothing.lua\" } }")
    out, ok = sweep_in(tmp, "away/sub/t.lua --dry-run")
    assert.is_false(ok, out)
    assert.truthy(out:find("sweep: away/sub/t.lua: config file scripts/configs/nothing.lua not found", 1, true),
      out)
  end)
end)

describe("distill sweep --emit", function()
  local function sink()
    local parts = {}
    return { write = function(self, ...)
               for _, p in ipairs { ... } do
                 parts[#parts + 1] = p
               end
               return self
             end,
             text = function() return table.concat(parts) end }
  end

  it("prints one command line per pending run", function()
    local spec = sweep.load(tmp .. "/grid.lua")
    local runs = sweep.select(sweep.expand(spec), { "seed=1", "config=tiny_a" })
    local out, err = sink(), sink()
    emit.commands(spec, runs, { program = { "scripts/distill" } }, out, err)
    local lines = {}
    for line in out.text():gmatch("[^\n]+") do
      lines[#lines + 1] = line
    end
    assert.are.equal(4, #lines)
    assert.are.equal("scripts/distill train " .. CONFIG_A .. " --set method=ce --set batch_size=16 "
      .. "--set seed=1 --set epochs=2 --set optimizer.lr=0.0125 --set run_dir=" .. runs[1].dir
      .. " --progress lines", lines[1])
  end)

  it("writes a Slurm job array: one index per pending run, its command, mpirun with --ranks", function()
    local spec = sweep.load(tmp .. "/three.lua")
    local runs = sweep.expand(spec)   -- two finished, one pending (it failed)
    local out, err = sink(), sink()
    emit.slurm(spec, runs, { program = { "scripts/distill" }, threads = 6, ranks = 2,
      sbatch = { "--time=2:00:00" } }, out, err)
    local script = out.text()
    assert.truthy(script:match("^#!/bin/bash\n"))
    local last = tonumber(script:match("#SBATCH %-%-array=0%-(%d+)\n"))
    assert.are.equal(0, last, script)
    assert.truthy(script:find("#SBATCH --cpus-per-task=6\n", 1, true))
    assert.truthy(script:find("#SBATCH --ntasks=2\n", 1, true))
    assert.truthy(script:find("#SBATCH --time=2:00:00\n", 1, true))
    assert.truthy(script:find('mpirun -np 2 scripts/distill "$mode" "${args[@]}" --progress lines >> '
      .. '"$dir/console.log" 2>&1', 1, true), script)

    spec = sweep.load(tmp .. "/grid.lua")
    runs = sweep.expand(spec)
    out = sink()
    emit.slurm(spec, runs, { program = { "distill" } }, out, sink())
    script = out.text()
    last = tonumber(script:match("#SBATCH %-%-array=0%-(%d+)\n"))
    assert.are.equal(#runs - 1, last)
    local cases = {}
    local case_pattern = "\n  (%d+)%) dir=(%S+); mode=(%a+)\n     args=%(([^\n]*)%) ;;"
    for index, dir, mode, args in script:gmatch(case_pattern) do
      cases[#cases + 1] = { index = tonumber(index), dir = dir, mode = mode, args = args }
    end
    assert.are.equal(#runs, #cases)
    for i, case in ipairs(cases) do
      assert.are.equal(i - 1, case.index)
      assert.are.equal(runs[i].dir, case.dir)
      assert.are.equal("train", case.mode)
      assert.truthy(case.args:find("--set run_dir=" .. runs[i].dir, 1, true))
      assert.truthy(case.args:find(CONFIG_A, 1, true) or case.args:find(CONFIG_B, 1, true))
    end
    assert.truthy(script:find("#SBATCH --ntasks=1\n#SBATCH --cpus-per-task=4\n", 1, true))
    assert.truthy(script:find('\ndistill "$mode" "${args[@]}"', 1, true))
    -- bash accepts it
    local file = write(tmp .. "/job.sbatch", script)
    local _, ok = h.sh("bash -n " .. h.sh_quote(file))
    assert.is_true(ok)
  end)

  it("runs the emitted script's case for an array index", function()
    local spec = sweep.load(tmp .. "/grid.lua")
    local runs = sweep.select(sweep.expand(spec, { root = tmp .. "/slurm" }), { "name=b-ce_half-bs32-seed2" })
    local out = sink()
    emit.slurm(spec, runs, { program = { "lua5.4", "scripts/distill" } }, out, sink())
    local file = write(tmp .. "/one.sbatch", out.text())
    local text, ok = h.sh("SLURM_ARRAY_TASK_ID=0 OMP_WAIT_POLICY=passive bash " .. h.sh_quote(file))
    assert.is_true(ok, text)
    assert.are.equal(2, json.read(runs[1].dir .. "/summary.json").epochs_done, "the grid's epochs=2")
    text, ok = h.sh("SLURM_ARRAY_TASK_ID=0 bash " .. h.sh_quote(file))
    assert.is_true(ok)
    assert.truthy(text:find("finished already", 1, true))
  end)
end)

describe("distill.core.process", function()
  it("spawns with an environment and an output file, waits, signals, and checks its arguments", function()
    local out = tmp .. "/p.out"
    local pid = process.spawn({ "sh", "-c", "echo $SWEEP_SPEC_VAR; exit 3" }, { output = out,
      env = { SWEEP_SPEC_VAR = "hello" } })
    local got, how, code = process.wait({ pid }, 30)
    assert.are.same({ pid, "exit", 3 }, { got, how, code })
    assert.are.equal("hello\n", h.read(out))
    pid = process.spawn({ "sleep", "30" }, { output = out })
    assert.is_nil(process.wait({ pid }, 0.05), "a timeout returns nil")
    process.signal(pid, "TERM")
    got, how, code = process.wait({ pid }, 30)
    assert.are.same({ pid, "signal", "TERM" }, { got, how, code })
    h.fails("process.spawn: cannot start 'no-such-program-x'", process.spawn, { "no-such-program-x" },
      { output = out })
    h.fails("process.spawn: argv[2]: expected a string, got number", process.spawn, { "ls", 3 },
      { output = out })
    h.fails("process.spawn: options.output: expected a file path", process.spawn, { "ls" }, {})
    h.fails("process.spawn: argv is empty", process.spawn, {}, { output = out })
    h.fails("process.wait: process 1 is not a child of this process", process.wait, { 1 }, 0)
    h.fails("process.signal: unknown signal 'STOPIT'", process.signal, 1, "STOPIT")
  end)

  it("counts SIGINT while watching, and hands it back after", function()
    process.watch_stop_signals(true)
    local before = process.stop_signals()
    local killer = process.spawn({ "kill", "-INT", tostring(process.getpid()) }, { output = "/dev/null" })
    process.wait({ killer }, 30)
    assert.is_true(wait_until(function() return process.stop_signals() > before end, 5))
    local _, last = process.stop_signals()
    assert.are.equal("INT", last)
    process.watch_stop_signals(false)
  end)
end)

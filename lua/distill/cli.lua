-- distill.cli: the `distill` command's subcommands.
--
--   distill train CONFIG [--set key=value ...] [--resume RUN_DIR] [--overwrite] [--quiet]
--   distill distill CONFIG [...]              (the same, with a teacher)
--   distill eval CHECKPOINT [--data NAME] [--split test] [--root DIR] [--batch-size N] [--limit N]
--   distill plot RUN_DIR [RUN_DIR ...] [-o out.svg]
--   distill configs
--   distill sweep SPEC [--jobs N] [--dry-run] [--emit commands|slurm] [--only k=v]
--   distill table RUN_OR_SWEEP_DIR... [--rows method] [--cols pair] [--metric best_top1]
--   distill repl | distill | distill SCRIPT.lua [ARGS]
--   distill --version
--
-- cli.main(args) returns the exit code: 0 ok, 1 failure, 2 usage error.
local errors = require "distill.errors"

local cli = {}

local USAGE = [[
usage: distill <command> [options]

commands:
  train CONFIG      train a model from scratch (teachers, CE baselines)
  distill CONFIG    train a student from a teacher checkpoint with the config's method
  eval CHECKPOINT   top-1/top-5 and loss of a checkpoint on a dataset split
  plot RUN_DIR...   draw the curves of one or more runs in one figure
  configs           list the shipped configs (CIFAR-100 pairs and teachers, Fashion-MNIST)
  sweep SPEC        run a grid of runs (configs x methods x seeds x settings)
  table RUNS...     mean +- std over seeds of run directories, Markdown or CSV
  repl              a Lua 5.4 REPL with distill loaded (also: distill with no arguments)
  FILE.lua [ARGS]   run a Lua script with distill on the path
  --version         the version, the CPU and the kernels in use

global options:
  --debug           on an error, the full Lua traceback (before or after the command)

`distill <command> --help` describes a command's options.]]

local HELP = {
  train = [[
usage: distill train CONFIG [--set key=value ...] [--resume RUN_DIR] [--overwrite] [--quiet]

Trains the config's model (its `student`, or `model`) with its method
(default "ce"); the run directory (config key run_dir, default runs/<name>)
receives config.lua, metrics.jsonl/csv, curves.svg/png, last.safetensors,
best.safetensors and summary.json.

options:
  --set key=value   override a config value; dotted keys reach into tables
                    (--set optimizer.lr=0.1 --set epochs=30); the value must
                    have the type of the value it replaces
  --resume RUN_DIR  continue an interrupted run from its last completed epoch
                    (CONFIG may be omitted: the run's own config is used)
  --overwrite       start over in a run directory that already holds a run
  --quiet           no progress output (files are still written)
  --progress MODE   bar | lines | none | auto (default: a bar on a terminal)]],
  eval = [[
usage: distill eval CHECKPOINT [--data NAME] [--split test] [--root DIR] [--batch-size N] [--limit N]

Evaluates a checkpoint written by `distill train`/`distill distill` (its
model, dataset and normalisation are read from the checkpoint) and prints
top-1, top-5 and the cross-entropy loss.

options:
  --data NAME       cifar10 | cifar100 | fashion_mnist | mnist | image_folder | synthetic
                    (default: the dataset the checkpoint was trained on)
  --split SPLIT     train | test (default test)
  --root DIR        dataset directory (default: the dataset's usual place)
  --batch-size N    evaluation batch size (default 64)
  --limit N         only the first N samples of the split]],
  plot = [[
usage: distill plot RUN_DIR [RUN_DIR ...] [-o out.svg]
       distill plot SWEEP_DIR... [--by method] [--mean] [-o out]
       distill plot SWEEP_DIR... --vs batch_size [--metric best_top1] [-o out]

Draws every loss term and train/test top-1 accuracy per epoch of the given
runs in one figure (gnuplot). One run without -o redraws RUN_DIR/curves.svg
and curves.png; several runs default to comparison.svg.

A sweep's directory (or --by, --mean, --where) draws the train loss and
test top-1 of all its runs with one colour per method (the same colour for
every seed); --mean adds each method's mean curve (comparison.svg/.png).
--vs KEY draws a metric against a config key instead, one line per method
with error bars over the seeds (<metric>_vs_<key>.svg/.png).

options:
  -o, --output FILE   output file (.svg or .png; no extension: both)
  --by KEY            the colour (or line) of a run: a config key (default method)
  --mean              with the curves: the mean over each colour's runs
  --vs KEY            the x axis: a config key (batch_size, optimizer.lr, ...)
  --metric NAME       with --vs: a summary.json field (default best_top1)
  --where key=v[,v]   only the runs whose key has one of the values]],
  repl = [[
usage: distill repl   (or just: distill)

A Lua 5.4 REPL with `distill` loaded and the shortcuts nn, F and models.
Reads from a pipe too: echo 'print(distill.randn{2})' | distill repl]],
}
HELP.distill = HELP.train:gsub("^usage: distill train", "usage: distill distill"):gsub(
  "Trains the config's model %(its `student`, or `model`%) with its method\n%(default \"ce\"%)",
  "Distils the config's teacher (teacher.model, teacher.checkpoint) into its\nstudent with the method `method` (--set method=kd|fsecd|...)")

HELP.configs = [[
usage: distill configs

Lists the configs shipped with distill (from a checkout: scripts/configs;
from the rock: the folder it installed them in), with the first line of
each, and the shipped sweeps.]]
local sweep_command = require "distill.sweep.command"
local table_command = require "distill.results.command"
HELP.sweep, HELP.table = sweep_command.HELP, table_command.HELP

cli.USAGE, cli.HELP = USAGE, HELP

-- A usage error: exit code 2.
local UsageError = {}
UsageError.__index = UsageError
UsageError.__tostring = function(self) return self.message end

local function usage_error(message)
  error(setmetatable({ message = message }, UsageError), 0)
end

local function sorted(list)
  table.sort(list)
  return list
end

-- Parses args against a flag spec {["--set"] = "list", ["--quiet"] = "flag", ...};
-- returns options and positional arguments.
local function parse(command, args, spec)
  local options, positional = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then
      options.help = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, inline = a:match("^(%-%-?[^=]+)=(.*)$")
      name = name or a
      local kind = spec[name]
      if not kind then
        local valid = {}
        for flag in pairs(spec) do
          valid[#valid + 1] = flag
        end
        valid[#valid + 1] = "--help"
        usage_error(("distill %s: unknown option '%s' (valid: %s)"):format(command, name,
          table.concat(sorted(valid), ", ")))
      end
      local key = name:gsub("^%-+", ""):gsub("%-", "_")
      if kind == "flag" then
        options[key] = true
      else
        local value = inline
        if value == nil then
          i = i + 1
          value = args[i]
        end
        if value == nil then
          usage_error(("distill %s: option %s needs a value"):format(command, name))
        end
        if kind == "list" then
          options[key] = options[key] or {}
          table.insert(options[key], value)
        else
          options[key] = value
        end
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return options, positional
end

-- --------------------------------------------------------------- commands

local function cmd_train(mode, args, out)
  local options, positional = parse(mode, args, {
    ["--set"] = "list", ["--resume"] = "value", ["--overwrite"] = "flag", ["--quiet"] = "flag",
    ["--progress"] = "value", ["-s"] = "list",
  })
  if options.help then
    out:write(HELP[mode], "\n")
    return 0
  end
  local overrides = options.set or {}
  for _, item in ipairs(options.s or {}) do
    overrides[#overrides + 1] = item
  end
  if #positional > 1 then
    usage_error(("distill %s: expected one CONFIG file, got %d arguments (%s)"):format(mode,
      #positional, table.concat(positional, " ")))
  end
  if #positional == 0 and not options.resume then
    usage_error(("distill %s: missing CONFIG (a config file; `distill configs` lists the shipped ones)\n%s"):format(mode,
      HELP[mode]))
  end
  local progress = options.quiet and "none" or options.progress
  if progress and progress ~= "none" and progress ~= "bar" and progress ~= "lines" and progress ~= "auto" then
    usage_error(("distill %s: --progress must be bar, lines, none or auto, got '%s'"):format(mode, progress))
  end
  local trainer = require "distill.trainer"
  local config_path = positional[1]
  if config_path and not options.resume then
    local f = io.open(config_path, "r")
    if not f then
      usage_error(("distill %s: cannot read config file %s"):format(mode, config_path))
    end
    f:close()
  end
  trainer.run{
    mode = mode, config_path = config_path, overrides = overrides, resume = options.resume,
    overwrite = options.overwrite, progress = progress, out = out,
  }
  return 0
end

local function cmd_eval(args, out)
  local options, positional = parse("eval", args, {
    ["--data"] = "value", ["--split"] = "value", ["--root"] = "value",
    ["--batch-size"] = "value", ["--limit"] = "value", ["--workers"] = "value",
  })
  if options.help then
    out:write(HELP.eval, "\n")
    return 0
  end
  if #positional ~= 1 then
    usage_error("distill eval: expected one CHECKPOINT file\n" .. HELP.eval)
  end
  local datasets = require "distill.data.datasets"
  local known = table.concat(datasets.names(), ", ")
  if options.data and not datasets.has(options.data) then
    usage_error(("distill eval: unknown dataset '%s' (valid: %s)"):format(options.data, known))
  end
  local split = options.split or "test"
  if split ~= "test" and split ~= "train" then
    usage_error("distill eval: --split must be train or test, got " .. split)
  end
  local batch_size = math.tointeger(tonumber(options.batch_size or "64"))
  local limit = math.tointeger(tonumber(options.limit or "0"))
  if not batch_size or batch_size < 1 or not limit or limit < 0 then
    usage_error("distill eval: --batch-size and --limit take positive integers")
  end
  local distill = require "distill"
  local checkpoint = require "distill.checkpoint"
  local config = require "distill.config"
  local ck = checkpoint.load(positional[1])
  local meta = ck.meta
  if type(ck.model) ~= "table" or type(meta) ~= "table" or meta.model_spec == nil then
    error(("distill eval: %s is not a distill training checkpoint (no model/meta)"):format(positional[1]), 0)
  end
  options.data = options.data or (type(meta.data) == "table" and meta.data.dataset) or nil
  if not options.data then
    usage_error(("distill eval: %s does not record its dataset: give --data NAME (%s)"):format(
      positional[1], known))
  end
  local d = config.copy(config.data_defaults)
  d.dataset = options.data
  d.root = options.root or (options.data == (meta.data and meta.data.dataset) and meta.data.root) or false
  d.test_limit, d.train_limit = limit, limit
  d.num_classes = meta.num_classes
  if meta.data and meta.data.dataset == options.data then
    d.mean, d.std = meta.data.mean or false, meta.data.std or false
  end
  local ds = datasets.open(d, split, 1)
  local input_shape = ds:get(1).input:shape()
  local dist = require "distill.dist"
  local loader = require("distill.data.loader")(ds, {
    batch_size = batch_size, shuffle = false, workers = math.tointeger(tonumber(options.workers or "2")) or 2,
    seed = 1, transform = datasets.transform(d, input_shape, "test"),
    shard = dist.rank(), shards = dist.size(), keep_short = true,   -- mpirun: each rank a share
  })
  local trainer = require "distill.trainer"
  local model = trainer.build_model(meta.model_spec, meta.num_classes)
  model:load_state_dict(ck.model)
  local t0 = distill.wallclock()
  local result = trainer.evaluate(model, loader)
  loader:close()
  if not dist.is_main() then
    return 0, result
  end
  out:write(("%s on %s/%s (%d images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f  (%.1f s)\n"):format(
    positional[1], options.data, split, result.n, result.top1, result.top5, result.loss,
    distill.wallclock() - t0))
  return 0, result
end

-- Is every path a run directory (or something plot reports as missing)?
local function only_runs(paths)
  local lfs = require "lfs"
  for _, path in ipairs(paths) do
    if lfs.attributes(path .. "/metrics.csv", "mode") == nil
      and lfs.attributes(path, "mode") == "directory" then
      return false
    end
  end
  return true
end

local function cmd_plot(args, out)
  local options, positional = parse("plot", args, { ["-o"] = "value", ["--output"] = "value",
    ["--by"] = "value", ["--mean"] = "flag", ["--vs"] = "value", ["--metric"] = "value",
    ["--where"] = "list" })
  if options.help then
    out:write(HELP.plot, "\n")
    return 0
  end
  if #positional == 0 then
    usage_error("distill plot: expected at least one RUN_DIR\n" .. HELP.plot)
  end
  if options.metric and not options.vs then
    usage_error("distill plot: --metric goes with --vs KEY")
  end
  local plot = require "distill.plot"
  local output = options.o or options.output
  local files, err
  local grouped = options.by or options.mean or options.vs or options.where or not only_runs(positional)
  if grouped then
    local plots = require "distill.results.plots"
    local opts = { by = options.by, mean = options.mean, where = options.where, output = output,
      vs = options.vs, metric = options.metric }
    files, err = (options.vs and plots.versus or plots.curves)(positional, opts)
  elseif #positional == 1 and not output then
    files, err = plot.curves(positional[1])
  else
    files, err = plot.overlay(positional, output or "comparison.svg")
  end
  if not files then
    error("distill plot: " .. tostring(err), 0)
  end
  out:write("wrote ", table.concat(files, ", "), "\n")
  return 0
end

local function cmd_repl(args, out)
  if args[1] == "--help" or args[1] == "-h" then
    out:write(HELP.repl, "\n")
    return 0
  end
  if #args > 0 then
    usage_error("distill repl: unexpected argument '" .. args[1] .. "' (see distill repl --help)")
  end
  require("distill.repl").run()
  return 0
end

local function cmd_script(path, args)
  local chunk, err = loadfile(path)
  if not chunk then
    error(err, 0)
  end
  local script_args = { [0] = path }
  for i, a in ipairs(args) do
    script_args[i] = a
  end
  _G.arg = script_args
  local ok, run_err = xpcall(chunk, errors.capture, table.unpack(script_args))
  if not ok then
    error(run_err, 0)
  end
  return 0
end

-- `distill --version`: what runs, for bug reports and benchmark notes.
local function version_text()
  local distill = require "distill"
  local info = distill.cpu_info()
  return table.concat({
    ("distill %s (%s)"):format(distill.version, _VERSION),
    ("kernels: %s (this CPU and build run %s; DISTILL_ISA chooses)"):format(info.isa,
      table.concat(info.isas, ", ")),
    "CPU: " .. info.model,
    "BLAS: " .. info.blas,
  }, "\n")
end

local function cmd_configs(args, out)
  local options = parse("configs", args, {})
  if options.help then
    out:write(HELP.configs, "\n")
    return 0
  end
  local configs = require "distill.configs"
  local list = configs.list("configs")
  out:write(("shipped configs (%s):\n"):format(configs.dir("configs")))
  for _, c in ipairs(list) do
    out:write(("  %-36s %s\n"):format(c.name, c.description))
  end
  local sweeps = configs.list("sweeps")
  if #sweeps > 0 then
    out:write(("\nshipped sweeps (%s):\n"):format(configs.dir("sweeps")))
    for _, c in ipairs(sweeps) do
      out:write(("  %-36s %s\n"):format(c.name, c.description))
    end
  end
  out:write("\nrun one with: distill train|distill " .. configs.dir("configs") .. "/NAME.lua\n")
  return 0
end

local commands = {
  train = function(args, out) return cmd_train("train", args, out) end,
  distill = function(args, out) return cmd_train("distill", args, out) end,
  eval = cmd_eval,
  plot = cmd_plot,
  repl = cmd_repl,
  configs = cmd_configs,
  sweep = function(args, out)
    return sweep_command.main(args, out, { parse = parse, usage_error = usage_error })
  end,
  table = function(args, out)
    return table_command.main(args, out, { parse = parse, usage_error = usage_error })
  end,
}

-- The global --debug flag, anywhere before a script's own arguments:
-- the arguments without it, and whether it was there.
local function take_debug_flag(args)
  local kept, debug_on = {}, false
  for i, a in ipairs(args) do
    local script_args = #kept > 0 and kept[1]:match("%.lua$")
    if a == "--debug" and not script_args then
      debug_on = true
    else
      kept[#kept + 1] = args[i]
    end
  end
  return kept, debug_on
end

--- Runs the command line `args` (a list of strings). Returns the exit code:
-- 0 ok, 1 failure, 2 usage error, 130 stopped by Ctrl-C.
-- opts.out / opts.err: file handles (default io.stdout / io.stderr).
-- Errors print as `distill: <message>`, without the positions of distill's
-- own files; --debug (before or after the command) prints the traceback.
function cli.main(args, opts)
  opts = opts or {}
  if type(args) ~= "table" then
    error("cli.main: argument #1: expected a list of strings, got " .. type(args), 2)
  end
  local out, err_out = opts.out or io.stdout, opts.err or io.stderr
  local debug_on
  args, debug_on = take_debug_flag(args)
  local command = args[1]
  local rest = { table.unpack(args, 2) }
  local interrupt = require "distill.interrupt"
  local interrupts_were_on = interrupt.enable()
  local ok, code = xpcall(function()
    if command == nil then
      return cmd_repl({}, out)
    elseif command == "--help" or command == "-h" or command == "help" then
      if rest[1] and HELP[rest[1]] then
        out:write(HELP[rest[1]], "\n")
      else
        out:write(USAGE, "\n")
      end
      return 0
    elseif command == "--version" or command == "version" then
      out:write(version_text(), "\n")
      return 0
    elseif commands[command] then
      if command ~= "repl" then
        require("distill.dist").init()   -- under mpirun or srun: one rank of a distributed run
      end
      return commands[command](rest, out)
    elseif command:match("%.lua$") then
      require("distill.dist").init()
      return cmd_script(command, rest)
    end
    local names = {}
    for name in pairs(commands) do
      names[#names + 1] = name
    end
    usage_error(("distill: unknown command '%s' (valid: %s, or a FILE.lua)\n%s"):format(command,
      table.concat(sorted(names), ", "), USAGE))
  end, errors.capture)
  if not interrupts_were_on then
    interrupt.disable()
  end
  if ok then
    return code or 0
  end
  if getmetatable(code) == UsageError then
    err_out:write(code.message, "\n")
    return 2
  end
  local status = interrupt.is_interrupt(code) and interrupt.EXIT_CODE or 1
  local message = errors.display(code)
  if status == interrupt.EXIT_CODE then
    interrupt.clear()
    if not interrupt.is_stopped(code) then
      message = "interrupted"
    end
  end
  if debug_on then
    err_out:write(errors.traceback_of(code) or debug.traceback(tostring(code)), "\n")
  end
  local dist = require "distill.dist"
  if dist.size() > 1 then   -- the other ranks must not wait for this one
    dist.fail_all(message, status)
  end
  err_out:write((message:match("^distill[: ]") and "" or "distill: "), message, "\n")
  err_out:flush()
  return status
end

return cli

-- distill.sweep.command: `distill sweep`, the command-line side of
-- distill.sweep (options, help, which distill program the children run).
--
--   local command = require "distill.sweep.command"
--   command.main(args, out, {parse = ..., usage_error = ...}) --> exit code
-- (parse and usage_error are distill.cli's, so that errors look alike.)
local command = {}

command.HELP = [[
usage: distill sweep SPEC [--jobs N] [--dry-run] [--emit commands|slurm] [--only key=value ...]

Expands a sweep file (a Lua file naming configs, methods, seeds and other
config keys; docs/workflow.md, "Sweeps and tables") into runs named
<root>/<sweep>/<config>-<method>-bs512-seed2 (only the axes that vary), and
runs them here N at a time, each writing <run dir>/console.log. Finished
runs are skipped and interrupted ones resumed, so the same command
continues a sweep. Ctrl-C stops it cleanly (the runs keep their last
epoch; exit code 130); a failed run does not stop the others (exit code 1).
SPEC is a sweep file or the name of a shipped sweep (distill sweep
fmnist_table3; `distill configs` lists them).

options:
  --jobs N            runs at a time (default 1)
  --threads T         threads per run (default: max(1, cores // (N * ranks));
                      with --emit slurm, cpus-per-task, default 4)
  --only key=v[,v]    only the runs whose key (config, method, seed, name or
                      an axis key) has one of the values; repeat to narrow
  --set key=value     an extra config override for every run (after the sweep's)
  --root DIR          where sweep directories go (default: the file's root, runs)
  --dry-run           print each run's state and command; run nothing
  --emit commands     print the command line of every pending run
  --emit slurm        print a Slurm job-array script (one array task per pending run)
  --ranks R           launch each run with mpirun -np R (distributed runs)
  --sbatch OPTION     with --emit slurm: an extra #SBATCH line (--sbatch --time=24:00:00)
  -o, --output FILE   write the --emit output to FILE]]

local OPTIONS = {
  ["--jobs"] = "value", ["-j"] = "value", ["--threads"] = "value", ["--only"] = "list",
  ["--set"] = "list", ["--root"] = "value", ["--dry-run"] = "flag", ["--emit"] = "value",
  ["--ranks"] = "value", ["--sbatch"] = "list", ["-o"] = "value", ["--output"] = "value",
}

local function positive(tools, name, text)
  local n = math.tointeger(tonumber(text))
  if not n or n < 1 then
    tools.usage_error(("distill sweep: %s takes a positive integer, got '%s'"):format(name, tostring(text)))
  end
  return n
end

--- The distill command this process runs as, for the children: the
-- interpreter and script of `arg` (from a checkout or a rock), and the
-- words shown in emitted commands.
function command.program()
  local script = arg and arg[0]
  if type(script) ~= "string" or not script:match("distill$") then
    return { "lua5.4", "scripts/distill" }, { "scripts/distill" }
  end
  local interpreter, i = "lua5.4", -1
  while arg[i] do
    interpreter = arg[i]
    i = i - 1
  end
  local shown = script:match("/rocks") and "distill" or script
  return { interpreter, script }, { shown }
end

function command.main(args, out, tools)
  local options, positional = tools.parse("sweep", args, OPTIONS)
  if options.help then
    out:write(command.HELP, "\n")
    return 0
  end
  if #positional ~= 1 then
    tools.usage_error("distill sweep: expected one SPEC file (a sweep in scripts/sweeps/)\n" .. command.HELP)
  end
  local jobs = positive(tools, "--jobs", options.jobs or options.j or "1")
  local threads = options.threads and positive(tools, "--threads", options.threads)
  local ranks = positive(tools, "--ranks", options.ranks or "1")
  local emit_mode = options.emit
  if emit_mode and emit_mode ~= "commands" and emit_mode ~= "slurm" then
    tools.usage_error("distill sweep: --emit takes commands or slurm, got '" .. emit_mode .. "'")
  end
  if options.sbatch and emit_mode ~= "slurm" then
    tools.usage_error("distill sweep: --sbatch goes with --emit slurm")
  end
  local output = options.o or options.output
  if output and not emit_mode then
    tools.usage_error("distill sweep: -o goes with --emit (a sweep's runs write their own directories)")
  end
  local sweep = require "distill.sweep"
  local spec_path = positional[1]
  if not spec_path:find("/", 1, true) and not require("distill.files").exists(spec_path) then
    -- a shipped sweep by name: distill sweep fmnist_table3
    local configs = require "distill.configs"
    spec_path = configs.find(spec_path, "sweeps")
    if not spec_path then
      local names = {}
      for _, c in ipairs(configs.list("sweeps")) do
        names[#names + 1] = c.name
      end
      error(("distill sweep: no sweep file %s here, and no shipped sweep of that name (shipped: %s; "
        .. "`distill configs` describes them)"):format(positional[1],
          #names > 0 and table.concat(names, ", ") or "none"), 0)
    end
  end
  local spec = sweep.load(spec_path)
  local runs = sweep.select(sweep.expand(spec, { root = options.root, set = options.set }), options.only)
  if #runs == 0 then
    error("distill sweep: --only matches no run of " .. positional[1], 0)
  end
  local program, shown = command.program()
  if emit_mode then
    local emit = require "distill.sweep.emit"
    local target = out
    if output then
      target = io.open(output, "w")
      if not target then
        error("distill sweep: cannot write " .. output, 0)
      end
    end
    local opts = { program = shown, threads = threads, ranks = ranks, sbatch = options.sbatch }
    emit[emit_mode](spec, runs, opts, target, io.stderr)
    if output then
      target:close()
      out:write("wrote ", output, "\n")
    end
    return 0
  end
  return require("distill.sweep.runner").run(spec, runs, {
    program = program, jobs = jobs, threads = threads, ranks = ranks, out = out,
    dry_run = options.dry_run,
  })
end

return command

-- distill.sweep.emit: a sweep's pending runs as command lines, or as a
-- Slurm job-array script (one array task per run).
--
--   local emit = require "distill.sweep.emit"
--   emit.commands(spec, runs, {program = {"scripts/distill"}}, out, err)
--   emit.slurm(spec, runs, {program = {"scripts/distill"}, threads = 4, ranks = 2,
--                           sbatch = {"--time=24:00:00"}}, out, err)
--
-- Pending: every run that is not finished, in the sweep's order; a run
-- that has started is continued with --resume. Runs whose directory holds
-- other settings, and runs whose teacher checkpoint is missing, are named
-- on `err` (the latter still emitted: a cluster may train the teachers
-- first, e.g. `sbatch --dependency=afterok:<teacher job>`).
local state = require "distill.sweep.state"

local emit = {}

-- The pending runs and their states; notes on err.
local function pending(spec, runs, err)
  local list = {}
  for _, run in ipairs(runs) do
    local st = state.of(run)
    if st.status == "conflict" or st.status == "running" then
      err:write("note: ", st.reason, " (left out)\n")
    elseif st.status ~= "done" then
      local missing = state.missing_teacher(run, spec)
      if missing then
        err:write("note: ", run.dir, ": ", missing, "\n")
      end
      list[#list + 1] = { run = run, state = st }
    end
  end
  return list
end

local function launch_of(opts)
  if type(opts) ~= "table" or type(opts.program) ~= "table" then
    error("emit: expected options {program = {...}}", 3)
  end
  local ranks = opts.ranks or 1
  return { program = opts.program, prefix = ranks > 1 and { "mpirun", "-np", tostring(ranks) } or nil },
    ranks
end

--- One shell command line per pending run.
function emit.commands(spec, runs, opts, out, err)
  local launch = launch_of(opts)
  for _, item in ipairs(pending(spec, runs, err or io.stderr)) do
    out:write(state.shell_line(state.command(item.run, item.state, launch)), "\n")
  end
end

--- A bash script for sbatch: #SBATCH --array=0-(K-1) over the K pending
-- runs, a case table of their commands; each run's output goes to its
-- console.log. opts.threads: cpus-per-task (default 4); opts.ranks: MPI
-- ranks per run (mpirun -np R); opts.sbatch: extra #SBATCH options.
function emit.slurm(spec, runs, opts, out, err)
  local launch, ranks = launch_of(opts)
  local threads = opts.threads or 4
  local list = pending(spec, runs, err or io.stderr)
  if #list == 0 then
    (err or io.stderr):write("sweep ", spec.name, ": every run is finished; no script written\n")
    return 0
  end
  local w = state.shell_word
  local lines = {
    "#!/bin/bash",
    ("# distill sweep %s (%s): %d pending run%s of %d, one array task each."):format(spec.name,
      spec.path, #list, #list == 1 and "" or "s", #runs),
    "# Submit from the directory the paths below are relative to: sbatch <this file>",
    "#SBATCH --job-name=" .. spec.name,
    ("#SBATCH --array=0-%d"):format(#list - 1),
    "#SBATCH --ntasks=" .. ranks,
    "#SBATCH --cpus-per-task=" .. threads,
    "#SBATCH --output=slurm-%A_%a.out",
  }
  for _, option in ipairs(opts.sbatch or {}) do
    lines[#lines + 1] = "#SBATCH " .. option
  end
  lines[#lines + 1] = "set -euo pipefail"
  lines[#lines + 1] = ('export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-%d}"'):format(threads)
  lines[#lines + 1] = 'export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"'
  lines[#lines + 1] = 'case "${SLURM_ARRAY_TASK_ID:?run this script with sbatch}" in'
  for i, item in ipairs(list) do
    local run = item.run
    local args = state.command(run, { status = "new" }, { program = {} })
    table.remove(args, 1)                        -- the mode, given apart
    args[#args], args[#args - 1] = nil, nil      -- --progress lines, added below
    local words = {}
    for k, a in ipairs(args) do
      words[k] = w(a)
    end
    lines[#lines + 1] = ("  %d) dir=%s; mode=%s"):format(i - 1, w(run.dir), run.mode)
    lines[#lines + 1] = ("     args=(%s) ;;"):format(table.concat(words, " "))
  end
  lines[#lines + 1] = '  *) echo "distill sweep: no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;'
  lines[#lines + 1] = "esac"
  lines[#lines + 1] = 'mkdir -p "$dir"'
  lines[#lines + 1] = 'if [ -f "$dir/summary.json" ]; then echo "$dir: finished already"; exit 0; fi'
  lines[#lines + 1] = 'if [ -f "$dir/run.json" ]; then args=(--resume "$dir"); fi'
  lines[#lines + 1] = 'echo "== $(date -u +%FT%TZ) slurm job '
    .. '${SLURM_ARRAY_JOB_ID:-?}_${SLURM_ARRAY_TASK_ID}" '
    .. '>> "$dir/console.log"'
  local prefix = {}
  for _, part in ipairs(launch.prefix or {}) do
    prefix[#prefix + 1] = w(part)
  end
  for _, part in ipairs(launch.program) do
    prefix[#prefix + 1] = w(part)
  end
  lines[#lines + 1] = ('%s "$mode" "${args[@]}" --progress lines >> "$dir/console.log" 2>&1'):format(
    table.concat(prefix, " "))
  out:write(table.concat(lines, "\n"), "\n")
  return 0
end

return emit

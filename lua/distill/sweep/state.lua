-- distill.sweep.state: where each run of a sweep stands, read from its run
-- directory, and the command that takes it further.
--
--   local state = require "distill.sweep.state"
--   local st = state.of(run)   --> {status = "done" | "resume" | "new" | "conflict" | "running",
--                                   summary =, reason =, pid =}
--   state.missing_teacher(run, spec)   --> nil, or what to run first
--   state.command(run, st, {program = {"lua5.4", "scripts/distill"}, prefix = {"mpirun", "-np", "2"}})
--
-- done: summary.json says every epoch ran. resume: the run started
-- (run.json) and stopped early, or crashed; `--resume` continues it from
-- its last completed epoch (from scratch when it had none). new: nothing
-- of it yet, or only the output of an attempt that failed before training
-- began. conflict: the directory holds a run of other settings, which the
-- sweep never overwrites. running: another sweep's child is training it
-- now (its id in <run dir>/sweep.pid, and the process still runs it).
local files = require "distill.files"
local json = require "distill.json"

local state = {}

-- A JSON file of a run directory: its table, nil when absent, and the
-- reason when it is not a JSON object.
local function read_json(path)
  local ok, value = pcall(json.read, path)
  if not ok then
    return nil, tostring(value)
  elseif value ~= nil and type(value) ~= "table" then
    return nil, path .. " is not a JSON object"
  end
  return value
end

local function same_list(a, b)
  if #a ~= #b then
    return false
  end
  for i = 1, #a do
    if tostring(a[i]) ~= tostring(b[i]) then
      return false
    end
  end
  return true
end

--- The file in which the runner keeps the id of the process training a run.
function state.pid_file(run)
  if type(run) ~= "table" or type(run.dir) ~= "string" then
    error("state.pid_file: expected a run of sweep.expand", 2)
  end
  return run.dir .. "/sweep.pid"
end

-- Does a command line (its arguments) train run? Either it names the run's
-- directory exactly (--resume DIR, --set run_dir=DIR), or it starts the
-- run's config with exactly the run's --set values (runs that keep their
-- config's run_dir).
local function trains(args, run)
  local sets, has_config = {}, false
  for i, arg in ipairs(args) do
    if arg == run.dir or arg == "run_dir=" .. run.dir then
      return true
    end
    has_config = has_config or arg == run.config_path
    if arg == "--set" and args[i + 1] then
      sets[#sets + 1] = args[i + 1]
    end
  end
  return has_config and type(run.overrides) == "table" and same_list(sets, run.overrides)
end

-- The id of a live process that trains run (Linux's /proc), or nil. The
-- file outlives its process when a sweep is killed, and the kernel reuses
-- ids: the process counts only while its command line trains this very run,
-- so neither a dead process, nor an unrelated one that got the id, nor a
-- sibling run whose name starts the same, blocks the run.
local function running_pid(run)
  local text = files.read(state.pid_file(run))
  local pid = text and text:match("^%s*(%d+)%s*$")
  local cmdline = pid and files.read("/proc/" .. pid .. "/cmdline")
  if not cmdline then
    return nil
  end
  local args = {}
  for arg in cmdline:gmatch("%Z+") do
    args[#args + 1] = arg
  end
  return trains(args, run) and tonumber(pid) or nil
end

--- The state of a run of sweep.expand.
function state.of(run)
  if type(run) ~= "table" or type(run.dir) ~= "string" then
    error("state.of: expected a run of sweep.expand", 2)
  end
  local dir = run.dir
  local pid = running_pid(run)
  if pid then
    return { status = "running", pid = pid,
      reason = ("%s is being trained by process %d (another sweep?)"):format(dir, pid) }
  end
  local info, bad = read_json(dir .. "/run.json")
  if bad then
    return { status = "conflict", reason = bad }
  end
  if not info then
    if files.exists(dir .. "/last.safetensors") or files.exists(dir .. "/metrics.jsonl") then
      return { status = "conflict", reason = dir .. " holds files of a run but no run.json" }
    end
    return { status = "new" }
  end
  local stored = type(info.overrides) == "table" and info.overrides or {}
  if not same_list(stored, run.overrides) then
    return { status = "conflict", reason = ("%s was started with other settings (--set %s; the sweep "
      .. "wants --set %s): move it away or change the sweep"):format(dir, table.concat(stored, " "),
      table.concat(run.overrides, " ")) }
  end
  local summary = read_json(dir .. "/summary.json")
  if summary and (summary.epochs_done or 0) >= (summary.epochs or math.huge) then
    return { status = "done", summary = summary }
  end
  return { status = "resume" }
end

-- The config (next to the pair's config) whose run writes `checkpoint`.
local function teacher_config(run)
  local lfs = require "lfs"
  local config = require "distill.config"
  local run_dir = require "distill.run_dir"
  local folder = run.config_path:match("^(.*)/[^/]*$") or "."
  local wanted = run.cfg.teacher.checkpoint:match("^(.*)/[^/]*$")
  if not wanted then
    return nil
  end
  local names = {}
  local ok = pcall(function()
    for name in lfs.dir(folder) do
      if name:match("%.lua$") then
        names[#names + 1] = name
      end
    end
  end)
  if not ok then
    return nil
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local loaded, cfg = pcall(config.load, folder .. "/" .. name)
    if loaded and cfg.teacher == false then
      local dir = cfg.run_dir ~= false and cfg.run_dir or run_dir.default(cfg)
      if dir == wanted then
        return folder .. "/" .. name
      end
    end
  end
  return nil
end

--- nil when the run has its teacher (or needs none); else the message that
-- says which checkpoint is missing and what trains it.
function state.missing_teacher(run, spec)
  if type(run) ~= "table" or type(run.cfg) ~= "table" then
    error("state.missing_teacher: expected a run of sweep.expand", 2)
  end
  if run.mode ~= "distill" then
    return nil
  end
  local cfg = run.cfg
  local needs = require("distill.distillers").needs(cfg.methods[cfg.method])
  if not needs.teacher or files.exists(cfg.teacher.checkpoint) then
    return nil
  end
  local how = {}
  if spec and spec.teachers then
    how[#how + 1] = spec.teachers:match("%.lua$") and ("distill sweep " .. spec.teachers) or spec.teachers
  end
  local trains = teacher_config(run)
  if trains then
    how[#how + 1] = "distill train " .. trains
  end
  return ("teacher checkpoint %s is missing%s"):format(cfg.teacher.checkpoint,
    #how > 0 and ("; train the teacher first: " .. table.concat(how, " or ")) or "")
end

--- The argv that starts (new) or continues (resume) a run.
-- launch.program: the distill command as a list ({"scripts/distill"});
-- launch.prefix: what goes before it ({"mpirun", "-np", "4"}).
function state.command(run, st, launch)
  if type(run) ~= "table" or type(run.dir) ~= "string" or type(st) ~= "table"
    or type(launch) ~= "table" or type(launch.program) ~= "table" then
    error("state.command: expected (run of sweep.expand, its state, {program = {...}})", 2)
  end
  local argv = {}
  for _, part in ipairs(launch.prefix or {}) do
    argv[#argv + 1] = part
  end
  for _, part in ipairs(launch.program) do
    argv[#argv + 1] = part
  end
  argv[#argv + 1] = run.mode
  if st.status == "resume" then
    argv[#argv + 1] = "--resume"
    argv[#argv + 1] = run.dir
  else
    argv[#argv + 1] = run.config_path
    for _, o in ipairs(run.overrides) do
      argv[#argv + 1] = "--set"
      argv[#argv + 1] = o
    end
  end
  argv[#argv + 1] = "--progress"
  argv[#argv + 1] = "lines"
  return argv
end

--- A word quoted for a POSIX shell when it needs it.
function state.shell_word(word)
  word = tostring(word)
  if word:match("^[%w_./:=,+@%%-]+$") then
    return word
  end
  return "'" .. word:gsub("'", "'\\''") .. "'"
end

--- argv as one shell command line.
function state.shell_line(argv)
  local words = {}
  for i, w in ipairs(argv) do
    words[i] = state.shell_word(w)
  end
  return table.concat(words, " ")
end

return state

-- distill.sweep.runner: runs a sweep's runs here, N at a time, as child
-- processes of the distill command.
--
--   local runner = require "distill.sweep.runner"
--   local code = runner.run(spec, runs, {jobs = 2, program = {"lua5.4", "scripts/distill"}})
--
-- Each child writes to <run dir>/console.log and gets OMP_NUM_THREADS =
-- max(1, cores // (jobs * ranks)). Finished runs are skipped, interrupted
-- ones resumed, and a failing run does not stop the others. A run that
-- another sweep's child trains (state "running": <run dir>/sweep.pid, kept
-- by the runner while its child runs) is left alone. SIGINT/SIGTERM
-- (Ctrl-C) stop the sweep: the children get SIGINT and leave their last
-- completed epoch as a checkpoint (a second signal, or 30 s, sends SIGTERM);
-- the sweep waits for them, says what is left and returns 130. Rerunning
-- the same command continues.
-- Returns the exit code (0 all done, 1 a run failed, 130 stopped) and the
-- tally {done =, failed =, skipped =, stopped =, not_started =, elsewhere =, failures = {...},
-- left = {names of the runs a stop left}}.
local distill = require "distill"
local state = require "distill.sweep.state"
local log = require "distill.log"
local files = require "distill.files"

local runner = {}

local process = distill.core.process
local STOP_GRACE = 30      -- seconds between SIGINT and SIGTERM to children
local LOG_TAIL = 8         -- lines of a failed run's console.log in the summary

-- mkdir -p without a shell: os.execute would ignore a Ctrl-C that comes
-- while it runs.
local function mkdir_p(path)
  local lfs = require "lfs"
  local current = path:sub(1, 1) == "/" and "" or "."
  for part in path:gmatch("[^/]+") do
    current = current .. "/" .. part
    if lfs.attributes(current, "mode") == nil then
      local ok, err = lfs.mkdir(current)
      if not ok and lfs.attributes(current, "mode") ~= "directory" then
        error(("sweep: cannot create directory %s: %s"):format(current, tostring(err)), 0)
      end
    end
  end
end

local function append(path, text)
  local f = io.open(path, "a")
  if f then
    f:write(text)
    f:close()
  end
end

local function tail(path, n)
  local f = io.open(path, "r")
  if not f then
    return {}
  end
  local lines = {}
  for line in f:lines() do
    lines[#lines + 1] = line
    if #lines > n then
      table.remove(lines, 1)
    end
  end
  f:close()
  return lines
end

--- Threads per child: max(1, cores // (jobs * ranks)).
function runner.threads_per_run(jobs, ranks, cores)
  cores = cores or process.cpu_count()
  return math.max(1, cores // (jobs * (ranks or 1)))
end

local function check_options(opts)
  if type(opts) ~= "table" or type(opts.program) ~= "table" or #opts.program == 0 then
    error("runner.run: expected options {program = {...}, jobs =, ...}", 3)
  end
  local jobs = opts.jobs or 1
  if math.type(jobs) ~= "integer" or jobs < 1 then
    error("runner.run: jobs must be a positive integer, got " .. tostring(jobs), 3)
  end
  return jobs
end

--- Runs the runs of sweep.expand (see the module comment). opts: program
-- (argv list of the distill command), jobs (default 1), threads (per run;
-- default from the cores), ranks (mpirun -np per run), out (default
-- io.stdout), dry_run (print the plan only).
function runner.run(spec, runs, opts)
  local jobs = check_options(opts)
  local out = opts.out or io.stdout
  local ranks = opts.ranks or 1
  local launch = { program = opts.program,
                   prefix = ranks > 1 and { "mpirun", "-np", tostring(ranks) } or nil }
  local total = runs[1] and runs[1].of or 0
  local width = #tostring(total)
  local function say(run, word, text)
    out:write(("[%" .. width .. "d/%d] %-8s %s%s\n"):format(run.index, total, word,
      spec.run_dirs == "config" and run.dir or (spec.name .. "/" .. run.name), text or ""))
    out:flush()
  end

  local tally = { done = 0, failed = 0, skipped = 0, stopped = 0, not_started = 0, elsewhere = 0,
    failures = {}, left = {} }
  local queue = {}
  for _, run in ipairs(runs) do
    local st = state.of(run)
    if st.status == "done" then
      tally.skipped = tally.skipped + 1
    elseif st.status == "running" then
      tally.elsewhere = tally.elsewhere + 1
    elseif st.status == "conflict" then
      tally.failed = tally.failed + 1
      tally.failures[#tally.failures + 1] = { run = run, reason = st.reason }
    else
      queue[#queue + 1] = { run = run, state = st }
    end
  end
  local resuming = 0
  for _, item in ipairs(queue) do
    resuming = resuming + (item.state.status == "resume" and 1 or 0)
  end
  -- fewer runs than jobs: the cores go to the runs there are
  local threads = opts.threads or runner.threads_per_run(math.min(jobs, math.max(#queue, 1)), ranks)
  local env = { OMP_NUM_THREADS = tostring(threads) }
  if not os.getenv("OMP_WAIT_POLICY") then
    env.OMP_WAIT_POLICY = "passive"   -- several runs share the cores: idle threads must sleep
  end
  out:write(("sweep %s: %d run%s: %d new, %d to resume, %d finished before%s; %d at a time, "
    .. "%d thread%s each\n"):format(spec.name, #runs, #runs == 1 and "" or "s", #queue - resuming,
      resuming, tally.skipped, #tally.failures > 0 and (", " .. #tally.failures .. " in conflict") or "",
      math.min(jobs, math.max(#queue, 1)), threads, threads == 1 and "" or "s"))
  local function elsewhere(run, st)
    say(run, "running", ("  trained elsewhere (process %d, %s): left alone"):format(st.pid,
      state.pid_file(run)))
  end
  for _, run in ipairs(runs) do
    local st = tally.elsewhere > 0 and not opts.dry_run and state.of(run)
    if st and st.status == "running" then
      elsewhere(run, st)
    end
  end
  if opts.dry_run then
    for _, run in ipairs(runs) do
      local st = state.of(run)
      local note = st.status
      if st.status == "new" or st.status == "resume" then
        local missing = state.missing_teacher(run, spec)
        say(run, missing and "blocked" or note, "\n    " .. state.shell_line(state.command(run, st, launch)))
        if missing then
          out:write("    ", missing, "\n")
        end
      else
        say(run, note, st.reason and ("\n    " .. st.reason) or "")
      end
    end
    return 0, tally
  end

  local started_at = distill.wallclock()
  local running, pids = {}, {}
  local next_item, signals_seen = 1, 0
  local stopping, stop_time, escalated = false, nil, false

  local function start(item)
    local run = item.run
    -- another sweep of the same runs may have started, finished or stopped
    -- this one since the queue was made
    local now = state.of(run)
    if now.status == "running" then
      tally.elsewhere = tally.elsewhere + 1
      elsewhere(run, now)
      return
    elseif now.status == "done" then
      tally.skipped = tally.skipped + 1
      say(run, "skipped", "  finished elsewhere meanwhile")
      return
    elseif now.status == "conflict" then
      tally.failed = tally.failed + 1
      tally.failures[#tally.failures + 1] = { run = run, reason = now.reason }
      say(run, "FAILED", ": " .. now.reason)
      return
    end
    item.state = now
    local missing = state.missing_teacher(run, spec)
    if missing then
      tally.failed = tally.failed + 1
      tally.failures[#tally.failures + 1] = { run = run, reason = missing }
      say(run, "FAILED", ": " .. missing)
      return
    end
    mkdir_p(run.dir)
    local console = run.dir .. "/console.log"
    local argv = state.command(run, item.state, launch)
    append(console, ("== %s distill sweep %s (%s): %s\n"):format(os.date("!%Y-%m-%dT%H:%M:%SZ"),
      spec.path, item.state.status, state.shell_line(argv)))
    local ok, pid = pcall(process.spawn, argv, { output = console, env = env })
    if not ok then
      tally.failed = tally.failed + 1
      tally.failures[#tally.failures + 1] = { run = run, reason = tostring(pid) }
      say(run, "FAILED", ": " .. tostring(pid))
      return
    end
    running[pid] = { run = run, started = distill.wallclock() }
    -- replaces a stale file of a killed sweep; other sweeps read it whole or not at all
    pcall(files.write, state.pid_file(run), pid .. "\n")
    pids[#pids + 1] = pid
    say(run, "start", (" (%s)"):format(item.state.status == "resume" and "resuming" or "new"))
  end

  local function finish(pid, how, code)
    local entry = running[pid]
    running[pid] = nil
    os.remove(state.pid_file(entry.run))
    for i, p in ipairs(pids) do
      if p == pid then
        table.remove(pids, i)
        break
      end
    end
    local run, elapsed = entry.run, log.format_duration(distill.wallclock() - entry.started)
    local st = state.of(run)
    if how == "exit" and code == 0 and st.status == "done" then
      tally.done = tally.done + 1
      local s = st.summary
      say(run, "done", ("  best top-1 %.2f%% (epoch %s), last %.2f%%  %s"):format(s.best_top1 or 0,
        tostring(math.tointeger(s.best_epoch) or s.best_epoch or "?"), s.last_top1 or 0, elapsed))
    elseif stopping then
      tally.stopped = tally.stopped + 1
      tally.left[#tally.left + 1] = run.name
      say(run, "stopped", ("  after %s; resumable"):format(elapsed))
    else
      local reason = how == "exit" and (code == 0 and "ended without finishing its epochs"
        or ("exit code " .. code)) or ("killed by signal " .. tostring(code))
      tally.failed = tally.failed + 1
      tally.failures[#tally.failures + 1] = { run = run, reason = reason, log = run.dir .. "/console.log" }
      say(run, "FAILED", ("  %s after %s (%s/console.log)"):format(reason, elapsed, run.dir))
    end
  end

  local function signal_all(name)
    for pid in pairs(running) do
      pcall(process.signal, pid, name)
    end
  end

  local function check_stop()
    local count, last = process.stop_signals()
    if count > signals_seen then
      signals_seen = count
      if not stopping then
        stopping, stop_time = true, distill.wallclock()
        out:write(("sweep: SIG%s: stopping %d running run%s (they keep their last epoch) ...\n")
          :format(last or "INT", #pids, #pids == 1 and "" or "s"))
        signal_all("INT")
      elseif not escalated then
        escalated = true
        out:write("sweep: second signal: terminating the running runs now\n")
        signal_all("TERM")
      end
      out:flush()
    end
    if stopping and not escalated and distill.wallclock() - stop_time > STOP_GRACE then
      escalated = true
      signal_all("TERM")
    end
  end

  process.watch_stop_signals(true)
  local ok, err = pcall(function()
    while true do
      check_stop()
      while not stopping and #pids < jobs and next_item <= #queue do
        start(queue[next_item])
        next_item = next_item + 1
        check_stop()
      end
      if #pids == 0 and (stopping or next_item > #queue) then
        break
      end
      if #pids > 0 then
        local pid, how, code = process.wait(pids, 0.5)
        if pid then
          finish(pid, how, code)
        end
      end
    end
  end)
  if not ok then
    signal_all("TERM")
    for pid, entry in pairs(running) do
      pcall(process.wait, { pid }, 5)
      os.remove(state.pid_file(entry.run))
    end
  end
  process.watch_stop_signals(false)
  if not ok then
    error(err, 0)
  end

  tally.not_started = #queue - (next_item - 1)
  local wall = log.format_duration(distill.wallclock() - started_at)
  out:write(("sweep %s: %d done, %d failed, %d skipped (finished before)%s%s; wall %s\n"):format(
    spec.name, tally.done, tally.failed, tally.skipped,
    tally.elsewhere > 0 and (", %d running elsewhere"):format(tally.elsewhere) or "",
    stopping and (", %d stopped, %d not started"):format(tally.stopped, tally.not_started) or "", wall))
  for _, f in ipairs(tally.failures) do
    out:write(("failed: %s: %s\n"):format(f.run.dir, f.reason))
    for _, line in ipairs(f.log and tail(f.log, LOG_TAIL) or {}) do
      out:write("    | ", line, "\n")
    end
  end
  if stopping then
    for i = next_item, #queue do
      tally.left[#tally.left + 1] = queue[i].run.name
    end
    local shown = { table.unpack(tally.left, 1, math.min(#tally.left, 12)) }
    out:write(("sweep: stopped; %d run%s left: %s%s. Run the same command again to continue.\n"):format(
      #tally.left, #tally.left == 1 and "" or "s", table.concat(shown, ", "),
      #tally.left > #shown and (" and %d more"):format(#tally.left - #shown) or ""))
    return 130, tally
  end
  return tally.failed > 0 and 1 or 0, tally
end

return runner

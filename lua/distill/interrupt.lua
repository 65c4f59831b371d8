-- distill.interrupt: Ctrl-C (SIGINT) as a Lua error that every part of
-- distill recognises, over the binding distill.core.interrupt.
--
--   local interrupt = require "distill.interrupt"
--   local was_on = interrupt.enable()   -- each Ctrl-C now raises interrupt.MESSAGE
--   interrupt.held(fn, ...)             -- fn runs whole; a Ctrl-C meanwhile is raised after it
--   interrupt.is_interrupt(err)         -- did this error come from a Ctrl-C?
--   interrupt.stop(message)             -- raise a Stopped error (exit status 130)
--
-- The binding's handler stays installed (lua.c's resets itself after the
-- first Ctrl-C, so a second one kills the process). A sweep runner that
-- watches SIGINT itself (distill.core.process.watch_stop_signals) replaces
-- the handler while it watches and gives it back after, so the two never
-- compete.
local core = require "distill.core"

local C = core.interrupt

local interrupt = {
  MESSAGE = C.MESSAGE,
  EXIT_CODE = 130,   -- 128 + SIGINT, what a shell reports for a Ctrl-C
}

--- Installs the handler (idempotent); returns whether it was installed before.
function interrupt.enable()
  local was = C.installed()
  C.install()
  return was
end

--- Puts back the SIGINT handling from before enable().
function interrupt.disable()
  C.uninstall()
end

--- Is the handler installed?
function interrupt.enabled()
  return C.installed()
end

--- The number of Ctrl-Cs received since the last clear().
function interrupt.pending()
  return C.pending()
end

--- Forgets received Ctrl-Cs (and one not raised yet); returns their number.
function interrupt.clear()
  return C.clear()
end

--- Runs fn(...) with Ctrl-C held: a Ctrl-C meanwhile is counted and raised
-- at the first Lua instruction after fn returns (so that a checkpoint and
-- the metrics of an epoch are written whole). Returns fn's results.
function interrupt.held(fn, ...)
  if type(fn) ~= "function" then
    error(("interrupt.held: argument #1: expected a function, got %s"):format(type(fn)), 2)
  end
  local was = C.hold(true)
  local results = table.pack(pcall(fn, ...))
  C.hold(was)
  if not results[1] then
    error(results[2], 0)
  end
  return table.unpack(results, 2, results.n)
end

-- A stop asked for by the user: the message to show and the exit status.
local Stopped = {}
Stopped.__index = Stopped
Stopped.__tostring = function(self) return self.message end
interrupt.Stopped = Stopped

--- Raises a Stopped error carrying `message` (shown as is, exit status 130).
function interrupt.stop(message)
  if type(message) ~= "string" then
    error(("interrupt.stop: argument #1: expected a message string, got %s"):format(type(message)), 2)
  end
  error(setmetatable({ message = message, code = interrupt.EXIT_CODE }, Stopped), 0)
end

--- Is err a Stopped error?
function interrupt.is_stopped(err)
  return getmetatable(err) == Stopped
end

--- Did err come from a Ctrl-C? The interrupt error itself, a Stopped error,
-- or any error raised while a Ctrl-C is pending (library code may have
-- caught the interrupt and raised its own error with it inside).
function interrupt.is_interrupt(err)
  if err == C.MESSAGE or getmetatable(err) == Stopped then
    return true
  end
  return C.pending() > 0
end

return interrupt

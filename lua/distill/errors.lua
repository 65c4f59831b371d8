-- distill.errors: errors as the `distill` command shows them.
--
--   local errors = require "distill.errors"
--   xpcall(fn, errors.capture)          -- keeps the traceback of the error for --debug
--   errors.traceback_of(err)            -- that traceback, or nil
--   errors.display(err)                 -- the message without distill's own file:line
--
-- A message raised by error("...") in distill's Lua files starts with the
-- file and line it was raised at (".../lua/distill/trainer.lua:88: "): to
-- a user that is noise, so display() drops it. Positions in other files
-- (a user's script, a config) stay: they say where the user's mistake is.
-- `distill --debug` prints the full traceback instead.
local errors = {}

-- The folders of distill's own Lua files, each ending in "/": this file's
-- folder (lua/distill, or the installed distill/ that holds models/ and
-- data/ too) and, in a checkout, its models/ and data/.
local function source_dirs()
  local dirs = {}
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
  if here then
    dirs[#dirs + 1] = here .. "/"
  end
  local ok, checkout = pcall(require, "distill.checkout")
  if ok and type(checkout) == "table" and checkout.root then
    dirs[#dirs + 1] = checkout.root .. "/lua/distill/"
    dirs[#dirs + 1] = checkout.root .. "/models/"
    dirs[#dirs + 1] = checkout.root .. "/data/"
  end
  return dirs
end

local SOURCE_DIRS = source_dirs()

local function ends_with(s, tail)
  return tail == "" or s:sub(-#tail) == tail
end

--- Is `shown` (a chunk name as Lua prints it in a position: a path, or
-- "..." and the end of a long one) one of distill's own Lua files?
function errors.is_distill_file(shown)
  if type(shown) ~= "string" then
    error("errors.is_distill_file: argument #1: expected a file name, got " .. type(shown), 2)
  end
  local tail = shown:match("^%.%.%.(.*)$")
  for _, dir in ipairs(SOURCE_DIRS) do
    if not tail then
      if shown:sub(1, #dir) == dir then
        return true
      end
    else
      -- the visible tail starts inside the path: some prefix of it up to a
      -- "/" must be the end of one of the folders
      local from = 1
      while true do
        local slash = tail:find("/", from, true)
        if not slash then
          break
        end
        -- (more than the "/" alone: some of the folder's name must show)
        if slash > 1 and ends_with(dir, tail:sub(1, slash)) then
          return true
        end
        from = slash + 1
      end
    end
  end
  return false
end

--- The message of err for a user: a string without the leading positions
-- of distill's own files; error objects through tostring.
function errors.display(err)
  local message
  if type(err) == "string" then
    message = err
  elseif type(err) == "table" or type(err) == "userdata" then
    local mt = getmetatable(err)
    message = (type(mt) == "table" and mt.__tostring) and tostring(err)
      or ("(error object is a %s value)"):format(type(err))
  else
    message = tostring(err)
  end
  while true do
    local file, rest = message:match("^([^\n]-%.lua):%d+: (.*)$")
    if not file or not errors.is_distill_file(file) then
      break
    end
    message = rest
  end
  return message
end

-- The last error capture() saw and its traceback.
local last = { err = nil, traceback = nil }

--- An xpcall message handler: records where err was raised (the first
-- capture of the same error wins, so a rethrow keeps the original place)
-- and returns err unchanged.
function errors.capture(err)
  if not (last.traceback and rawequal(last.err, err)) then
    last.err = err
    last.traceback = debug.traceback(type(err) == "string" and err or errors.display(err), 2)
  end
  return err
end

--- The traceback capture() recorded for err, or nil.
function errors.traceback_of(err)
  if rawequal(last.err, err) then
    return last.traceback
  end
  return nil
end

return errors

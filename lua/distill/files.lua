-- distill.files: whole files in and out, for run directories, configs and
-- dataset probes.
--
--   local files = require "distill.files"
--   files.write("runs/x/summary.json", text)   -- all or nothing: tmp file + rename
--   local text = files.read("runs/x/run.json") -- nil (and the reason) when unreadable
--   files.exists("data/cifar100/train.bin")
--   files.mkdir("runs/x")                      -- with parents, like mkdir -p
local files = {}

local function check_path(fn, path)
  if type(path) ~= "string" or path == "" then
    error(("files.%s: expected a path (a non-empty string), got %s"):format(fn, type(path)), 3)
  end
end

--- The whole content of path, or nil and the reason.
function files.read(path)
  check_path("read", path)
  local f, err = io.open(path, "rb")
  if not f then
    return nil, err
  end
  local text = f:read("a")
  f:close()
  return text
end

--- Writes text to path through a temporary file and a rename, so that a
-- reader never sees half a file.
function files.write(path, text)
  check_path("write", path)
  if type(text) ~= "string" then
    error(("files.write: %s: expected the text (a string), got %s"):format(path, type(text)), 2)
  end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then
    error("files.write: cannot write " .. tostring(err), 2)
  end
  f:write(text)
  f:close()
  local ok, rename_err = os.rename(tmp, path)
  if not ok then
    error("files.write: cannot rename " .. tmp .. ": " .. tostring(rename_err), 2)
  end
end

--- Does path exist (a file, or a directory)?
function files.exists(path)
  check_path("exists", path)
  local f = io.open(path, "rb")
  if f then
    f:close()
    return true
  end
  return false
end

--- Creates the directory path and its missing parents.
function files.mkdir(path)
  check_path("mkdir", path)
  local ok = os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
  if not ok then
    error("files.mkdir: cannot create directory " .. path, 2)
  end
end

return files

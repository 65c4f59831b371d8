-- distill.checkout: a source checkout serves distill.models.* and
-- distill.data.* from its top-level models/ and data/ folders.
--
-- Installed (luarocks make), those folders sit under distill/ on
-- package.path and this module finds no checkout and does nothing. In a
-- checkout, lua/distill/ holds only the library, so a package searcher
-- maps distill.models.<name> to models/<name>.lua (or models/<name>/init.lua)
-- and distill.data.<name> to data/..., relative to the lua/ folder this file
-- was loaded from. It runs once per Lua state, from `require "distill"`,
-- scripts/distill and the specs' busted helper (.busted); requiring it
-- again changes nothing.
--
--   require "distill.checkout"    -- then require "distill.data.cifar" works
local files = require "distill.files"

local checkout = {}

local FOLDERS = { models = true, data = true }

-- require passes the file it loads this chunk from as the second argument
local loaded_from = select(2, ...)

local function this_file()
  if type(loaded_from) == "string" then
    return loaded_from
  end
  return debug.getinfo(1, "S").source:match("^@(.*)$")
end

-- The checkout's root: the folder holding lua/distill/, models/ and data/.
local function find_root(file)
  if not file then
    return nil
  end
  local root = file:match("^(.*)/lua/distill/checkout%.lua$")
  if not root and file:match("^lua/distill/checkout%.lua$") then
    root = "."
  end
  if root and files.exists(root .. "/models/init.lua") and files.exists(root .. "/data/init.lua") then
    return root
  end
  return nil
end

-- The checkout's folder, absolute: paths built from it (the shipped
-- teacher a config names) must not depend on where distill runs.
local function absolute(path)
  if not path or path:sub(1, 1) == "/" then
    return path
  end
  path = path == "." and "" or path
  local ok, lfs = pcall(require, "lfs")
  local cwd = ok and lfs.currentdir()
  if not cwd then
    return path
  end
  return cwd .. "/" .. path
end

-- a/b/../c -> a/c, a/./b -> a/b
local function normal(path)
  if not path then
    return nil
  end
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." and #parts > 0 and parts[#parts] ~= ".." then
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return (path:sub(1, 1) == "/" and "/" or "") .. table.concat(parts, "/")
end

checkout.root = normal(absolute(find_root(this_file())))

--- The file of module `name` in the checkout's models/ or data/ folder:
-- the path, or nil and Lua's "no file" lines.
function checkout.search(name)
  if type(name) ~= "string" then
    error("distill.checkout.search: expected a module name, got " .. type(name), 2)
  end
  local folder, rest = name:match("^distill%.([%w_]+)(.*)$")
  if not checkout.root or not FOLDERS[folder] or (rest ~= "" and rest:sub(1, 1) ~= ".") then
    return nil, ""
  end
  local dir = checkout.root .. "/" .. folder
  local module = rest == "" and "init" or rest:sub(2)
  return package.searchpath(module, dir .. "/?.lua;" .. dir .. "/?/init.lua")
end

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- The output of a git command in dir, nil when git is missing or fails.
local function git(dir, args)
  local p = io.popen(("git -C %s %s 2>/dev/null"):format(shell_quote(dir), args))
  if not p then
    return nil
  end
  local out = p:read("a")
  local ok = p:close()
  return ok and out or nil
end

--- The git commit of the checkout at dir (default: this one's root) and
-- whether tracked files differ from it: {commit = "<40 hex>", dirty =
-- true|false}, or nil when dir is not the top of a git work tree (an
-- installed rock, an unpacked tarball) or git is not installed.
function checkout.git_state(dir)
  dir = dir == nil and checkout.root or dir
  if dir == nil then
    return nil
  end
  if type(dir) ~= "string" or dir == "" then
    error("distill.checkout.git_state: argument #1: expected a directory (a string), got " .. type(dir), 2)
  end
  -- a checkout without .git inside someone else's repository is not that repository's commit
  if git(dir, "rev-parse --show-prefix") ~= "\n" then
    return nil
  end
  local commit = (git(dir, "rev-parse HEAD") or ""):match("^(%x+)%s*$")
  if not commit then
    return nil
  end
  local status = git(dir, "status --porcelain --untracked-files=no")
  return { commit = commit, dirty = status ~= nil and status:match("%S") ~= nil }
end

local function searcher(name)
  local path, missing = checkout.search(name)
  if not path then
    return missing ~= "" and missing or nil
  end
  local loader, err = loadfile(path)
  if not loader then
    error(("error loading module '%s' from file '%s':\n\t%s"):format(name, path, err), 0)
  end
  return loader, path
end

-- Already added in this Lua state (by an earlier load of this file)?
local function added()
  local source = debug.getinfo(1, "S").source
  for _, s in ipairs(package.searchers) do
    if type(s) == "function" and debug.getinfo(s, "S").source == source then
      return true
    end
  end
  return false
end

-- Second, after package.preload: the checkout's files win over an
-- installed copy of distill, as they would on package.path.
if checkout.root and not added() then
  table.insert(package.searchers, 2, searcher)
end

return checkout

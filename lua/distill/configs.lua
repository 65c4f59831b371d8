-- distill.configs: the configs (and the example teacher) shipped with
-- distill, wherever it runs from: a checkout's scripts/configs and
-- scripts/assets, or the share/ folder the rock installs beside the modules.
--
--   local configs = require "distill.configs"
--   configs.list()                       --> {{name =, path =, description =}, ...}
--   configs.find("cifar100_resnet56_resnet20")   --> its path, or nil
--   configs.asset("fmnist_teacher.safetensors")  --> its path
local checkout = require "distill.checkout"
local files = require "distill.files"

local configs = {}

-- Where the shipped files of a kind ("configs", "assets") are.
function configs.dir(kind)
  if kind ~= "configs" and kind ~= "assets" and kind ~= "sweeps" then
    error(("distill.configs.dir: kind must be \"configs\", \"sweeps\" or \"assets\", got %s")
      :format(tostring(kind)), 2)
  end
  if checkout.root then
    return checkout.root .. "/scripts/" .. kind
  end
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
  return here .. "/share/" .. kind
end

-- The first comment line of a config: what it is.
local function description(path)
  local text = files.read(path) or ""
  return text:match("^%-%-%s*([^\n]*)") or ""
end

--- The shipped configs (or sweeps, kind = "sweeps"), sorted by name.
function configs.list(kind)
  local dir = configs.dir(kind or "configs")
  local list = {}
  local ok, lfs = pcall(require, "lfs")
  if not ok or lfs.attributes(dir, "mode") ~= "directory" then
    return list
  end
  for name in lfs.dir(dir) do
    if name:match("%.lua$") then
      local path = dir .. "/" .. name
      list[#list + 1] = { name = name:gsub("%.lua$", ""), path = path, description = description(path) }
    end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

--- The path of the shipped config called name (with or without .lua), or nil.
function configs.find(name, kind)
  if type(name) ~= "string" then
    error("distill.configs.find: expected a config name, got " .. type(name), 2)
  end
  local path = configs.dir(kind or "configs") .. "/" .. name:gsub("%.lua$", "") .. ".lua"
  return files.exists(path) and path or nil
end

--- The path of a shipped asset (the example teacher), absolute when the
-- checkout or rock location is, so a config that names it works from any
-- directory.
function configs.asset(name)
  if type(name) ~= "string" then
    error("distill.configs.asset: expected a file name, got " .. type(name), 2)
  end
  return configs.dir("assets") .. "/" .. name
end

return configs

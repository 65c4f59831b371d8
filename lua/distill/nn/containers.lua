-- Containers: Sequential, ModuleList, ModuleDict.
-- Children of Sequential and ModuleList are named "0", "1", ... as in
-- PyTorch (so state_dict keys match), while Lua indexing stays 1-based:
-- seq[1] is the child named "0".
local Module = require "distill.nn.module"

local containers = {}

local function list_index(self, key)
  if math.type(key) == "integer" then
    local n = #self._module_order
    local i = key < 0 and n + key + 1 or key
    local name = self._module_order[i]
    return name and self._modules[name]
  end
  return Module.__index(self, key)
end

local function list_len(self)
  return #self._module_order
end

local function make_list_class(name)
  local class = Module.class(name)
  class.__index = list_index
  class.__len = list_len
  return class
end

-- Sequential(m1, m2, ...) or Sequential{m1, m2, ...}
local Sequential = make_list_class("Sequential")

local function module_list_from(args)
  if #args == 1 and type(args[1]) == "table" and not Module.is_module(args[1]) then
    return args[1]
  end
  return args
end

function Sequential:init(...)
  for _, module in ipairs(module_list_from({ ... })) do
    self:append(module)
  end
end

function Sequential:append(module)
  self:add_module(tostring(#self._module_order), module)
  return self
end

-- Walks the registration order directly: no list is built per call.
function Sequential:forward(x, ...)
  local modules = self._modules
  for _, name in ipairs(self._module_order) do
    local module = modules[name]
    if module then
      x = module(x, ...)
    end
  end
  return x
end

containers.Sequential = Sequential

-- ModuleList: holds modules; it has no forward of its own.
local ModuleList = make_list_class("ModuleList")

function ModuleList:init(modules)
  for _, module in ipairs(modules or {}) do
    self:append(module)
  end
end

ModuleList.append = Sequential.append

function ModuleList:extend(modules)
  for _, module in ipairs(modules) do
    self:append(module)
  end
  return self
end

--- for i, module in list:ipairs() do ... end
function ModuleList:ipairs()
  return ipairs(self:children())
end

containers.ModuleList = ModuleList

-- ModuleDict: named modules in insertion order; an entries table given at
-- construction is added in sorted key order (Lua tables have no order).
local ModuleDict = Module.class("ModuleDict")

function ModuleDict:init(entries)
  local names = {}
  for name in pairs(entries or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    self:add_module(name, entries[name])
  end
end

function ModuleDict:keys()
  return table.move(self._module_order, 1, #self._module_order, 1, {})
end

ModuleDict.__len = list_len

containers.ModuleDict = ModuleDict

return containers

-- nn.Module: the base of every layer and model.
--
-- A module owns parameters (tensors that train), buffers (tensors that are
-- state but do not train, like batch-norm running statistics) and child
-- modules, each in registration order. Names are PyTorch's dotted names
-- (`layer1.0.conv1.weight`), so a state_dict maps one to one onto the
-- PyTorch state dict of the same architecture.
--
-- Parameters, buffers and children are read as fields (`self.weight`,
-- `self.layer1`). Assigning a module to a field registers it as a child;
-- assigning a tensor to the name of an existing parameter or buffer
-- replaces it.
local distill = require "distill"

local Module = {}

local metamethods = { "__call", "__tostring", "__len" }

-- Fields are looked up in the class chain first, then in the module's
-- parameters, buffers and children.
local function instance_index(self, key)
  local class = getmetatable(self)
  local value = class[key]
  if value ~= nil then
    return value
  end
  local parameters = rawget(self, "_parameters")
  if parameters then
    value = parameters[key]
    if value ~= nil then
      return value
    end
    value = rawget(self, "_buffers")[key]
    if value ~= nil then
      return value
    end
    return rawget(self, "_modules")[key]
  end
  return nil
end

local function is_module(value)
  local mt = type(value) == "table" and getmetatable(value)
  return mt and mt.__is_module == true or false
end

local function instance_newindex(self, key, value)
  if is_module(value) then
    self:add_module(key, value)
    return
  end
  local parameters, buffers = rawget(self, "_parameters"), rawget(self, "_buffers")
  if parameters and parameters[key] ~= nil then
    self:register_parameter(key, value)
  elseif buffers and buffers[key] ~= nil then
    self:register_buffer(key, value)
  elseif rawget(self, "_modules") and self._modules[key] ~= nil and value == nil then
    self._modules[key] = nil
    for i, name in ipairs(self._module_order) do
      if name == key then
        table.remove(self._module_order, i)
        break
      end
    end
  else
    rawset(self, key, value)
  end
end

--- Makes a class deriving from `parent` (default Module). The class's
-- `init(self, ...)` runs when it is called: `Linear(2, 3)`.
function Module.class(name, parent)
  parent = parent or Module
  local class = {
    __name = name,
    __is_module = true,
    __index = rawget(parent, "__index") or instance_index,
    __newindex = rawget(parent, "__newindex") or instance_newindex,
  }
  for _, m in ipairs(metamethods) do
    class[m] = parent[m]
  end
  return setmetatable(class, {
    __index = parent,
    __call = function(cls, ...)
      local self = setmetatable({
        _parameters = {}, _param_order = {},
        _buffers = {}, _buffer_order = {}, _non_persistent = {},
        _modules = {}, _module_order = {},
        training = true,
      }, cls)
      cls.init(self, ...)
      return self
    end,
  })
end

Module.__is_module = true
Module.is_module = is_module

function Module.init(self)
  -- a plain container; subclasses register their own state
  return self
end

local function append_once(order, name)
  for _, existing in ipairs(order) do
    if existing == name then
      return
    end
  end
  order[#order + 1] = name
end

local function check_name(self, what, name)
  if type(name) ~= "string" or name == "" or name:find(".", 1, true) then
    error(("%s:%s: name must be a non-empty string without dots, got %s"):format(
      self.__name or "Module", what, tostring(name)), 3)
  end
end

function Module:register_parameter(name, tensor)
  check_name(self, "register_parameter", name)
  if tensor ~= nil and not distill.is_tensor(tensor) then
    error(("%s:register_parameter: '%s' must be a tensor or nil, got %s"):format(
      self.__name, name, type(tensor)), 2)
  end
  if tensor ~= nil and not tensor.requires_grad and tensor:dtype() == "float32" then
    tensor.requires_grad = true
  end
  self._parameters[name] = tensor
  append_once(self._param_order, name)
  return tensor
end

function Module:register_buffer(name, tensor, persistent)
  check_name(self, "register_buffer", name)
  if tensor ~= nil and not distill.is_tensor(tensor) then
    error(("%s:register_buffer: '%s' must be a tensor or nil, got %s"):format(
      self.__name, name, type(tensor)), 2)
  end
  self._buffers[name] = tensor
  self._non_persistent[name] = persistent == false or nil
  append_once(self._buffer_order, name)
  return tensor
end

function Module:add_module(name, module)
  name = tostring(name)
  check_name(self, "add_module", name)
  if not is_module(module) then
    error(("%s:add_module: '%s' must be a module, got %s"):format(
      self.__name, name, type(module)), 2)
  end
  self._modules[name] = module
  append_once(self._module_order, name)
  return module
end

--- The forward pass; subclasses define it. `module(x)` calls it.
function Module:forward()
  error(("%s:forward is not implemented"):format(self.__name), 2)
end

function Module:__call(...)
  return self:forward(...)
end

-- ------------------------------------------------------------- traversal

function Module:named_children()
  local list = {}
  for _, name in ipairs(self._module_order) do
    local child = self._modules[name]
    if child then
      list[#list + 1] = { name, child }
    end
  end
  return list
end

-- Called on every forward by containers and models (run_stage), so it
-- builds one table rather than going through named_children's pairs.
function Module:children()
  local list, modules = {}, self._modules
  for _, name in ipairs(self._module_order) do
    local child = modules[name]
    if child then
      list[#list + 1] = child
    end
  end
  return list
end

--- Every module of the tree (self first) with its dotted name, each once.
function Module:named_modules(prefix, memo, list)
  prefix, memo, list = prefix or "", memo or {}, list or {}
  if memo[self] then
    return list
  end
  memo[self] = true
  list[#list + 1] = { prefix, self }
  for _, pair in ipairs(self:named_children()) do
    local child_prefix = prefix == "" and pair[1] or (prefix .. "." .. pair[1])
    pair[2]:named_modules(child_prefix, memo, list)
  end
  return list
end

function Module:modules()
  local list = {}
  for _, pair in ipairs(self:named_modules()) do
    list[#list + 1] = pair[2]
  end
  return list
end

local function named_members(self, order_field, store_field, recurse, filter)
  local list, seen = {}, {}
  local roots = recurse == false and { { "", self } } or self:named_modules()
  for _, pair in ipairs(roots) do
    local prefix, module = pair[1], pair[2]
    for _, name in ipairs(module[order_field]) do
      local tensor = module[store_field][name]
      if tensor and not seen[tensor] and (not filter or filter(module, name)) then
        seen[tensor] = true
        list[#list + 1] = { prefix == "" and name or (prefix .. "." .. name), tensor }
      end
    end
  end
  return list
end

--- {{name, tensor}, ...} in PyTorch's order; shared tensors appear once.
function Module:named_parameters(recurse)
  return named_members(self, "_param_order", "_parameters", recurse)
end

function Module:parameters(recurse)
  local list = {}
  for _, pair in ipairs(self:named_parameters(recurse)) do
    list[#list + 1] = pair[2]
  end
  return list
end

function Module:named_buffers(recurse)
  return named_members(self, "_buffer_order", "_buffers", recurse)
end

function Module:buffers(recurse)
  local list = {}
  for _, pair in ipairs(self:named_buffers(recurse)) do
    list[#list + 1] = pair[2]
  end
  return list
end

--- Total number of elements of the trainable parameters.
function Module:num_parameters()
  local total = 0
  for _, p in ipairs(self:parameters()) do
    if p.requires_grad then
      total = total + p:numel()
    end
  end
  return total
end

-- ------------------------------------------------------------------ modes

function Module:train(mode)
  if mode == nil then
    mode = true
  end
  for _, module in ipairs(self:modules()) do
    rawset(module, "training", mode)
  end
  return self
end

function Module:eval()
  return self:train(false)
end

function Module:zero_grad()
  for _, p in ipairs(self:parameters()) do
    p.grad = nil
  end
end

--- Calls fn(module) on every module, children first, as PyTorch does.
function Module:apply(fn)
  for _, child in ipairs(self:children()) do
    child:apply(fn)
  end
  fn(self)
  return self
end

-- ------------------------------------------------------------ state dicts

-- Calls fn(dotted_name, tensor) for every state_dict entry in order:
-- parameters, then persistent buffers, module by module.
local function each_state_entry(self, fn)
  for _, pair in ipairs(self:named_modules()) do
    local prefix, module = pair[1], pair[2]
    local function visit(name, tensor)
      if tensor then
        fn(prefix == "" and name or (prefix .. "." .. name), tensor)
      end
    end
    for _, name in ipairs(module._param_order) do
      visit(name, module._parameters[name])
    end
    for _, name in ipairs(module._buffer_order) do
      if not module._non_persistent[name] then
        visit(name, module._buffers[name])
      end
    end
  end
end

--- {dotted.name = tensor} of parameters and persistent buffers. The tensors
-- are the module's own (not copies), detached from the graph.
function Module:state_dict()
  local state = {}
  each_state_entry(self, function(name, tensor) state[name] = tensor:detach() end)
  return state
end

--- Names of state_dict entries in order (parameters, then buffers, per module).
function Module:state_dict_keys()
  local keys = {}
  each_state_entry(self, function(name) keys[#keys + 1] = name end)
  return keys
end

local function shape_string(t)
  return "{" .. table.concat(t:shape(), ", ") .. "}"
end

--- Copies values from `state` into the module's tensors. strict (default
-- true): every key must match a parameter or buffer and the other way
-- round. Errors list missing, unexpected and mis-shaped keys; nothing is
-- copied unless the whole dict fits.
function Module:load_state_dict(state, strict)
  if type(state) ~= "table" then
    error(("%s:load_state_dict: expected a table of tensors, got %s"):format(
      self.__name, type(state)), 2)
  end
  strict = strict ~= false
  local own = self:state_dict()
  local missing, unexpected, mismatched = {}, {}, {}
  for _, key in ipairs(self:state_dict_keys()) do
    local value = state[key]
    if value == nil then
      missing[#missing + 1] = key
    elseif not distill.is_tensor(value) then
      mismatched[#mismatched + 1] = key .. " (not a tensor)"
    elseif table.concat(value:shape(), ",") ~= table.concat(own[key]:shape(), ",") then
      mismatched[#mismatched + 1] = ("%s (checkpoint %s, model %s)"):format(
        key, shape_string(value), shape_string(own[key]))
    end
  end
  for key in pairs(state) do
    if own[key] == nil then
      unexpected[#unexpected + 1] = tostring(key)
    end
  end
  table.sort(unexpected)
  local problems = {}
  if #mismatched > 0 then
    problems[#problems + 1] = "shape mismatch: " .. table.concat(mismatched, ", ")
  end
  if strict and #missing > 0 then
    problems[#problems + 1] = "missing keys: " .. table.concat(missing, ", ")
  end
  if strict and #unexpected > 0 then
    problems[#problems + 1] = "unexpected keys: " .. table.concat(unexpected, ", ")
  end
  if #problems > 0 then
    error(("%s:load_state_dict: %s"):format(self.__name, table.concat(problems, "; ")), 2)
  end
  distill.no_grad(function()
    for key, target in pairs(own) do
      local value = state[key]
      if value ~= nil then
        target:copy_(value)
      end
    end
  end)
  return { missing = missing, unexpected = unexpected }
end

-- -------------------------------------------------------------- printing

--- One-line description of the module's own settings (subclasses override).
function Module:extra_repr()
  return ""
end

function Module:__tostring()
  local children = self:named_children()
  local head = self.__name .. "(" .. self:extra_repr()
  if #children == 0 then
    return head .. ")"
  end
  local lines = { head }
  for _, pair in ipairs(children) do
    local text = tostring(pair[2]):gsub("\n", "\n  ")
    -- a numbered child (Sequential, ModuleList) shows its Lua index too:
    -- "[1] (0): ..." is seq[1], named "0" in the state dict (docs/nn.md)
    local position = pair[1]:match("^%d+$") and math.tointeger(tonumber(pair[1]) + 1)
    local ok, indexed = pcall(function() return position and self[position] end)
    local label = (ok and position and rawequal(indexed, pair[2])) and ("[%d] (%s)"):format(position, pair[1])
      or ("(%s)"):format(pair[1])
    lines[#lines + 1] = ("  %s: %s"):format(label, text)
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

Module.__name = "Module"
Module.__index = instance_index
Module.__newindex = instance_newindex

return Module

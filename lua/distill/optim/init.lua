-- distill.optim: SGD, Adam and AdamW over fused C kernels, with torch.optim's
-- semantics (parameter groups, state_dict layout, lazy state).
--
--   local optim = require "distill.optim"
--   local opt = optim.SGD(model:parameters(), {lr = 0.05, momentum = 0.9, weight_decay = 5e-4})
--   opt:zero_grad(); loss:backward(); opt:step()
--   optim.Adam({{params = backbone, lr = 1e-4}, {params = head}}, {lr = 1e-3})
--
-- opt.param_groups[i] holds `params` and the options of group i (lr is read
-- and written by schedulers). opt:state_dict() returns
--   {state = {[k] = {momentum_buffer = t} | {step = n, exp_avg = t, exp_avg_sq = t,
--                   max_exp_avg_sq = t}},
--    param_groups = {{lr = ..., ..., params = {k1, k2, ...}}, ...}}
-- where k counts the parameters over all groups from 1 (torch's layout,
-- 1-based). The schedules of distill.schedule are re-exported here.
local core = require "distill.core"
local schedule = require "distill.schedule"

local kernels = core.optim_kernels
local is_tensor = core.is_tensor

local optim = {}

-- -------------------------------------------------------------- helpers

local sorted_keys = require("distill.registry").sorted_keys

local function shape_str(t)
  return "[" .. table.concat(t:shape(), ", ") .. "]"
end

local function check_keys(fn, opts, valid, extra)
  for k in pairs(opts) do
    if valid[k] == nil and not (extra and extra[k]) then
      local names = sorted_keys(valid)
      if extra then
        for name in pairs(extra) do
          names[#names + 1] = name
        end
      end
      error(string.format("%s: unknown option '%s' (valid: %s)", fn, tostring(k),
        table.concat(names, ", ")), 4)
    end
  end
end

local function check_number(fn, group, key, min)
  local v = group[key]
  if type(v) ~= "number" then
    error(string.format("%s: option '%s' must be a number, got %s", fn, key, type(v)), 4)
  end
  if min and not (v >= min) then
    error(string.format("%s: invalid %s %s (must be >= %s)", fn, key, tostring(v), tostring(min)), 4)
  end
end

local function check_bool(fn, group, key)
  if type(group[key]) ~= "boolean" then
    error(string.format("%s: option '%s' must be a boolean, got %s", fn, key, type(group[key])), 4)
  end
end

-- -------------------------------------------------------- Optimizer base

local Optimizer = {}
Optimizer.__index = Optimizer

-- Keys a group may carry besides the optimizer's options.
local GROUP_EXTRA = {params = true, initial_lr = true}

local function copy_option(v)
  if type(v) == "table" then
    local c = {}
    for k, x in pairs(v) do
      c[k] = x
    end
    return c
  end
  return v
end

local function new_optimizer(class, params, opts)
  local fn = "optim." .. class.name
  opts = opts or {}
  if type(opts) ~= "table" then
    error(fn .. ": options must be a table, got " .. type(opts), 3)
  end
  check_keys(fn, opts, class.defaults)
  local defaults = {}
  for k, v in pairs(class.defaults) do
    defaults[k] = v
  end
  for k, v in pairs(opts) do
    defaults[k] = copy_option(v)
  end
  if type(params) ~= "table" or is_tensor(params) then
    error(fn .. ": params must be a list of tensors or a list of parameter groups, got "
      .. (is_tensor(params) and "a tensor" or type(params)), 3)
  end
  if #params == 0 then
    error(fn .. ": optimizer got an empty parameter list", 3)
  end
  local groups_in = params
  if is_tensor(params[1]) then
    groups_in = {{params = params}}
  end
  local self = setmetatable({defaults = defaults, param_groups = {}, state = {}}, class)
  local seen = {}
  for gi, gin in ipairs(groups_in) do
    if type(gin) ~= "table" or is_tensor(gin) or type(gin.params) ~= "table" then
      error(string.format("%s: parameter group %d must be a table with a 'params' list", fn, gi), 3)
    end
    check_keys(fn, gin, class.defaults, GROUP_EXTRA)
    local group = {params = {}}
    for k, v in pairs(defaults) do
      group[k] = copy_option(v)
    end
    for k, v in pairs(gin) do
      if k ~= "params" then
        group[k] = copy_option(v)
      end
    end
    local plist = is_tensor(gin.params) and {gin.params} or gin.params
    for pi, p in ipairs(plist) do
      if not is_tensor(p) then
        error(string.format("%s: group %d, parameter %d is a %s, not a tensor", fn, gi, pi, type(p)), 3)
      end
      if p:dtype() ~= "float32" then
        error(string.format("%s: group %d, parameter %d is %s; parameters must be float32", fn, gi,
          pi, p:dtype()), 3)
      end
      if seen[p] then
        error(fn .. ": some parameters appear in more than one parameter group (or twice)", 3)
      end
      seen[p] = true
      group.params[#group.params + 1] = p
    end
    class.validate(fn, group)
    self.param_groups[gi] = group
  end
  return self
end

-- Runs closure (if any) with grad enabled and returns its result, then
-- updates every parameter that has a gradient.
function Optimizer:step(closure)
  local loss
  if closure ~= nil then
    loss = core.enable_grad(closure)
  end
  core.no_grad(function()
    for _, group in ipairs(self.param_groups) do
      local kopts = self:_kernel_opts(group)
      for _, p in ipairs(group.params) do
        local g = p.grad
        if g ~= nil then
          local st = self.state[p]
          if st == nil then
            st = {}
            self.state[p] = st
          end
          self:_update(p, g, st, group, kopts)
        end
      end
    end
  end)
  return loss
end

-- set_to_none (default true): p.grad = nil; false: zero the gradients in place.
function Optimizer:zero_grad(set_to_none)
  for _, group in ipairs(self.param_groups) do
    for _, p in ipairs(group.params) do
      if set_to_none == false then
        local g = p.grad
        if g ~= nil then
          g:zero_()
        end
      else
        p.grad = nil
      end
    end
  end
end

function Optimizer:add_param_group(group)
  local fn = "optim." .. self.name .. ":add_param_group"
  if type(group) ~= "table" or type(group.params) ~= "table" then
    error(fn .. ": expected a table with a 'params' list", 2)
  end
  local other = new_optimizer(getmetatable(self), {group}, self.defaults)
  local g = other.param_groups[1]
  for _, existing in ipairs(self.param_groups) do
    for _, p in ipairs(existing.params) do
      for _, q in ipairs(g.params) do
        if p == q then
          error(fn .. ": some parameters appear in more than one parameter group", 2)
        end
      end
    end
  end
  self.param_groups[#self.param_groups + 1] = g
end

function Optimizer:state_dict()
  local state, groups, index = {}, {}, 0
  for gi, group in ipairs(self.param_groups) do
    local g = {params = {}}
    for k, v in pairs(group) do
      if k ~= "params" then
        g[k] = copy_option(v)
      end
    end
    for _, p in ipairs(group.params) do
      index = index + 1
      g.params[#g.params + 1] = index
      local st = self.state[p]
      if st ~= nil and next(st) ~= nil then
        local s = {}
        for k, v in pairs(st) do
          s[k] = v
        end
        state[index] = s
      end
    end
    groups[gi] = g
  end
  return {state = state, param_groups = groups}
end

function Optimizer:load_state_dict(sd)
  local fn = "optim." .. self.name .. ":load_state_dict"
  if type(sd) ~= "table" or type(sd.param_groups) ~= "table" then
    error(fn .. ": expected a table with 'param_groups' (and 'state'), as made by state_dict()", 2)
  end
  local saved_groups = sd.param_groups
  if #saved_groups ~= #self.param_groups then
    error(string.format("%s: the saved state has %d parameter group(s) but the optimizer has %d",
      fn, #saved_groups, #self.param_groups), 2)
  end
  local class = getmetatable(self)
  -- Map saved parameter ids onto our parameters, checking group sizes.
  local param_of = {}
  for gi, group in ipairs(self.param_groups) do
    local sg = saved_groups[gi]
    if type(sg) ~= "table" or type(sg.params) ~= "table" then
      error(string.format("%s: saved group %d has no 'params' list", fn, gi), 2)
    end
    if #sg.params ~= #group.params then
      error(string.format("%s: group %d has %d parameter(s) but the saved group has %d", fn, gi,
        #group.params, #sg.params), 2)
    end
    for k in pairs(sg) do
      if k ~= "params" and class.defaults[k] == nil and not GROUP_EXTRA[k] then
        error(string.format("%s: saved group %d has unknown option '%s' (valid: %s)", fn, gi,
          tostring(k), table.concat(sorted_keys(class.defaults), ", ")), 2)
      end
    end
    for pi, id in ipairs(sg.params) do
      param_of[math.tointeger(tonumber(id)) or id] = group.params[pi]
    end
  end
  -- Check and copy the per-parameter state.
  local new_state = {}
  for id, st in pairs(sd.state or {}) do
    local key = math.tointeger(tonumber(id)) or id
    local p = param_of[key]
    if p == nil then
      error(string.format("%s: saved state refers to parameter %s, which no saved group lists", fn,
        tostring(id)), 2)
    end
    if type(st) ~= "table" then
      error(string.format("%s: state of parameter %s must be a table", fn, tostring(id)), 2)
    end
    local s = {}
    for k, v in pairs(st) do
      local kind = class.state_keys[k]
      if kind == nil then
        error(string.format("%s: state of parameter %s has unknown entry '%s' (valid: %s)", fn,
          tostring(id), tostring(k), table.concat(sorted_keys(class.state_keys), ", ")), 2)
      elseif kind == "tensor" then
        if not is_tensor(v) then
          error(string.format("%s: state of parameter %s: '%s' must be a tensor, got %s", fn,
            tostring(id), k, type(v)), 2)
        end
        if shape_str(v) ~= shape_str(p) then
          error(string.format("%s: state of parameter %s: '%s' has shape %s but the parameter has "
            .. "shape %s", fn, tostring(id), k, shape_str(v), shape_str(p)), 2)
        end
        s[k] = v:to("float32"):contiguous():clone()
      else
        local n = math.tointeger(v)
        if n == nil and is_tensor(v) and v:numel() == 1 then
          n = math.tointeger(v:item())
        end
        if n == nil or n < 0 then
          error(string.format("%s: state of parameter %s: '%s' must be a non-negative integer", fn,
            tostring(id), k), 2)
        end
        s[k] = n
      end
    end
    new_state[p] = s
  end
  -- All checks passed: install options and state.
  for gi, group in ipairs(self.param_groups) do
    for k, v in pairs(saved_groups[gi]) do
      if k ~= "params" then
        group[k] = copy_option(v)
      end
    end
    class.validate(fn, group)
  end
  self.state = new_state
end

function Optimizer:__tostring()
  local lines = {self.name .. " ("}
  for gi, group in ipairs(self.param_groups) do
    lines[#lines + 1] = string.format("Parameter Group %d", gi - 1)
    for _, k in ipairs(sorted_keys(group)) do
      if k ~= "params" then
        local v = group[k]
        if type(v) == "table" then
          v = "(" .. table.concat(v, ", ") .. ")"
        end
        lines[#lines + 1] = string.format("    %s: %s", k, tostring(v))
      end
    end
  end
  lines[#lines + 1] = ")"
  return table.concat(lines, "\n")
end

local function define(name, defaults, state_keys, validate, kernel_opts, update)
  local class = setmetatable({}, {__index = Optimizer})
  class.__index = class
  class.__tostring = Optimizer.__tostring
  class.name = name
  class.defaults = defaults
  class.state_keys = state_keys
  class.validate = validate
  class._kernel_opts = kernel_opts
  class._update = update
  return function(params, opts)
    return new_optimizer(class, params, opts)
  end
end

-- -------------------------------------------------------------------- SGD

local REQUIRED = false   -- placeholder default meaning "must be given"

local function validate_sgd(fn, g)
  if g.lr == REQUIRED then
    error(fn .. ": option 'lr' is required", 4)
  end
  check_number(fn, g, "lr", 0)
  check_number(fn, g, "momentum", 0)
  check_number(fn, g, "dampening")
  check_number(fn, g, "weight_decay", 0)
  check_bool(fn, g, "nesterov")
  check_bool(fn, g, "maximize")
  if g.nesterov and (g.momentum <= 0 or g.dampening ~= 0) then
    error(fn .. ": nesterov momentum requires a momentum and zero dampening", 4)
  end
end

optim.SGD = define("SGD",
  {lr = REQUIRED, momentum = 0, dampening = 0, weight_decay = 0, nesterov = false, maximize = false},
  {momentum_buffer = "tensor"},
  validate_sgd,
  function(_, g)
    return {lr = g.lr, momentum = g.momentum, dampening = g.dampening, weight_decay = g.weight_decay,
            nesterov = g.nesterov, maximize = g.maximize, fresh_buffer = false}
  end,
  function(_, p, grad, st, g, kopts)
    local buf = st.momentum_buffer
    if g.momentum ~= 0 and buf == nil then
      buf = core.zeros_like(p)
      st.momentum_buffer = buf
      kopts.fresh_buffer = true
      kernels.sgd_step_(p, grad, buf, kopts)
      kopts.fresh_buffer = false
    else
      kernels.sgd_step_(p, grad, buf, kopts)
    end
  end)

-- ------------------------------------------------------------ Adam / AdamW

local function validate_adam(fn, g)
  check_number(fn, g, "lr", 0)
  check_number(fn, g, "eps", 0)
  check_number(fn, g, "weight_decay", 0)
  check_bool(fn, g, "amsgrad")
  check_bool(fn, g, "maximize")
  local b = g.betas
  if type(b) ~= "table" or type(b[1]) ~= "number" or type(b[2]) ~= "number" or #b ~= 2 then
    error(fn .. ": option 'betas' must be a pair of numbers {beta1, beta2}", 4)
  end
  for i = 1, 2 do
    if not (b[i] >= 0 and b[i] < 1) then
      error(string.format("%s: invalid beta parameter at index %d: %s (must be in [0, 1))", fn, i,
        tostring(b[i])), 4)
    end
  end
end

local ADAM_STATE = {step = "integer", exp_avg = "tensor", exp_avg_sq = "tensor",
                    max_exp_avg_sq = "tensor"}

local function adam_kernel_opts(decoupled)
  return function(_, g)
    return {lr = g.lr, beta1 = g.betas[1], beta2 = g.betas[2], eps = g.eps,
            weight_decay = g.weight_decay, decoupled = decoupled, amsgrad = g.amsgrad,
            maximize = g.maximize}
  end
end

local function adam_update(_, p, grad, st, g, kopts)
  if st.step == nil then
    st.step = 0
  end
  if st.exp_avg == nil then
    st.exp_avg = core.zeros_like(p)
    st.exp_avg_sq = core.zeros_like(p)
  end
  if g.amsgrad and st.max_exp_avg_sq == nil then
    st.max_exp_avg_sq = core.zeros_like(p)
  end
  st.step = st.step + 1
  kernels.adam_step_(p, grad, st.exp_avg, st.exp_avg_sq, g.amsgrad and st.max_exp_avg_sq or nil,
    st.step, kopts)
end

optim.Adam = define("Adam",
  {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0, amsgrad = false, maximize = false},
  ADAM_STATE, validate_adam, adam_kernel_opts(false), adam_update)

optim.AdamW = define("AdamW",
  {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2, amsgrad = false, maximize = false},
  ADAM_STATE, validate_adam, adam_kernel_opts(true), adam_update)

-- ---------------------------------------------------------------- schedules

for name, value in pairs(schedule) do
  optim[name] = value
end
optim.lr_scheduler = schedule

return optim

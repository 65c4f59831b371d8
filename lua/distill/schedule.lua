-- distill.schedule: learning-rate schedules with torch.optim.lr_scheduler's
-- semantics (also available as distill.optim.MultiStepLR, ...).
--
--   local sched = schedule.MultiStepLR(opt, {milestones = {150, 180, 210}, gamma = 0.1})
--   for epoch = 1, 240 do train_one_epoch(); sched:step() end
--
-- Making a scheduler records each group's `initial_lr` (unless a scheduler
-- already did) and sets the lr of epoch 0. After e calls to step() the
-- scheduler is at epoch e (sched.last_epoch) and every group's lr is the
-- schedule's value at e, computed in closed form from the base lrs:
--   MultiStepLR       base * gamma ^ (number of milestones <= e)
--   StepLR            base * gamma ^ floor(e / step_size)
--   CosineAnnealingLR eta_min + (base - eta_min) * (1 + cos(pi * e / T_max)) / 2
--   LinearWarmup      base * (start_factor + (end_factor - start_factor) * min(e, W) / W)
--                     (torch's LinearLR; W = warmup_epochs)
--   LambdaLR          base * fn(e)
--   SequentialLR      {schedulers = {s1, s2, ...}, milestones = {m1, ...}}: s1 up to epoch
--                     m1, then s2 counting its epochs from 0 at m1, ...
-- The usual warm-up: SequentialLR(opt, {schedulers = {LinearWarmup(opt, {warmup_epochs = 5,
-- start_factor = 0.1}), CosineAnnealingLR(opt, {T_max = 235})}, milestones = {5}}), or the
-- shorthand `warmup = {epochs = 5, start_factor = 0.1}` option of every scheduler.
local schedule = {}

local Scheduler = {}
Scheduler.__index = Scheduler

local sorted_keys = require("distill.registry").sorted_keys

local function check_options(fn, opts, valid)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error(fn .. ": options must be a table, got " .. type(opts), 4)
  end
  for k in pairs(opts) do
    if valid[k] == nil then
      error(string.format("%s: unknown option '%s' (valid: %s)", fn, tostring(k),
        table.concat(sorted_keys(valid), ", ")), 4)
    end
  end
  return opts
end

local function number_option(fn, opts, key, default, min)
  local v = opts[key]
  if v == nil then
    v = default
  end
  if type(v) ~= "number" then
    error(string.format("%s: option '%s' must be a number, got %s", fn, key, type(v)), 4)
  end
  if min and not (v >= min) then
    error(string.format("%s: option '%s' must be >= %s, got %s", fn, key, tostring(min), tostring(v)), 4)
  end
  return v
end

local function check_optimizer(fn, opt)
  if type(opt) ~= "table" or type(opt.param_groups) ~= "table" then
    error(fn .. ": argument #1 must be an optimizer (a table with param_groups)", 4)
  end
end

-- Common construction: base lrs from initial_lr, then epoch 0.
local function init(self, opt)
  self.optimizer = opt
  self.base_lrs = {}
  for i, group in ipairs(opt.param_groups) do
    if group.initial_lr == nil then
      group.initial_lr = group.lr
    end
    self.base_lrs[i] = group.initial_lr
  end
  self.last_epoch = -1
  self:step()
  return self
end

-- The lrs at epoch e (one per group).
function Scheduler:lr_at(e)
  local lrs = {}
  for i, base in ipairs(self.base_lrs) do
    lrs[i] = self:_lr(base, e)
  end
  return lrs
end

-- Advance one epoch (or jump to `epoch`) and set every group's lr.
function Scheduler:step(epoch)
  if epoch ~= nil then
    if math.type(epoch) ~= "integer" or epoch < 0 then
      error(self.name .. ":step: epoch must be a non-negative integer, got " .. tostring(epoch), 2)
    end
    self.last_epoch = epoch
  else
    self.last_epoch = self.last_epoch + 1
  end
  local lrs = self:lr_at(self.last_epoch)
  for i, group in ipairs(self.optimizer.param_groups) do
    if lrs[i] ~= nil then
      group.lr = lrs[i]
    end
  end
  self._last_lr = lrs
  return lrs
end

-- The lrs set by the last step (a list, one per group).
function Scheduler:get_lr()
  return table.move(self._last_lr, 1, #self._last_lr, 1, {})
end
Scheduler.get_last_lr = Scheduler.get_lr

-- state_dict and load_state_dict hand out and take deep copies (as torch's)
local copy = require("distill.config").copy

-- Everything but the optimizer and functions (as torch's).
function Scheduler:state_dict()
  local sd = {}
  for k, v in pairs(self) do
    if k ~= "optimizer" and k ~= "schedulers" and k:sub(1, 1) ~= "_" then
      sd[k] = copy(v)
    end
  end
  if self.schedulers then
    sd.schedulers = {}
    for i, s in ipairs(self.schedulers) do
      sd.schedulers[i] = s:state_dict()
    end
  end
  return sd
end

function Scheduler:load_state_dict(sd)
  local fn = self.name .. ":load_state_dict"
  if type(sd) ~= "table" or math.type(sd.last_epoch) ~= "integer" then
    error(fn .. ": expected a table with an integer 'last_epoch', as made by state_dict()", 2)
  end
  if type(sd.base_lrs) ~= "table" or #sd.base_lrs ~= #self.base_lrs then
    error(string.format("%s: the saved state has %s base lr(s) but the scheduler has %d", fn,
      type(sd.base_lrs) == "table" and tostring(#sd.base_lrs) or "no", #self.base_lrs), 2)
  end
  for k, v in pairs(sd) do
    if k == "schedulers" then
      if type(v) ~= "table" or not self.schedulers or #v ~= #self.schedulers then
        error(fn .. ": the saved sub-schedulers do not match this scheduler's", 2)
      end
      for i, s in ipairs(self.schedulers) do
        s:load_state_dict(v[i])
      end
    elseif k:sub(1, 1) ~= "_" and k ~= "optimizer" then
      self[k] = copy(v)
    end
  end
  self._last_lr = self:lr_at(self.last_epoch)
end

local function define(name, setup, lr)
  local class = setmetatable({}, {__index = Scheduler})
  class.__index = class
  class.name = name
  class._lr = lr
  schedule[name] = function(opt, opts, ...)
    local fn = "schedule." .. name
    check_optimizer(fn, opt)
    local self = setmetatable({}, class)
    opts = setup(self, fn, opts, ...)
    local warm = type(opts) == "table" and opts.warmup or nil
    if warm == nil then
      return init(self, opt)
    end
    -- warmup = {epochs = W, start_factor = f}: SequentialLR of a linear warm-up and self.
    if type(warm) ~= "table" then
      error(fn .. ": option 'warmup' must be a table {epochs = W, start_factor = f}", 2)
    end
    init(self, opt)
    local w = schedule.LinearWarmup(opt, {warmup_epochs = warm.epochs,
                                          start_factor = warm.start_factor,
                                          end_factor = warm.end_factor})
    return schedule.SequentialLR(opt, {schedulers = {w, self}, milestones = {w.warmup_epochs}})
  end
  return class
end

define("MultiStepLR",
  function(self, fn, opts)
    opts = check_options(fn, opts, {milestones = true, gamma = true, warmup = true})
    if type(opts.milestones) ~= "table" then
      error(fn .. ": option 'milestones' (a list of epochs) is required", 3)
    end
    self.milestones = {}
    for i, m in ipairs(opts.milestones) do
      if math.type(m) ~= "integer" then
        error(string.format("%s: milestone %d must be an integer, got %s", fn, i, tostring(m)), 3)
      end
      self.milestones[i] = m
    end
    table.sort(self.milestones)
    self.gamma = number_option(fn, opts, "gamma", 0.1)
    return opts
  end,
  function(self, base, e)
    local k = 0
    for _, m in ipairs(self.milestones) do
      if m <= e then
        k = k + 1
      end
    end
    return base * self.gamma ^ k
  end)

define("StepLR",
  function(self, fn, opts)
    opts = check_options(fn, opts, {step_size = true, gamma = true, warmup = true})
    if math.type(opts.step_size) ~= "integer" or opts.step_size < 1 then
      error(fn .. ": option 'step_size' (a positive integer) is required", 3)
    end
    self.step_size = opts.step_size
    self.gamma = number_option(fn, opts, "gamma", 0.1)
    return opts
  end,
  function(self, base, e)
    return base * self.gamma ^ (e // self.step_size)
  end)

define("CosineAnnealingLR",
  function(self, fn, opts)
    opts = check_options(fn, opts, {T_max = true, eta_min = true, warmup = true})
    if type(opts.T_max) ~= "number" or not (opts.T_max > 0) then
      error(fn .. ": option 'T_max' (a positive number of epochs) is required", 3)
    end
    self.T_max = opts.T_max
    self.eta_min = number_option(fn, opts, "eta_min", 0)
    return opts
  end,
  function(self, base, e)
    return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * e / self.T_max)) / 2
  end)

define("LinearWarmup",
  function(self, fn, opts)
    opts = check_options(fn, opts, {warmup_epochs = true, total_iters = true, start_factor = true,
                                    end_factor = true})
    local w = opts.warmup_epochs or opts.total_iters or 5
    if math.type(w) ~= "integer" or w < 1 then
      error(fn .. ": option 'warmup_epochs' must be a positive integer, got " .. tostring(w), 3)
    end
    self.warmup_epochs = w
    self.start_factor = number_option(fn, opts, "start_factor", 1 / 3)
    self.end_factor = number_option(fn, opts, "end_factor", 1)
    if not (self.start_factor > 0 and self.start_factor <= 1) then
      error(fn .. ": start_factor must be in (0, 1], got " .. tostring(self.start_factor), 3)
    end
    return opts
  end,
  function(self, base, e)
    local f = self.start_factor
      + (self.end_factor - self.start_factor) * math.min(e, self.warmup_epochs) / self.warmup_epochs
    return base * f
  end)
schedule.LinearLR = schedule.LinearWarmup

local LambdaLR = define("LambdaLR",
  function(self, fn, lambda)
    local lambdas = lambda
    if type(lambda) == "function" then
      lambdas = nil
    elseif type(lambda) ~= "table" then
      error(fn .. ": argument #2 must be a function of the epoch (or a list of them, one per "
        .. "group), got " .. type(lambda), 3)
    end
    self._lambda, self._lambdas = lambda, lambdas
    return nil
  end,
  nil)

function LambdaLR:lr_at(e)
  local lrs = {}
  for i, base in ipairs(self.base_lrs) do
    local f = self._lambdas and self._lambdas[i] or self._lambda
    if type(f) ~= "function" then
      error(string.format("LambdaLR: no function for parameter group %d", i), 3)
    end
    local factor = f(e)
    if type(factor) ~= "number" then
      error(string.format("LambdaLR: the function returned %s for epoch %d, expected a number",
        type(factor), e), 3)
    end
    lrs[i] = base * factor
  end
  return lrs
end

local SequentialLR = define("SequentialLR",
  function(self, fn, opts)
    opts = check_options(fn, opts, {schedulers = true, milestones = true})
    local ss, ms = opts.schedulers, opts.milestones
    if type(ss) ~= "table" or #ss < 1 then
      error(fn .. ": option 'schedulers' (a list of schedulers) is required", 3)
    end
    if type(ms) ~= "table" or #ms ~= #ss - 1 then
      error(string.format("%s: expected %d milestone(s) for %d schedulers, got %s", fn, #ss - 1, #ss,
        type(ms) == "table" and tostring(#ms) or type(ms)), 3)
    end
    for i, s in ipairs(ss) do
      if type(s) ~= "table" or type(s.lr_at) ~= "function" then
        error(string.format("%s: schedulers[%d] is not a scheduler", fn, i), 3)
      end
    end
    for i, m in ipairs(ms) do
      if math.type(m) ~= "integer" or (i > 1 and m < ms[i - 1]) then
        error(fn .. ": milestones must be increasing integers", 3)
      end
    end
    self.schedulers = {}
    for i, s in ipairs(ss) do
      self.schedulers[i] = s
    end
    self.milestones = {table.unpack(ms)}
    return nil
  end,
  nil)

function SequentialLR:lr_at(e)
  local idx, start = 1, 0
  for i, m in ipairs(self.milestones) do
    if e >= m then
      idx, start = i + 1, m
    end
  end
  return self.schedulers[idx]:lr_at(e - start)
end

return schedule

-- The distiller base: an nn.Module (so its trainable parts, buffers and
-- state_dict behave like any layer's) with one extra method,
--   d:loss(student_out, teacher_out, labels, batch, epoch) -> scalar tensor
-- where *_out are model outputs {feats = {...}, pooled = p, logits = z},
-- labels are the 1-based targets and batch is the loader's batch (CRD needs
-- batch.index), and a declaration of what it needs to be built and run
-- (class.needs, see base.class).
local distill = require "distill"
local Module = require "distill.nn.module"
local fuse = require "distill.nn.fuse"
local registry = require "distill.registry"

local base = {}

-- What a class may declare it needs, and what each means.
base.NEEDS = {
  teacher = "its loss reads the teacher's outputs",
  probe = "sample outputs of both models, to size its own layers (distillers.probe)",
  preact = "pre-ReLU block features, in the probe and in training",
  teacher_bns = "the teacher's batch norms before each block ReLU (teacher:get_bn_before_relu())",
  dataset_size = "the number of training samples",
  teacher_preact = "the teacher's pre-ReLU block features in training (the student's stay as they are)",
}

--- A distiller class. `needs` declares what it takes from the build
-- context when it is built by name (distillers.build, distillers.objective),
-- each key true or false: teacher, probe, preact, teacher_bns, dataset_size,
-- teacher_preact (base.NEEDS says what each is); the default is {teacher = true}. Its
-- init(self, opts, given) receives in `given` what it declared: given.probe,
-- given.teacher_bns, given.dataset_size.
function base.class(name, needs)
  needs = needs or { teacher = true }
  if type(needs) ~= "table" then
    error(("distillers.class: %s: needs must be a table, got %s")
      :format(tostring(name), type(needs)), 2)
  end
  for key in pairs(needs) do
    if not base.NEEDS[key] then
      error(("distillers.class: %s: unknown need '%s' (valid: %s)"):format(tostring(name), tostring(key),
        table.concat(registry.sorted_keys(base.NEEDS), ", ")), 2)
    end
  end
  local class = Module.class(name)
  class.needs = needs
  local class_meta = getmetatable(class)
  local parent_index = class_meta.__index
  local function not_implemented(self)
    error(("%s:loss is not implemented"):format(self.__name), 2)
  end
  class_meta.__index = function(_, key)
    if key == "loss" then
      return not_implemented
    end
    return parent_index[key]
  end
  -- the loss a class defines is wrapped in a check of its arguments, so a
  -- call without the model outputs names the distiller, not a nil field
  class_meta.__newindex = function(cls, key, value)
    if key == "loss" and type(value) == "function" then
      value = base.checked_loss(name, needs, value)
    end
    rawset(cls, key, value)
  end
  return class
end

local OUTPUTS = "{feats =, pooled =, logits =} (a model's forward(x, {features = true}))"

--- loss_fn with its model-output arguments checked: the student's outputs
-- always, the teacher's when the class needs a teacher.
function base.checked_loss(name, needs, loss_fn)
  return function(self, student_out, teacher_out, ...)
    if type(student_out) ~= "table" then
      error(("%s:loss: argument #1: expected the student's outputs %s, got %s"):format(name, OUTPUTS,
        type(student_out)), 2)
    end
    if needs.teacher ~= false and type(teacher_out) ~= "table" then
      error(("%s:loss: argument #2: expected the teacher's outputs %s, got %s"):format(name, OUTPUTS,
        type(teacher_out)), 2)
    end
    return loss_fn(self, student_out, teacher_out, ...)
  end
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge
end

-- The kinds of value an option may declare: a check and the words of the
-- error ("option T must be <words>, got 0").
base.KINDS = {
  positive = { function(v) return finite(v) and v > 0 end, "a finite number > 0" },
  nonnegative = { function(v) return finite(v) and v >= 0 end, "a finite number >= 0" },
  finite = { finite, "a finite number" },
  unit = { function(v) return finite(v) and v >= 0 and v <= 1 end, "a number in [0, 1]" },
  positive_integer = { function(v) return math.type(v) == "integer" and v > 0 end, "an integer > 0" },
  boolean = { function(v) return type(v) == "boolean" end, "true or false" },
}

local function check_kind(name, key, value, kind)
  if type(kind) == "table" then   -- one of the listed values
    for _, allowed in ipairs(kind) do
      if value == allowed then
        return
      end
    end
    local shown = {}
    for i, allowed in ipairs(kind) do
      shown[i] = type(allowed) == "string" and ("%q"):format(allowed) or tostring(allowed)
    end
    error(("distillers.%s: option %s must be one of %s, got %s"):format(name, key,
      table.concat(shown, ", "), type(value) == "string" and ("%q"):format(value) or tostring(value)), 0)
  end
  local spec = base.KINDS[kind]
  if not spec then
    error(("distillers.%s: option %s declares an unknown kind %s"):format(name, key, tostring(kind)), 0)
  end
  if not spec[1](value) then
    error(("distillers.%s: option %s must be %s, got %s"):format(name, key, spec[2],
      type(value) == "string" and ("%q"):format(value) or tostring(value)), 0)
  end
end

--- Checks an options table against {key = default} and returns the merged
-- options; unknown keys are an error naming the distiller. `kinds`
-- declares what each value may be ({T = "positive", policy = {"instance",
-- "class"}}; base.KINDS lists the kinds), checked after the merge, so that
-- a bad value is an error naming the distiller and the option instead of
-- a NaN loss later. These errors carry no position: the distiller is
-- mostly built by the trainer from a config, and the message names it.
function base.options(name, opts, defaults, kinds)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("distillers.%s: options must be a table, got %s"):format(name, type(opts)), 3)
  end
  local merged = {}
  for key, value in pairs(defaults) do
    merged[key] = value
  end
  for key, value in pairs(opts) do
    if defaults[key] == nil and key ~= "probe" then
      error(("distillers.%s: unknown option '%s' (valid: %s)"):format(
        name, tostring(key), table.concat(registry.sorted_keys(defaults), ", ")), 0)
    end
    merged[key] = value
  end
  for _, key in ipairs(registry.sorted_keys(kinds or {})) do
    check_kind(name, key, merged[key], kinds[key])
  end
  return merged
end

--- The init of a distiller that its options alone configure: it sets
-- self.options to base.options(name, opts, defaults, kinds).
function base.options_init(name, defaults, kinds)
  if type(name) ~= "string" or type(defaults) ~= "table" then
    error(("distillers.options_init: expected a distiller name and a table of defaults, got %s and %s")
      :format(type(name), type(defaults)), 2)
  end
  return function(self, opts)
    self.options = base.options(name, opts, defaults, kinds)
  end
end

--- The sample outputs a shape-dependent distiller is built from: opts.probe,
-- else the one its build context gave.
function base.probe(name, opts, given)
  if opts ~= nil and type(opts) ~= "table" then
    error(("distillers.%s: options must be a table, got %s"):format(name, type(opts)), 3)
  end
  local probe = opts and opts.probe or given and given.probe
  if type(probe) ~= "table" or type(probe.student) ~= "table" or type(probe.teacher) ~= "table" then
    error(("distillers.%s: needs opts.probe = {student = out, teacher = out} (sample model outputs, "
      .. "see distillers.probe)"):format(name), 3)
  end
  return probe
end

--- The block features a feature distiller uses: feats without the stem
-- output (first) and the pooled vector (last), as the CRD code base does.
function base.block_features(out)
  if type(out) ~= "table" or type(out.feats) ~= "table" then
    error(("distillers.block_features: argument #1: expected a model's outputs with features "
      .. "({feats = {...}}, a forward with {features = true}), got %s"):format(type(out)), 2)
  end
  local list = {}
  for i = 2, #out.feats - 1 do
    list[#list + 1] = out.feats[i]
  end
  return list
end

-- ------------------------------------------------------- frozen teacher

local Teacher = {}
Teacher.__index = Teacher

local function fold_disabled()
  local env = os.getenv("DISTILL_FOLD_TEACHER")
  return env == "0" or env == "false" or env == "off"
end

--- The frozen teacher's forward, as the trainer runs it:
--   local run = base.frozen_teacher(teacher)      -- {fold = true}
--   local t_out = run(x, {features = true})       -- under no_grad
-- While the teacher is in eval mode it runs through a batch-norm-folded copy
-- (nn.fold_batchnorm, in-place ReLUs) built on first use with the batch's
-- first two images as the example, so the copy is checked against the
-- teacher before it is used; in training mode the teacher itself runs.
-- The copy snapshots the teacher's weights: call run:refresh() after
-- changing them. Code that reads the teacher's modules (OFD's
-- get_bn_before_relu margins) keeps using the original, which is never
-- modified. fold = false or DISTILL_FOLD_TEACHER=0 runs the original; a
-- model the fold check rejects is run unfolded after one warning.
function base.frozen_teacher(teacher, opts)
  if not Module.is_module(teacher) then
    error(("distillers.frozen_teacher: expected the teacher module, got %s"):format(type(teacher)), 2)
  end
  opts = opts or {}
  return setmetatable({
    teacher = teacher, folded = nil, failed = false,
    fold = opts.fold ~= false and not fold_disabled(),
  }, Teacher)
end

--- Folds now with x (a batch) as the example; returns the runner.
function Teacher:prepare(x)
  if not self.fold or self.teacher.training or self.folded or self.failed then
    return self
  end
  local example = x:narrow(1, 1, math.min(2, x:size(1))):contiguous()
  local ok, folded = pcall(fuse.fold_batchnorm, self.teacher, { example = example })
  if ok then
    self.folded = folded
  else
    self.failed = true
    io.stderr:write(("distillers: the teacher runs unfolded: %s\n"):format(tostring(folded)))
  end
  return self
end

--- Drops the folded copy (it is rebuilt from the teacher on the next call).
function Teacher:refresh()
  self.folded, self.failed = nil, false
  return self
end

--- The teacher's output for x under no_grad (folded while in eval mode).
function Teacher:forward(x, forward_opts)
  local model = self.teacher
  if not model.training then
    self:prepare(x)
    model = self.folded or model
  end
  return distill.no_grad(function() return model:forward(x, forward_opts) end)
end

Teacher.__call = Teacher.forward

return base

-- distill.distillers: the distillation methods and how they combine.
--
--   local distillers = require "distill.distillers"
--   local probe = distillers.probe(student, teacher, {2, 3, 32, 32})
--   local objective = distillers.objective{
--     { distillers.create("ce"), 0.1 },
--     { distillers.create("kd", { T = 4 }), 0.9 },
--     { distillers.create("fsecd", { probe = probe, policy = "instance" }), 1 },
--   }
--   local total, parts = objective:loss(s_out, t_out, labels, batch, epoch)
--
-- Or by name, as configs write terms, with a build context from which each
-- distiller takes what its class declares it needs (class.needs,
-- distillers.base):
--   local objective = distillers.objective({ { distiller = "ce", weight = 0.1 },
--     { distiller = "kd", weight = 0.9, T = 4 }, { "crd", 0.8, nce_k = 4096 } },
--     { student = student, teacher = teacher, input_shape = {3, 32, 32}, dataset_size = 50000 })
--
-- A weight is a number or a function of the (1-based) epoch, e.g. a warm-up.
local distill = require "distill"
local base = require "distill.distillers.base"
local registry = require "distill.registry"

local distillers = {}

local known = registry.new("distillers", "distiller")
for _, name in ipairs { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd" } do
  known:add(name, "distill.distillers." .. name)
end
-- issue 18, the staged methods and ReviewKD (AB and FT have pre-training
-- stages, see distill.stages), then the similarity, correlation and
-- feature-statistics methods of the CRD code base's zoo
for _, name in ipairs { "ab", "ft", "reviewkd", "sp", "cc", "pkt", "nst", "fsp", "vid" } do
  known:add(name, "distill.distillers." .. name)
end

--- Sorted names of the available distillers.
function distillers.names()
  return known:names()
end

--- The distiller class of a name (e.g. distillers.class("kd")).
function distillers.class(name)
  return require(known:find(name, 2))
end

function distillers.create(name, opts)
  return distillers.class(name)(opts)
end

-- The parts of a term: its distiller (an object or a name), weight, name
-- and, for a distiller given by name, its options (the other string keys).
local TERM_KEYS = { distiller = true, weight = true, name = true }

local function parse_term(fn, i, term)
  if type(term) ~= "table" then
    error(("%s: term %d must be a table, got %s"):format(fn, i, type(term)), 3)
  end
  local weight = term.weight
  if weight == nil then
    weight = term[2]
  end
  if weight == nil then
    weight = 1
  end
  local options = {}
  for k, v in pairs(term) do
    if not TERM_KEYS[k] and math.type(k) ~= "integer" then
      options[k] = v
    end
  end
  return { distiller = term.distiller or term[1], weight = weight, name = term.name, options = options }
end

--- The parts of a term as a config writes it ({distiller = NAME, weight =
-- W, name =, ...options} or {NAME, W, ...}): {distiller =, weight =
-- (default 1), name = (nil unless given), options = {the other keys}}.
function distillers.parse_term(term)
  return parse_term("distillers.parse_term", 1, term)
end

-- What a term's distiller declares it needs ({} for a class that says nothing).
local function needs_of(distiller)
  if type(distiller) == "string" then
    return distillers.class(distiller).needs
  end
  return type(distiller) == "table" and distiller.needs or {}
end

--- What the distillers of terms (objective terms, by name or built) need
-- together: {teacher =, probe =, preact =, teacher_bns =, dataset_size =},
-- each true when some term's class declares it.
function distillers.needs(terms)
  if type(terms) ~= "table" then
    error("distillers.needs: expected a list of terms, got " .. type(terms), 2)
  end
  local union = {}
  for key in pairs(base.NEEDS) do
    union[key] = false
  end
  for i, term in ipairs(terms) do
    for key, wanted in pairs(needs_of(parse_term("distillers.needs", i, term).distiller)) do
      union[key] = union[key] or wanted == true
    end
  end
  return union
end

-- The context with a probe of its models added (when it has a teacher and
-- no probe yet); preact: probe pre-ReLU features.
local function with_probe(context, preact)
  if not context.teacher or context.probe then
    return context
  end
  local shape = context.input_shape
  if type(shape) ~= "table" or #shape ~= 3 then
    error("distillers: context.input_shape must be {C, H, W} to probe the models", 3)
  end
  local copy = {}
  for k, v in pairs(context) do
    copy[k] = v
  end
  copy.probe = distillers.probe(context.student, context.teacher, { 2, shape[1], shape[2], shape[3] },
    { preact = preact })
  return copy
end

-- What a class declared, taken from the build context.
local function given_to(class, name, context)
  local needs, given = class.needs or {}, {}
  local teacher = context.teacher
  if needs.teacher and not teacher then
    return nil, ("%s needs a teacher (context.teacher)"):format(name)
  end
  if needs.probe then
    given.probe = context.probe
  end
  if needs.teacher_bns then
    if type(teacher) ~= "table" or type(teacher.get_bn_before_relu) ~= "function" then
      return nil, ("%s needs the teacher's get_bn_before_relu()"):format(name)
    end
    given.teacher_bns = teacher:get_bn_before_relu()
  end
  if needs.dataset_size then
    given.dataset_size = context.dataset_size
  end
  return given
end

--- Builds a distiller by name with options and a build context
-- {student =, teacher =, input_shape = {C, H, W}, dataset_size =} (or a
-- ready probe =): the class takes from the context what it declares it
-- needs (see distillers.base).
function distillers.build(name, opts, context)
  if context ~= nil and type(context) ~= "table" then
    error("distillers.build: context must be a table, got " .. type(context), 2)
  end
  local class = distillers.class(name)
  context = context or {}
  if class.needs and class.needs.probe then
    context = with_probe(context, class.needs.preact)
  end
  local given, err = given_to(class, name, context)
  if not given then
    error("distillers.build: " .. err, 2)
  end
  return class(opts, given)
end

for _, name in ipairs(known:names()) do
  distillers[name] = function(opts) return distillers.create(name, opts) end
end

--- Sample outputs of both models for building shape-dependent distillers:
-- an eval-mode forward of a random batch (the models' modes are restored).
function distillers.probe(student, teacher, input_shape, opts)
  for i = 1, 2 do
    local model = i == 1 and student or teacher
    if type(model) ~= "table" or type(model.forward) ~= "function" then
      error(("distillers.probe: argument #%d: expected the %s model, got %s"):format(i,
        i == 1 and "student" or "teacher", type(model)), 2)
    end
  end
  if type(input_shape) ~= "table" then
    error("distillers.probe: argument #3: expected the input shape {N, C, H, W}, got " .. type(input_shape), 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("distillers.probe: argument #4: expected an options table {preact =} or nil, got " .. type(opts), 2)
  end
  local preact = opts and opts.preact or false
  local function run(model)
    local was_training = model.training
    model:eval()
    local out = distill.no_grad(function()
      return model:forward(distill.randn(input_shape), { features = true, preact = preact })
    end)
    model:train(was_training)
    return out
  end
  return { student = run(student), teacher = run(teacher) }
end

distillers.block_features = base.block_features

-- ------------------------------------------------------------- objective

local Objective = {}
Objective.__index = Objective

-- Builds the terms given by name. One probe serves them all; it is drawn
-- whenever there is a teacher, before any distiller is built, so that the
-- random numbers a run draws do not depend on which distillers it uses.
local function build_named(parsed, context)
  local named = {}
  for _, term in ipairs(parsed) do
    if type(term.distiller) == "string" then
      named[#named + 1] = term
    end
  end
  if #named == 0 then
    return
  end
  context = with_probe(context, distillers.needs(named).preact)
  for i, term in ipairs(parsed) do
    if type(term.distiller) == "string" then
      local class = distillers.class(term.distiller)
      local given, err = given_to(class, term.distiller, context)
      if not given then
        error(("distillers.objective: term %d: %s"):format(i, err), 3)
      end
      term.distiller = class(term.options, given)
    end
  end
end

--- objective(terms[, context]): terms are {distiller, weight} or
-- {name =, distiller =, weight =}; a distiller may be given by name, with
-- its options as the term's other keys ({distiller = "kd", weight = 0.9,
-- T = 4}), and is then built from the build context {student =, teacher =,
-- input_shape = {C, H, W}, dataset_size =} (see the top of this file).
function distillers.objective(terms, context)
  if type(terms) ~= "table" or #terms == 0 then
    error("distillers.objective: expected a non-empty list of {distiller, weight} terms", 2)
  end
  if context ~= nil and type(context) ~= "table" then
    error("distillers.objective: context must be a table, got " .. type(context), 2)
  end
  local parsed = {}
  for i, term in ipairs(terms) do
    parsed[i] = parse_term("distillers.objective", i, term)
  end
  build_named(parsed, context or {})
  local self = setmetatable({ terms = {} }, Objective)
  local used = {}
  for i, term in ipairs(parsed) do
    local d, weight = term.distiller, term.weight
    if type(d) ~= "table" or type(d.loss) ~= "function" then
      error(("distillers.objective: term %d has no distiller"):format(i), 2)
    end
    if type(weight) ~= "function" and (type(weight) ~= "number" or weight ~= weight
        or weight == math.huge or weight == -math.huge) then
      error(("distillers.objective: term %d's weight must be a finite number or a function of epoch, "
        .. "got %s"):format(i, tostring(weight)), 2)
    end
    local name = term.name or d.__name:lower()
    if used[name] then
      used[name] = used[name] + 1
      name = name .. used[name]
    else
      used[name] = 1
    end
    self.terms[i] = { name = name, distiller = d, weight = weight }
  end
  return self
end

--- The terms' names, in order (the metrics' train_<name> columns).
function Objective:names()
  local names = {}
  for i, term in ipairs(self.terms) do
    names[i] = term.name
  end
  return names
end

--- True when some term needs pre-ReLU features (OFD).
function Objective:needs_preact()
  return distillers.needs(self.terms).preact
end

--- Every trainable tensor of every term (for the optimizer).
function Objective:parameters()
  local list = {}
  for _, term in ipairs(self.terms) do
    for _, p in ipairs(term.distiller:parameters()) do
      list[#list + 1] = p
    end
  end
  return list
end

function Objective:train(mode)
  for _, term in ipairs(self.terms) do
    term.distiller:train(mode)
  end
end

function Objective:weight_of(term, epoch)
  if type(term.weight) == "function" then
    return term.weight(epoch)
  end
  return term.weight
end

--- total (a scalar tensor), parts {name = value as a number}, weights.
-- opts.local_scale (data-parallel training): a factor for the terms that
-- are means over this rank's share of the batch (not for a distiller whose
-- `global_batch` is true: its loss is over the batch gathered from every
-- rank); total then is what to differentiate, not the loss's value.
function Objective:loss(student_out, teacher_out, labels, batch, epoch, opts)
  local total
  local parts, weights = {}, {}
  local local_scale = opts and opts.local_scale or 1
  for _, term in ipairs(self.terms) do
    local w = self:weight_of(term, epoch)
    weights[term.name] = w
    if w ~= 0 then
      local value = term.distiller:loss(student_out, teacher_out, labels, batch, epoch)
      parts[term.name] = value:item()
      local weighted = value * (term.distiller.global_batch and w or w * local_scale)
      total = total and total + weighted or weighted
    else
      parts[term.name] = 0
    end
  end
  if not total then
    error("distillers.objective: every term has weight 0 at this epoch", 2)
  end
  return total, parts, weights
end

--- Hooks that must run after backward (CRD's memory-bank update).
function Objective:after_backward()
  for _, term in ipairs(self.terms) do
    if term.distiller.after_backward then
      term.distiller:after_backward()
    end
  end
end

--- {term_name = distiller:state_dict()}
function Objective:state_dict()
  local state = {}
  for _, term in ipairs(self.terms) do
    state[term.name] = term.distiller:state_dict()
  end
  return state
end

function Objective:load_state_dict(state)
  for _, term in ipairs(self.terms) do
    local sub = state[term.name]
    if sub == nil then
      error(("distillers.objective: the state has no entry for term '%s'"):format(term.name), 2)
    end
    term.distiller:load_state_dict(sub)
  end
end

return distillers

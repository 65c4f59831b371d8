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
-- A weight is a number or a function of the (1-based) epoch, e.g. a warm-up.
local distill = require "distill"
local base = require "distill.distillers.base"
local registry = require "distill.registry"

local distillers = {}

local known = registry.new("distillers", "distiller")
for _, name in ipairs { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd" } do
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

for _, name in ipairs(known:names()) do
  distillers[name] = function(opts) return distillers.create(name, opts) end
end

--- Sample outputs of both models for building shape-dependent distillers:
-- an eval-mode forward of a random batch (the models' modes are restored).
function distillers.probe(student, teacher, input_shape, opts)
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

--- objective{{distiller, weight}, ...} or {{name =, distiller =, weight =}, ...}
function distillers.objective(terms)
  if type(terms) ~= "table" or #terms == 0 then
    error("distillers.objective: expected a non-empty list of {distiller, weight} terms", 2)
  end
  local self = setmetatable({ terms = {} }, Objective)
  local used = {}
  for i, term in ipairs(terms) do
    local d = term.distiller or term[1]
    local weight = term.weight
    if weight == nil then
      weight = term[2]
    end
    if weight == nil then
      weight = 1
    end
    if type(d) ~= "table" or type(d.loss) ~= "function" then
      error(("distillers.objective: term %d has no distiller"):format(i), 2)
    end
    if type(weight) ~= "number" and type(weight) ~= "function" then
      error(("distillers.objective: term %d's weight must be a number or a function of epoch")
        :format(i), 2)
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

--- True when some term needs pre-ReLU features (OFD).
function Objective:needs_preact()
  for _, term in ipairs(self.terms) do
    if term.distiller.needs_preact then
      return true
    end
  end
  return false
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
function Objective:loss(student_out, teacher_out, labels, batch, epoch)
  local total
  local parts, weights = {}, {}
  for _, term in ipairs(self.terms) do
    local w = self:weight_of(term, epoch)
    weights[term.name] = w
    if w ~= 0 then
      local value = term.distiller:loss(student_out, teacher_out, labels, batch, epoch)
      parts[term.name] = value:item()
      local weighted = value * w
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

-- distill.registry: the name -> entry tables behind distill.distillers,
-- distill.models and distill.data.datasets, and the sorted key lists that
-- their errors (and every option checker's) show.
--
--   local registry = require "distill.registry"
--   local known = registry.new("distillers", "distiller")
--   known:add("kd", "distill.distillers.kd")
--   known:find("hint")   --> error "distillers: unknown distiller 'hint' (known: kd)"
--   known:names()        --> {"kd"}
--   registry.sorted_keys({b = 1, a = 2})   --> {"a", "b"}
local registry = {}

--- The keys of t as sorted strings.
function registry.sorted_keys(t)
  if type(t) ~= "table" then
    error("registry.sorted_keys: expected a table, got " .. type(t), 2)
  end
  local keys = {}
  for k in pairs(t) do
    keys[#keys + 1] = tostring(k)
  end
  table.sort(keys)
  return keys
end

local Registry = {}
Registry.__index = Registry

--- An empty registry; `owner` and `kind` name it in errors
-- ("<owner>: unknown <kind> 'x' (known: ...)").
function registry.new(owner, kind)
  if type(owner) ~= "string" or type(kind) ~= "string" then
    error("registry.new: expected the owner's and the kind's names (strings)", 2)
  end
  return setmetatable({ owner = owner, kind = kind, entries = {}, order = {} }, Registry)
end

--- Adds name -> entry; a name is registered once.
function Registry:add(name, entry)
  if type(name) ~= "string" or entry == nil then
    error(("%s: a %s needs a name (string) and an entry"):format(self.owner, self.kind), 2)
  end
  if self.entries[name] ~= nil then
    error(("%s: %s '%s' is already registered"):format(self.owner, self.kind, name), 2)
  end
  self.entries[name] = entry
  self.order[#self.order + 1] = name
  return entry
end

--- The entry of name, or nil.
function Registry:get(name)
  return self.entries[name]
end

--- The entry of name; an unknown name is an error listing the known ones,
-- raised at `level` (default: the caller of find's caller).
function Registry:find(name, level)
  local entry = self.entries[name]
  if entry == nil then
    error(("%s: unknown %s '%s' (known: %s)"):format(self.owner, self.kind, tostring(name),
      table.concat(self:names(), ", ")), (level or 2) + 1)
  end
  return entry
end

--- Sorted names.
function Registry:names()
  return registry.sorted_keys(self.entries)
end

--- Names in the order they were added.
function Registry:in_order()
  return { table.unpack(self.order) }
end

return registry

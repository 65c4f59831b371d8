-- distill.filters: "key=value[,value...]" selections of runs, as given to
-- `distill sweep --only`, `distill table --where` and `distill plot --where`.
--
--   local filters = require "distill.filters"
--   local list = filters.parse({"method=kd,ce", "seed=1"}, "sweep: --only")
--   filters.accepts(list[1], "kd")          --> true
--   filters.accepts(list[2], 1.0)           --> true (numbers compare as numbers)
--   filters.select(runs, list, function(run, filter) return ... end)  --> the runs all accept
local filters = {}

--- The filters of a list of "key=v1,v2" strings: {{key =, wanted = {"v1", "v2"}}, ...}.
-- `who` starts the error message of a malformed item.
function filters.parse(items, who)
  if items ~= nil and type(items) ~= "table" then
    error(("filters.parse: expected a list of key=value strings, got %s"):format(type(items)), 2)
  end
  local list = {}
  for _, item in ipairs(items or {}) do
    local key, values = tostring(item):match("^([^=]+)=(.+)$")
    if not key then
      error(("%s expects key=value[,value...], got '%s'"):format(who or "filters", tostring(item)), 0)
    end
    local wanted = {}
    for v in values:gmatch("[^,]+") do
      wanted[#wanted + 1] = v
    end
    list[#list + 1] = { key = key, wanted = wanted }
  end
  return list
end

--- Does the filter accept value? Each wanted text matches the value's
-- text, its number, or one of the other texts given (labels).
function filters.accepts(filter, value, ...)
  if type(filter) ~= "table" or type(filter.wanted) ~= "table" then
    error(("filters.accepts: argument #1: expected a filter (an entry of filters.parse's list), got %s")
      :format(type(filter)), 2)
  end
  if value == nil then
    return false
  end
  local text = math.type(value) == "float" and value == math.floor(value) and tostring(math.tointeger(value))
    or tostring(value)
  for _, w in ipairs(filter.wanted) do
    if w == text or (type(value) == "number" and tonumber(w) == value) then
      return true
    end
    for i = 1, select("#", ...) do
      if w == select(i, ...) then
        return true
      end
    end
  end
  return false
end

--- The items that every filter accepts, matches(item, filter) deciding.
function filters.select(items, list, matches)
  if type(items) ~= "table" or type(list) ~= "table" or type(matches) ~= "function" then
    error("filters.select: expected (items, filters, matches(item, filter))", 2)
  end
  local kept = {}
  for _, item in ipairs(items) do
    local keep = true
    for _, f in ipairs(list) do
      keep = keep and matches(item, f)
    end
    if keep then
      kept[#kept + 1] = item
    end
  end
  return kept
end

return filters

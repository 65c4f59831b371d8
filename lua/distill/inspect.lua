-- distill.inspect: a Lua value as short readable text, for the REPL.
--
--   local inspect = require "distill.inspect"
--   inspect.format({1, 2, {a = "x"}})   --> {1, 2, {a = "x"}}
--   inspect.format(t, {depth = 2, items = 10, leaf = function(v) ... end})
--
-- Tables print their list part in order, then their other keys sorted;
-- nested tables deeper than `depth` and entries past `items` are elided
-- with a count ("{... 12 entries}", "... 30 more"), so that a big table
-- never floods the terminal. A table with a __tostring metamethod (a
-- module, a class instance) prints through it. `leaf(v)` may return the
-- text of a value (tensors: their compact form) or nil.
local inspect = {}

inspect.DEPTH = 3      -- nested tables shown in full
inspect.ITEMS = 20     -- entries shown per table

local IDENTIFIER = "^[%a_][%w_]*$"
local KEYWORDS = {}
for kw in ("and break do else elseif end false for function goto if in local nil not or repeat "
    .. "return then true until while"):gmatch("%S+") do
  KEYWORDS[kw] = true
end

local function count_entries(t)
  local n = 0
  for _ in next, t do
    n = n + 1
  end
  return n
end

local function key_order(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    return ta < tb
  end
  if ta == "number" or ta == "string" then
    return a < b
  end
  return tostring(a) < tostring(b)
end

local format

local function format_key(k, opts, seen, depth)
  if type(k) == "string" and k:match(IDENTIFIER) and not KEYWORDS[k] then
    return k
  end
  return "[" .. format(k, opts, seen, depth) .. "]"
end

local function format_table(t, opts, seen, depth)
  if seen[t] then
    return "<cycle>"
  end
  local total = count_entries(t)
  if total == 0 then
    return "{}"
  end
  if depth >= opts.depth then
    return ("{... %d entr%s}"):format(total, total == 1 and "y" or "ies")
  end
  seen[t] = true
  local parts, shown = {}, 0
  local n = #t
  for i = 1, n do
    if shown >= opts.items then
      break
    end
    parts[#parts + 1] = format(rawget(t, i), opts, seen, depth + 1)
    shown = shown + 1
  end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, key_order)
  for _, k in ipairs(keys) do
    if shown >= opts.items then
      break
    end
    parts[#parts + 1] = format_key(k, opts, seen, depth + 1) .. " = " .. format(rawget(t, k), opts, seen, depth + 1)
    shown = shown + 1
  end
  seen[t] = nil
  if total > shown then
    parts[#parts + 1] = ("... %d more"):format(total - shown)
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

format = function(value, opts, seen, depth)
  if opts.leaf then
    local text = opts.leaf(value)
    if text ~= nil then
      return text
    end
  end
  local kind = type(value)
  if kind == "string" then
    return depth == 0 and value or (("%q"):format(value):gsub("\\\n", "\\n"))
  elseif kind == "table" then
    local mt = getmetatable(value)
    if type(mt) == "table" and rawget(mt, "__tostring") then
      local ok, text = pcall(tostring, value)
      if ok then
        return text
      end
    end
    return format_table(value, opts, seen, depth)
  elseif kind == "number" and math.type(value) == "float" then
    return (("%.14g"):format(value):gsub("^(%-?%d+)$", "%1.0"))
  end
  return tostring(value)
end

--- The text of `value`. opts: depth (default inspect.DEPTH), items
-- (default inspect.ITEMS), leaf = function(value) -> text or nil.
-- A string at the top level is itself (as print shows it).
function inspect.format(value, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("inspect.format: argument #2: expected an options table {depth =, items =, leaf =}, got "
      .. type(opts), 2)
  end
  opts = opts or {}
  local depth, items = opts.depth or inspect.DEPTH, opts.items or inspect.ITEMS
  if math.type(depth) ~= "integer" or depth < 1 or math.type(items) ~= "integer" or items < 1 then
    error("inspect.format: depth and items must be integers >= 1", 2)
  end
  if opts.leaf ~= nil and type(opts.leaf) ~= "function" then
    error("inspect.format: leaf must be a function, got " .. type(opts.leaf), 2)
  end
  return format(value, { depth = depth, items = items, leaf = opts.leaf }, {}, 0)
end

return inspect

-- distill.args: the argument checks of distill's public Lua functions, in
-- the C binding's wording: "<function>: argument #<i>: expected <what>,
-- got <what it got>".
--
--   local args = require "distill.args"
--   args.table("run_dir.begin", 1, session, "a session (run_dir.open's result)")
--   args.check(math.type(n) == "integer", "dist.share", 1, "an integer", n)
--
-- Each check returns the value, raises the error at the caller of the
-- checked function (a user's script, not distill's file) otherwise.
local args = {}

--- What a value is, as an error message says it: "nil", "a tensor",
-- "boolean true", "number 3", "string 'x'" (cut), "a table", "a function".
function args.describe(value)
  local kind = type(value)
  if value == nil then
    return "nil"
  elseif kind == "userdata" then
    local ok, distill = pcall(require, "distill")
    if ok and type(distill) == "table" and distill.is_tensor and distill.is_tensor(value) then
      return "a tensor"
    end
    return "userdata"
  elseif kind == "string" then
    local shown = #value > 40 and (value:sub(1, 37) .. "...") or value
    return ("string '%s'"):format(shown)
  elseif kind == "number" or kind == "boolean" then
    return ("%s %s"):format(kind, tostring(value))
  end
  return "a " .. kind
end

-- Level 4: the caller of the function that called a check below.
local function fail(fn, position, expected, value)
  error(("%s: argument #%d: expected %s, got %s"):format(fn, position, expected, args.describe(value)), 4)
end

--- The value when ok, else the error for argument `position` of fn.
function args.check(ok, fn, position, expected, value)
  if not ok then
    fail(fn, position, expected, value)
  end
  return value
end

--- A table (or, when `optional`, nil).
function args.table(fn, position, value, expected, optional)
  if not (type(value) == "table" or (optional and value == nil)) then
    fail(fn, position, expected or "a table", value)
  end
  return value
end

--- A non-empty string (or, when `optional`, nil).
function args.string(fn, position, value, expected, optional)
  if not ((type(value) == "string" and value ~= "") or (optional and value == nil)) then
    fail(fn, position, expected or "a non-empty string", value)
  end
  return value
end

--- An integer >= min (or, when `optional`, nil).
function args.integer(fn, position, value, min, optional)
  if not ((math.type(value) == "integer" and (min == nil or value >= min)) or (optional and value == nil)) then
    fail(fn, position, min and ("an integer >= %d"):format(min) or "an integer", value)
  end
  return value
end

--- A function.
function args.func(fn, position, value, expected)
  if type(value) ~= "function" then
    fail(fn, position, expected or "a function", value)
  end
  return value
end

return args

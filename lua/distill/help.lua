-- distill.help: the documentation of a distill function, module or class,
-- read from the sources (for the REPL's help(x) and ?name).
--
--   local help = require "distill.help"
--   help.text(distill.nn.Conv2d)      -- the `---` comment above Conv2d:init
--   help.text(distill.F.conv2d)       -- a C function: its line in functional.lua
--   help.text(require "distill.log")  -- a module: the comment at the top of its file
--   help.lookup("F.conv2d", env)      -- the value a name stands for in env
--
-- The documentation is where the code is: the comment block right above a
-- Lua function's definition; for a C function of distill.core, the `---`
-- line above its entry in lua/distill/functional.lua (F's reference list);
-- for a module, its file's leading comment; for a class (a table with an
-- `init` method), the comment above init, after the class's module header.
local help = {}

local function read_lines(path)
  local text = path and require("distill.files").read(path)
  if not text then
    return nil
  end
  local lines = {}
  for line in (text:gsub("\n?$", "\n")):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  return lines
end

local function strip_comment(line)
  return (line:gsub("^%s*%-%-%-?%s?", ""))
end

-- The comment block ending on the line before `line_no` (1-based).
local function comment_above(lines, line_no)
  local first = line_no
  while first > 1 and lines[first - 1]:match("^%s*%-%-") do
    first = first - 1
  end
  local out = {}
  for i = first, line_no - 1 do
    out[#out + 1] = strip_comment(lines[i])
  end
  return #out > 0 and table.concat(out, "\n") or nil
end

-- The comment block at the top of a file.
local function leading_comment(lines)
  local out = {}
  for _, line in ipairs(lines) do
    if not line:match("^%-%-") then
      break
    end
    out[#out + 1] = strip_comment(line)
  end
  return #out > 0 and table.concat(out, "\n") or nil
end

local function source_file(fn)
  local info = debug.getinfo(fn, "S")
  local file = info.source:match("^@(.*)$")
  return file, info.linedefined, info.what
end

local function module_file(name)
  local path = package.searchpath(name, package.path)
  if not path then
    local ok, checkout = pcall(require, "distill.checkout")
    if ok and checkout.search then
      path = checkout.search(name)
    end
  end
  return path
end

-- The name of a loaded module whose table is `value`.
local function module_name_of(value)
  local names = {}
  for name, module in pairs(package.loaded) do
    if rawequal(module, value) and type(name) == "string" then
      names[#names + 1] = name
    end
  end
  table.sort(names, function(a, b) return #a < #b or (#a == #b and a < b) end)
  return names[1]
end

-- The doc line of a C function from functional.lua's reference list.
local function c_function_doc(fn)
  local F = require "distill.functional"
  local lines = read_lines(module_file("distill.functional"))
  if not lines then
    return nil
  end
  local names = {}
  for name, value in pairs(F) do
    if rawequal(value, fn) then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    for i, line in ipairs(lines) do
      if line:match("^F%." .. name .. "%s*=") then
        local doc = comment_above(lines, i)
        if doc then
          return doc
        end
      end
    end
  end
  return nil
end

local function function_doc(fn)
  local file, line, what = source_file(fn)
  if what == "C" then
    return c_function_doc(fn)
  end
  local lines = read_lines(file)
  if not lines or line < 1 then
    return nil
  end
  local doc = comment_above(lines, line)
  local signature = lines[line]:match("^%s*(.-)%s*$")
  return (doc and (doc .. "\n") or "") .. ("(%s:%d: %s)"):format(file, line, signature)
end

--- The documentation of value (a function, module or class), or nil and
-- why there is none.
function help.text(value)
  local kind = type(value)
  if kind == "function" then
    local doc = function_doc(value)
    if doc then
      return doc
    end
    return nil, "no documentation found for this function"
  elseif kind == "table" then
    local name = module_name_of(value)
    if name then
      local lines = read_lines(module_file(name))
      local doc = lines and leading_comment(lines)
      if doc then
        return doc
      end
    end
    local init = rawget(value, "init")
    if type(init) == "function" then
      local doc = function_doc(init)
      if doc then
        return (rawget(value, "__name") and (tostring(rawget(value, "__name")) .. "\n") or "") .. doc
      end
    end
    local call = getmetatable(value) and rawget(getmetatable(value), "__call")
    if type(call) == "function" then
      local doc = function_doc(call)
      if doc then
        return doc
      end
    end
    return nil, "no documentation found for this table"
  end
  return nil, ("a %s value has no documentation"):format(kind)
end

--- The value that `name` ("F.conv2d", "distill.nn.Conv2d", "x:view")
-- stands for in env (a table of globals), or nil and why not.
function help.lookup(name, env)
  if type(name) ~= "string" then
    error("help.lookup: argument #1: expected a name such as \"F.conv2d\", got " .. type(name), 2)
  end
  if type(env) ~= "table" then
    error("help.lookup: argument #2: expected the environment table, got " .. type(env), 2)
  end
  name = name:match("^%s*(.-)%s*$")
  if not name:match("^[%a_][%w_]*[%w_%.:]*$") then
    return nil, ("'%s' is not a name (try ?F.conv2d or ?nn.Conv2d)"):format(name)
  end
  local value = env
  for part in name:gmatch("[^%.:]+") do
    local ok, v = pcall(function() return value[part] end)
    if not ok or v == nil then
      return nil, ("%s: no such name"):format(name)
    end
    value = v
  end
  return value
end

return help

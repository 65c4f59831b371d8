-- fails(prefix, fn, needle...): fn() must raise an error whose message (less
-- the "file:line: " position luaL_error adds) starts with `prefix`, the
-- function's name, and contains every needle (plain text), as in
-- spec/misuse_spec.lua. Returns the message.
local assert = require "luassert"

local function strip_position(msg)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", "", 1))
end

return function(prefix, fn, ...)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error from " .. prefix)
  local msg = strip_position(err)
  assert.equal(prefix, msg:sub(1, #prefix), "message does not start with the function: " .. msg)
  for _, needle in ipairs { ... } do
    assert.truthy(msg:find(needle, 1, true), "message lacks '" .. needle .. "': " .. msg)
  end
  return msg
end

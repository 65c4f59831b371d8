-- distill.args: the argument checks of the public Lua functions say the
-- function, the argument, what was expected and what it got.
local distill = require "distill"
local args = require "distill.args"
local h = require "support.helpers"

-- A public function of a user's: its checks fail at its caller.
local function takes(fn_name, check, ...)
  local extra = table.pack(...)
  return function(value)
    return check(fn_name, 1, value, table.unpack(extra, 1, extra.n))
  end
end

describe("distill.args", function()
  it("describes what a value is", function()
    assert.are.equal("nil", args.describe(nil))
    assert.are.equal("boolean true", args.describe(true))
    assert.are.equal("number 3", args.describe(3))
    assert.are.equal("string 'x'", args.describe("x"))
    assert.are.equal("string '" .. ("a"):rep(37) .. "...'", args.describe(("a"):rep(100)))
    assert.are.equal("a table", args.describe({}))
    assert.are.equal("a function", args.describe(print))
    assert.are.equal("a tensor", args.describe(distill.zeros{ 2 }))
    assert.are.equal("userdata", args.describe(io.stdout))
  end)

  it("returns good values and names the function, argument and expectation otherwise", function()
    assert.are.equal(5, args.check(true, "f", 1, "x", 5))
    h.fails("m.f: argument #2: expected a path, got number 3", args.check, false, "m.f", 2, "a path", 3)
    local t = {}
    assert.are.equal(t, takes("m.f", args.table)(t))
    h.fails("m.f: argument #1: expected a table, got boolean true", takes("m.f", args.table), true)
    assert.is_nil(takes("m.f", args.table, nil, true)(nil), "optional")
    h.fails("m.f: argument #1: expected a non-empty string, got string ''", takes("m.f", args.string), "")
    assert.are.equal("a", takes("m.f", args.string)("a"))
    h.fails("m.f: argument #1: expected an integer >= 1, got number 0", takes("m.f", args.integer, 1), 0)
    h.fails("m.f: argument #1: expected an integer >= 1, got number 1.5", takes("m.f", args.integer, 1), 1.5)
    assert.are.equal(2, takes("m.f", args.integer, 1)(2))
    assert.is_nil(takes("m.f", args.integer, 1, true)(nil))
    h.fails("m.f: argument #1: expected the callback, got nil", takes("m.f", args.func, "the callback"), nil)
  end)

  it("raises the error at the caller of the checked function", function()
    local function public(x)
      args.table("public", 1, x)
    end
    local ok, err = pcall(function()
      public(1)   -- this line
    end)
    assert.is_false(ok)
    local line = debug.getinfo(1, "l").currentline - 3
    assert.truthy(err:find("args_spec.lua:" .. line .. ": public: argument #1", 1, true), err)
  end)
end)

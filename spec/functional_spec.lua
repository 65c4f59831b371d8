-- distill.F is an explicit table: every name is listed (and documented) in
-- lua/distill/functional.lua, and none of the engine's functions is missing.
local distill = require "distill"
local F = require "distill.functional"

local WRITTEN_IN_LUA = { kd_loss = true, flatten = true }

local function source_of_F()
  local path = package.searchpath("distill.functional", package.path)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  return text
end

describe("distill.F", function()
  it("is a plain table (no forwarding metatable)", function()
    assert.is_nil(getmetatable(F))
    assert.are.equal(F, distill.F)
  end)

  it("holds every function of the engine, as the engine's own function", function()
    for name, fn in pairs(distill.core) do
      if type(fn) == "function" then
        assert.is_function(F[name], "F lacks " .. name)
        if not WRITTEN_IN_LUA[name] then
          assert.are.equal(fn, F[name], name)
        end
      end
    end
  end)

  it("holds only functions, each listed by name with a one-line doc comment", function()
    local text = source_of_F()
    local documented = {}
    for name in text:gmatch("\n%-%-%- ([%w_]+)[%(%{]") do
      documented[name] = true
    end
    for name, fn in pairs(F) do
      assert.is_function(fn, name)
      assert.is_true(documented[name] == true, name .. " has no `--- " .. name .. "(...)` comment")
      local assigned = text:find("\nF%." .. name .. " = ") or text:find('\nF%["' .. name .. '"%] = ')
        or text:find("\nfunction F%." .. name .. "%(")
      assert.truthy(assigned, name .. " is not assigned by name")
    end
    for name in pairs(documented) do
      assert.is_function(F[name], "documented but missing: " .. name)
    end
  end)

  it("keeps its Lua compositions", function()
    local x = distill.randn{ 2, 3, 4 }
    assert.are.same({ 2, 12 }, F.flatten(x):shape())
    local s, t = distill.randn{ 4, 5 }, distill.randn{ 4, 5 }
    local expected = F.kl_div(F.log_softmax(s / 2, 2), F.softmax(t / 2, 2), { reduction = "batchmean" }) * 4
    assert.is_true(math.abs(expected:item() - F.kd_loss(s, t, 2):item()) < 1e-6)
  end)
end)

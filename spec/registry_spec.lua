-- distill.registry: the name -> entry tables of distillers, models and datasets.
local registry = require "distill.registry"
local h = require "support.helpers"

describe("distill.registry", function()
  it("sorts keys as strings", function()
    assert.are.same({ "a", "b", "c" }, registry.sorted_keys({ c = 1, a = 2, b = 3 }))
    assert.are.same({ "1", "x" }, registry.sorted_keys({ [1] = true, x = true }))
    assert.are.same({}, registry.sorted_keys({}))
    h.fails("registry.sorted_keys: expected a table, got nil", registry.sorted_keys, nil)
  end)

  it("adds, finds and lists entries", function()
    local r = registry.new("things", "thing")
    r:add("b", { value = 2 })
    r:add("a", "module.a")
    assert.are.equal("module.a", r:find("a"))
    assert.are.equal(2, r:get("b").value)
    assert.is_nil(r:get("c"))
    assert.are.same({ "a", "b" }, r:names())
    assert.are.same({ "b", "a" }, r:in_order())
  end)

  it("names the owner, the kind and the known names in its errors", function()
    local r = registry.new("things", "thing")
    r:add("a", 1)
    h.fails("things: unknown thing 'z' (known: a)", r.find, r, "z")
    h.fails("things: thing 'a' is already registered", r.add, r, "a", 2)
    h.fails("things: a thing needs a name (string) and an entry", r.add, r, "b", nil)
    h.fails("registry.new: expected the owner's and the kind's names", registry.new, "things")
  end)
end)

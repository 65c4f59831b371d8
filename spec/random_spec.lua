-- The random generator: seeding, saved state, distributions, and the same
-- numbers for any thread count.
local distill = require "distill"
local h = require "support.helpers"

local function stats(t)
  local values = t:view(-1):totable()
  local n, sum, sq = #values, 0, 0
  for i = 1, n do sum = sum + values[i] end
  local mean = sum / n
  for i = 1, n do sq = sq + (values[i] - mean) ^ 2 end
  return mean, math.sqrt(sq / (n - 1)), values
end

describe("manual_seed", function()
  it("reproduces the same numbers", function()
    distill.manual_seed(42)
    local a, b = distill.rand { 5 }:totable(), distill.randn { 3, 2 }:totable()
    local c, d = distill.randint(0, 100, { 4 }):totable(), distill.randperm(6):totable()
    distill.manual_seed(42)
    assert.are.same(a, distill.rand { 5 }:totable())
    assert.are.same(b, distill.randn { 3, 2 }:totable())
    assert.are.same(c, distill.randint(0, 100, { 4 }):totable())
    assert.are.same(d, distill.randperm(6):totable())
    assert.are.equal(42, distill.initial_seed())
  end)

  it("different seeds give different numbers", function()
    distill.manual_seed(1)
    local a = distill.rand { 8 }:totable()
    distill.manual_seed(2)
    assert.are_not.same(a, distill.rand { 8 }:totable())
  end)

  it("successive draws differ", function()
    distill.manual_seed(7)
    assert.are_not.same(distill.rand { 4 }:totable(), distill.rand { 4 }:totable())
  end)

  it("varargs and table shapes draw the same numbers", function()
    distill.manual_seed(3)
    local a = distill.randn(2, 3):totable()
    distill.manual_seed(3)
    assert.are.same(a, distill.randn({ 2, 3 }, "float32"):totable())
  end)
end)

describe("rng state", function()
  it("get/set round trip reproduces the next numbers", function()
    distill.manual_seed(123)
    distill.rand { 10 }
    local state = distill.get_rng_state()
    assert.are.equal(123, state.seed)
    assert.are.equal("number", type(state.offset))
    local a = distill.randn { 6 }:totable()
    local b = distill.randint(0, 1000, { 6 }):totable()
    distill.manual_seed(999)   -- disturb
    distill.rand { 3 }
    distill.set_rng_state(state)
    assert.are.same(a, distill.randn { 6 }:totable())
    assert.are.same(b, distill.randint(0, 1000, { 6 }):totable())
  end)

  it("the state is plain integers that survive a copy", function()
    distill.manual_seed(5)
    distill.randn { 7 }
    local s = distill.get_rng_state()
    local copy = { seed = s.seed, offset = s.offset }
    local a = distill.rand { 4 }:totable()
    distill.set_rng_state(copy)
    assert.are.same(a, distill.rand { 4 }:totable())
    assert.are.equal(math.type(s.seed), "integer")
    assert.are.equal(math.type(s.offset), "integer")
  end)

  it("in-place fills follow the same generator", function()
    distill.manual_seed(11)
    local a = distill.rand { 5 }:totable()
    distill.manual_seed(11)
    assert.are.same(a, distill.zeros { 5 }:uniform_():totable())
    distill.manual_seed(11)
    local n = distill.randn { 4 }:totable()
    distill.manual_seed(11)
    assert.are.same(n, distill.empty { 4 }:normal_():totable())
  end)
end)

describe("distributions", function()
  it("rand is in [0, 1) with mean 1/2", function()
    distill.manual_seed(0)
    local x = distill.rand { 100000 }
    assert.are.equal("float32", x:dtype())
    local mean, std, values = stats(x)
    for i = 1, #values do
      assert(values[i] >= 0 and values[i] < 1, "value out of [0, 1): " .. values[i])
    end
    assert.is_true(math.abs(mean - 0.5) < 0.01, "mean " .. mean)
    assert.is_true(math.abs(std - math.sqrt(1 / 12)) < 0.01, "std " .. std)
  end)

  it("uniform_(low, high) stays in [low, high)", function()
    distill.manual_seed(0)
    local _, _, values = stats(distill.zeros { 10000 }:uniform_(-2, 3))
    local lo, hi = math.huge, -math.huge
    for i = 1, #values do
      lo, hi = math.min(lo, values[i]), math.max(hi, values[i])
    end
    assert.is_true(lo >= -2 and lo < -1.9, "min " .. lo)
    assert.is_true(hi < 3 and hi > 2.9, "max " .. hi)
  end)

  it("randn has mean ~0 and std ~1 on 1e5 samples", function()
    distill.manual_seed(2024)
    local x = distill.randn { 100000 }
    local mean, std, values = stats(x)
    assert.is_true(math.abs(mean) < 0.01, "mean " .. mean)
    assert.is_true(math.abs(std - 1) < 0.01, "std " .. std)
    local within = 0
    for i = 1, #values do
      if math.abs(values[i]) < 1 then within = within + 1 end
    end
    assert.is_true(math.abs(within / #values - 0.6827) < 0.01, "P(|z|<1) " .. within / #values)
  end)

  it("normal_(mean, std) scales", function()
    distill.manual_seed(9)
    local mean, std = stats(distill.zeros { 50000 }:normal_(3, 0.5))
    assert.is_true(math.abs(mean - 3) < 0.02, "mean " .. mean)
    assert.is_true(math.abs(std - 0.5) < 0.02, "std " .. std)
  end)

  it("randint covers [low, high) uniformly", function()
    distill.manual_seed(1)
    local x = distill.randint(-2, 3, { 20000 })
    assert.are.equal("int64", x:dtype())
    local counts = {}
    for _, v in ipairs(x:totable()) do
      assert.is_true(math.type(v) == "integer" and v >= -2 and v < 3, "value " .. v)
      counts[v] = (counts[v] or 0) + 1
    end
    for v = -2, 2 do
      assert.is_true(math.abs(counts[v] / 20000 - 0.2) < 0.02, "frequency of " .. v)
    end
    assert.are.same({ 2, 3 }, distill.randint(0, 2, { 2, 3 }):shape())
    assert.are.equal("uint8", distill.randint(0, 256, { 4 }, "uint8"):dtype())
    local r = distill.zeros({ 1000 }, "int64"):random_(5, 7)
    for _, v in ipairs(r:totable()) do
      assert.is_true(v == 5 or v == 6)
    end
  end)

  it("randperm is a permutation of 1..n", function()
    distill.manual_seed(77)
    for _, n in ipairs { 0, 1, 2, 10, 1000 } do
      local p = distill.randperm(n)
      assert.are.equal("int64", p:dtype())
      assert.are.same({ n }, p:shape())
      local seen, list = {}, p:totable()
      for _, v in ipairs(list) do
        assert.is_true(v >= 1 and v <= n and not seen[v], "bad entry " .. v)
        seen[v] = true
      end
    end
    local p = distill.randperm(1000):totable()
    local moved = 0
    for i = 1, 1000 do
      if p[i] ~= i then moved = moved + 1 end
    end
    assert.is_true(moved > 900, "only " .. moved .. " of 1000 moved")
  end)

  it("fills non-contiguous views in logical order", function()
    distill.manual_seed(4)
    local a = distill.rand { 3, 2 }:totable()
    distill.manual_seed(4)
    local t = distill.zeros { 2, 3 }:t()
    t:uniform_()
    assert.are.same(a, t:totable())
  end)
end)

describe("thread count", function()
  local function run_with_threads(n)
    local code = table.concat({
      "local d=require'distill'",
      "d.manual_seed(31337)",
      "local out={}",
      "for _,v in ipairs(d.rand{7}:totable()) do out[#out+1]=string.format('%.9g',v) end",
      "for _,v in ipairs(d.randn{5}:totable()) do out[#out+1]=string.format('%.9g',v) end",
      "for _,v in ipairs(d.randint(0,1000000,{5}):totable()) do out[#out+1]=v end",
      "for _,v in ipairs(d.randperm(8):totable()) do out[#out+1]=v end",
      "local big=d.randn{200000}:view(-1):totable() local s=0 for i=1,#big do s=s+big[i]*i end",
      "out[#out+1]=string.format('%.17g',s)",
      "print(table.concat(out,' '))",
    }, " ")
    return h.run_lua_with_threads(code, n)
  end

  it("gives the same numbers for OMP_NUM_THREADS=1 and 2", function()
    local one, two = run_with_threads(1), run_with_threads(2)
    assert.truthy(one:match("^[%d%.%-e ]+\n$"), "unexpected output: " .. one)
    assert.are.equal(one, two)
    assert.are.equal(one, run_with_threads(4))
  end)
end)

-- Misuse of the API: every case must raise a Lua error whose message starts
-- with the name of the function ("distill.zeros:", "Tensor:view:") and says
-- what was wrong. Cases for functions another area adds are only run when
-- the function exists.
local distill = require "distill"

-- The message without the "file:line: " position luaL_error adds when a Lua
-- function is the caller.
local function strip_position(msg)
  return (tostring(msg):gsub("^[^\n]-:%d+: ", "", 1))
end

local cases = {}

-- case(prefix, fn, needle...): fn() must fail; the message must start with
-- `prefix` and contain every needle (plain text).
local function case(prefix, fn, ...)
  cases[#cases + 1] = { prefix = prefix, fn = fn, needles = { ... } }
end

local function x23() return distill.arange(6):view { 2, 3 }:float() end
local function freed()
  local f = distill.ones { 2, 2 }
  f:free()
  return f
end

-- ------------------------------------------------------------ creation
case("distill.zeros:", function() return distill.zeros "a" end, "expected a shape table", "string")
case("distill.zeros:", function() return distill.zeros { -1 } end, "size -1", "negative")
case("distill.zeros:", function() return distill.zeros { 2.5 } end, "shape entry 1", "integer")
case("distill.zeros:", function() return distill.zeros { 1, 1, 1, 1, 1, 1, 1, 1, 1 } end, "9 dims", "at most 8")
case("distill.zeros:", function() return distill.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) end, "9 dims", "at most 8")
case("distill.zeros:", function() return distill.zeros({ 2 }, "float16") end, "unknown dtype", "float16")
case("distill.zeros:", function() return distill.zeros({ 2 }, 5) end, "dtype must be a string", "number")
case("distill.zeros:", function() return distill.zeros(2, {}) end, "size", "expected an integer", "table")
case("distill.ones:", function() return distill.ones { 3, -3 } end, "size -3 in dim 2", "negative")
case("distill.empty:", function() return distill.empty { true } end, "shape entry 1", "integer")
case("distill.full:", function() return distill.full(3, 1) end, "expected a shape table")
case("distill.full:", function() return distill.full({ 2 }, "x") end, "fill value", "expected a number", "string")
case("distill.full:", function() return distill.full({ 2 }, 1, "complex") end, "unknown dtype", "complex")
case("distill.zeros_like:", function() return distill.zeros_like(5) end, "argument #1", "expected a tensor", "number")
case("distill.ones_like:", function() return distill.ones_like(x23(), "bogus") end, "unknown dtype", "bogus")
case("distill.full_like:", function() return distill.full_like(x23()) end, "fill value", "expected a number")
case("distill.arange:", function() return distill.arange() end, "expected (end)")
case("distill.arange:", function() return distill.arange("5") end, "expected (end)", "string")
case("distill.arange:", function() return distill.arange(0, 5, 0) end, "non-zero step")
case("distill.arange:", function() return distill.arange(5, 0, 1) end, "step 1", "away from the end")
case("distill.arange:", function() return distill.arange(0, 1 / 0) end, "finite")
case("distill.arange:", function() return distill.arange(0, 4, 1, "int8") end, "unknown dtype", "int8")
case("distill.linspace:", function() return distill.linspace(0, 1, -1) end, "steps", ">= 0", "-1")
case("distill.linspace:", function() return distill.linspace(0, 1, 2.5) end, "steps must be an integer", "2.5")
case("distill.linspace:", function() return distill.linspace("a", 1, 3) end, "start", "expected a number", "string")
case("distill.eye:", function() return distill.eye(-1) end, "sizes must be >= 0", "-1")
case("distill.eye:", function() return distill.eye(2, 2.5) end, "m must be an integer", "2.5")
case("distill.eye:", function() return distill.eye {} end, "n", "expected an integer", "table")
case("distill.tensor:", function() return distill.tensor { { 1, 2 }, { 3 } } end, "ragged", "rows of length 2 and 1")
case("distill.tensor:", function() return distill.tensor { 1, { 2 } } end, "ragged")
case("distill.tensor:", function() return distill.tensor { { 1 }, 2 } end, "ragged")
case("distill.tensor:", function() return distill.tensor { "a" } end, "expected numbers", "string")
case("distill.tensor:", function() return distill.tensor "abc" end, "expected a number or a (nested) table", "string")
case("distill.tensor:", function() return distill.tensor({ 1, 2 }, "float64") end, "unknown dtype", "float64")
case("distill.tensor:", function()
  return distill.tensor { { { { { { { { { 1 } } } } } } } } }
end, "deeper than 8")

-- ------------------------------------------------------------ geometry
case("Tensor:size:", function() return x23():size(3) end, "dim 3 out of range", "2-d")
case("Tensor:size:", function() return x23():size "a" end, "dim", "expected an integer", "string")
case("Tensor:stride:", function() return x23():stride(0) end, "dim 0 out of range", "count from 1")
case("Tensor:item:", function() return x23():item() end, "one element", "[2, 3]")
case("Tensor.__len:", function() return #distill.tensor(3) end, "0-d tensor has no length")

-- ------------------------------------------------------------ views
case("Tensor:view:", function() return x23():view { 4, 4 } end, "[4, 4]", "16 elements", "has 6")
case("Tensor:view:", function() return x23():view { -1, -1 } end, "only one dim can be -1")
case("Tensor:view:", function() return x23():view { 4, -1 } end, "cannot infer", "6 elements")
case("Tensor:view:", function() return x23():view { -2, 3 } end, "size -2", "negative")
case("Tensor:view:", function() return x23():t():view { 6 } end, "not compatible", "reshape")
case("Tensor:view:", function() return x23():view "a" end, "expected a shape table", "string")
case("Tensor:view:", function() return x23().view(5, { 6 }) end, "argument #1", "expected a tensor", "number")
case("Tensor:reshape:", function() return x23():reshape { 5 } end, "[5]", "5 elements", "has 6")
case("Tensor:view_as:", function() return x23():view_as(distill.zeros { 4 }) end, "[4]", "has 6")
case("Tensor:narrow:", function() return x23():narrow(3, 1, 1) end, "dim 3 out of range", "2-d")
case("Tensor:narrow:", function() return x23():narrow(0, 1, 1) end, "dim 0 out of range")
case("Tensor:narrow:", function() return x23():narrow(1, 0, 1) end, "start 0", "count from 1")
case("Tensor:narrow:", function() return x23():narrow(2, 2, 5) end, "out of range", "dim 2 of size 3")
case("Tensor:narrow:", function() return x23():narrow(2, 1, -1) end, "out of range")
case("Tensor:narrow:", function() return distill.tensor(1):narrow(1, 1, 1) end, "0-d")
case("Tensor:select:", function() return x23():select(1, 3) end, "index 3 is out of range", "size 2")
case("Tensor:select:", function() return x23():select(1, 0) end, "index 0 is invalid", "count from 1")
case("Tensor:select:", function() return x23():select(1, -3) end, "index -3 is out of range")
case("Tensor:select:", function() return x23():select(5, 1) end, "dim 5 out of range")
case("Tensor:select:", function() return x23():select(1, 1.5) end, "index must be an integer", "1.5")
case("Tensor:transpose:", function() return x23():transpose(1, 3) end, "dim 3 out of range")
case("Tensor:t:", function() return distill.zeros { 2, 2, 2 }:t() end, "<= 2 dims", "got 3")
case("Tensor:permute:", function() return x23():permute { 1, 1 } end, "dim 1 appears twice")
case("Tensor:permute:", function() return x23():permute { 1 } end, "permutation has 1 dims", "tensor has 2")
case("Tensor:permute:", function() return x23():permute { 1, 3 } end, "dim 3 out of range")
case("Tensor:permute:", function() return x23():permute { 1, "a" } end, "dim", "expected an integer", "string")
case("Tensor:permute:", function() return x23():permute(2, 1, 3) end, "permutation has 3 dims")
case("Tensor:squeeze:", function() return x23():squeeze(3) end, "dim 3 out of range")
case("Tensor:unsqueeze:", function() return x23():unsqueeze(4) end, "dim 4 out of range")
case("Tensor:unsqueeze:", function() return distill.zeros { 1, 1, 1, 1, 1, 1, 1, 1 }:unsqueeze(1) end, "at most 8 dims")
case("Tensor:expand:", function() return x23():expand { 3, 3 } end, "cannot expand", "[2, 3]", "[3, 3]")
case("Tensor:expand:", function() return x23():expand { 3 } end, "cannot expand a 2-d tensor to 1 dims")
case("Tensor:expand:", function() return x23():expand { -1, 2, 3 } end, "-1 is not allowed")
case("Tensor:expand_as:", function() return x23():expand_as(5) end, "argument #2", "expected a tensor")
case("Tensor:flatten:", function() return distill.zeros { 2, 3, 4 }:flatten(3, 1) end, "start dim 3 is after end dim 1")
case("Tensor:flatten:", function() return x23():flatten(1, 9) end, "dim 9 out of range")

-- ------------------------------------------------------------ copies, conversion
case("Tensor:copy_:", function() return x23():copy_(distill.zeros { 4 }) end, "cannot expand", "[4]", "[2, 3]")
case("Tensor:copy_:", function() return x23():copy_(5) end, "argument #2", "expected a tensor", "number")
case("Tensor:fill_:", function() return x23():fill_ "a" end, "value", "expected a number", "string")
case("Tensor:to:", function() return x23():to "bad" end, "unknown dtype", "bad")
case("Tensor:to:", function() return x23():to() end, "expected a dtype")
case("Tensor:float:", function() return distill.Tensor.float("x") end, "argument #1", "expected a tensor", "string")

-- ------------------------------------------------------------ indexing sugar
case("Tensor indexing:", function() return x23()[3] end, "index 3 is out of range", "size 2")
case("Tensor indexing:", function() return x23()[0] end, "index 0 is invalid")
case("Tensor indexing:", function() return x23()[{ 1, 2, 3 }] end, "3 indices given for a 2-d tensor")
case("Tensor indexing:", function() return x23()[{ { 0, 2 } }] end, "range {0, 2} is out of range", "size 2")
case("Tensor indexing:", function() return x23()[{ { 1, "a" } }] end, "{first, last} integers")
case("Tensor indexing:", function() return x23()[{ 1, { 2, 4 } }] end, "out of range", "size 3")
case("Tensor indexing:", function() return x23()[true] end, "cannot index a tensor with a boolean")
case("Tensor indexing:", function() return x23()[{ 1.5 }] end, "an index must be an integer", "number")
case("Tensor assignment:", function() local x = x23(); x[1] = "s" end, "value must be a number or a tensor", "string")
case("Tensor assignment:", function() local x = x23(); x[1] = distill.zeros { 5 } end, "cannot expand", "[5]")
case("Tensor assignment:", function() local x = x23(); x[9] = 1 end, "index 9 is out of range")
case("Tensor:", function() local x = x23(); x.foo = 1 end, "cannot set field 'foo'")

-- ------------------------------------------------------------ freed tensors
case("Tensor:numel:", function() return freed():numel() end, "freed")
case("Tensor:view:", function() return freed():view { 4 } end, "freed")
case("Tensor indexing:", function() return freed()[1] end, "freed")
case("distill.zeros_like:", function() return distill.zeros_like(freed()) end, "argument #1", "freed")
case("Tensor:copy_:", function() return x23():copy_(freed()) end, "argument #2", "freed")
case("Tensor.__len:", function() return #freed() end, "freed")

-- ------------------------------------------------------------ random
case("distill.randn:", function() return distill.randn({ 2 }, "int64") end, "float32 only")
case("distill.rand:", function() return distill.rand({ 2 }, "int64") end, "float32 only")
case("distill.rand:", function() return distill.rand({ 2 }, "nope") end, "unknown dtype", "nope")
case("distill.randn:", function() return distill.randn { -1 } end, "size -1", "negative")
case("distill.randint:", function() return distill.randint(5, 1, { 3 }) end, "high (1) must be greater than low (5)")
case("distill.randint:", function() return distill.randint(0, 5) end, "shape table", "no value")
case("distill.randint:", function() return distill.randint(0.5, 5, { 2 }) end, "low must be an integer", "0.5")
case("distill.randperm:", function() return distill.randperm(-1) end, "n must be >= 0", "-1")
case("distill.randperm:", function() return distill.randperm "a" end, "n", "expected an integer", "string")
case("distill.manual_seed:", function() return distill.manual_seed "x" end, "seed", "expected an integer", "string")
case("distill.manual_seed:", function() return distill.manual_seed(1.5) end, "seed must be an integer", "1.5")
case("distill.set_rng_state:", function() return distill.set_rng_state(5) end, "expected a state table", "number")
case("distill.set_rng_state:", function() return distill.set_rng_state { seed = 1 } end, "'seed' and 'offset'")
case("Tensor:normal_:", function() return distill.zeros { 2 }:normal_(0, -1) end, "std must be >= 0")
case("Tensor:normal_:", function() return distill.zeros({ 2 }, "int64"):normal_() end, "float32", "int64")
case("Tensor:uniform_:", function() return distill.zeros({ 2 }, "uint8"):uniform_() end, "float32", "uint8")
case("Tensor:uniform_:", function() return distill.zeros { 2 }:uniform_(1, 0) end, "low 1 must be <= high 0")
case("Tensor:random_:", function() return distill.zeros { 2 }:random_(3, 1) end, "must be greater than low")

local core_count = #cases

-- ------------------------------------------------------------ other areas (when present)
local x = x23
local function have(name) return distill.core[name] ~= nil end

if have "add" then
  case({ "distill.add:", "Tensor:add:" }, function() return distill.add(x(), distill.zeros { 4 }) end, "[2, 3]", "[4]", "broadcast")
  case({ "distill.add:", "Tensor:add:" }, function() return distill.add(x(), "a") end, "expected a tensor or a number", "string")
  case({ "distill.add:", "Tensor:add:" }, function() return distill.add(1, 2) end, "expected a tensor")
  case({ "distill.add:", "Tensor:add:" }, function() return distill.add(x(), freed()) end, "freed")
end
if have "mul" then
  case({ "distill.mul:", "Tensor:mul:" }, function() return distill.mul(x(), distill.zeros { 3, 2 }) end, "broadcast")
  case({ "distill.mul:", "Tensor:mul:" }, function() return distill.mul(x(), {}) end, "expected a tensor or a number", "table")
end
if have "sum" then
  case({ "distill.sum:", "Tensor:sum:" }, function() return distill.sum(x(), 3) end, "dim 3 out of range")
  case({ "distill.sum:", "Tensor:sum:" }, function() return distill.sum(x(), 0) end, "dim 0 out of range")
  case({ "distill.sum:", "Tensor:sum:" }, function() return distill.sum(5) end, "expected a tensor")
end
if have "max" then
  case({ "distill.max:", "Tensor:max:" }, function() return distill.max(x(), 4) end, "dim 4 out of range")
end
if have "argmax" then
  case({ "distill.argmax:", "Tensor:argmax:" }, function() return distill.argmax(x(), -3) end, "dim -3 out of range")
end
if have "where" then
  case({ "distill.where:", "Tensor:where:" }, function() return distill.where(x(), x(), x()) end, "uint8")
  case({ "distill.where:", "Tensor:where:" }, function()
    return distill.where(distill.ones({ 2 }, "uint8"), x(), x())
  end, "broadcast")
end
if have "clamp" then
  case({ "distill.clamp:", "Tensor:clamp:" }, function() return distill.clamp(x(), "a", 1) end, "expected a number", "string")
end
if have "mm" then
  case("distill.mm:", function() return distill.mm(x(), x()) end, "[2, 3]")
  case("distill.mm:", function() return distill.mm(distill.zeros { 3 }, x()) end, "2-d")
  case("distill.mm:", function() return distill.mm(x():long(), x():t():long()) end, "float32")
  case("distill.mm:", function() return distill.mm(x()) end, "argument #2", "expected a tensor")
end
if have "bmm" then
  case("distill.bmm:", function() return distill.bmm(x(), x()) end, "3-d")
  case("distill.bmm:", function()
    return distill.bmm(distill.zeros { 2, 2, 3 }, distill.zeros { 3, 3, 2 })
  end, "batch")
end
if have "matmul" then
  case("distill.matmul:", function() return distill.matmul(distill.zeros { 3 }, distill.zeros { 4 }) end, "3", "4")
  case("distill.matmul:", function() return distill.matmul(distill.tensor(1.0), x()) end, "at least 1 dim")
end
if have "index_select" then
  case("distill.index_select:", function() return distill.index_select(x(), 1, distill.tensor { 3 }) end, "out of range")
  case("distill.index_select:", function() return distill.index_select(x(), 1, distill.tensor { 0 }) end, "out of range")
  case("distill.index_select:", function() return distill.index_select(x(), 3, distill.tensor { 1 }) end, "dim 3 out of range")
  case("distill.index_select:", function() return distill.index_select(x(), 1, distill.tensor { 1.0 }) end, "int64")
end
if have "gather" then
  case("distill.gather:", function() return distill.gather(x(), 2, distill.tensor { { 4 } }) end, "out of range")
  case("distill.gather:", function() return distill.gather(x(), 2, distill.tensor { 1 }) end, "dims")
end
if have "scatter_add_" then
  case("distill.scatter_add_:", function()
    return distill.scatter_add_(x(), 1, distill.tensor { { 3, 1, 1 } }, distill.ones { 1, 3 })
  end, "out of range")
end
if have "masked_fill_" then
  case("distill.masked_fill_:", function() return distill.masked_fill_(x(), x(), 0) end, "uint8")
  case("distill.masked_fill_:", function()
    return distill.masked_fill_(x(), distill.ones({ 4 }, "uint8"), 0)
  end, "[4]")
end
if have "cat" then
  case("distill.cat:", function() return distill.cat({ x(), distill.zeros { 2, 4 } }, 1) end, "[2, 4]")
  case("distill.cat:", function() return distill.cat({}, 1) end, "empty")
  case("distill.cat:", function() return distill.cat({ x(), 5 }, 1) end, "tensor", "number")
  case("distill.cat:", function() return distill.cat({ x(), x() }, 3) end, "dim 3 out of range")
end
if have "stack" then
  case("distill.stack:", function() return distill.stack({ x(), distill.zeros { 3, 2 } }, 1) end, "[3, 2]")
  case("distill.stack:", function() return distill.stack(x(), 1) end, "table")
end
if have "split" then
  case("distill.split:", function() return distill.split(x(), 0, 1) end, "size", "0")
  case("distill.split:", function() return distill.split(x(), { 1, 1 }, 2) end, "add up to")
end
if have "chunk" then
  case("distill.chunk:", function() return distill.chunk(x(), 0, 1) end, "chunks", "0")
end
if have "repeat" then
  case("distill.repeat:", function() return distill["repeat"](x(), { 2 }) end, "repeat counts")
  case("distill.repeat:", function() return distill["repeat"](x(), { 2, -1 }) end, "-1")
end
if have "dropout" then
  case("distill.dropout:", function() return distill.dropout(x(), { p = "a" }) end, "option 'p' must be a number", "string")
  case("distill.dropout:", function() return distill.dropout(x(), { bogus = 1 }) end, "unknown option 'bogus'")
  case("distill.dropout:", function() return distill.dropout(x(), 5) end, "options must be a table", "number")
end
if have "cross_entropy" then
  case("distill.cross_entropy:", function()
    return distill.cross_entropy(x(), distill.tensor { 1, 2 }, { reduction = "avg" })
  end, "avg")
  case("distill.cross_entropy:", function()
    return distill.cross_entropy(x(), distill.tensor { 1, 2 }, { ignore_index = 1.5 })
  end, "option 'ignore_index' must be an integer")
end

describe("misuse", function()
  it("has at least 60 core cases", function()
    assert.is_true(core_count >= 60, "only " .. core_count .. " core cases")
  end)

  for i, c in ipairs(cases) do
    local prefix = type(c.prefix) == "table" and c.prefix[1] or c.prefix
    local label = string.format("#%d %s %s", i, prefix, table.concat(c.needles, " | "))
    it(label, function()
      local ok, err = pcall(c.fn)
      assert.is_false(ok, "expected an error")
      assert.is_string(err, "error value is not a string: " .. tostring(err))
      local msg = strip_position(err)
      local prefixes = type(c.prefix) == "table" and c.prefix or { c.prefix }
      local named = false
      for _, prefix in ipairs(prefixes) do
        named = named or msg:sub(1, #prefix) == prefix
      end
      assert.is_true(named, "message does not start with the function name: " .. msg)
      for _, needle in ipairs(c.needles) do
        assert.truthy(msg:find(needle, 1, true), "message lacks '" .. needle .. "': " .. msg)
      end
    end)
  end

  it("leaves the library usable after errors", function()
    for _ = 1, 100 do
      pcall(function() return x23():view { 7 } end)
    end
    local y = distill.arange(4):view { 2, 2 }
    assert.are.same({ { 0, 1 }, { 2, 3 } }, y:totable())
  end)

  it("does not leak the temporaries of failing calls", function()
    collectgarbage()
    collectgarbage()
    local before = distill.core.live_bytes()
    for _ = 1, 200 do
      pcall(function() return distill.tensor { { 1, 2 }, { 3 } } end)
      pcall(function() return x23():copy_(distill.zeros { 4 }) end)
      pcall(function() return x23():reshape { 5 } end)
      pcall(function() return distill.randint(0, 5, { 3 }, "float32") end)
    end
    collectgarbage()
    collectgarbage()
    assert.is_true(distill.core.live_bytes() <= before + 1024,
      "live bytes grew from " .. before .. " to " .. distill.core.live_bytes())
  end)
end)

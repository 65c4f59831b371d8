-- Tensor core: creation, dtypes, geometry, element access, conversion,
-- equality, length and lifetime. Values are hand-computed.
local distill = require "distill"
local h = require "support.helpers"

local function close_to(expected, actual, tol)
  tol = tol or 1e-6
  assert.is_true(math.abs(expected - actual) <= tol,
    string.format("expected %.9g, got %.9g", expected, actual))
end

local function all_close(expected, actual, tol)
  assert.are.equal(#expected, #actual)
  for i = 1, #expected do
    if type(expected[i]) == "table" then
      all_close(expected[i], actual[i], tol)
    else
      close_to(expected[i], actual[i], tol)
    end
  end
end

describe("creation", function()
  it("zeros, ones and empty take a table shape with an optional dtype", function()
    local z = distill.zeros { 2, 3 }
    assert.are.same({ 2, 3 }, z:shape())
    assert.are.equal("float32", z:dtype())
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, z:totable())
    local o = distill.ones({ 3 }, "int64")
    assert.are.equal("int64", o:dtype())
    assert.are.same({ 1, 1, 1 }, o:totable())
    assert.is_true(math.type(o:totable()[1]) == "integer")
    local b = distill.ones({ 2 }, "uint8")
    assert.are.equal("uint8", b:dtype())
    assert.are.same({ 1, 1 }, b:totable())
    local e = distill.empty({ 4, 1 }, "float")
    assert.are.same({ 4, 1 }, e:shape())
    assert.are.equal("float32", e:dtype())
  end)

  it("accepts varargs shapes", function()
    assert.are.same({ 2, 3, 4 }, distill.zeros(2, 3, 4):shape())
    assert.are.same({ 5 }, distill.ones(5):shape())
    assert.are.same({ 1, 2 }, distill.empty(1, 2):shape())
  end)

  it("makes 0-d tensors from an empty shape", function()
    local s = distill.zeros {}
    assert.are.equal(0, s:dim())
    assert.are.equal(1, s:numel())
    assert.are.same({}, s:shape())
    assert.are.equal(0.0, s:item())
    assert.are.equal(1.0, distill.ones():item())
  end)

  it("makes tensors with zero-size dims", function()
    local z = distill.zeros { 0, 3 }
    assert.are.equal(0, z:numel())
    assert.are.same({ 0, 3 }, z:shape())
    assert.are.same({}, z:totable())
  end)

  it("dtype aliases", function()
    assert.are.equal("int64", distill.zeros({ 1 }, "long"):dtype())
    assert.are.equal("uint8", distill.zeros({ 1 }, "byte"):dtype())
    assert.are.equal("float32", distill.zeros({ 1 }, "float32"):dtype())
  end)

  it("full infers its dtype from the value", function()
    local a = distill.full({ 2 }, 3)
    assert.are.equal("int64", a:dtype())
    assert.are.same({ 3, 3 }, a:totable())
    local b = distill.full({ 2, 1 }, 3.5)
    assert.are.equal("float32", b:dtype())
    assert.are.same({ { 3.5 }, { 3.5 } }, b:totable())
    local c = distill.full({ 2 }, 7, "uint8")
    assert.are.equal("uint8", c:dtype())
    assert.are.same({ 7, 7 }, c:totable())
    assert.are.same({ -2.0, -2.0 }, distill.full({ 2 }, -2, "float32"):totable())
  end)

  it("*_like copy shape and dtype", function()
    local x = distill.arange(6):view { 2, 3 }
    local z = distill.zeros_like(x)
    assert.are.same({ 2, 3 }, z:shape())
    assert.are.equal("int64", z:dtype())
    assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, z:totable())
    local o = distill.ones_like(x, "float32")
    assert.are.equal("float32", o:dtype())
    assert.are.same({ { 1, 1, 1 }, { 1, 1, 1 } }, o:totable())
    local f = distill.full_like(distill.zeros { 2 }, 2.5)
    assert.are.same({ 2.5, 2.5 }, f:totable())
    -- the source dtype wins, as torch
    assert.are.same({ 2, 2, 2 }, distill.full_like(distill.zeros({ 3 }, "int64"), 2.9):totable())
    assert.are.equal("uint8", distill.full_like(x, 1, "uint8"):dtype())
    assert.is_false(z:shares_storage(x))
  end)

  it("arange with integers gives int64, end excluded", function()
    local a = distill.arange(5)
    assert.are.equal("int64", a:dtype())
    assert.are.same({ 0, 1, 2, 3, 4 }, a:totable())
    assert.are.same({ 2, 3, 4 }, distill.arange(2, 5):totable())
    assert.are.same({ 1, 4, 7 }, distill.arange(1, 10, 3):totable())
    assert.are.same({ 1, 4, 7, 10 }, distill.arange(1, 11, 3):totable())
    assert.are.same({}, distill.arange(0):totable())
    assert.are.same({}, distill.arange(3, 3):totable())
  end)

  it("arange with floats, negative steps and dtypes", function()
    local a = distill.arange(0, 1, 0.25)
    assert.are.equal("float32", a:dtype())
    assert.are.same({ 0, 0.25, 0.5, 0.75 }, a:totable())
    assert.are.same({ 5, 4, 3, 2, 1 }, distill.arange(5, 0, -1):totable())
    assert.are.same({ 5.0, 3.5, 2.0, 0.5 }, distill.arange(5, 0, -1.5):totable())
    local f = distill.arange(3, "float32")
    assert.are.equal("float32", f:dtype())
    assert.are.same({ 0, 1, 2 }, f:totable())
    local l = distill.arange(0, 3, 1, "int64")
    assert.are.equal("int64", l:dtype())
    assert.are.same({ 0, 1, 2 }, l:totable())
    local b = distill.arange(1.5, "int64")
    assert.are.same({ 0, 1 }, b:totable())
    assert.are.equal("uint8", distill.arange(2, 4, "uint8"):dtype())
  end)

  it("linspace includes both ends", function()
    local l = distill.linspace(0, 1, 5)
    assert.are.equal("float32", l:dtype())
    assert.are.same({ 0, 0.25, 0.5, 0.75, 1 }, l:totable())
    all_close({ -1, 0, 1 }, distill.linspace(-1, 1, 3):totable())
    all_close({ 2, 1.5, 1 }, distill.linspace(2, 1, 3):totable())
    assert.are.same({ 3 }, distill.linspace(3, 7, 1):totable())
    assert.are.same({}, distill.linspace(3, 7, 0):totable())
    local l7 = distill.linspace(0, 0.7, 8):totable()
    close_to(string.unpack("f", string.pack("f", 0.7)), l7[8], 0)   -- exactly `end` in float32
    close_to(0.3, l7[4], 1e-7)
  end)

  it("eye, square and rectangular", function()
    assert.are.same({ { 1, 0 }, { 0, 1 } }, distill.eye(2):totable())
    assert.are.same({ { 1, 0, 0 }, { 0, 1, 0 } }, distill.eye(2, 3):totable())
    assert.are.same({ { 1, 0 }, { 0, 1 }, { 0, 0 } }, distill.eye(3, 2):totable())
    assert.are.equal("float32", distill.eye(2):dtype())
    local i = distill.eye(2, "int64")
    assert.are.equal("int64", i:dtype())
    assert.are.same({ { 1, 0 }, { 0, 1 } }, i:totable())
    assert.are.equal("uint8", distill.eye(1, 2, "uint8"):dtype())
    assert.are.same({ 0, 0 }, distill.eye(0):shape())
  end)
end)

describe("tensor from Lua tables", function()
  it("infers int64 when every number is an integer", function()
    local t = distill.tensor { { 1, 2 }, { 3, 4 } }
    assert.are.equal("int64", t:dtype())
    assert.are.same({ 2, 2 }, t:shape())
    assert.are.same({ { 1, 2 }, { 3, 4 } }, t:totable())
  end)

  it("infers float32 when any number is a float", function()
    local t = distill.tensor { 1, 2.5, 3 }
    assert.are.equal("float32", t:dtype())
    assert.are.same({ 1, 2.5, 3 }, t:totable())
    -- 2.0 is a float in Lua 5.4
    assert.are.equal("float32", distill.tensor { 1, 2.0 }:dtype())
  end)

  it("takes an explicit dtype", function()
    local t = distill.tensor({ 1, 2, 255 }, "uint8")
    assert.are.equal("uint8", t:dtype())
    assert.are.same({ 1, 2, 255 }, t:totable())
    assert.are.same({ 1.5, 2 }, distill.tensor({ 1.5, 2 }, "float32"):totable())
    assert.are.same({ 1, -2 }, distill.tensor({ 1.7, -2.7 }, "int64"):totable())
  end)

  it("keeps int64 values exactly", function()
    local big = math.maxinteger - 1
    local t = distill.tensor { big, -big }
    assert.are.same({ big, -big }, t:totable())
    assert.are.equal(big, t[1])
  end)

  it("makes scalars and empty tensors", function()
    local s = distill.tensor(7)
    assert.are.equal(0, s:dim())
    assert.are.equal("int64", s:dtype())
    assert.are.equal(7, s:item())
    local f = distill.tensor(2.5)
    assert.are.equal("float32", f:dtype())
    assert.are.equal(2.5, f:item())
    local e = distill.tensor {}
    assert.are.equal(1, e:dim())
    assert.are.equal(0, e:numel())
    assert.are.equal("float32", e:dtype())
  end)

  it("copies a tensor, optionally converting", function()
    local a = distill.tensor { 1, 2 }
    local b = distill.tensor(a)
    assert.is_false(a:shares_storage(b))
    b[1] = 9
    assert.are.same({ 1, 2 }, a:totable())
    local c = distill.tensor(a, "float32")
    assert.are.equal("float32", c:dtype())
    assert.are.same({ 1, 2 }, c:totable())
  end)

  it("rejects ragged tables", function()
    assert.has_error(function() distill.tensor { { 1, 2 }, { 3 } } end)
    assert.has_error(function() distill.tensor { 1, { 2 } } end)
    assert.has_error(function() distill.tensor { { 1 }, 2 } end)
    assert.has_error(function() distill.tensor { { { 1 } }, { 2 } } end)
  end)

  it("handles 3-d nesting", function()
    local t = distill.tensor { { { 1, 2 } }, { { 3, 4 } }, { { 5, 6 } } }
    assert.are.same({ 3, 1, 2 }, t:shape())
    assert.are.equal(5, t[3][1][1])
  end)
end)

describe("geometry", function()
  local x = distill.zeros { 2, 3, 4 }

  it("size, shape, stride, numel, dim, dtype", function()
    assert.are.same({ 2, 3, 4 }, x:size())
    assert.are.same({ 2, 3, 4 }, x:shape())
    assert.are.equal(3, x:size(2))
    assert.are.equal(4, x:size(-1))
    assert.are.same({ 12, 4, 1 }, x:stride())
    assert.are.equal(4, x:stride(2))
    assert.are.equal(1, x:stride(-1))
    assert.are.equal(24, x:numel())
    assert.are.equal(24, x:nelement())
    assert.are.equal(24, distill.numel(x))
    assert.are.equal(3, x:dim())
    assert.are.equal("float32", x:dtype())
    assert.are.equal(96, x:nbytes())
    assert.are.equal(24 * 8, distill.zeros({ 2, 3, 4 }, "int64"):nbytes())
    assert.is_true(x:is_contiguous())
    assert.are.equal(0, x:storage_offset())
  end)

  it("# is the size of dim 1", function()
    assert.are.equal(2, #x)
    assert.are.equal(5, #distill.zeros { 5 })
    assert.are.equal(0, #distill.zeros { 0, 4 })
  end)

  it("supports 8 dims and rejects 9", function()
    local t = distill.arange(16):view { 1, 2, 1, 2, 1, 2, 1, 2 }
    assert.are.equal(8, t:dim())
    assert.are.equal(16, t:numel())
    assert.are.same({ 16, 8, 8, 4, 4, 2, 2, 1 }, t:stride())
    assert.are.equal(15, t[{ 1, 2, 1, 2, 1, 2, 1, 2 }])
    assert.are.equal(6, t[{ 1, 1, 1, 2, 1, 2, 1, 1 }])
    local p = t:permute { 8, 7, 6, 5, 4, 3, 2, 1 }
    assert.are.same({ 2, 1, 2, 1, 2, 1, 2, 1 }, p:shape())
    assert.are.equal(6, p[{ 1, 1, 2, 1, 2, 1, 1, 1 }])
    local flat = p:contiguous():view(16):totable()
    assert.are.same({ 0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15 }, flat)
    assert.are.same(t:view(16):totable(), t:clone():view(-1):totable())
    assert.has_error(function() distill.ones { 1, 1, 1, 1, 1, 1, 1, 1, 1 } end)
    assert.has_error(function() t:unsqueeze(1) end)
    assert.has_error(function() distill.tensor { { { { { { { { { 1 } } } } } } } } } end)
    local deep = distill.tensor { { { { { { { { 5 } } } } } } } }
    assert.are.equal(8, deep:dim())
    assert.are.equal(5, deep:item())
  end)
end)

describe("element access", function()
  it("item on one-element tensors of any dim", function()
    assert.are.equal(3, distill.tensor { { 3 } }:item())
    assert.are.equal(2.5, distill.tensor(2.5):item())
    assert.is_true(math.type(distill.tensor { 4 }:item()) == "integer")
    assert.is_true(math.type(distill.tensor { 4.0 }:item()) == "float")
    assert.are.equal(200, distill.tensor({ 200 }, "uint8"):item())
  end)

  it("totable of 0-d, 1-d, 2-d and non-contiguous", function()
    assert.are.equal(5, distill.tensor(5):totable())
    local x = distill.arange(6):view { 2, 3 }
    assert.are.same({ { 0, 1, 2 }, { 3, 4, 5 } }, x:totable())
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, x:t():totable())
  end)

  it("x[i] selects along dim 1; 1-d gives numbers", function()
    local x = distill.arange(6):view { 2, 3 }
    local row = x[2]
    assert.are.same({ 3, 4, 5 }, row:totable())
    assert.is_true(row:shares_storage(x))
    assert.are.equal(4, x[2][2])
    assert.are.equal(5, x[-1][-1])
    assert.are.same({ 0, 1, 2 }, x[-2]:totable())
    local f = distill.tensor { 1.5, 2.5 }
    assert.are.equal(2.5, f[2])
    assert.are.equal(1.5, f[-2])
  end)

  it("x[{...}] takes one entry per dim, with Torch7 ranges", function()
    local x = distill.arange(12):view { 3, 4 }
    assert.are.same({ 4, 5, 6 }, x[{ 2, { 1, 3 } }]:totable())
    assert.are.equal(6, x[{ 2, 3 }])
    assert.are.same({ { 1, 2 }, { 5, 6 }, { 9, 10 } }, x[{ {}, { 2, 3 } }]:totable())
    assert.are.same({ { 1, 2 }, { 5, 6 }, { 9, 10 } }, x[{ ":", { 2, 3 } }]:totable())
    assert.are.same({ { 8, 9, 10, 11 } }, x[{ { 3 } }]:totable())
    assert.are.same({ { 6, 7 }, { 10, 11 } }, x[{ { 2, -1 }, { -2, -1 } }]:totable())
    assert.are.same({ 3, 7, 11 }, x[{ {}, 4 }]:totable())
    assert.are.same({ 2, 4 }, x[{ { 2, 3 } }]:shape())
  end)

  it("x[i] = number or tensor writes through to the base", function()
    local x = distill.zeros { 2, 3 }
    x[1] = 7
    assert.are.same({ { 7, 7, 7 }, { 0, 0, 0 } }, x:totable())
    x[2] = distill.tensor { 1, 2, 3 }
    assert.are.same({ { 7, 7, 7 }, { 1, 2, 3 } }, x:totable())
    x[{ 2, 2 }] = -1
    assert.are.same({ { 7, 7, 7 }, { 1, -1, 3 } }, x:totable())
    x[{ {}, { 2, 3 } }] = distill.tensor { 5, 6 }   -- broadcast over rows
    assert.are.same({ { 7, 5, 6 }, { 1, 5, 6 } }, x:totable())
    local v = distill.arange(4)
    v[-1] = 40
    v[1] = 2.9   -- converted to the dtype
    assert.are.same({ 2, 1, 2, 40 }, v:totable())
    local row = x[1]
    row[3] = 100
    assert.are.equal(100, x[1][3])
  end)
end)

describe("conversion", function()
  it("float, long, byte, to", function()
    local x = distill.tensor { 1.7, -2.2, 3.0 }
    local l = x:long()
    assert.are.equal("int64", l:dtype())
    assert.are.same({ 1, -2, 3 }, l:totable())
    local b = distill.tensor { 0, 255, 300, -1 }:byte()
    assert.are.equal("uint8", b:dtype())
    assert.are.same({ 0, 255, 44, 255 }, b:totable())
    local f = distill.tensor { 1, 2 }:float()
    assert.are.equal("float32", f:dtype())
    assert.are.same({ 1.0, 2.0 }, f:totable())
    assert.are.equal("int64", x:to("int64"):dtype())
    assert.are.equal("uint8", x:to("uint8"):dtype())
    assert.are.equal("float32", l:to("float"):dtype())
  end)

  it("returns the tensor itself when the dtype already matches", function()
    local x = distill.zeros { 2 }
    assert.are.equal(x, x:float())
    assert.is_true(rawequal(x, x:float()))
    assert.is_false(x:long():shares_storage(x))
  end)

  it("converts non-contiguous views", function()
    local x = distill.arange(6):view { 2, 3 }:t()
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, x:float():totable())
  end)
end)

describe("copy_, fill_, zero_, clone", function()
  it("fill_ and zero_ work in place and return the tensor", function()
    local x = distill.zeros { 2, 2 }
    assert.is_true(rawequal(x, x:fill_(3)))
    assert.are.same({ { 3, 3 }, { 3, 3 } }, x:totable())
    x[1]:fill_(-1)
    assert.are.same({ { -1, -1 }, { 3, 3 } }, x:totable())
    assert.is_true(rawequal(x, x:zero_()))
    assert.are.same({ { 0, 0 }, { 0, 0 } }, x:totable())
    local i = distill.zeros({ 2 }, "int64"):fill_(2.7)
    assert.are.same({ 2, 2 }, i:totable())
  end)

  it("copy_ broadcasts and converts dtypes", function()
    local x = distill.zeros { 2, 3 }
    assert.is_true(rawequal(x, x:copy_(distill.tensor { 1, 2, 3 })))
    assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, x:totable())
    x:copy_(distill.tensor { { 10 }, { 20 } })
    assert.are.same({ { 10, 10, 10 }, { 20, 20, 20 } }, x:totable())
    x:copy_(distill.tensor(5))
    assert.are.same({ { 5, 5, 5 }, { 5, 5, 5 } }, x:totable())
    local l = distill.zeros({ 3 }, "int64")
    l:copy_(distill.tensor { 1.9, -1.9, 2.5 })
    assert.are.same({ 1, -1, 2 }, l:totable())
    local u = distill.zeros({ 2 }, "uint8"):copy_(distill.tensor { 3, 4 })
    assert.are.same({ 3, 4 }, u:totable())
    local f = distill.zeros({ 2 }):copy_(distill.tensor({ 7, 250 }, "uint8"))
    assert.are.same({ 7, 250 }, f:totable())
  end)

  it("copy_ into a transposed view", function()
    local x = distill.zeros { 2, 3 }
    x:t():copy_(distill.tensor { { 1, 2 }, { 3, 4 }, { 5, 6 } })
    assert.are.same({ { 1, 3, 5 }, { 2, 4, 6 } }, x:totable())
  end)

  it("clone copies storage", function()
    local x = distill.arange(4)
    local c = x:clone()
    assert.is_false(c:shares_storage(x))
    c[1] = 100
    assert.are.equal(0, x[1])
    assert.are.same({ 0, 1, 2, 3 }, distill.clone(x):totable())
    local t = distill.arange(6):view { 2, 3 }:t():clone()
    assert.is_true(t:is_contiguous())
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, t:totable())
  end)
end)

describe("== is whole-tensor equality", function()
  it("compares shape and values and gives a boolean", function()
    local a = distill.tensor { 1, 2, 3 }
    assert.is_true(a == distill.tensor { 1, 2, 3 })
    assert.is_false(a == distill.tensor { 1, 2, 4 })
    assert.is_false(a == distill.tensor { { 1, 2, 3 } })
    assert.is_true(a == distill.tensor { 1.0, 2.0, 3.0 })   -- dtypes may differ
    assert.is_true(a ~= distill.tensor { 3, 2, 1 })
    assert.are.equal("boolean", type(a == a))
    assert.is_true(a:t() == a)
    assert.is_true(distill.arange(6):view { 2, 3 }:t() == distill.tensor { { 0, 3 }, { 1, 4 }, { 2, 5 } })
    assert.is_false(a == 1)
    assert.is_true(distill.zeros { 0 } == distill.zeros { 0 })
  end)
end)

describe("lifetime", function()
  it("free releases the storage and later use raises 'freed'", function()
    collectgarbage()
    local before = distill.core.live_bytes()
    local x = distill.zeros { 1000 }
    assert.are.equal(before + 4000, distill.core.live_bytes())
    x:free()
    assert.are.equal(before, distill.core.live_bytes())
    h.fails("freed", function() return x:numel() end)
    h.fails("freed", function() return x + 1 end)
    assert.are.equal("tensor(<freed>)", tostring(x))
    x:free()   -- a second free is harmless
  end)

  it("a view keeps the storage alive after the base is freed", function()
    collectgarbage()
    local before = distill.core.live_bytes()
    local x = distill.arange(10)
    local v = x:narrow(1, 3, 2)
    x:free()
    assert.are.same({ 2, 3 }, v:totable())
    assert.are.equal(before + 80, distill.core.live_bytes())
    v:free()
    assert.are.equal(before, distill.core.live_bytes())
  end)

  it("<close> frees at the end of the block", function()
    collectgarbage()
    local before = distill.core.live_bytes()
    local escaped
    do
      local x <close> = distill.zeros { 256 }
      escaped = x
      assert.are.equal(before + 1024, distill.core.live_bytes())
    end
    assert.are.equal(before, distill.core.live_bytes())
    assert.has_error(function() escaped:numel() end)
  end)

  it("is_tensor", function()
    assert.is_true(distill.is_tensor(distill.zeros { 1 }))
    assert.is_false(distill.is_tensor({}))
    assert.is_false(distill.is_tensor(1))
  end)
end)

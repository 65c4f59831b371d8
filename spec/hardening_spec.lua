-- Hardening of the engine (issue 15): sizes that overflow 64 bits are errors
-- naming the function and the sizes, in-place writes read overlapping
-- sources through a copy, empty convolutions compute, freed tensors are
-- named as such. Each misuse case checks, as spec/misuse_spec.lua does,
-- that the message starts with the function's name and says what was wrong.
local distill = require "distill"
local core = require "distill.core"
local h = require "support.helpers"

local fails = require "support.fails"

local big = 1 << 32

describe("sizes that overflow 64 bits", function()
  it("are refused by views, naming the shape", function()
    fails("Tensor:view:", function() return distill.zeros { 0 }:view { big, big } end,
      "[4294967296, 4294967296]", "too large")
    fails("Tensor:view:", function() return distill.zeros { 0 }:view { 0, 1 << 62, 1 << 62 } end, "too large")
    fails("Tensor:reshape:", function() return distill.zeros { 0 }:reshape { -1, big, big } end, "too large")
    fails("Tensor:expand:", function() return distill.zeros { 1 }:expand { big, big } end,
      "[4294967296, 4294967296]", "too large")
    fails("distill.zeros:", function() return distill.zeros { 1 << 31, 1 << 31, 1 << 31 } end, "too large")
    fails("distill.empty:", function() return distill.empty { 0, math.maxinteger, 2 } end, "too large")
  end)

  it("are refused by narrow and select without wrapping into range", function()
    local x = distill.arange(6):view { 2, 3 }
    fails("Tensor:narrow:", function() return x:narrow(2, 2, math.maxinteger) end, "out of range",
      "dim 2 of size 3")
    fails("Tensor:narrow:", function() return x:narrow(2, math.maxinteger, 2) end, "out of range")
    fails("Tensor:select:", function() return x:select(2, math.mininteger) end, "out of range")
  end)

  it("are refused by cat, split and repeat", function()
    local e = distill.zeros { 1 }:expand { 1 << 58 }
    local list = {}
    for k = 1, 40 do list[k] = e end
    fails("distill.cat:", function() return distill.cat(list, 1) end, "add up past 2^63")
    fails("distill.repeat:", function() return distill["repeat"](distill.zeros { 2, 2 }, { 1 << 62, 4 }) end,
      "overflows")
    fails("distill.split:", function()
      return distill.split(distill.zeros { 4 }, { math.maxinteger, math.maxinteger, 2 }, 1)
    end, "split sizes add up to more than dim 1's size 4")
    assert.equal(4, #distill.chunk(distill.zeros { 4 }, math.maxinteger, 1))
    assert.equal(1, #distill.split(distill.zeros { 4 }, math.maxinteger, 1))
  end)

  it("never reach a reduction: an expanded view too large to hold is refused first", function()
    fails("Tensor:expand:", function() return distill.zeros { 1 }:expand { big, big }:sum() end, "too large")
    -- within the bound, a large expanded view still reduces correctly
    assert.equal(1 << 40, distill.ones({ 1 }, "int64"):expand { 1 << 20, 1 << 20 }:view { -1 }
      :narrow(1, 1, 1 << 40):numel())
  end)

  it("are refused by convolution geometry (padding, dilation, groups, stride)", function()
    local x, w = distill.randn { 1, 1, 4, 4 }, distill.randn { 1, 1, 3, 3 }
    fails("distill.conv2d:", function() return core.conv2d(x, w, nil, { padding = 1 << 62 }) end,
      "overflows 64 bits", "padding (4611686018427387904")
    fails("distill.conv2d:", function() return core.conv2d(x, w, nil, { dilation = 1 << 62 }) end,
      "overflows 64 bits", "dilation (4611686018427387904")
    fails("distill.conv2d:", function()
      return core.conv2d(distill.randn { 1, 2, 4, 4 }, distill.randn { 2, 2, 1, 1 }, nil, { groups = 1 << 62 })
    end, "groups")
    fails("distill.conv_transpose2d:", function()
      return core.conv_transpose2d(x, w, nil, { stride = 1 << 62 })
    end, "overflows 64 bits")
    fails("distill.conv_transpose2d:", function()
      return core.conv_transpose2d(x, w, nil, { dilation = 1 << 62 })
    end, "overflows 64 bits")
    -- a huge but representable padding is a plain (large) output, refused for its size
    fails("distill.conv2d:", function() return core.conv2d(x, w, nil, { padding = 1 << 40 }) end, "too large")
  end)

  it("are refused or computed exactly by pooling (kernel and padding of 2^62)", function()
    local x = distill.arange(16):float():view { 1, 1, 4, 4 }
    fails("distill.max_pool2d:", function()
      return core.max_pool2d(x, { kernel_size = 1 << 62, padding = 1 << 62 })
    end, "padding must be at most half of kernel_size", "4611686018427387904")
    fails("distill.avg_pool2d:", function()
      return core.avg_pool2d(x, { kernel_size = 1 << 62, padding = 1 << 62 })
    end, "padding must be at most half of kernel_size", "4611686018427387904")
    -- half the kernel is allowed: every window covers the whole input
    local y = core.max_pool2d(x, { kernel_size = 1 << 62, padding = 1 << 61, stride = 1 })
    assert.same({ 1, 1, 5, 5 }, y:shape())
    assert.equal(15, y:min():item())
    local z = core.max_pool2d(x, { kernel_size = math.maxinteger, padding = (1 << 62) - 1, stride = 1 << 62 })
    assert.equal(15, z:max():item())
    local c = core.max_pool2d(x, { kernel_size = 3, stride = math.maxinteger, ceil_mode = true })
    assert.same({ 1, 1, 1, 1 }, c:shape())
    assert.equal(10, c:item())
    fails("distill.max_pool2d:", function() return core.max_pool2d(x, { kernel_size = 5 }) end,
      "bigger than the padded input")
  end)

  it("draw randint over the whole int64 range without overflow", function()
    distill.manual_seed(3)
    local r = distill.randint(math.mininteger, math.maxinteger, { 64 })
    local neg, pos = 0, 0
    for _, v in ipairs(r:totable()) do
      if v < 0 then neg = neg + 1 else pos = pos + 1 end
    end
    assert.is_true(neg > 8 and pos > 8)
    local s = distill.randint(math.maxinteger - 2, math.maxinteger, { 16 })
    for _, v in ipairs(s:totable()) do assert.is_true(v == math.maxinteger - 2 or v == math.maxinteger - 1) end
  end)

  it("are refused by ranges, index lists and transform sizes at the int64 limits", function()
    local M, m = math.maxinteger, math.mininteger
    fails("distill.arange:", function() return distill.arange(m, M) end, "too many elements")
    fails("distill.eye:", function() return distill.eye(1 << 31, 1 << 31) end, "too large")
    local x = distill.arange(6):view { 2, 3 }
    fails("distill.index_select:", function() return x:index_select(1, distill.tensor { m }) end, "out of range")
    fails("distill.gather:", function() return x:gather(2, distill.tensor { { m } }) end, "out of range")
    fails("Tensor indexing:", function() return x[{ { m, 2 } }] end, "out of range")
    local img = distill.zeros({ 1, 2, 3 }, "uint8")
    fails("dataio.transform:", function() return core.dataio.transform({ { op = "resize", size = { M, M } } }, img) end,
      "size must be 1..1048576")
    fails("dataio.transform:", function()
      return core.dataio.transform({ { op = "random_crop", size = 2, padding = 1 << 62 } }, img)
    end, "padding must be 0..1048576")
    fails("dataio.transform:", function()
      return core.dataio.transform({ { op = "resize", size = 1 << 20 } }, distill.zeros({ 1, 1, 4096 }, "uint8"))
    end, "makes the longer one over 1048576")
  end)

  it("are refused by the loader's prefetch and workers", function()
    local images = distill.zeros({ 4, 1, 2, 2 }, "uint8")
    fails("dataio.loader:", function() return core.dataio.loader_new { images = images, prefetch = 1 << 40 } end,
      "prefetch must be 0..4096")
    fails("dataio.loader:", function() return core.dataio.loader_new { images = images, prefetch = -1 } end,
      "prefetch must be 0..4096")
    local l = core.dataio.loader_new { images = images, prefetch = 4096, batch_size = 3 }
    assert.equal(2, l:num_batches())
    l:close()
  end)
end)

describe("in-place writes over overlapping memory", function()
  local function mat() return distill.arange(9):float():view { 3, 3 } end

  it("copy_ reads an overlapping source through a copy (a:copy_(a:t()) transposes)", function()
    local a = mat()
    a:copy_(a:t())
    assert.same({ { 0, 3, 6 }, { 1, 4, 7 }, { 2, 5, 8 } }, a:totable())
    local b = mat()
    b:t():copy_(b)
    assert.same({ { 0, 3, 6 }, { 1, 4, 7 }, { 2, 5, 8 } }, b:totable())
    -- a shifted window of the same storage, both directions
    local x = distill.arange(10)
    x:narrow(1, 2, 9):copy_(x:narrow(1, 1, 9))
    assert.same({ 0, 0, 1, 2, 3, 4, 5, 6, 7, 8 }, x:totable())
    local y = distill.arange(10)
    y:narrow(1, 1, 9):copy_(y:narrow(1, 2, 9))
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 9 }, y:totable())
    -- a row broadcast over its own matrix, and indexed assignment
    local m = mat()
    m:copy_(m[2])
    assert.same({ { 3, 4, 5 }, { 3, 4, 5 }, { 3, 4, 5 } }, m:totable())
    local n = mat()
    n[{ { 1, 2 } }] = n[{ { 2, 3 } }]
    assert.same({ { 3, 4, 5 }, { 6, 7, 8 }, { 6, 7, 8 } }, n:totable())
    -- copying a tensor onto itself changes nothing
    local s = mat()
    s:copy_(s)
    assert.same(mat():totable(), s:totable())
  end)

  it("binary in-place ops, masked_fill_ and scatter_add_ do the same", function()
    local a = mat()
    a:add_(a:t())
    assert.same({ { 0, 4, 8 }, { 4, 8, 12 }, { 8, 12, 16 } }, a:totable())
    -- the mask b:t() is read before any write: (2, 1) stays, although the
    -- write to (1, 2) turns its mask entry on
    local b = distill.tensor({ { 1, 0 }, { 1, 1 } }, "uint8")
    b:masked_fill_(b:t(), 7)
    assert.same({ { 7, 7 }, { 1, 7 } }, b:totable())
    local d = distill.tensor { { 1, 2 }, { 3, 4 } }
    d:scatter_add_(1, distill.tensor { { 1, 1 } }, d:narrow(1, 2, 1))
    assert.same({ { 4, 6 }, { 3, 4 } }, d:totable())
  end)

  it("refuses destinations whose elements repeat (expanded views)", function()
    local e = distill.zeros { 1 }:expand { 3 }
    fails("Tensor:copy_:", function() return e:copy_(distill.tensor { 1, 2, 3 }) end, "overlapping elements")
    fails("Tensor:add_:", function() return e:add_(1) end, "overlapping elements")
    fails("distill.masked_fill_:", function()
      return e:masked_fill_(distill.ones({ 3 }, "uint8"), 1)
    end, "overlapping elements")
  end)

  it("refuses optimizer operands that share memory", function()
    if not core.sgd_step_ then return end
    local p = distill.randn { 4 }
    fails("distill.sgd_step_:", function()
      return core.sgd_step_(p, p, nil, { lr = 0.1 })
    end, "share memory")
  end)
end)

describe("empty convolutions", function()
  it("with no input channels give the bias (or zeros), and their gradients", function()
    local x = distill.randn { 2, 0, 5, 5 }
    local w = distill.randn { 3, 0, 3, 3 }
    local y = core.conv2d(x, w, nil, { padding = 1 })
    assert.same({ 2, 3, 5, 5 }, y:shape())
    assert.equal(0, y:abs():sum():item())
    local b = h.f32 { 1, -2, 3 }
    local yb = core.conv2d(x, w, b)
    assert.same({ 2, 3, 3, 3 }, yb:shape())
    assert.same({ 1, -2, 3 }, yb:mean { 1, 3, 4 }:totable())
    local xl, wl, bl = h.leaf { 2, 0, 5, 5 }, h.leaf { 3, 0, 3, 3 }, h.leaf { 3 }
    core.conv2d(xl, wl, bl):sum():backward()
    assert.same({ 2, 0, 5, 5 }, xl.grad:shape())
    assert.same({ 3, 0, 3, 3 }, wl.grad:shape())
    assert.same({ 18, 18, 18 }, bl.grad:totable())
  end)

  it("with no images or no output channels give empty outputs and zero gradients", function()
    local x, w = h.leaf { 0, 2, 4, 4 }, h.leaf { 3, 2, 3, 3 }
    local y = core.conv2d(x, w)
    assert.same({ 0, 3, 2, 2 }, y:shape())
    y:sum():backward()
    assert.equal(0, w.grad:abs():sum():item())
    local x2, w2 = h.leaf { 1, 2, 4, 4 }, h.leaf { 0, 2, 3, 3 }
    local y2 = core.conv2d(x2, w2)
    assert.same({ 1, 0, 2, 2 }, y2:shape())
    y2:sum():backward()
    assert.equal(0, x2.grad:abs():sum():item())
    local t = core.conv_transpose2d(distill.randn { 1, 0, 3, 3 }, distill.randn { 0, 2, 3, 3 })
    assert.same({ 1, 2, 5, 5 }, t:shape())
    assert.equal(0, t:abs():sum():item())
  end)
end)

describe("freed tensors", function()
  local function freed()
    local f = distill.ones { 2 }
    f:free()
    return f
  end

  it("are named as freed wherever a type is reported", function()
    fails("distill.cat:", function() return distill.cat({ distill.ones { 2 }, freed() }, 1) end,
      "list entry 2", "freed tensor")
    fails("distill.tensor:", function() return distill.tensor(freed()) end, "freed tensor")
    fails("Tensor assignment:", function()
      local x = distill.zeros { 2, 2 }
      x[1] = freed()
    end, "freed tensor")
    fails("distill.stack:", function() return distill.stack({ freed() }, 1) end, "freed tensor")
  end)
end)

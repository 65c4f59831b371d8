-- Views share storage with their base; dims and positions count from 1.
local distill = require "distill"

local function a23() return distill.arange(6):view { 2, 3 } end

describe("view", function()
  it("reshapes a contiguous tensor without copying", function()
    local x = distill.arange(6)
    local v = x:view { 2, 3 }
    assert.are.same({ { 0, 1, 2 }, { 3, 4, 5 } }, v:totable())
    assert.is_true(v:shares_storage(x))
    assert.are.same({ 3, 1 }, v:stride())
    v[{ 2, 3 }] = 50
    assert.are.equal(50, x[6])
    x[1] = -1
    assert.are.equal(-1, v[1][1])
  end)

  it("infers one -1 and accepts varargs", function()
    assert.are.same({ 3, 2 }, distill.arange(6):view({ -1, 2 }):shape())
    assert.are.same({ 6 }, a23():view(-1):shape())
    assert.are.same({ 1, 6, 1 }, a23():view(1, -1, 1):shape())
    assert.are.same({ 2, 3 }, distill.view(distill.arange(6), { 2, 3 }):shape())
    assert.are.same({}, distill.tensor { 5 }:view({}):shape())
  end)

  it("works on non-contiguous tensors with compatible strides", function()
    -- a column slice of a 4 x 6 tensor: rows are strided, but each row's
    -- 4 elements are contiguous, so splitting the last dim is a view
    local base = distill.arange(24):view { 4, 6 }
    local s = base:narrow(2, 2, 4)
    assert.is_false(s:is_contiguous())
    local v = s:view { 4, 2, 2 }
    assert.is_true(v:shares_storage(base))
    assert.are.same({ 6, 2, 1 }, v:stride())
    assert.are.same({ { 1, 2 }, { 3, 4 } }, v[1]:totable())
    assert.are.same({ { 19, 20 }, { 21, 22 } }, v[4]:totable())
    -- merging dims that are contiguous with each other inside a transpose
    local t = distill.arange(24):view { 2, 3, 4 }:permute { 3, 1, 2 }   -- 4 x 2 x 3
    local m = t:view { 4, 6 }
    assert.is_true(m:shares_storage(t))
    assert.are.same({ 0, 4, 8, 12, 16, 20 }, m[1]:totable())
  end)

  it("refuses incompatible strides", function()
    local t = a23():t()
    local ok, err = pcall(t.view, t, { 6 })
    assert.is_false(ok)
    assert.truthy(err:find("Tensor:view:", 1, true))
    assert.truthy(err:find("reshape", 1, true))
    local s = distill.arange(24):view({ 4, 6 }):narrow(2, 2, 4)
    assert.has_error(function() s:view { 16 } end)
  end)

  it("view_as", function()
    local v = distill.arange(6):view_as(distill.zeros { 3, 2 })
    assert.are.same({ { 0, 1 }, { 2, 3 }, { 4, 5 } }, v:totable())
  end)
end)

describe("reshape", function()
  it("is a view when possible and copies when needed", function()
    local x = distill.arange(6)
    local r = x:reshape { 3, 2 }
    assert.is_true(r:shares_storage(x))
    local t = a23():t()
    local c = t:reshape { 6 }
    assert.is_false(c:shares_storage(t))
    assert.are.same({ 0, 3, 1, 4, 2, 5 }, c:totable())
    assert.are.same({ 2, 3 }, t:reshape(-1, 3):shape())
    assert.are.same({ 0, 3, 1, 4, 2, 5 }, distill.reshape(t, { 6 }):totable())
  end)
end)

describe("narrow, select", function()
  it("narrow(dim, start, length)", function()
    local x = distill.arange(12):view { 3, 4 }
    local n = x:narrow(2, 2, 2)
    assert.are.same({ { 1, 2 }, { 5, 6 }, { 9, 10 } }, n:totable())
    assert.are.equal(1, n:storage_offset())
    assert.are.same({ { 4, 5, 6, 7 } }, x:narrow(1, 2, 1):totable())
    assert.are.same({ { 8, 9, 10, 11 } }, x:narrow(1, -1, 1):totable())
    assert.are.same({ 3, 0 }, x:narrow(2, 5, 0):shape())
    n:fill_(0)
    assert.are.same({ { 0, 0, 0, 3 }, { 4, 0, 0, 7 }, { 8, 0, 0, 11 } }, x:totable())
    assert.are.same({ 3, 4 }, distill.narrow(distill.arange(5), 1, 4, 2):totable())
  end)

  it("select(dim, index) drops the dim", function()
    local x = distill.arange(12):view { 3, 4 }
    assert.are.same({ 4, 5, 6, 7 }, x:select(1, 2):totable())
    assert.are.same({ 2, 6, 10 }, x:select(2, 3):totable())
    assert.are.same({ 3, 7, 11 }, x:select(2, -1):totable())
    assert.are.same({ 8, 9, 10, 11 }, x:select(-2, -1):totable())
    local s = x:select(1, 1)
    s:fill_(-5)
    assert.are.same({ -5, -5, -5, -5 }, x[1]:totable())
    local z = distill.tensor { 7, 8 }:select(1, 2)
    assert.are.equal(0, z:dim())
    assert.are.equal(8, z:item())
    assert.are.same({ 2, 6, 10 }, distill.select(distill.arange(12):view { 3, 4 }, 2, 3):totable())
  end)
end)

describe("transpose, t, permute", function()
  it("swap dims as views", function()
    local x = a23()
    local t = x:transpose(1, 2)
    assert.are.same({ 3, 2 }, t:shape())
    assert.are.same({ 1, 3 }, t:stride())
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, t:totable())
    assert.is_false(t:is_contiguous())
    t[{ 3, 1 }] = 20
    assert.are.equal(20, x[1][3])
    assert.are.same(t:totable(), x:t():totable())
    assert.are.same(t:totable(), x:transpose(-1, -2):totable())
    assert.are.same({ 3 }, distill.arange(3):t():shape())
    assert.are.same({ 3, 2 }, distill.transpose(a23(), 1, 2):shape())
  end)

  it("permute reorders all dims", function()
    local x = distill.arange(24):view { 2, 3, 4 }
    local p = x:permute { 3, 1, 2 }
    assert.are.same({ 4, 2, 3 }, p:shape())
    assert.are.same({ 1, 12, 4 }, p:stride())
    -- p[k][i][j] == x[i][j][k]
    assert.are.equal(x[{ 2, 3, 4 }], p[{ 4, 2, 3 }])
    assert.are.equal(x[{ 1, 2, 3 }], p[{ 3, 1, 2 }])
    assert.are.same({ 4, 3, 2 }, x:permute(3, 2, 1):shape())
    assert.are.same({ 3, 2, 4 }, x:permute { 2, -3, -1 }:shape())
    assert.is_true(p:shares_storage(x))
    assert.are.same({ 4, 2, 3 }, distill.permute(x, { 3, 1, 2 }):shape())
  end)
end)

describe("squeeze, unsqueeze", function()
  it("squeeze all or one size-1 dim", function()
    local x = distill.zeros { 1, 3, 1, 2 }
    assert.are.same({ 3, 2 }, x:squeeze():shape())
    assert.are.same({ 3, 1, 2 }, x:squeeze(1):shape())
    assert.are.same({ 1, 3, 2 }, x:squeeze(3):shape())
    assert.are.same({ 1, 3, 1, 2 }, x:squeeze(2):shape())   -- size 3: unchanged
    assert.are.same({ 1, 3, 2 }, x:squeeze(-2):shape())
    assert.are.same({}, distill.zeros { 1, 1 }:squeeze():shape())
    assert.is_true(x:squeeze():shares_storage(x))
  end)

  it("unsqueeze inserts a size-1 dim at position d", function()
    local x = distill.arange(6):view { 2, 3 }
    assert.are.same({ 1, 2, 3 }, x:unsqueeze(1):shape())
    assert.are.same({ 2, 1, 3 }, x:unsqueeze(2):shape())
    assert.are.same({ 2, 3, 1 }, x:unsqueeze(3):shape())
    assert.are.same({ 2, 3, 1 }, x:unsqueeze(-1):shape())
    assert.are.same({ { { 0, 1, 2 } }, { { 3, 4, 5 } } }, x:unsqueeze(2):totable())
    assert.are.same({ 1 }, distill.tensor(4):unsqueeze(1):shape())
    assert.are.same({ 2, 3, 1 }, distill.unsqueeze(x, 3):shape())
    assert.are.same({ 3, 1 }, distill.squeeze(distill.zeros { 1, 3, 1 }, 1):shape())
  end)
end)

describe("expand, expand_as", function()
  it("broadcasts size-1 and new leading dims with stride 0", function()
    local x = distill.tensor { { 1 }, { 2 } }
    local e = x:expand { 2, 3 }
    assert.are.same({ { 1, 1, 1 }, { 2, 2, 2 } }, e:totable())
    assert.are.same({ 1, 0 }, e:stride())
    assert.is_true(e:shares_storage(x))
    local f = distill.tensor { 1, 2, 3 }:expand(2, 3)
    assert.are.same({ { 1, 2, 3 }, { 1, 2, 3 } }, f:totable())
    assert.are.same({ 0, 1 }, f:stride())
    assert.are.same({ 4, 2, 3 }, x:expand { 4, -1, 3 }:shape())
    local g = distill.tensor { 7 }:expand_as(distill.zeros { 2, 2 })
    assert.are.same({ { 7, 7 }, { 7, 7 } }, g:totable())
    x[1] = 9
    assert.are.same({ 9, 9, 9 }, e[1]:totable())
  end)

  it("an expanded tensor copies into a real one", function()
    local e = distill.tensor { 1, 2 }:expand { 3, 2 }
    local c = e:contiguous()
    assert.is_false(c:shares_storage(e))
    assert.are.same({ 2, 1 }, c:stride())
    assert.are.same({ { 1, 2 }, { 1, 2 }, { 1, 2 } }, c:totable())
    assert.are.same({ 1, 2, 1, 2, 1, 2 }, e:reshape { 6 }:totable())
  end)
end)

describe("flatten, contiguous", function()
  it("flatten(start, end)", function()
    local x = distill.arange(24):view { 2, 3, 4 }
    assert.are.same({ 24 }, x:flatten():shape())
    assert.are.same({ 2, 12 }, x:flatten(2):shape())
    assert.are.same({ 6, 4 }, x:flatten(1, 2):shape())
    assert.are.same({ 2, 12 }, x:flatten(-2, -1):shape())
    assert.are.same({ 2, 3, 4 }, x:flatten(2, 2):shape())
    assert.is_true(x:flatten():shares_storage(x))
    local t = x:transpose(1, 3):flatten()
    assert.are.same({ 0, 12, 4, 16, 8, 20 }, { t[1], t[2], t[3], t[4], t[5], t[6] })
    assert.are.same({ 1 }, distill.tensor(3):flatten():shape())
    assert.are.same({ 24 }, distill.flatten(x):shape())
  end)

  it("contiguous returns the same tensor when already contiguous", function()
    local x = a23()
    assert.is_true(rawequal(x, x:contiguous()) or x:contiguous():shares_storage(x))
    local t = x:t()
    local c = t:contiguous()
    assert.is_true(c:is_contiguous())
    assert.is_false(c:shares_storage(t))
    assert.are.same({ { 0, 3 }, { 1, 4 }, { 2, 5 } }, c:totable())
  end)
end)

describe("views of views", function()
  it("chain and still write through", function()
    local base = distill.zeros { 4, 4 }
    local v = base:narrow(1, 2, 2):t():select(1, 3)   -- base[2..3][3]
    v:fill_(1)
    assert.are.same({ { 0, 0, 0, 0 }, { 0, 0, 1, 0 }, { 0, 0, 1, 0 }, { 0, 0, 0, 0 } }, base:totable())
    base[{ { 1, 2 }, { 1, 2 } }] = distill.eye(2)
    assert.are.same({ 1, 0, 0, 0 }, base[1]:totable())
    assert.are.same({ 0, 1, 1, 0 }, base[2]:totable())
  end)
end)

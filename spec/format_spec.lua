-- tostring(tensor): torch-like text with dtype and a Lua-style shape.
local distill = require "distill"

local function show(t)
  return tostring(t)
end

describe("tensor printing", function()
  it("prints integers as integers, aligned", function()
    assert.are.equal("tensor([1, 2, 3], dtype=int64, shape={3})", show(distill.tensor { 1, 2, 3 }))
    assert.are.equal("tensor([[  1, -20],\n" ..
                     "        [300,   4]], dtype=int64, shape={2, 2})",
      show(distill.tensor { { 1, -20 }, { 300, 4 } }))
    assert.are.equal("tensor([  0, 255], dtype=uint8, shape={2})",
      show(distill.tensor({ 0, 255 }, "uint8")))
  end)

  it("prints floats with 4 decimals in aligned columns", function()
    assert.are.equal("tensor([[ 0.1234, -1.5000,  2.0000],\n" ..
                     "        [ 3.0000,  4.0000,  5.0000]], dtype=float32, shape={2, 3})",
      show(distill.tensor { { 0.1234, -1.5, 2 }, { 3, 4, 5 } }))
    assert.are.equal("tensor([0.0000, 0.0000], dtype=float32, shape={2})", show(distill.zeros { 2 }))
    assert.are.equal("tensor([     1.0000, 100000.0000], dtype=float32, shape={2})",
      show(distill.tensor({ 1, 100000 }, "float32")))
  end)

  it("switches to scientific notation for wide magnitude ranges", function()
    assert.are.equal("tensor([1.0000e+05, 1.5000e+00], dtype=float32, shape={2})",
      show(distill.tensor { 1e5, 1.5 }))
    assert.are.equal("tensor([1.0000e-05, 1.0000e+00], dtype=float32, shape={2})",
      show(distill.tensor({ 1e-5, 1 }, "float32")))
    assert.are.equal("tensor([1.0000e+09, 2.0000e+00], dtype=float32, shape={2})",
      show(distill.tensor({ 1e9, 2 }, "float32")))
  end)

  it("prints nan and inf", function()
    assert.are.equal("tensor([1.5000,    nan,    inf,   -inf], dtype=float32, shape={4})",
      show(distill.tensor { 1.5, 0 / 0, 1 / 0, -1 / 0 }))
    assert.are.equal("tensor(nan, dtype=float32, shape={})", show(distill.tensor(-(0 / 0))))
  end)

  it("prints 0-d and empty tensors", function()
    assert.are.equal("tensor(3.5000, dtype=float32, shape={})", show(distill.tensor(3.5)))
    assert.are.equal("tensor(-7, dtype=int64, shape={})", show(distill.tensor(-7)))
    assert.are.equal("tensor([], dtype=float32, shape={0})", show(distill.tensor {}))
    assert.are.equal("tensor([], dtype=float32, shape={2, 0})", show(distill.zeros { 2, 0 }))
  end)

  it("separates blocks of 3-d tensors by blank lines", function()
    assert.are.equal("tensor([[[1, 2],\n" ..
                     "         [3, 4]],\n" ..
                     "\n" ..
                     "        [[5, 6],\n" ..
                     "         [7, 8]]], dtype=int64, shape={2, 2, 2})",
      show(distill.arange(1, 9):view { 2, 2, 2 }))
  end)

  it("prints views in logical order", function()
    assert.are.equal("tensor([[1, 3],\n        [2, 4]], dtype=int64, shape={2, 2})",
      show(distill.tensor { { 1, 2 }, { 3, 4 } }:t()))
  end)

  it("wraps long rows at 80 columns", function()
    assert.are.equal(
      "tensor([ 0.0000,  1.0000,  2.0000,  3.0000,  4.0000,  5.0000,  6.0000,  7.0000,\n" ..
      "         8.0000,  9.0000, 10.0000, 11.0000], dtype=float32, shape={12})",
      show(distill.arange(12, "float32")))
  end)

  it("summarises large tensors with the first and last 3 entries of each dim", function()
    assert.are.equal("tensor([   0,    1,    2,  ..., 1997, 1998, 1999], dtype=int64, shape={2000})",
      show(distill.arange(2000)))
    assert.are.equal(
      "tensor([[   0,    1,    2,  ...,   27,   28,   29],\n" ..
      "        [  30,   31,   32,  ...,   57,   58,   59],\n" ..
      "        [  60,   61,   62,  ...,   87,   88,   89],\n" ..
      "        ...,\n" ..
      "        [1110, 1111, 1112,  ..., 1137, 1138, 1139],\n" ..
      "        [1140, 1141, 1142,  ..., 1167, 1168, 1169],\n" ..
      "        [1170, 1171, 1172,  ..., 1197, 1198, 1199]], dtype=int64, shape={40, 30})",
      show(distill.arange(1200):view { 40, 30 }))
  end)

  it("does not summarise at or below 1000 elements", function()
    local s = show(distill.arange(1000))
    assert.is_nil(s:find("...", 1, true))
    assert.truthy(s:find("999], dtype=int64, shape={1000})", 1, true))
  end)
end)

local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf, err = h.flat, h.leaf, h.err
local assert_close = h.assert_close_with{ tol = 1e-5, format = "%.6g", relative = true }

-- 1..n in row-major order as a float tensor of `shape`.
local function counting(shape)
  local n = 1
  for _, s in ipairs(shape) do
    n = n * s
  end
  local list = {}
  for i = 1, n do
    list[i] = i
  end
  return distill.tensor(list, "float32"):view(shape)
end

-- A leaf whose values are distinct and at least 0.1 apart (no ties, and a
-- finite-difference step of 1e-2 cannot change the argmax).
local function distinct_leaf(shape, seed)
  local n = 1
  for _, s in ipairs(shape) do
    n = n * s
  end
  local list, state = {}, seed or 7
  for i = 1, n do
    list[i] = (i - n / 2) * 0.1
  end
  for i = n, 2, -1 do   -- Fisher-Yates with a small LCG
    state = (state * 1103515245 + 12345) % 2147483648
    local j = state % i + 1
    list[i], list[j] = list[j], list[i]
  end
  local t = distill.tensor(list, "float32"):view(shape)
  t.requires_grad = true
  return t
end

local function check(fn, inputs)
  local report = gradcheck.assert_gradcheck(fn, inputs, { eps = 1e-2, atol = 1e-2, rtol = 1e-2 })
  assert.truthy(report:find("passed", 1, true))
end

describe("max_pool2d", function()
  before_each(function()
    distill.manual_seed(3)
  end)

  it("takes the maximum of each window", function()
    local y = distill.max_pool2d(counting{ 1, 1, 4, 4 }, { kernel_size = 2 })
    assert.are.same({ 1, 1, 2, 2 }, y:shape())
    assert_close({ 6, 8, 14, 16 }, flat(y))
  end)

  it("accepts a number as kernel_size and 3-d inputs", function()
    local y = distill.max_pool2d(counting{ 1, 4, 4 }, 2)
    assert.are.same({ 1, 2, 2 }, y:shape())
    assert_close({ 6, 8, 14, 16 }, flat(y))
  end)

  it("pads with -inf", function()
    local x = distill.tensor({ { { { -1, -2, -3 }, { -4, -5, -6 }, { -7, -8, -9 } } } }, "float32")
    local y = distill.max_pool2d(x, { kernel_size = 2, stride = 1, padding = 1 })
    assert.are.same({ 1, 1, 4, 4 }, y:shape())
    assert_close({ -1, -1, -2, -3, -1, -1, -2, -3, -4, -4, -5, -6, -7, -7, -8, -9 }, flat(y))
  end)

  it("rounds the output size up with ceil_mode", function()
    local x = counting{ 1, 1, 3, 3 }
    assert.are.same({ 1, 1, 1, 1 }, distill.max_pool2d(x, { kernel_size = 2 }):shape())
    local y = distill.max_pool2d(x, { kernel_size = 2, ceil_mode = true })
    assert.are.same({ 1, 1, 2, 2 }, y:shape())
    assert_close({ 5, 6, 8, 9 }, flat(y))
  end)

  it("drops a ceil_mode window that would start in the right padding", function()
    -- W = 5, k = 2, s = 2, p = 1: ceil((5 + 2 - 2) / 2) + 1 = 4, but the
    -- 4th window would start at 6 - 1 = 5, past the input: 3 windows
    local x = counting{ 1, 1, 2, 5 }
    local y = distill.max_pool2d(x, { kernel_size = 2, stride = 2, padding = { 0, 1 }, ceil_mode = true })
    assert.are.same({ 1, 1, 1, 3 }, y:shape())
    assert_close({ 6, 8, 10 }, flat(y))
  end)

  it("matches on a non-contiguous input", function()
    local base = distill.randn{ 2, 3, 6, 5 }
    local x = base:transpose(3, 4)
    local o = { kernel_size = 3, stride = 2, padding = 1 }
    assert_close(flat(distill.max_pool2d(x:contiguous(), o)), flat(distill.max_pool2d(x, o)), 0)
  end)

  it("passes gradcheck", function()
    check(function(x) return distill.max_pool2d(x, { kernel_size = 2 }) end, { distinct_leaf{ 2, 2, 4, 4 } })
    check(function(x) return distill.max_pool2d(x, { kernel_size = 3, stride = 2, padding = 1, ceil_mode = true }) end,
      { distinct_leaf({ 1, 3, 6, 5 }, 11) })
    check(function(x) return distill.max_pool2d(x, { kernel_size = { 2, 3 }, stride = { 1, 2 } }) end,
      { distinct_leaf({ 2, 1, 4, 7 }, 5) })
  end)

  it("routes the gradient of overlapping windows to the shared maximum", function()
    local x = distill.tensor({ { { { 0, 0, 0 }, { 0, 9, 0 }, { 0, 0, 0 } } } }, "float32")
    x.requires_grad = true
    distill.max_pool2d(x, { kernel_size = 2, stride = 1 }):backward(distill.ones{ 1, 1, 2, 2 })
    assert_close({ 0, 0, 0, 0, 4, 0, 0, 0, 0 }, flat(x.grad))
  end)

  it("rejects bad arguments", function()
    local x = distill.zeros{ 1, 1, 4, 4 }
    assert.truthy(err(function() distill.max_pool2d(x, {}) end):find("'kernel_size' is required", 1, true))
    assert.truthy(err(function() distill.max_pool2d(x, { kernel_size = 2, padding = 2 }) end)
      :find("padding must be at most half of kernel_size", 1, true))
    assert.truthy(err(function() distill.max_pool2d(x, { kernel_size = 5 }) end)
      :find("bigger than the padded input", 1, true))
    assert.truthy(err(function() distill.max_pool2d(x, { kernel_size = 2, stride = 0 }) end)
      :find("stride must be positive", 1, true))
    assert.truthy(err(function() distill.max_pool2d(distill.zeros{ 4, 4 }, 2) end)
      :find("distill.max_pool2d: expected a 3-d (C, H, W) or 4-d", 1, true))
    assert.truthy(err(function() distill.max_pool2d(x, { kernel = 2 }) end):find("unknown option 'kernel'", 1, true))
  end)
end)

describe("avg_pool2d", function()
  before_each(function()
    distill.manual_seed(4)
  end)

  it("averages each window", function()
    local y = distill.avg_pool2d(counting{ 1, 1, 4, 4 }, { kernel_size = 2 })
    assert_close({ 3.5, 5.5, 11.5, 13.5 }, flat(y))
  end)

  it("counts padding in the divisor unless count_include_pad = false", function()
    local x = counting{ 1, 1, 3, 3 }
    local y = distill.avg_pool2d(x, { kernel_size = 3, stride = 2, padding = 1 })
    assert.are.same({ 1, 1, 2, 2 }, y:shape())
    assert_close({ 12 / 9, 16 / 9, 24 / 9, 28 / 9 }, flat(y))
    y = distill.avg_pool2d(x, { kernel_size = 3, stride = 2, padding = 1, count_include_pad = false })
    assert_close({ 3, 4, 6, 7 }, flat(y))
  end)

  it("does not count the part of a ceil_mode window past the padding", function()
    local y = distill.avg_pool2d(counting{ 1, 1, 3, 3 }, { kernel_size = 2, ceil_mode = true })
    assert.are.same({ 1, 1, 2, 2 }, y:shape())
    assert_close({ 3, 4.5, 7.5, 9 }, flat(y))
  end)

  it("passes gradcheck", function()
    check(function(x) return distill.avg_pool2d(x, { kernel_size = 2 }) end, { leaf{ 2, 2, 4, 4 } })
    check(function(x) return distill.avg_pool2d(x, { kernel_size = 3, stride = 2, padding = 1, ceil_mode = true }) end,
      { leaf{ 1, 2, 6, 5 } })
    check(function(x)
      return distill.avg_pool2d(x, { kernel_size = { 3, 2 }, stride = 2, padding = 1, count_include_pad = false })
    end, { leaf{ 2, 1, 5, 5 } })
  end)
end)

describe("adaptive_avg_pool2d", function()
  before_each(function()
    distill.manual_seed(5)
  end)

  it("uses floor/ceil windows for non-divisible sizes", function()
    local y = distill.adaptive_avg_pool2d(counting{ 1, 1, 1, 5 }, { 1, 3 })
    assert.are.same({ 1, 1, 1, 3 }, y:shape())
    -- windows [0, 2), [1, 4), [3, 5)
    assert_close({ 1.5, 3, 4.5 }, flat(y))
  end)

  it("pools globally to 1 x 1", function()
    local y = distill.adaptive_avg_pool2d(counting{ 2, 1, 3, 3 }, 1)
    assert.are.same({ 2, 1, 1, 1 }, y:shape())
    assert_close({ 5, 14 }, flat(y))
  end)

  it("passes gradcheck", function()
    check(function(x) return distill.adaptive_avg_pool2d(x, { 3, 4 }) end, { leaf{ 2, 2, 5, 7 } })
    check(function(x) return distill.adaptive_avg_pool2d(x, 1) end, { leaf{ 1, 3, 4, 4 } })
    check(function(x) return distill.adaptive_avg_pool2d(x, { 4, 5 }) end, { leaf{ 1, 1, 3, 3 } })
  end)

  it("rejects bad sizes", function()
    assert.truthy(err(function() distill.adaptive_avg_pool2d(distill.zeros{ 1, 1, 3, 3 }, 0) end)
      :find("output size must be positive", 1, true))
    assert.truthy(err(function() distill.adaptive_avg_pool2d(distill.zeros{ 1, 1, 3, 3 }) end)
      :find("expected the output size", 1, true))
  end)
end)

local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf = h.flat, h.leaf

describe("dropout", function()
  before_each(function()
    distill.manual_seed(3)
  end)

  it("is the identity in eval mode and for p = 0", function()
    local x = distill.randn{ 4, 5 }
    assert.are.same(flat(x), flat(distill.dropout(x, { training = false })))
    assert.are.same(flat(x), flat(distill.dropout(x, { p = 0 })))
    assert.are.same(flat(x), flat(distill.dropout(x, { p = 0.9, training = false })))
  end)

  it("zeroes everything for p = 1", function()
    local x = distill.randn{ 3, 3 }
    for _, v in ipairs(flat(distill.dropout(x, { p = 1 }))) do
      assert.are.equal(0, v)
    end
  end)

  it("drops about p of the elements and scales the rest by 1/(1-p)", function()
    for _, p in ipairs{ 0.5, 0.2, 0.8 } do
      local y = flat(distill.dropout(distill.ones{ 20000 }, { p = p }))
      local zeros = 0
      for _, v in ipairs(y) do
        if v == 0 then
          zeros = zeros + 1
        else
          assert.is_true(math.abs(v - 1 / (1 - p)) < 1e-5)
        end
      end
      assert.is_true(math.abs(zeros / #y - p) < 0.015, ("p=%g: dropped %g"):format(p, zeros / #y))
    end
  end)

  it("uses p = 0.5 and training mode by default", function()
    local y = flat(distill.dropout(distill.ones{ 4000 }))
    local zeros = 0
    for _, v in ipairs(y) do
      if v == 0 then zeros = zeros + 1 end
    end
    assert.is_true(math.abs(zeros / #y - 0.5) < 0.04)
  end)

  it("reproduces its mask from the seed and draws a new one otherwise", function()
    local x = distill.ones{ 200 }
    distill.manual_seed(42)
    local a = flat(distill.dropout(x, { p = 0.5 }))
    local b = flat(distill.dropout(x, { p = 0.5 }))
    distill.manual_seed(42)
    local c = flat(distill.dropout(x, { p = 0.5 }))
    assert.are.same(a, c)
    assert.are_not.same(a, b)
  end)

  it("keeps the input's shape for non-contiguous inputs", function()
    local base = distill.randn{ 3, 5 }
    local y = distill.dropout(base:t(), { p = 0.3 })
    assert.are.same({ 5, 3 }, y:shape())
    local yt, bt = y:totable(), base:totable()
    for i = 1, 5 do
      for j = 1, 3 do
        local v = yt[i][j]
        assert.is_true(v == 0 or math.abs(v - bt[j][i] / 0.7) < 1e-5)
      end
    end
  end)

  it("routes the gradient through the saved mask", function()
    local x = distill.ones{ 50 }
    x.requires_grad = true
    local y = distill.dropout(x, { p = 0.4 })
    assert.are.equal("DropoutBackward", y.grad_fn)
    y:backward(distill.ones{ 50 })
    -- with x = 1 the output is the mask itself
    assert.are.same(flat(y:detach()), flat(x.grad))
  end)

  it("passes gradcheck (reseeded so every evaluation draws the same mask)", function()
    for _, shape in ipairs{ { 3, 4 }, { 1, 6 }, { 2, 3, 2 } } do
      local ok, report = gradcheck.gradcheck(function(a)
        distill.manual_seed(9)
        return distill.dropout(a, { p = 0.3 })
      end, { leaf(shape) })
      assert(ok, report)
    end
    local ok, report = gradcheck.gradcheck(function(a)
      return distill.dropout(a, { p = 0.3, training = false })
    end, { leaf{ 2, 2 } })
    assert(ok, report)
  end)

  it("validates p and the options", function()
    h.fails("distill.dropout: p must be between 0 and 1, got 1.5", distill.dropout, distill.ones{ 2 }, { p = 1.5 })
    h.fails("unknown option 'prob'", distill.dropout, distill.ones{ 2 }, { prob = 0.5 })
  end)
end)

local distill = require "distill"
local h = require "support.helpers"

local f32, flat, leaf, check = h.f32, h.flat, h.leaf, h.check
local assert_close = h.assert_close_with{ tol = 1e-5, format = "%.7g", strict = true, convert = true }

local function rand_shape(ndim, lo, hi)
  local s = {}
  for i = 1, ndim do s[i] = math.random(lo, hi) end
  return s
end

describe("distances", function()
  before_each(function()
    distill.manual_seed(8)
    math.randomseed(8)
  end)

  describe("normalize", function()
    it("divides by the L2 norm along dim 2 by default", function()
      assert_close({ 0.6, 0.8, 0, 1 }, distill.normalize(f32{ { 3, 4 }, { 0, 2 } }))
    end)

    it("supports another dim, p = 1 and the eps floor", function()
      assert_close({ 1, 0.8, 0, 0.2 }, distill.normalize(f32{ { 3, 4 }, { 0, 1 } }, { dim = 1, p = 1 }))
      assert_close({ 0.6, 0.8 }, distill.normalize(f32{ { 3, 4 } }, { dim = -1 }))
      -- a zero row stays zero; a tiny row is divided by eps
      assert_close({ 0, 0, 0.5, 0.5 }, distill.normalize(f32{ { 0, 0 }, { 1e-3, 1e-3 } }, { eps = 2e-3 }))
    end)

    it("works on a non-contiguous input", function()
      local base = f32{ { 3, 0 }, { 4, 2 } }
      assert_close({ 0.6, 0.8, 0, 1 }, distill.normalize(base:t(), { dim = 2 }))
    end)

    it("validates options", function()
      h.fails("distill.normalize: dim 3 out of range for a 2-d tensor", distill.normalize, distill.randn{ 2, 2 }, { dim = 3 })
      h.fails("distill.normalize: p must be positive and finite, got 0", distill.normalize, distill.randn{ 2, 2 }, { p = 0 })
      h.fails("unknown option 'axis'", distill.normalize, distill.randn{ 2, 2 }, { axis = 1 })
    end)

    it("passes gradcheck for several dims and orders", function()
      check(function(a) return distill.normalize(a) end, { leaf(rand_shape(2, 2, 4)) })
      check(function(a) return distill.normalize(a, { dim = 1 }) end, { leaf{ 3, 2 } })
      check(function(a) return distill.normalize(a, { dim = 2 }) end, { leaf{ 2, 3, 2 } })
      check(function(a) return distill.normalize(a, { p = 3 }) end, { leaf{ 2, 3 } })
      check(function(a) return distill.normalize(a:t(), { dim = 2 }) end, { leaf{ 3, 2 } })
      check(function(a) return distill.normalize(a) end, { leaf{ 1, 5 } })
      -- clamped rows: the gradient is g / eps
      check(function(a) return distill.normalize(a, { eps = 10 }) end, { leaf{ 2, 3 } })
    end)
  end)

  describe("cdist", function()
    local x1 = { { 0, 0 }, { 1, 1 } }
    local x2 = { { 3, 4 }, { 1, 1 }, { 0, 1 } }

    it("computes pairwise p = 2 and p = 1 distances", function()
      local d = distill.cdist(f32(x1), f32(x2))
      assert.are.same({ 2, 3 }, d:shape())
      assert_close({ 5, math.sqrt(2), 1, math.sqrt(13), 0, 1 }, d)
      assert_close({ 7, 2, 1, 5, 0, 1 }, distill.cdist(f32(x1), f32(x2), { p = 1 }))
      assert_close({ 4.49794145, 2 ^ (1 / 3), 1 },
        distill.cdist(f32{ x1[1] }, f32(x2), { p = 3 }), 1e-4)
    end)

    it("handles a batch dim and non-contiguous inputs", function()
      local a, b = distill.randn{ 2, 3, 4 }, distill.randn{ 2, 5, 4 }
      local d = distill.cdist(a, b):totable()
      local av, bv = a:totable(), b:totable()
      for n = 1, 2 do
        for i = 1, 3 do
          for j = 1, 5 do
            local s = 0
            for k = 1, 4 do s = s + (av[n][i][k] - bv[n][j][k]) ^ 2 end
            assert.is_true(math.abs(math.sqrt(s) - d[n][i][j]) < 1e-5)
          end
        end
      end
      local base = f32{ { 0, 1 }, { 0, 1 } }   -- transposed: rows {0,0} and {1,1}
      assert_close({ 5, math.sqrt(2), 1, math.sqrt(13), 0, 1 }, distill.cdist(base:t(), f32(x2)))
    end)

    it("gives zero gradient, not NaN, at zero distance", function()
      local a = f32{ { 1, 2 }, { 3, 4 } }
      a.requires_grad = true
      local b = f32{ { 1, 2 } }
      b.requires_grad = true
      distill.cdist(a, b):backward(distill.ones{ 2, 1 })
      local ga, gb = flat(a.grad), flat(b.grad)
      assert_close({ 0, 0, math.sqrt(0.5), math.sqrt(0.5) }, ga)
      assert_close({ -math.sqrt(0.5), -math.sqrt(0.5) }, gb)
      local c = f32{ { 1, 2 } }
      c.requires_grad = true
      distill.cdist(c, f32{ { 1, 2 } }, { p = 1 }):backward(distill.ones{ 1, 1 })
      assert_close({ 0, 0 }, c.grad)
    end)

    it("validates shapes", function()
      h.fails("distill.cdist: expected x1 (B...) x P x M and x2 (B...) x R x M", distill.cdist, distill.randn{ 2, 3 }, distill.randn{ 2, 4 })
    end)

    it("passes gradcheck into both inputs for p = 2, 1, 3 and batches", function()
      local m = math.random(1, 4)
      check(function(a, b) return distill.cdist(a, b) end, { leaf{ math.random(1, 4), m }, leaf{ math.random(1, 4), m } })
      check(function(a, b) return distill.cdist(a, b, { p = 1 }) end, { leaf{ 3, 2 }, leaf{ 2, 2 } })
      check(function(a, b) return distill.cdist(a, b, { p = 3 }) end, { leaf{ 2, 3 }, leaf{ 2, 3 } })
      check(function(a, b) return distill.cdist(a, b) end, { leaf{ 2, 2, 3 }, leaf{ 2, 3, 3 } })
      check(function(a, b) return distill.cdist(a, b) end, { leaf{ 1, 3 }, leaf{ 1, 3 } })
    end)
  end)

  describe("pairwise_distance", function()
    it("computes ||x1 - x2 + eps|| over the last dim", function()
      local eps = 1e-6
      local d = distill.pairwise_distance(f32{ { 0, 0 }, { 1, 2 } }, f32{ { 3, 4 }, { 1, 2 } })
      assert.are.same({ 2 }, d:shape())
      assert_close({ math.sqrt((-3 + eps) ^ 2 + (-4 + eps) ^ 2), math.sqrt(2) * eps }, d, 1e-6)
      assert_close({ 7 - 2 * eps }, distill.pairwise_distance(f32{ { 0, 0 } }, f32{ { 3, 4 } }, { p = 1 }))
      assert_close({ 5 }, distill.pairwise_distance(f32{ { 0, 0 } }, f32{ { 3, 4 } }, { eps = 0 }))
    end)

    it("reduces a 1-d pair to a 0-d tensor", function()
      local d = distill.pairwise_distance(f32{ 0, 0 }, f32{ 3, 4 }, { eps = 0 })
      assert.are.same({}, d:shape())
      assert_close({ 5 }, d)
    end)

    it("validates shapes", function()
      h.fails("distill.pairwise_distance: x1 of shape [2, 3] and x2 of shape [3, 2] differ", distill.pairwise_distance, distill.randn{ 2, 3 }, distill.randn{ 3, 2 })
    end)

    it("passes gradcheck into both inputs", function()
      local shape = rand_shape(2, 1, 4)
      check(function(a, b) return distill.pairwise_distance(a, b) end, { leaf(shape), leaf(shape) })
      check(function(a, b) return distill.pairwise_distance(a, b, { p = 1 }) end, { leaf{ 3, 2 }, leaf{ 3, 2 } })
      check(function(a, b) return distill.pairwise_distance(a, b) end, { leaf{ 2, 2, 3 }, leaf{ 2, 2, 3 } })
      check(function(a, b) return distill.pairwise_distance(a:t(), b) end, { leaf{ 3, 2 }, leaf{ 2, 3 } })
    end)
  end)

  describe("cosine_similarity", function()
    it("computes x1.x2 / max(|x1| |x2|, eps) along dim 2 by default", function()
      local s = distill.cosine_similarity(f32{ { 1, 0 }, { 1, 2 }, { 0, 0 } }, f32{ { 1, 1 }, { -2, 1 }, { 1, 1 } })
      assert.are.same({ 3 }, s:shape())
      assert_close({ math.sqrt(0.5), 0, 0 }, s)
      -- below eps the product of norms is replaced by eps
      assert_close({ 0.5 }, distill.cosine_similarity(f32{ { 0.1, 0 } }, f32{ { 0.1, 0 } }, { eps = 0.02 }))
    end)

    it("works along dim 1", function()
      local a, b = f32{ { 1, 3 }, { 0, 4 } }, f32{ { 1, 3 }, { 1, 4 } }
      assert_close({ math.sqrt(0.5), 1 }, distill.cosine_similarity(a, b, { dim = 1 }))
    end)

    it("validates shapes and dims", function()
      h.fails("x1 of shape [2, 3] and x2 of shape [2, 4] differ", distill.cosine_similarity, distill.randn{ 2, 3 }, distill.randn{ 2, 4 })
      h.fails("dim 2 out of range for a 1-d tensor", distill.cosine_similarity, distill.randn{ 3 }, distill.randn{ 3 })
      assert_close({ 1 }, distill.cosine_similarity(f32{ 1, 2 }, f32{ 2, 4 }, { dim = 1 }))
    end)

    it("passes gradcheck into both inputs", function()
      local shape = rand_shape(2, 1, 4)
      check(function(a, b) return distill.cosine_similarity(a, b) end, { leaf(shape), leaf(shape) })
      check(function(a, b) return distill.cosine_similarity(a, b, { dim = 1 }) end, { leaf{ 3, 2 }, leaf{ 3, 2 } })
      check(function(a, b) return distill.cosine_similarity(a, b, { dim = -1 }) end, { leaf{ 2, 2, 3 }, leaf{ 2, 2, 3 } })
      check(function(a, b) return distill.cosine_similarity(a:t(), b) end, { leaf{ 3, 2 }, leaf{ 2, 3 } })
      -- clamped: gradient x2 / eps
      check(function(a, b) return distill.cosine_similarity(a, b, { eps = 100 }) end, { leaf{ 2, 3 }, leaf{ 2, 3 } })
    end)
  end)
end)

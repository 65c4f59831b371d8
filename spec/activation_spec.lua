local distill = require "distill"
local h = require "support.helpers"

local f32, flat, leaf, check = h.f32, h.flat, h.leaf, h.check
local assert_close = h.assert_close_with{ tol = 1e-5, format = "%.7g" }

-- A leaf of the given shape with random values kept at least `gap` away
-- from every kink, so central differences do not straddle one.
local function leaf_away_from(shape, kinks, gap)
  local t = distill.randn(shape)
  local v = t:view{-1}
  for i = 1, v:numel() do
    local x = v[i] * 3
    for _, k in ipairs(kinks) do
      if math.abs(x - k) < gap then
        x = k + (x >= k and gap or -gap)
      end
    end
    v[i] = x
  end
  t.requires_grad = true
  return t
end

-- log-softmax of a Lua list, in double precision
local function ref_log_softmax(list)
  local out, lse = {}, h.logsumexp(list)
  for i, v in ipairs(list) do out[i] = v - lse end
  return out
end

describe("activations", function()
  before_each(function()
    distill.manual_seed(11)
    math.randomseed(11)
  end)

  describe("relu", function()
    it("passes the gradient where the output is positive, none at 0 or NaN", function()
      local x = f32{ -1, 0, 2, 0 / 0, 5 }
      x.requires_grad = true
      local y = x:relu()
      assert.are.equal("ReluBackward", y.grad_fn)
      y:backward(f32{ 3, 3, 3, 3, -4 })
      assert.are.same({ 0, 0, 3, 0, -4 }, flat(x.grad))
    end)

    it("matches a reference on a large input and a strided upstream gradient", function()
      local n = 70001
      local x = leaf{ n }
      local g = distill.randn{ n }
      x:relu():backward(g)
      local xs, gs, got = flat(x), flat(g), flat(x.grad)
      for i = 1, n do
        if got[i] ~= (xs[i] > 0 and gs[i] or 0) then
          error(("element %d: x %g, g %g, got %g"):format(i, xs[i], gs[i], got[i]))
        end
      end
      local a = leaf{ 30, 40 }
      local gt = distill.randn{ 40, 30 }
      a:relu():t():backward(gt)   -- relu's upstream gradient is a transposed view
      local as, ts, ag = flat(a), flat(gt:t()), flat(a.grad)
      for i = 1, 1200 do
        assert.are.equal(as[i] > 0 and ts[i] or 0, ag[i])
      end
    end)
  end)

  describe("relu6", function()
    it("clamps to [0, 6]", function()
      local y = distill.relu6(f32{ -1, 0, 3.5, 6, 7 })
      assert_close({ 0, 0, 3.5, 6, 6 }, flat(y))
      assert.are.equal("float32", y:dtype())
    end)

    it("works on a non-contiguous input", function()
      local base = f32{ { -1, 2 }, { 8, 5 } }
      assert_close({ 0, 6, 2, 5 }, flat(distill.relu6(base:t())))
    end)

    it("records RELU6 backward and passes gradcheck", function()
      local x = leaf_away_from({ 3, 4 }, { 0, 6 }, 0.05)
      assert.are.equal("Relu6Backward", distill.relu6(x).grad_fn)
      check(function(a) return distill.relu6(a) end, { x })
      check(function(a) return distill.relu6(a) end, { leaf_away_from({ 1, 7 }, { 0, 6 }, 0.05) })
    end)

    it("rejects integer tensors", function()
      h.fails("distill.relu6: expected a float32 tensor, got int64", distill.relu6, distill.tensor({ 1, 2 }, "int64"))
    end)
  end)

  describe("leaky_relu", function()
    it("uses slope 0.01 by default and accepts another", function()
      assert_close({ -0.02, 0, 3 }, flat(distill.leaky_relu(f32{ -2, 0, 3 })))
      assert_close({ -0.4, 0, 3 }, flat(distill.leaky_relu(f32{ -2, 0, 3 }, 0.2)))
    end)

    it("passes gradcheck", function()
      check(function(a) return distill.leaky_relu(a, 0.2) end, { leaf_away_from({ 2, 5 }, { 0 }, 0.05) })
      check(function(a) return distill.leaky_relu(a) end, { leaf_away_from({ 4 }, { 0 }, 0.05) })
    end)
  end)

  describe("softmax and log_softmax", function()
    it("matches hand-computed values", function()
      local x = f32{ { 1, 2, 3 } }
      assert_close({ 0.09003057, 0.24472847, 0.66524096 }, flat(distill.softmax(x, 2)))
      assert_close({ -2.40760596, -1.40760596, -0.40760596 }, flat(distill.log_softmax(x, 2)))
      assert_close({ -2.40760596, -1.40760596, -0.40760596 }, flat(distill.log_softmax(x, -1)))
    end)

    it("gives rows that sum to 1", function()
      local y = distill.softmax(distill.randn{ 5, 7 }, 2):totable()
      for _, row in ipairs(y) do
        local s = 0
        for _, v in ipairs(row) do s = s + v end
        assert.is_true(math.abs(s - 1) < 1e-5)
      end
    end)

    it("is stable for logits around 1000", function()
      local big = f32{ { 1000, 1001, 1002 }, { -1000, -1001, -1002 } }
      assert_close({ 0.09003057, 0.24472847, 0.66524096, 0.66524096, 0.24472847, 0.09003057 },
        flat(distill.softmax(big, 2)))
      assert_close({ -2.40760596, -1.40760596, -0.40760596, -0.40760596, -1.40760596, -2.40760596 },
        flat(distill.log_softmax(big, 2)), 1e-4)
    end)

    it("works along dim 1 and dim 2", function()
      local x = f32{ { 1, 5 }, { 2, 7 }, { 3, 0 } }
      local by_col = distill.log_softmax(x, 1):totable()
      local c1, c2 = ref_log_softmax{ 1, 2, 3 }, ref_log_softmax{ 5, 7, 0 }
      for i = 1, 3 do
        assert_close({ c1[i], c2[i] }, by_col[i])
      end
      local by_row = distill.log_softmax(x, 2):totable()
      assert_close(ref_log_softmax{ 1, 5 }, by_row[1])
      assert_close(ref_log_softmax{ 3, 0 }, by_row[3])
    end)

    it("works on a transposed (non-contiguous) input", function()
      local base = distill.randn{ 3, 4 }
      local xt = base:t()
      assert.is_false(xt:is_contiguous())
      local y = distill.log_softmax(xt, 2):totable()
      local b = base:totable()
      for i = 1, 4 do
        assert_close(ref_log_softmax{ b[1][i], b[2][i], b[3][i] }, y[i])
      end
      local s = distill.softmax(xt, 1):totable()
      for j = 1, 3 do
        local ref = ref_log_softmax(b[j])
        for i = 1, 4 do
          assert.is_true(math.abs(math.exp(ref[i]) - s[i][j]) < 1e-5)
        end
      end
    end)

    it("works along the middle dim of a 3-d tensor", function()
      local x = distill.randn{ 2, 3, 2 }
      local y = distill.softmax(x, 2):totable()
      local v = x:totable()
      for a = 1, 2 do
        for c = 1, 2 do
          local ref = ref_log_softmax{ v[a][1][c], v[a][2][c], v[a][3][c] }
          for k = 1, 3 do
            assert.is_true(math.abs(math.exp(ref[k]) - y[a][k][c]) < 1e-5)
          end
        end
      end
    end)

    it("checks the dim", function()
      h.fails("distill.softmax: dim 3 out of range for a 2-d tensor", distill.softmax, distill.randn{ 2, 3 }, 3)
    end)

    it("passes gradcheck along every dim, batch 1 and non-contiguous", function()
      for _, case in ipairs{ { { 3, 4 }, 1 }, { { 3, 4 }, 2 }, { { 1, 5 }, 2 }, { { 2, 3, 2 }, 2 }, { { 2, 2, 3 }, -1 } } do
        local shape, dim = case[1], case[2]
        check(function(a) return distill.softmax(a, dim) end, { leaf(shape) })
        check(function(a) return distill.log_softmax(a, dim) end, { leaf(shape) })
      end
      local x = leaf{ math.random(2, 4), math.random(2, 4) }
      check(function(a) return distill.log_softmax(a:t(), 2) end, { x })
      check(function(a) return distill.softmax(a:t(), 1) end, { x })
    end)
  end)
end)

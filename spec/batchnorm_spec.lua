local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf, err = h.flat, h.leaf, h.err
local assert_close = h.assert_close_with{ tol = 1e-5, format = "%.7g", relative = true }

local function T(values)
  return distill.tensor(values, "float32")
end

local function check(fn, inputs)
  local report = gradcheck.assert_gradcheck(fn, inputs, { eps = 1e-2, atol = 1e-2, rtol = 1e-2, max_checks = 48 })
  assert.truthy(report:find("passed", 1, true))
end

describe("batch_norm", function()
  before_each(function()
    distill.manual_seed(9)
  end)

  local x2 = T{ { 1, 10 }, { 2, 20 }, { 3, 30 }, { 4, 40 } }

  it("normalises with the batch statistics in training mode", function()
    local y = distill.batch_norm(x2, nil, nil, nil, nil, { training = true, eps = 0 })
    local s0, s1 = math.sqrt(1.25), math.sqrt(125)
    assert_close({ -1.5 / s0, -15 / s1, -0.5 / s0, -5 / s1, 0.5 / s0, 5 / s1, 1.5 / s0, 15 / s1 }, flat(y))
  end)

  it("applies weight and bias", function()
    local y = distill.batch_norm(x2, nil, nil, T{ 2, 3 }, T{ 0.5, -1 }, { training = true, eps = 0 })
    local s0 = math.sqrt(1.25)
    local v = flat(y)
    assert_close({ -1.5 / s0 * 2 + 0.5, 1.5 / s0 * 2 + 0.5 }, { v[1], v[7] })
    assert_close({ -15 / math.sqrt(125) * 3 - 1 }, { v[2] })
  end)

  it("updates the running statistics with the unbiased variance", function()
    local rm, rv = distill.zeros{ 2 }, distill.ones{ 2 }
    distill.batch_norm(x2, rm, rv, nil, nil, { training = true })
    -- var (biased) 1.25 and 125, unbiased 5/3 and 500/3
    assert_close({ 0.25, 2.5 }, flat(rm))
    assert_close({ 0.9 + 0.1 * 5 / 3, 0.9 + 0.1 * 500 / 3 }, flat(rv))
    distill.batch_norm(x2, rm, rv, nil, nil, { training = true, momentum = 0.5 })
    assert_close({ 0.5 * 0.25 + 0.5 * 2.5, 0.5 * 2.5 + 0.5 * 25 }, flat(rm))
  end)

  it("uses the running statistics in eval mode and leaves them alone", function()
    local rm, rv = T{ 1, 2 }, T{ 4, 9 }
    local y = distill.batch_norm(x2, rm, rv, T{ 2, 3 }, T{ 0.5, -1 }, { eps = 0 })
    assert_close({ 0.5, 7, 1.5, 17, 2.5, 27, 3.5, 37 }, flat(y))
    assert_close({ 1, 2 }, flat(rm))
    assert_close({ 4, 9 }, flat(rv))
  end)

  it("normalises each channel of 3-d and 4-d inputs over N and the spatial dims", function()
    local x = distill.randn{ 3, 4, 5, 2 }
    local y = distill.batch_norm(x, nil, nil, nil, nil, { training = true, eps = 0 })
    local v = flat(y)
    for c = 0, 3 do
      local s, q, n = 0, 0, 0
      for b = 0, 2 do
        for k = 0, 9 do
          local e = v[(b * 4 + c) * 10 + k + 1]
          s, q, n = s + e, q + e * e, n + 1
        end
      end
      assert.is_true(math.abs(s / n) < 1e-5)
      assert.is_true(math.abs(q / n - 1) < 1e-4)
    end
    local x3 = x:view{ 3, 4, 10 }
    assert_close(v, flat(distill.batch_norm(x3, nil, nil, nil, nil, { training = true, eps = 0 })))
  end)

  it("matches on a non-contiguous input", function()
    local base = distill.randn{ 2, 3, 4, 5 }
    local x = base:transpose(3, 4)
    local o = { training = true }
    assert_close(flat(distill.batch_norm(x:contiguous(), nil, nil, nil, nil, o)),
      flat(distill.batch_norm(x, nil, nil, nil, nil, o)), 1e-6)
  end)

  describe("gradients", function()
    it("training, 2-d, affine", function()
      check(function(x, w, b)
        return distill.batch_norm(x, nil, nil, w, b, { training = true })
      end, { leaf{ 6, 3 }, leaf{ 3 }, leaf{ 3 } })
    end)

    it("training, 4-d, no affine, with running stats", function()
      local rm, rv = distill.zeros{ 2 }, distill.ones{ 2 }
      check(function(x)
        return distill.batch_norm(x, rm, rv, nil, nil, { training = true })
      end, { leaf{ 2, 2, 3, 3 } })
    end)

    it("training, 3-d, affine", function()
      check(function(x, w, b)
        return distill.batch_norm(x, nil, nil, w, b, { training = true })
      end, { leaf{ 3, 2, 4 }, leaf{ 2 }, leaf{ 2 } })
    end)

    it("eval, 4-d, affine", function()
      local rm, rv = distill.randn{ 3 }, distill.rand{ 3 }
      check(function(x, w, b)
        return distill.batch_norm(x, rm, rv, w, b, {})
      end, { leaf{ 2, 3, 2, 3 }, leaf{ 3 }, leaf{ 3 } })
    end)

    it("eval, 2-d, no affine", function()
      local rm, rv = distill.randn{ 4 }, distill.rand{ 4 }
      check(function(x)
        return distill.batch_norm(x, rm, rv, nil, nil, {})
      end, { leaf{ 5, 4 } })
    end)

    it("keeps the statistics of the forward pass for backward", function()
      local rm, rv = T{ 0, 0 }, T{ 3, 8 }
      local x = leaf{ 2, 2 }
      local y = distill.batch_norm(x, rm, rv, nil, nil, { eps = 1 })
      distill.no_grad(function() rv:fill_(100) end)
      y:backward(distill.ones{ 2, 2 })
      assert_close({ 0.5, 1 / 3, 0.5, 1 / 3 }, flat(x.grad))
    end)
  end)

  describe("errors", function()
    it("checks shapes and modes", function()
      assert.truthy(err(function() distill.batch_norm(distill.zeros{ 4 }, nil, nil, nil, nil, { training = true }) end)
        :find("distill.batch_norm: expected a 2-d (N, C)", 1, true))
      assert.truthy(err(function() distill.batch_norm(distill.zeros{ 4, 3 }, distill.zeros{ 2 }, distill.ones{ 2 }, nil, nil) end)
        :find("running_mean must be a 1-d tensor of 3 elements", 1, true))
      assert.truthy(err(function() distill.batch_norm(distill.zeros{ 4, 3 }, nil, nil, nil, nil) end)
        :find("eval mode (training = false) needs running_mean and running_var", 1, true))
      assert.truthy(err(function() distill.batch_norm(distill.zeros{ 1, 3 }, nil, nil, nil, nil, { training = true }) end)
        :find("more than 1 value per channel", 1, true))
      assert.truthy(err(function() distill.batch_norm(distill.zeros{ 4, 3 }, nil, nil, nil, nil, { train = true }) end)
        :find("unknown option 'train'", 1, true))
      assert.truthy(err(function() distill.batch_norm(distill.zeros{ 4, 3 }, nil, nil, distill.zeros{ 4 }, nil, { training = true }) end)
        :find("weight must be a 1-d tensor of 3 elements", 1, true))
    end)
  end)
end)

local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf, err = h.flat, h.leaf, h.err
local assert_close = h.assert_close_with{ tol = 1e-5, format = "%.7g", relative = true }
local assert_rel = h.assert_close_with{ tol = 1e-5, format = "%.9g", relative = true, strict = true }
local assert_abs = h.assert_close_with{ tol = 1e-5, format = "%.9g", strict = true }
local leaf_clone = h.leaf_clone

local function max_abs(list)
  local m = 0
  for _, v in ipairs(list) do m = math.max(m, math.abs(v)) end
  return m
end

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

  describe("against a double-precision reference", function()
    -- Per-channel statistics of a (N, C, S...) list in double, and the
    -- reference forward and backward (weight w, upstream gradient dy).
    local function ref_bn(xs, dys, ws, shape, eps)
      local N, C, S = shape[1], shape[2], 1
      for d = 3, #shape do S = S * shape[d] end
      local cnt = N * S
      local r = { mean = {}, var = {}, y = {}, dx = {}, dw = {}, db = {} }
      local function each(c, f)
        for n = 0, N - 1 do
          for k = 0, S - 1 do f((n * C + c) * S + k + 1) end
        end
      end
      for c = 0, C - 1 do
        local s, q = 0, 0
        each(c, function(i) s = s + xs[i] end)
        local m = s / cnt
        each(c, function(i) q = q + (xs[i] - m) ^ 2 end)
        local v = q / cnt
        local is = 1 / math.sqrt(v + eps)
        local sdy, sdyx = 0, 0
        each(c, function(i)
          r.y[i] = (xs[i] - m) * is * ws[c + 1]
          sdy = sdy + dys[i]
          sdyx = sdyx + dys[i] * (xs[i] - m) * is
        end)
        each(c, function(i)
          local xhat = (xs[i] - m) * is
          r.dx[i] = ws[c + 1] * is * (dys[i] - sdy / cnt - xhat * sdyx / cnt)
        end)
        r.mean[c + 1], r.var[c + 1], r.dw[c + 1], r.db[c + 1] = m, v, sdyx, sdy
      end
      return r
    end

    -- Shapes that exercise row tails (S not a multiple of the lane count),
    -- rows shorter than the lanes, several row blocks per channel and
    -- channel groups that do not divide C.
    local shapes = { { 8, 5, 17, 19 }, { 300, 7 }, { 16, 3, 32, 32 }, { 4, 40, 8, 8 }, { 3, 6, 50 } }
    for _, shape in ipairs(shapes) do
      it("matches on " .. table.concat(shape, "x") .. " with a large offset", function()
        local C = shape[2]
        -- mean 20, std 0.5: sums of squares about zero would cancel in float
        local x = distill.randn(shape) * 0.5 + 20
        local w = distill.rand{ C } + 0.5
        local rm, rv = distill.zeros{ C }, distill.ones{ C }
        local xl, wl = leaf_clone(x), leaf_clone(w)
        local y = distill.batch_norm(xl, rm, rv, wl, nil, { training = true, momentum = 1, eps = 1e-5 })
        local dy = distill.randn(shape)
        y:backward(dy)
        local r = ref_bn(flat(x), flat(dy), flat(w), shape, 1e-5)
        local cnt = #flat(x) / C
        local unbiased = {}
        for c = 1, C do unbiased[c] = r.var[c] * cnt / (cnt - 1) end
        assert_rel(r.mean, flat(rm), 1e-6)
        assert_rel(unbiased, flat(rv), 1e-5)
        assert_abs(r.y, flat(y), 2e-4)
        assert_abs(r.dx, flat(xl.grad), 2e-4 * max_abs(r.dx))
        assert_abs(r.dw, flat(wl.grad), 1e-4 * max_abs(r.dw) + 1e-4)
      end)
    end

    it("lets a NaN poison its own channel only", function()
      local x = distill.randn{ 4, 3, 9, 9 }
      x[{ 2, 2, 5, 5 }] = 0 / 0
      local rm, rv = distill.zeros{ 3 }, distill.ones{ 3 }
      local y = distill.batch_norm(x, rm, rv, nil, nil, { training = true })
      local m, v = flat(rm), flat(rv)
      assert.is_true(m[2] ~= m[2] and v[2] ~= v[2])
      assert.is_true(m[1] == m[1] and v[1] == v[1] and m[3] == m[3] and v[3] == v[3])
      local ch = y:narrow(2, 2, 1):contiguous():view{ -1 }:totable()
      assert.is_true(ch[1] ~= ch[1])
      local ok = y:narrow(2, 3, 1):contiguous():view{ -1 }:totable()
      assert.is_true(ok[1] == ok[1])
    end)

    it("eval mode's backward is w * invstd * dy", function()
      local x, dy = leaf{ 4, 3, 5, 7 }, distill.randn{ 4, 3, 5, 7 }
      local rm, rv, w = distill.randn{ 3 }, distill.rand{ 3 } + 0.5, distill.rand{ 3 } + 0.5
      distill.batch_norm(x, rm, rv, w, nil, { eps = 1e-3 }):backward(dy)
      local d, g, m, v, ws = flat(dy), flat(x.grad), flat(rm), flat(rv), flat(w)
      local expect = {}
      for i = 1, #d do
        local c = ((i - 1) // 35) % 3 + 1
        expect[i] = d[i] * ws[c] / math.sqrt(v[c] + 1e-3)
      end
      assert_abs(expect, g, 1e-5)
      assert.is_true(m[1] == m[1])
    end)
  end)

  h.describe_thread_determinism("gives the same bits with 1, 2 and 3 threads", { 1, 2, 3 }, [[
      local d = require "distill"
      d.manual_seed(5)
      local out = {}
      for _, shape in ipairs{ { 64, 16, 32, 32 }, { 64, 64, 8, 8 }, { 37, 40, 5, 3 } } do
        local x = d.randn(shape) * 2 + 3
        x.requires_grad = true
        local w = d.rand{ shape[2] } + 0.5
        w.requires_grad = true
        local rm, rv = d.zeros{ shape[2] }, d.ones{ shape[2] }
        local y = d.batch_norm(x, rm, rv, w, nil, { training = true })
        y:backward(d.randn(shape))
        for _, t in ipairs{ y, x.grad, w.grad, rm, rv } do
          out[#out + 1] = fingerprint(t)
        end
      end
      print(table.concat(out, " "))
    ]])

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

local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf = h.flat, h.leaf
local assert_close = h.assert_close_with{ tol = 1e-4, format = "%.6g", relative = true }

local ref_conv2d = h.ref_conv2d

describe("conv2d", function()
  before_each(function()
    distill.manual_seed(11)
  end)

  describe("forward values", function()
    local x9 = distill.tensor({ { { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } } } }, "float32")

    it("computes a 3x3 kernel over a 3x3 input", function()
      local w = distill.tensor({ { { { 1, 0, -1 }, { 2, 0, -2 }, { 1, 0, -1 } } } }, "float32")
      local y = distill.conv2d(x9, w)
      assert.are.same({ 1, 1, 1, 1 }, y:shape())
      -- 1-3 + 2*(4-6) + 7-9 = -8
      assert_close({ -8 }, flat(y))
    end)

    it("pads with zeros", function()
      local w = distill.tensor({ { { { 1, 1 }, { 1, 1 } } } }, "float32")
      local y = distill.conv2d(x9, w, nil, { padding = 1 })
      assert.are.same({ 1, 1, 4, 4 }, y:shape())
      assert_close({ 1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9 }, flat(y))
    end)

    it("strides by 2 and adds the bias", function()
      local w = distill.tensor({ { { { 1 } } }, { { { -1 } } } }, "float32")
      local b = distill.tensor({ 10, 20 }, "float32")
      local y = distill.conv2d(x9, w, b, { stride = 2 })
      assert.are.same({ 1, 2, 2, 2 }, y:shape())
      assert_close({ 11, 13, 17, 19, 19, 17, 13, 11 }, flat(y))
    end)

    it("dilates the kernel", function()
      local w = distill.tensor({ { { { 1, 1 }, { 1, 1 } } } }, "float32")
      local y = distill.conv2d(x9, w, nil, { dilation = 2 })
      assert.are.same({ 1, 1, 1, 1 }, y:shape())
      assert_close({ 1 + 3 + 7 + 9 }, flat(y))
    end)

    it("uses asymmetric stride and padding pairs", function()
      local w = distill.tensor({ { { { 1, 2 } } } }, "float32")
      local y = distill.conv2d(x9, w, nil, { stride = { 1, 2 }, padding = { 0, 1 } })
      assert.are.same({ 1, 1, 3, 2 }, y:shape())
      -- windows over columns (-1,0) and (1,2)
      assert_close({ 2, 2 + 6, 8, 5 + 12, 14, 8 + 18 }, flat(y))
    end)

    it("splits channels into groups", function()
      local x = distill.tensor({ { { { 1, 2 }, { 3, 4 } }, { { 10, 20 }, { 30, 40 } } } }, "float32")
      local w = distill.tensor({ { { { 1 } } }, { { { 2 } } } }, "float32")
      local y = distill.conv2d(x, w, nil, { groups = 2 })
      assert_close({ 1, 2, 3, 4, 20, 40, 60, 80 }, flat(y))
    end)

    it("runs a depthwise kernel", function()
      local x = distill.tensor({ { { { 1, 2 }, { 3, 4 } }, { { 5, 6 }, { 7, 8 } } } }, "float32")
      local w = distill.tensor({ { { { 1, 1 }, { 1, 1 } } }, { { { 1, 0 }, { 0, -1 } } } }, "float32")
      local b = distill.tensor({ 0.5, -0.5 }, "float32")
      local y = distill.conv2d(x, w, b, { groups = 2 })
      assert_close({ 10.5, -3.5 }, flat(y))
    end)

    local configs = {
      { name = "plain 3x3", x = { 2, 3, 7, 6 }, w = { 4, 3, 3, 3 }, o = {}, bias = true },
      { name = "padded strided", x = { 2, 3, 8, 7 }, w = { 5, 3, 3, 3 }, o = { stride = 2, padding = 1 } },
      { name = "dilated", x = { 1, 2, 9, 9 }, w = { 3, 2, 3, 3 }, o = { dilation = 2, padding = 2 }, bias = true },
      { name = "grouped", x = { 2, 4, 6, 6 }, w = { 6, 2, 3, 3 }, o = { groups = 2, padding = 1 }, bias = true },
      { name = "depthwise", x = { 2, 4, 7, 7 }, w = { 4, 1, 3, 3 }, o = { groups = 4, padding = 1, stride = 2 }, bias = true },
      { name = "depthwise multiplier", x = { 1, 3, 5, 5 }, w = { 6, 1, 3, 3 }, o = { groups = 3 } },
      { name = "1x1", x = { 3, 5, 4, 4 }, w = { 7, 5, 1, 1 }, o = {}, bias = true },
      { name = "1x1 strided", x = { 1, 4, 5, 5 }, w = { 3, 4, 1, 1 }, o = { stride = 2 } },
      { name = "rectangular", x = { 2, 2, 6, 9 }, w = { 3, 2, 2, 4 }, o = { stride = { 2, 1 }, padding = { 1, 2 }, dilation = { 1, 2 } } },
    }
    for _, cfg in ipairs(configs) do
      it("matches the reference loops: " .. cfg.name, function()
        local x, w = distill.randn(cfg.x), distill.randn(cfg.w)
        local b = cfg.bias and distill.randn{ cfg.w[1] } or nil
        local y = distill.conv2d(x, w, b, cfg.o)
        local expected, shape = ref_conv2d(x, w, b, cfg.o)
        assert.are.same(shape, y:shape())
        assert_close(expected, flat(y), 1e-4)
      end)
    end

    it("accepts a non-contiguous input", function()
      local base = distill.randn{ 2, 3, 6, 5 }
      local x = base:transpose(3, 4)
      assert.is_false(x:is_contiguous())
      local w = distill.randn{ 4, 3, 3, 3 }
      local y = distill.conv2d(x, w, nil, { padding = 1 })
      assert_close(flat(distill.conv2d(x:contiguous(), w, nil, { padding = 1 })), flat(y), 1e-6)
    end)

    it("is deterministic across calls and batch sizes", function()
      local x, w = distill.randn{ 9, 3, 6, 6 }, distill.randn{ 4, 3, 3, 3 }
      local full = flat(distill.conv2d(x, w, nil, { padding = 1 }))
      local first = flat(distill.conv2d(x:narrow(1, 1, 1), w, nil, { padding = 1 }))
      for i = 1, #first do
        assert.are.equal(full[i], first[i])
      end
    end)
  end)

  describe("errors", function()
    local function err(f)
      local e = h.err(f)
      return e
    end

    it("names a channel mismatch", function()
      local e = err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }, nil, { groups = 2 }) end)
      assert.truthy(e:find("distill.conv2d: ", 1, true), e)
      assert.truthy(e:find("distill.conv2d: input has 3 channels but weight expects 6 (groups=2)", 1, true), e)
      e = err(function() distill.conv2d(distill.zeros{ 1, 6, 5, 5 }, distill.zeros{ 3, 3, 3, 3 }, nil, { groups = 2 }) end)
      assert.truthy(e:find("divisible by groups", 1, true), e)
    end)

    it("rejects wrong ndim, bad options and too-big kernels", function()
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }) end)
        :find("expected a 4-d input", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3 }) end)
        :find("expected a 4-d weight", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }, nil, { stride = 0 }) end)
        :find("stride must be positive", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }, nil, { padding = -1 }) end)
        :find("padding must be non-negative", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 2, 2 }, distill.zeros{ 4, 3, 3, 3 }) end)
        :find("bigger than the padded input", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }, distill.zeros{ 3 }) end)
        :find("bias must be a 1-d tensor of 4 elements", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }, nil, { strides = 2 }) end)
        :find("unknown option 'strides'", 1, true))
      assert.truthy(err(function() distill.conv2d(distill.zeros{ 1, 3, 5, 5 }, distill.zeros{ 4, 3, 3, 3 }, nil, { padding = { 1, 2, 3 } }) end)
        :find("padding must be an integer or a table {h, w}", 1, true))
    end)
  end)

  describe("gradients", function()
    local cases = {
      { name = "random shapes with bias", x = { 2, 3, 5, 4 }, w = { 4, 3, 3, 2 }, o = { padding = 1 }, bias = true },
      { name = "batch 1", x = { 1, 2, 5, 5 }, w = { 3, 2, 3, 3 }, o = {}, bias = true },
      { name = "1x1 kernel", x = { 2, 3, 3, 3 }, w = { 2, 3, 1, 1 }, o = {}, bias = true },
      { name = "strided and padded", x = { 2, 2, 6, 5 }, w = { 3, 2, 3, 3 }, o = { stride = 2, padding = 1 } },
      { name = "dilated", x = { 1, 2, 7, 7 }, w = { 2, 2, 3, 3 }, o = { dilation = 2, padding = 1 } },
      { name = "grouped", x = { 2, 4, 4, 4 }, w = { 4, 2, 3, 3 }, o = { groups = 2, padding = 1 }, bias = true },
      { name = "depthwise", x = { 2, 3, 5, 5 }, w = { 3, 1, 3, 3 }, o = { groups = 3, padding = 1, stride = 2 }, bias = true },
    }
    for _, c in ipairs(cases) do
      it("passes gradcheck: " .. c.name, function()
        local x, w = leaf(c.x), leaf(c.w)
        local inputs = { x, w }
        if c.bias then
          inputs[3] = leaf{ c.w[1] }
        end
        local report = gradcheck.assert_gradcheck(function(a, b, bias)
          return distill.conv2d(a, b, bias, c.o)
        end, inputs, { eps = 1e-2, atol = 1e-2, rtol = 1e-2, max_checks = 40 })
        assert.truthy(report:find("passed", 1, true))
      end)
    end

    it("gives the same input gradient for a non-contiguous input", function()
      local base = distill.randn{ 2, 3, 5, 4 }
      local x = base:transpose(3, 4)       -- a non-contiguous leaf
      local xc = x:contiguous()
      x.requires_grad = true
      xc.requires_grad = true
      local w = distill.randn{ 2, 3, 3, 3 }
      local g = distill.randn{ 2, 2, 4, 5 }
      distill.conv2d(x, w, nil, { padding = 1 }):backward(g)
      distill.conv2d(xc, w, nil, { padding = 1 }):backward(g)
      assert.are.same({ 2, 3, 4, 5 }, x.grad:shape())
      assert_close(flat(xc.grad), flat(x.grad), 1e-6)
    end)

    it("computes only the gradients that are needed", function()
      local x = distill.randn{ 1, 2, 4, 4 }
      local w = leaf{ 3, 2, 3, 3 }
      distill.conv2d(x, w, nil, {}):backward(distill.randn{ 1, 3, 2, 2 })
      assert.is_nil(x.grad)
      assert.are.same({ 3, 2, 3, 3 }, w.grad:shape())
      assert.are.equal("Conv2dBackward", distill.conv2d(x, w).grad_fn)
    end)

    -- stride 2 gathers (im2col) and scatters (col2im) rows in 16-wide
    -- vector pieces: widths below, at and across 16, odd sizes, padding
    for _, c in ipairs {
      { x = { 2, 3, 9, 7 }, w = { 4, 3, 3, 3 }, o = { stride = 2, padding = 1 } },
      { x = { 2, 3, 33, 34 }, w = { 5, 3, 3, 3 }, o = { stride = 2, padding = 1 } },
      { x = { 1, 2, 12, 71 }, w = { 3, 2, 3, 3 }, o = { stride = 2 } },
      { x = { 2, 4, 40, 40 }, w = { 4, 4, 1, 1 }, o = { stride = 2 } },
      { x = { 1, 2, 11, 65 }, w = { 2, 2, 3, 5 }, o = { stride = { 1, 2 }, padding = { 1, 2 } } },
    } do
      it(("stride 2 (input %s, kernel %dx%d): forward and both gradients"):format(
        table.concat(c.x, "x"), c.w[3], c.w[4]), function()
        local x, w = leaf(c.x), leaf(c.w)
        local y = distill.conv2d(x, w, nil, c.o)
        local want = ref_conv2d(x, w, nil, c.o)
        assert_close(want, flat(y), 1e-4)
        -- conv is linear in x and in w: <y, g> = <dx, x> = <dw, w>
        local g = distill.randn(y:shape())
        y:backward(g)
        local yg = (y * g):sum():item()
        local tol = 1e-4 * (1 + math.abs(yg))
        assert.is_true(math.abs((x.grad * x):sum():item() - yg) < tol * 10)
        assert.is_true(math.abs((w.grad * w):sum():item() - yg) < tol * 10)
      end)
    end

    it("accumulates grad_weight over a batch independently of chunking", function()
      -- a batch of 10 is cut into chunks; the result must equal the sum of
      -- per-image gradients up to float rounding
      local x = distill.randn{ 10, 2, 5, 5 }
      local w = leaf{ 3, 2, 3, 3 }
      local g = distill.randn{ 10, 3, 5, 5 }
      distill.conv2d(x, w, nil, { padding = 1 }):backward(g)
      local total = flat(w.grad)
      local sum = {}
      for n = 1, 10 do
        w.grad = nil
        distill.conv2d(x:narrow(1, n, 1), w, nil, { padding = 1 }):backward(g:narrow(1, n, 1):contiguous())
        for i, v in ipairs(flat(w.grad)) do
          sum[i] = (sum[i] or 0) + v
        end
      end
      assert_close(sum, total, 1e-4)
    end)
  end)
end)

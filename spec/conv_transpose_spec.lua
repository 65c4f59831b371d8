local distill = require "distill"
local nn = require "distill.nn"
local distillers = require "distill.distillers"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf = h.flat, h.leaf
local assert_close = h.assert_close_with{ tol = 1e-4, format = "%.6g", relative = true }

local pair = h.pair

-- Naive reference transposed convolution over flat Lua tables (PyTorch
-- semantics): every input pixel scatters its weighted kernel.
local function ref_conv_transpose2d(x, w, b, o)
  o = o or {}
  local N, Cin, H, W = table.unpack(x:shape())
  local _, Cog, kh, kw = table.unpack(w:shape())
  local sh, sw = pair(o.stride or 1)
  local ph, pw = pair(o.padding or 0)
  local oph, opw = pair(o.output_padding or 0)
  local dh, dw = pair(o.dilation or 1)
  local groups = o.groups or 1
  local Cout, Cig = Cog * groups, Cin // groups
  local OH = (H - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
  local OW = (W - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
  local xv, wv, bv = flat(x), flat(w), b and flat(b)
  local out = {}
  for n = 0, N - 1 do
    for oc = 0, Cout - 1 do
      for p = 0, OH * OW - 1 do
        out[((n * Cout + oc) * OH * OW) + p + 1] = bv and bv[oc + 1] or 0
      end
    end
    for ic = 0, Cin - 1 do
      local g = ic // Cig
      for ih = 0, H - 1 do
        for iw = 0, W - 1 do
          local xval = xv[((n * Cin + ic) * H + ih) * W + iw + 1]
          for c = 0, Cog - 1 do
            local oc = g * Cog + c
            for i = 0, kh - 1 do
              local oh = ih * sh - ph + i * dh
              if oh >= 0 and oh < OH then
                for j = 0, kw - 1 do
                  local ow = iw * sw - pw + j * dw
                  if ow >= 0 and ow < OW then
                    local k = ((n * Cout + oc) * OH + oh) * OW + ow + 1
                    out[k] = out[k] + xval * wv[((ic * Cog + c) * kh + i) * kw + j + 1]
                  end
                end
              end
            end
          end
        end
      end
    end
  end
  return out, { N, Cout, OH, OW }
end

local function dot(a, b)
  local s = 0
  for i, v in ipairs(flat(a)) do
    s = s + v * flat(b)[i]
  end
  return s
end

describe("conv_transpose2d", function()
  before_each(function()
    distill.manual_seed(17)
  end)

  describe("forward values", function()
    local x = distill.tensor({ { { { 1, 2 }, { 3, 4 } } } }, "float32")
    local w = distill.tensor({ { { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } } } }, "float32")

    it("scatters a 3x3 kernel with stride 2 (hand-checked)", function()
      local y = distill.conv_transpose2d(x, w, nil, { stride = 2 })
      assert.are.same({ 1, 1, 5, 5 }, y:shape())
      assert_close({
        1, 2, 5, 4, 6,
        4, 5, 14, 10, 12,
        10, 14, 36, 24, 30,
        12, 15, 34, 20, 24,
        21, 24, 55, 32, 36,
      }, flat(y))
    end)

    it("crops padding, extends by output_padding and adds the bias", function()
      local y = distill.conv_transpose2d(x, w, nil, { stride = 2, padding = 1 })
      assert.are.same({ 1, 1, 3, 3 }, y:shape())
      assert_close({ 5, 14, 10, 14, 36, 24, 15, 34, 20 }, flat(y))
      local b = distill.tensor({ 0.5 }, "float32")
      y = distill.conv_transpose2d(x, w, b, { stride = 2, padding = 1, output_padding = 1 })
      assert.are.same({ 1, 1, 4, 4 }, y:shape())
      assert_close({ 5.5, 14.5, 10.5, 12.5, 14.5, 36.5, 24.5, 30.5,
        15.5, 34.5, 20.5, 24.5, 24.5, 55.5, 32.5, 36.5 }, flat(y))
    end)

    it("gives PyTorch's output sizes", function()
      local cases = {
        { x = { 2, 3, 4, 5 }, w = { 3, 2, 3, 3 }, o = {}, shape = { 2, 2, 6, 7 } },
        { x = { 1, 2, 4, 4 }, w = { 2, 5, 4, 4 }, o = { stride = 2, padding = 1 }, shape = { 1, 5, 8, 8 } },
        { x = { 1, 2, 3, 3 }, w = { 2, 3, 3, 3 }, o = { stride = 2, padding = 1, output_padding = 1 },
          shape = { 1, 3, 6, 6 } },
        { x = { 1, 2, 3, 3 }, w = { 2, 3, 3, 3 }, o = { stride = 2, padding = 1, output_padding = 1, dilation = 2 },
          shape = { 1, 3, 8, 8 } },
        -- output_padding below dilation (not stride) is allowed, as in PyTorch
        { x = { 1, 1, 3, 3 }, w = { 1, 1, 2, 2 }, o = { dilation = 3, output_padding = 2 }, shape = { 1, 1, 8, 8 } },
        { x = { 2, 4, 3, 3 }, w = { 4, 3, 2, 2 }, o = { groups = 2 }, shape = { 2, 6, 4, 4 } },
        { x = { 1, 2, 3, 4 }, w = { 2, 1, 2, 3 }, o = { stride = { 2, 1 }, padding = { 0, 1 }, output_padding = { 1, 0 } },
          shape = { 1, 1, 7, 4 } },
      }
      for _, c in ipairs(cases) do
        local y = distill.conv_transpose2d(distill.randn(c.x), distill.randn(c.w), nil, c.o)
        assert.are.same(c.shape, y:shape())
      end
    end)

    local configs = {
      { name = "plain 3x3", x = { 2, 3, 4, 5 }, w = { 3, 4, 3, 3 }, o = {}, bias = true },
      { name = "strided padded", x = { 2, 3, 4, 3 }, w = { 3, 2, 4, 4 }, o = { stride = 2, padding = 1 }, bias = true },
      { name = "output_padding", x = { 1, 2, 3, 3 }, w = { 2, 3, 3, 3 }, o = { stride = 2, padding = 1, output_padding = 1 } },
      { name = "dilated", x = { 1, 2, 4, 4 }, w = { 2, 2, 3, 3 }, o = { dilation = 2, padding = 1 }, bias = true },
      { name = "output_padding below dilation", x = { 1, 2, 3, 3 }, w = { 2, 2, 2, 2 }, o = { dilation = 3, output_padding = 2 } },
      { name = "grouped", x = { 2, 4, 3, 3 }, w = { 4, 3, 3, 3 }, o = { groups = 2, stride = 2 }, bias = true },
      { name = "depthwise-like", x = { 2, 3, 4, 4 }, w = { 3, 1, 3, 3 }, o = { groups = 3, padding = 1 }, bias = true },
      { name = "1x1", x = { 3, 5, 4, 4 }, w = { 5, 7, 1, 1 }, o = {}, bias = true },
      { name = "1x1 strided", x = { 1, 4, 3, 3 }, w = { 4, 2, 1, 1 }, o = { stride = 2 } },
      { name = "rectangular", x = { 2, 2, 3, 5 }, w = { 2, 3, 2, 4 }, o = { stride = { 2, 1 }, padding = { 1, 2 }, dilation = { 1, 2 } } },
    }
    for _, cfg in ipairs(configs) do
      it("matches the reference loops: " .. cfg.name, function()
        local x1, w1 = distill.randn(cfg.x), distill.randn(cfg.w)
        local b = cfg.bias and distill.randn{ cfg.w[2] * (cfg.o.groups or 1) } or nil
        local y = distill.conv_transpose2d(x1, w1, b, cfg.o)
        local expected, shape = ref_conv_transpose2d(x1, w1, b, cfg.o)
        assert.are.same(shape, y:shape())
        assert_close(expected, flat(y), 1e-4)
      end)
    end

    it("is the adjoint of conv2d: <conv2d(a, w), b> == <a, conv_transpose2d(b, w)>", function()
      local cases = {
        { a = { 2, 3, 7, 6 }, w = { 4, 3, 3, 3 }, o = { padding = 1 } },
        { a = { 2, 3, 8, 8 }, w = { 5, 3, 4, 4 }, o = { stride = 2, padding = 1 } },
        { a = { 1, 4, 9, 7 }, w = { 6, 2, 3, 3 }, o = { stride = 2, groups = 2, dilation = { 2, 1 } } },
      }
      for _, c in ipairs(cases) do
        local a, w1 = distill.randn(c.a), distill.randn(c.w)
        local y = distill.conv2d(a, w1, nil, c.o)
        local b = distill.randn(y:shape())
        local sh, sw = pair(c.o.stride or 1)
        local ph, pw = pair(c.o.padding or 0)
        local dh, dw = pair(c.o.dilation or 1)
        -- output_padding recovers the rows a strided conv2d skipped
        local oh = c.a[3] - ((y:size(3) - 1) * sh - 2 * ph + dh * (c.w[3] - 1) + 1)
        local ow = c.a[4] - ((y:size(4) - 1) * sw - 2 * pw + dw * (c.w[4] - 1) + 1)
        local o = { stride = c.o.stride, padding = c.o.padding, dilation = c.o.dilation,
          groups = c.o.groups, output_padding = { oh, ow } }
        local t = distill.conv_transpose2d(b, w1, nil, o)
        assert.are.same(c.a, t:shape())
        local lhs, rhs = dot(y, b), dot(a, t)
        assert.truthy(math.abs(lhs - rhs) <= 1e-3 * (1 + math.abs(lhs)), lhs .. " vs " .. rhs)
      end
    end)

    it("accepts a non-contiguous input", function()
      local x1 = distill.randn{ 2, 3, 5, 4 }:transpose(3, 4)
      assert.is_false(x1:is_contiguous())
      local w1 = distill.randn{ 3, 2, 3, 3 }
      assert_close(flat(distill.conv_transpose2d(x1:contiguous(), w1, nil, { stride = 2 })),
        flat(distill.conv_transpose2d(x1, w1, nil, { stride = 2 })), 1e-6)
    end)
  end)

  describe("errors", function()
    local err = h.err

    it("rejects mismatched channels, bad options and bad shapes", function()
      local x = distill.zeros{ 1, 3, 4, 4 }
      local e = err(function() distill.conv_transpose2d(x, distill.zeros{ 4, 2, 3, 3 }) end)
      assert.truthy(e:find("distill.conv_transpose2d: input has 3 channels but weight expects 4", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3, 3 }, nil, { groups = 2 }) end)
      assert.truthy(e:find("divisible by groups", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3, 3 }, nil, { stride = 2, output_padding = 2 }) end)
      assert.truthy(e:find("output_padding must be smaller than either stride or dilation", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3, 3 }, nil, { output_padding = -1 }) end)
      assert.truthy(e:find("output_padding must be non-negative", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3, 3 }, distill.zeros{ 3 }) end)
      assert.truthy(e:find("bias must be a 1-d tensor of 2 elements", 1, true), e)
      e = err(function() distill.conv_transpose2d(distill.zeros{ 3, 4, 4 }, distill.zeros{ 3, 2, 3, 3 }) end)
      assert.truthy(e:find("expected a 4-d input", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3 }) end)
      assert.truthy(e:find("expected a 4-d weight", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3, 3 }, nil, { stride = 0 }) end)
      assert.truthy(e:find("stride must be positive", 1, true), e)
      e = err(function() distill.conv_transpose2d(x, distill.zeros{ 3, 2, 3, 3 }, nil, { outputpadding = 1 }) end)
      assert.truthy(e:find("unknown option 'outputpadding'", 1, true), e)
      e = err(function() distill.conv_transpose2d(distill.zeros{ 1, 1, 1, 1 }, distill.zeros{ 1, 1, 1, 1 }, nil, { padding = 1 }) end)
      assert.truthy(e:find("non-positive output size", 1, true), e)
      e = err(function() distill.conv_transpose2d(x:long(), distill.zeros{ 3, 2, 3, 3 }) end)
      assert.truthy(e:find("input must be float32", 1, true), e)
    end)
  end)

  describe("gradients", function()
    local cases = {
      { name = "with bias", x = { 2, 3, 4, 3 }, w = { 3, 2, 3, 2 }, o = { padding = 1 }, bias = true },
      { name = "stride 2", x = { 2, 2, 3, 3 }, w = { 2, 3, 4, 4 }, o = { stride = 2, padding = 1 }, bias = true },
      { name = "output_padding and dilation", x = { 1, 2, 3, 3 }, w = { 2, 2, 3, 3 }, o = { stride = 2, output_padding = 1, dilation = 2 } },
      { name = "grouped", x = { 2, 4, 3, 3 }, w = { 4, 2, 3, 3 }, o = { groups = 2, stride = 2 }, bias = true },
      { name = "1x1 kernel", x = { 2, 3, 3, 3 }, w = { 3, 2, 1, 1 }, o = {}, bias = true },
    }
    for _, c in ipairs(cases) do
      it("passes gradcheck: " .. c.name, function()
        local inputs = { leaf(c.x), leaf(c.w) }
        if c.bias then
          inputs[3] = leaf{ c.w[2] * (c.o.groups or 1) }
        end
        local report = gradcheck.assert_gradcheck(function(a, b, bias)
          return distill.conv_transpose2d(a, b, bias, c.o)
        end, inputs, { eps = 1e-2, atol = 1e-2, rtol = 1e-2, max_checks = 40 })
        assert.truthy(report:find("passed", 1, true))
      end)
    end

    it("computes only the gradients that are needed", function()
      local x = distill.randn{ 1, 2, 3, 3 }
      local w = leaf{ 2, 3, 3, 3 }
      local y = distill.conv_transpose2d(x, w)
      assert.are.equal("ConvTranspose2dBackward", y.grad_fn)
      y:backward(distill.randn{ 1, 3, 5, 5 })
      assert.is_nil(x.grad)
      assert.are.same({ 2, 3, 3, 3 }, w.grad:shape())
    end)
  end)

  describe("nn.ConvTranspose2d", function()
    it("has PyTorch's parameter shapes, init bound and output size", function()
      local m = nn.ConvTranspose2d(3, 8, 3, { stride = 2, padding = 1, output_padding = 1 })
      assert.are.same({ 3, 8, 3, 3 }, m.weight:shape())
      assert.are.same({ 8 }, m.bias:shape())
      -- fan_in = weight:size(2) * kh * kw = 8 * 9, as PyTorch computes it
      local bound = 1 / math.sqrt(72)
      local biggest = 0
      for _, v in ipairs(flat(m.weight)) do
        biggest = math.max(biggest, math.abs(v))
      end
      assert.truthy(biggest <= bound + 1e-6 and biggest > 0.85 * bound, tostring(biggest))
      for _, v in ipairs(flat(m.bias)) do
        assert.truthy(math.abs(v) <= bound + 1e-6)
      end
      assert.are.same({ 2, 8, 10, 10 }, m(distill.randn{ 2, 3, 5, 5 }):shape())
      local g = nn.ConvTranspose2d(4, 6, { 2, 3 }, { groups = 2, bias = false })
      assert.are.same({ 4, 3, 2, 3 }, g.weight:shape())
      assert.is_nil(g.bias)
      assert.are.same({ 1, 6, 4, 5 }, g(distill.randn{ 1, 4, 3, 3 }):shape())
      assert.are.equal("ConvTranspose2d(4, 6, kernel_size=(2, 3), stride=(1, 1), groups=2, bias=false)",
        tostring(g))
      assert.has_error(function() nn.ConvTranspose2d(3, 4, 3, { groups = 2 }) end)
      assert.has_error(function() nn.ConvTranspose2d(3, 4, 3, { strides = 2 }) end)
    end)

    it("matches F.conv_transpose2d with its own parameters", function()
      local m = nn.ConvTranspose2d(2, 3, 4, { stride = 2, padding = 1 })
      local x = distill.randn{ 1, 2, 3, 3 }
      assert_close(flat(distill.conv_transpose2d(x, m.weight, m.bias, { stride = 2, padding = 1 })),
        flat(m(x)), 1e-6)
    end)
  end)

  describe("FitNet with a half-resolution student hint", function()
    it("builds a stride-2 transposed-conv regressor that trains", function()
      local fs, ft = distill.randn{ 2, 4, 4, 4 }, distill.randn{ 2, 6, 8, 8 }
      local probe = { student = { feats = { fs, fs, fs } }, teacher = { feats = { ft, ft, ft } } }
      local d = distillers.fitnet{ probe = probe, hint_layer = 3 }
      local conv = d.regressor[1]
      assert.are.equal("ConvTranspose2d", conv.__name)
      assert.are.same({ 4, 6, 4, 4 }, conv.weight:shape())
      assert.are.same({ 2, 2 }, { pair(conv.stride) })
      assert.are.same({ 1, 1 }, { pair(conv.padding) })
      local s = distill.randn{ 2, 4, 4, 4 }
      s.requires_grad = true
      local loss = d:loss({ feats = { s, s, s } }, { feats = { ft, ft, ft } })
      assert.are.equal(0, loss:dim())
      loss:backward()
      assert.are.same({ 4, 6, 4, 4 }, conv.weight.grad:shape())
      assert.are.same({ 6 }, conv.bias.grad:shape())
      local norm = 0
      for _, v in ipairs(flat(conv.weight.grad)) do
        norm = norm + v * v
      end
      assert.truthy(norm > 0)
      assert.are.same({ 2, 4, 4, 4 }, s.grad:shape())
      -- other smaller hints are still refused
      assert.has_error(function()
        distillers.fitnet{ probe = { student = { feats = { fs, fs, distill.randn{ 2, 4, 3, 3 } } },
          teacher = probe.teacher } }
      end)
    end)
  end)
end)

-- Winograd F(4x4, 3x3) convolution (engine/winograd.c): the algorithm that
-- distill.conv_algorithm selects for 3x3 stride-1 layers. Its float32
-- error is bounded here against a double-precision direct sum, its
-- gradients against finite differences and against the exact-order GEMM
-- path, and its results against the thread count.
local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local flat, leaf = h.flat, h.leaf

-- The documented bound: max |error| <= WINO_TOL * max |exact result|. The
-- measured error is ~3e-6 (docs/nn.md); the direct float32 sum's ~4e-7.
local WINO_TOL = 2e-5

-- max |a - b| / max |b| over Lua lists
local function rel_error(a, b)
  local diff, scale = 0, 0
  for i = 1, #b do
    diff = math.max(diff, math.abs(a[i] - b[i]))
    scale = math.max(scale, math.abs(b[i]))
  end
  return diff / math.max(scale, 1e-30)
end

-- runs fn with the given algorithm, restoring the previous one
local function with_algo(algo, fn)
  local before = distill.conv_algorithm(algo)
  local ok, a, b, c = pcall(fn)
  distill.conv_algorithm(before)
  if not ok then
    error(a, 0)
  end
  return a, b, c
end

-- y, dx, dw, db of a conv2d under `algo` for fixed x, w, b, dy
local function run(algo, x, w, b, dy, o)
  return with_algo(algo, function()
    local xx, ww, bb = h.leaf_clone(x), h.leaf_clone(w), b and h.leaf_clone(b)
    local y = distill.conv2d(xx, ww, bb, o)
    y:backward(dy)
    return { y = y:detach(), dx = xx.grad, dw = ww.grad, db = bb and bb.grad }
  end)
end

describe("winograd convolution", function()
  before_each(function()
    distill.manual_seed(5)
  end)

  describe("distill.conv_algorithm", function()
    it("reports and sets the algorithm, and restores it", function()
      local before = distill.conv_algorithm()
      assert.truthy(before == "auto" or before == "gemm" or before == "winograd")
      assert.are.equal(before, distill.conv_algorithm("gemm"))
      assert.are.equal("gemm", distill.conv_algorithm("winograd"))
      assert.are.equal("winograd", distill.conv_algorithm(before))
      assert.are.equal(before, distill.conv_algorithm())
    end)

    it("rejects unknown names", function()
      local e = h.err(function() distill.conv_algorithm("fft") end)
      assert.truthy(e:find("distill.conv_algorithm: expected \"auto\", \"gemm\" or \"winograd\", got fft", 1, true), e)
      e = h.err(function() distill.conv_algorithm(3) end)
      assert.truthy(e:find("got number", 1, true), e)
    end)

    it("auto picks Winograd for 16+ channels and GEMM below", function()
      for _, c in ipairs{ { C = 16, O = 32, wino = true }, { C = 8, O = 32, wino = false },
                          { C = 32, O = 8, wino = false } } do
        local x, w = distill.randn{ 2, c.C, 8, 8 }, distill.randn{ c.O, c.C, 3, 3 }
        local auto = with_algo("auto", function() return distill.conv2d(x, w, nil, { padding = 1 }) end)
        local wino = with_algo("winograd", function() return distill.conv2d(x, w, nil, { padding = 1 }) end)
        local gemm = with_algo("gemm", function() return distill.conv2d(x, w, nil, { padding = 1 }) end)
        assert.are.same(flat(c.wino and wino or gemm), flat(auto))
        assert.are_not.same(flat(wino), flat(gemm))
      end
    end)

    it("leaves strided, dilated, grouped and non-3x3 convolutions on GEMM", function()
      local x = distill.randn{ 2, 16, 9, 9 }
      for _, c in ipairs{ { w = { 16, 16, 3, 3 }, o = { stride = 2, padding = 1 } },
                          { w = { 16, 16, 3, 3 }, o = { dilation = 2, padding = 2 } },
                          { w = { 16, 8, 3, 3 }, o = { groups = 2, padding = 1 } },
                          { w = { 16, 16, 5, 5 }, o = { padding = 2 } },
                          { w = { 16, 16, 3, 3 }, o = { padding = 3 } } } do
        local w = distill.randn(c.w)
        local wino = with_algo("winograd", function() return distill.conv2d(x, w, nil, c.o) end)
        local gemm = with_algo("gemm", function() return distill.conv2d(x, w, nil, c.o) end)
        assert.are.same(flat(gemm), flat(wino))
      end
    end)
  end)

  describe("forward against a double-precision direct sum", function()
    local cases = {
      { x = { 2, 16, 8, 8 }, O = 16, p = 1, name = "16 -> 16 channels, 8 x 8" },
      { x = { 3, 32, 12, 12 }, O = 64, p = 1, name = "32 -> 64, several tiles per image" },
      { x = { 2, 20, 9, 13 }, O = 24, p = 1, name = "channels and sizes off the 16 / 4 grid" },
      { x = { 1, 16, 5, 7 }, O = 48, p = 0, name = "no padding, 48 outputs (narrow panels)" },
      { x = { 2, 17, 6, 6 }, O = 16, p = 2, name = "padding 2" },
      { x = { 5, 3, 7, 6 }, O = 5, p = 1, name = "few channels, forced" },
      { x = { 1, 16, 3, 3 }, O = 16, p = 0, name = "a 1 x 1 output" },
    }
    for _, c in ipairs(cases) do
      it(c.name, function()
        local x = distill.randn(c.x)
        local w = distill.randn{ c.O, c.x[2], 3, 3 } * (1 / math.sqrt(9 * c.x[2]))
        local b = distill.randn{ c.O }
        local y = with_algo("winograd", function() return distill.conv2d(x, w, b, { padding = c.p }) end)
        local want, shape = h.ref_conv2d(x, w, b, { padding = c.p })
        assert.are.same(shape, y:shape())
        local err = rel_error(flat(y), want)
        assert.is_true(err <= WINO_TOL, ("relative error %.3g > %.3g"):format(err, WINO_TOL))
      end)
    end

    it("keeps non-negative (ReLU) inputs within the bound at 256 channels", function()
      local x = distill.randn{ 1, 256, 8, 8 }:relu()
      local w = distill.randn{ 4, 256, 3, 3 } * (1 / 48)
      local y = with_algo("winograd", function() return distill.conv2d(x, w, nil, { padding = 1 }) end)
      local err = rel_error(flat(y), (h.ref_conv2d(x, w, nil, { padding = 1 })))
      assert.is_true(err <= WINO_TOL, ("relative error %.3g > %.3g"):format(err, WINO_TOL))
    end)
  end)

  describe("gradients", function()
    it("pass gradcheck", function()
      with_algo("winograd", function()
        local report = gradcheck.assert_gradcheck(function(a, b, bias)
          return distill.conv2d(a, b, bias, { padding = 1 })
        end, { leaf{ 2, 3, 6, 5 }, leaf{ 4, 3, 3, 3 }, leaf{ 4 } },
          { eps = 1e-2, atol = 1e-2, rtol = 1e-2, max_checks = 60 })
        assert.truthy(report:find("passed", 1, true))
      end)
    end)

    local cases = {
      { x = { 3, 32, 16, 16 }, O = 64, p = 1, name = "32 -> 64, 16 x 16" },
      { x = { 2, 24, 7, 10 }, O = 40, p = 1, name = "off-grid channels and sizes" },
      { x = { 2, 16, 6, 6 }, O = 16, p = 0, name = "padding 0" },
      { x = { 2, 16, 5, 5 }, O = 32, p = 2, name = "padding 2" },
      { x = { 2, 272, 4, 4 }, O = 48, p = 1, name = "272 inputs (two passes of the products)" },
      { x = { 9, 16, 32, 32 }, O = 16, p = 1, name = "a batch in several weight-gradient chunks" },
      { x = { 3, 256, 4, 4 }, O = 256, p = 1, name = "256 -> 256 (weight-gradient sums shared by the threads)" },
    }
    for _, c in ipairs(cases) do
      it("match the GEMM path: " .. c.name, function()
        local x = distill.randn(c.x)
        local w = distill.randn{ c.O, c.x[2], 3, 3 } * (1 / math.sqrt(9 * c.x[2]))
        local b = distill.randn{ c.O }
        local OH, OW = c.x[3] + 2 * c.p - 2, c.x[4] + 2 * c.p - 2
        local dy = distill.randn{ c.x[1], c.O, OH, OW }
        local ref = run("gemm", x, w, b, dy, { padding = c.p })
        local got = run("winograd", x, w, b, dy, { padding = c.p })
        for _, k in ipairs{ "y", "dx", "dw", "db" } do
          local err = rel_error(flat(got[k]), flat(ref[k]))
          assert.is_true(err <= WINO_TOL, ("%s: relative error %.3g > %.3g"):format(k, err, WINO_TOL))
        end
      end)
    end

    it("give conv_transpose2d (stride 1, 3 x 3) the same results as the GEMM path", function()
      local x = distill.randn{ 2, 32, 8, 8 }
      local w = distill.randn{ 32, 16, 3, 3 } * 0.06
      local dy = distill.randn{ 2, 16, 8, 8 }
      local res = {}
      for _, algo in ipairs{ "gemm", "winograd" } do
        res[algo] = with_algo(algo, function()
          local xx, ww = h.leaf_clone(x), h.leaf_clone(w)
          local y = distill.conv_transpose2d(xx, ww, nil, { padding = 1 })
          y:backward(dy)
          return { y = y:detach(), dx = xx.grad, dw = ww.grad }
        end)
      end
      for _, k in ipairs{ "y", "dx", "dw" } do
        local err = rel_error(flat(res.winograd[k]), flat(res.gemm[k]))
        assert.is_true(err <= WINO_TOL, ("%s: relative error %.3g"):format(k, err))
      end
    end)

    it("computes only the gradients that are needed", function()
      with_algo("winograd", function()
        local x = distill.randn{ 2, 16, 8, 8 }
        local w = leaf{ 16, 16, 3, 3 }
        distill.conv2d(x, w, nil, { padding = 1 }):backward(distill.randn{ 2, 16, 8, 8 })
        assert.is_nil(x.grad)
        assert.are.same({ 16, 16, 3, 3 }, w.grad:shape())
      end)
    end)
  end)

  h.describe_thread_determinism("gives the same bits with 1, 2 and 3 threads", { 1, 2, 3 }, [[
      local d = require "distill"
      d.conv_algorithm("winograd")
      d.manual_seed(3)
      local out = {}
      for _, s in ipairs{ { 7, 32, 16, 16, 48 }, { 64, 64, 8, 8, 64 }, { 2, 16, 32, 32, 16 },
                          { 5, 256, 4, 4, 256 } } do
        local x = d.randn{ s[1], s[2], s[3], s[4] }
        x.requires_grad = true
        local w = d.randn{ s[5], s[2], 3, 3 }
        w.requires_grad = true
        local y = d.conv2d(x, w, nil, { padding = 1 })
        y:backward(d.randn(y:shape()))
        for _, t in ipairs{ y, x.grad, w.grad } do
          out[#out + 1] = fingerprint(t)
        end
      end
      print(table.concat(out, " "))
    ]])
end)

-- The engine's internal GEMM (engine/gemm.c) through distill.gemm_f32,
-- against a double-precision reference computed here in Lua, with the
-- tiles of every kernel set the CPU runs (distill.set_isa). Shapes cross
-- the tiles' edges (A panels of 4, 6 and 8 rows, B panels of 16 and 32
-- columns, 256-deep K blocks, 1024-column N blocks, M blocks of about 256
-- rows) and both B paths (read in place for M <= 64 without transpose,
-- packed otherwise).
local distill = require "distill"
local h = require "support.helpers"

local NaN = 0 / 0

-- A Lua list of n values in [-1, 1) from a fixed-seed generator.
local function randoms(n, seed)
  math.randomseed(seed)
  local t = {}
  for i = 1, n do t[i] = math.random() * 2 - 1 end
  return t
end

-- A rows x cols matrix stored with leading dimension ld in a flat list of
-- `size` entries; entries outside the matrix are `pad`.
local function matrix(rows, cols, ld, seed, pad)
  local size = rows == 0 and 0 or (rows - 1) * ld + cols
  local vals, out = randoms(rows * cols, seed), {}
  for i = 1, math.max(size, 1) do out[i] = pad end
  for r = 0, rows - 1 do
    for c = 0, cols - 1 do out[r * ld + c + 1] = vals[r * cols + c + 1] end
  end
  return out
end

local function tensor(list) return distill.tensor(list, "float32") end

-- op(X)[i][k] from a flat list (0-based i, k).
local function at(list, trans, ld, i, k)
  if trans then return list[k * ld + i + 1] end
  return list[i * ld + k + 1]
end

-- Runs gemm_f32 on case c and checks every element of C against the
-- double reference, and that C's padding is untouched.
local function check(c)
  local M, N, K = c.M, c.N, c.K
  local ta, tb = c.trans_a or false, c.trans_b or false
  local a_rows, a_cols = ta and K or M, ta and M or K
  local b_rows, b_cols = tb and N or K, tb and K or N
  local lda = c.lda or math.max(a_cols, 1)
  local ldb = c.ldb or math.max(b_cols, 1)
  local ldc = c.ldc or math.max(N, 1)
  local alpha, beta = c.alpha or 1, c.beta or 0
  local A = matrix(a_rows, a_cols, lda, 11, NaN)
  local B = matrix(b_rows, b_cols, ldb, 23, NaN)
  local C0 = matrix(M, N, ldc, 37, 7.5)
  if c.c_nan then
    for r = 0, M - 1 do
      for j = 0, N - 1 do C0[r * ldc + j + 1] = NaN end
    end
  end
  local Ct = tensor(C0)
  local ret = distill.gemm_f32{ A = tensor(A), B = tensor(B), C = Ct, M = M, N = N, K = K,
    lda = lda, ldb = ldb, ldc = ldc, trans_a = ta, trans_b = tb, alpha = alpha, beta = beta }
  assert.are.equal(Ct, ret)
  local got = Ct:totable()
  local eps = 2 ^ -23
  for i = 0, M - 1 do
    for j = 0, N - 1 do
      local s, bound = 0.0, 0.0
      if alpha ~= 0 then
        for k = 0, K - 1 do
          local p = at(A, ta, lda, i, k) * at(B, tb, ldb, k, j)
          s, bound = s + p, bound + math.abs(p)
        end
      end
      local old = C0[i * ldc + j + 1]
      local want = alpha * s
      if beta ~= 0 then want = want + beta * old end
      local cpart = beta ~= 0 and 2 * math.abs(beta * old) or 0
      local tol = 4 * eps * ((K + 2) * math.abs(alpha) * bound + cpart) + 1e-30
      local v = got[i * ldc + j + 1]
      if not (math.abs(v - want) <= tol) then
        error(("C[%d][%d] = %.9g, want %.9g (tol %.3g) in %dx%dx%d ta=%s tb=%s"):format(
          i, j, v, want, tol, M, N, K, tostring(ta), tostring(tb)))
      end
    end
    for j = N, ldc - 1 do   -- padding between rows stays as it was
      local idx = i * ldc + j + 1
      if idx <= #got then assert.are.equal(C0[idx], got[idx]) end
    end
  end
  return got
end

local shapes = {
  { 1, 1, 1 }, { 1, 33, 5 }, { 7, 1, 9 }, { 8, 32, 16 }, { 9, 33, 17 }, { 6, 16, 7 },
  { 5, 15, 3 }, { 12, 48, 20 }, { 13, 47, 21 }, { 19, 17, 11 },
  { 17, 31, 255 }, { 16, 64, 256 }, { 13, 65, 257 }, { 70, 40, 300 }, { 3, 100, 600 },
}

for _, isa in ipairs(h.isas()) do
describe("distill.gemm_f32 (" .. isa .. " kernels)", function()
  local before
  setup(function() before = distill.set_isa(isa) end)
  teardown(function() distill.set_isa(before) end)

  for _, trans in ipairs{ { false, false }, { true, false }, { false, true }, { true, true } } do
    it(("matches a double reference, trans_a=%s trans_b=%s"):format(tostring(trans[1]),
      tostring(trans[2])), function()
      for _, s in ipairs(shapes) do
        check{ M = s[1], N = s[2], K = s[3], trans_a = trans[1], trans_b = trans[2] }
      end
    end)
  end

  it("crosses the N and M cache blocks", function()
    check{ M = 3, N = 1030, K = 5 }
    check{ M = 260, N = 33, K = 20, trans_b = true }
    check{ M = 260, N = 33, K = 20, trans_a = true }
  end)

  it("honours leading dimensions larger than the matrix", function()
    for _, trans in ipairs{ { false, false }, { true, false }, { false, true }, { true, true } } do
      check{ M = 9, N = 35, K = 19, trans_a = trans[1], trans_b = trans[2],
             lda = 41, ldb = 53, ldc = 47 }
      check{ M = 66, N = 64, K = 7, trans_a = trans[1], trans_b = trans[2],
             lda = 70, ldb = 99, ldc = 65 }
    end
  end)

  it("applies alpha and beta", function()
    check{ M = 10, N = 40, K = 30, alpha = 0.5, beta = -1.5 }
    check{ M = 70, N = 33, K = 300, alpha = -2, beta = 1, trans_b = true }
    check{ M = 10, N = 40, K = 30, alpha = 0, beta = 2 }
  end)

  it("never reads C when beta is 0", function()
    for _, s in ipairs(shapes) do
      check{ M = s[1], N = s[2], K = s[3], beta = 0, c_nan = true }
      check{ M = s[1], N = s[2], K = s[3], beta = 0, c_nan = true, trans_a = true,
             trans_b = true }
    end
  end)

  it("scales C by beta when K is 0", function()
    check{ M = 3, N = 4, K = 0, beta = 3 }
    local got = check{ M = 3, N = 4, K = 0, beta = 0, c_nan = true }
    for i = 1, 12 do assert.are.equal(0, got[i]) end
  end)

  it("does nothing when M or N is 0", function()
    check{ M = 0, N = 5, K = 3 }
    check{ M = 4, N = 0, K = 3, ldc = 1 }
  end)

  it("is deterministic", function()
    local a, b = tensor(randoms(70 * 300, 1)), tensor(randoms(300 * 90, 2))
    local function run()
      local c = distill.zeros{ 70 * 90 }
      distill.gemm_f32{ A = a, B = b, C = c, M = 70, N = 90, K = 300 }
      return c:totable()
    end
    local first, second = run(), run()
    for i = 1, #first do assert.are.equal(first[i], second[i]) end
  end)

  it("rejects bad arguments", function()
    local t = distill.zeros{ 100 }
    local function call(o)
      return function()
        local args = { A = t, B = t, C = t, M = 3, N = 3, K = 3 }
        for k, v in pairs(o) do args[k] = v end
        distill.gemm_f32(args)
      end
    end
    assert.has_error(call{ lda = 2 })
    assert.has_error(call{ ldb = 1, trans_b = true, K = 4 })
    assert.has_error(call{ ldc = 2 })
    assert.has_error(call{ M = 40 })                 -- A (100 floats) too small for 40 x 3
    assert.has_error(call{ M = -1 })
    assert.has_error(call{ C = distill.zeros({ 100 }, "int64") })
    assert.has_error(call{ bogus = 1 })
  end)
end)
end

-- conv2d's weight gradient through dt_gemm (engine/conv_gemm.c): 20 images in 8
-- uneven chunks whose partials are summed in order, against a double
-- reference.
describe("conv2d weight gradient over image chunks", function()
  local function ref_dw(x, dy, O, C, k, stride, pad)
    local N, _, H, W = table.unpack(x:shape())
    local _, _, OH, OW = table.unpack(dy:shape())
    local xv, gv = x:contiguous():view{ -1 }:totable(), dy:contiguous():view{ -1 }:totable()
    local dw = {}
    for o = 0, O - 1 do
      for c = 0, C - 1 do
        for i = 0, k - 1 do
          for j = 0, k - 1 do
            local s = 0.0
            for n = 0, N - 1 do
              for oh = 0, OH - 1 do
                local ih = oh * stride - pad + i
                if ih >= 0 and ih < H then
                  for ow = 0, OW - 1 do
                    local iw = ow * stride - pad + j
                    if iw >= 0 and iw < W then
                      s = s + xv[((n * C + c) * H + ih) * W + iw + 1]
                        * gv[((n * O + o) * OH + oh) * OW + ow + 1]
                    end
                  end
                end
              end
            end
            dw[#dw + 1] = s
          end
        end
      end
    end
    return dw
  end

  for _, case in ipairs{ { k = 3, stride = 1, pad = 1 }, { k = 3, stride = 2, pad = 1 },
                         { k = 1, stride = 1, pad = 0 } } do
    it(("matches a double reference (%dx%d, stride %d)"):format(case.k, case.k, case.stride),
      function()
        distill.manual_seed(5)
        local N, C, O, H = 20, 3, 4, 5
        local x = distill.randn{ N, C, H, H }
        local w = distill.randn{ O, C, case.k, case.k }
        w.requires_grad = true
        local y = distill.conv2d(x, w, nil, { stride = case.stride, padding = case.pad })
        local dy = distill.randn(y:shape())
        y:backward(dy)
        local got = w.grad:contiguous():view{ -1 }:totable()
        local want = ref_dw(x, dy, O, C, case.k, case.stride, case.pad)
        assert.are.equal(#want, #got)
        for e = 1, #want do
          assert(math.abs(got[e] - want[e]) <= 1e-4 * (1 + math.abs(want[e])),
            ("dW[%d] = %.7g, want %.7g"):format(e, got[e], want[e]))
        end
      end)
  end
end)

-- linalg: mm, bmm, matmul, dot, mv, outer, wallclock. Values computed by hand.
local distill = require "distill"
local h = require "support.helpers"

local f32, fails = h.f32, h.fails

-- a (2x3) and b (3x2); a @ b = {{58, 64}, {139, 154}}
local A = { { 1, 2, 3 }, { 4, 5, 6 } }
local B = { { 7, 8 }, { 9, 10 }, { 11, 12 } }

describe("linalg", function()
  describe("mm", function()
    it("multiplies contiguous matrices", function()
      local r = distill.mm(f32(A), f32(B))
      assert.are.same({ 2, 2 }, r:shape())
      assert.are.equal("float32", r:dtype())
      assert.are.same({ { 58, 64 }, { 139, 154 } }, r:totable())
    end)

    it("is also a method", function()
      assert.are.same({ { 58, 64 }, { 139, 154 } }, f32(A):mm(f32(B)):totable())
    end)

    it("reads transposed inputs (stride (1, n)) correctly", function()
      local a = f32(A)
      assert.are.same({ { 14, 32 }, { 32, 77 } }, distill.mm(a, a:t()):totable())
      assert.are.same({ { 17, 22, 27 }, { 22, 29, 36 }, { 27, 36, 45 } },
        distill.mm(a:t(), a):totable())
      -- (b^T a^T) = (a b)^T
      assert.are.same({ { 58, 139 }, { 64, 154 } }, distill.mm(f32(B):t(), a:t()):totable())
    end)

    it("reads row-strided views (narrow) in place", function()
      local m = distill.arange(12, "float32"):view { 3, 4 }
      local cols = m:narrow(2, 2, 2)          -- {{1,2},{5,6},{9,10}}, stride {4, 1}
      assert.is_false(cols:is_contiguous())
      assert.are.same({ { 1 * 1 + 5 * 5 + 9 * 9, 1 * 2 + 5 * 6 + 9 * 10 },
                        { 2 * 1 + 6 * 5 + 10 * 9, 2 * 2 + 6 * 6 + 10 * 10 } },
        distill.mm(cols:t(), cols):totable())
    end)

    it("copies layouts BLAS cannot read (no unit stride, broadcast)", function()
      local x = distill.arange(24, "float32"):view { 2, 3, 4 }
      local s = x:select(3, 1)                -- {{0,4,8},{12,16,20}}, stride {12, 4}
      assert.are.same({ { 12 }, { 48 } }, distill.mm(s, distill.ones { 3, 1 }):totable())
      local e = f32 { { 1 }, { 2 } }:expand { 2, 3 } -- stride {1, 0}
      assert.are.same({ { 3 }, { 6 } }, distill.mm(e, distill.ones { 3, 1 }):totable())
      assert.are.same({ { 3, 6 } }, distill.mm(distill.ones { 1, 3 }, e:t()):totable())
    end)

    it("gives zeros for k = 0 and empty results for n = 0", function()
      local r = distill.mm(distill.zeros { 2, 0 }, distill.zeros { 0, 3 })
      assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, r:totable())
      assert.are.same({ 0, 2 }, distill.mm(distill.zeros { 0, 3 }, f32(B)):shape())
    end)

    it("rejects mismatched shapes, naming both", function()
      fails("distill.mm: shapes [2, 3] and [2, 3] cannot be multiplied (3 != 2)",
        distill.mm, f32(A), f32(A))
    end)

    it("rejects non-2-d and non-float32 inputs", function()
      fails("distill.mm: argument #1: expected a 2-d tensor, got 1-d", distill.mm,
        f32 { 1, 2 }, f32(B))
      fails("distill.mm: argument #2: expected a 2-d tensor, got 3-d", distill.mm,
        f32(A), distill.zeros { 3, 2, 1 })
      fails("distill.mm: expected float32 tensors, got int64 and float32", distill.mm,
        distill.tensor(A), f32(B))
      fails("distill.mm: argument #2: expected a tensor, got number", distill.mm, f32(A), 3)
    end)
  end)

  describe("bmm", function()
    -- batch 1: A; batch 2: picks rows
    local BA = { A, { { 1, 0, 0 }, { 0, 1, 0 } } }
    local BB = { { { 1 }, { 1 }, { 1 } }, { { 2 }, { 3 }, { 4 } } }

    it("multiplies batch by batch", function()
      local r = distill.bmm(f32(BA), f32(BB))
      assert.are.same({ 2, 2, 1 }, r:shape())
      assert.are.same({ { { 6 }, { 15 } }, { { 2 }, { 3 } } }, r:totable())
      assert.are.same(r:totable(), f32(BA):bmm(f32(BB)):totable())
    end)

    it("handles transposed and permuted batches", function()
      local bt = f32(BA):transpose(2, 3)       -- (2, 3, 2), stride (6, 1, 3)
      local r = distill.bmm(bt, f32 { { { 1, 0 }, { 0, 1 } }, { { 1, 1 }, { 1, 1 } } })
      assert.are.same({ { { 1, 4 }, { 2, 5 }, { 3, 6 } }, { { 1, 1 }, { 1, 1 }, { 0, 0 } } },
        r:totable())
      -- batch dim not outermost in memory
      local p = f32(BB):permute { 2, 1, 3 }:contiguous():permute { 2, 1, 3 }
      assert.is_false(p:is_contiguous())
      assert.are.same({ { { 6 }, { 15 } }, { { 2 }, { 3 } } }, distill.bmm(f32(BA), p):totable())
    end)

    it("rejects different batch sizes and bad shapes", function()
      fails("distill.bmm: batch sizes differ: shapes [2, 2, 3] and [1, 3, 1] (2 != 1)",
        distill.bmm, f32(BA), distill.zeros { 1, 3, 1 })
      fails("distill.bmm: shapes [2, 2, 3] and [2, 2, 1] cannot be multiplied (3 != 2)",
        distill.bmm, f32(BA), distill.zeros { 2, 2, 1 })
      fails("distill.bmm: argument #1: expected a 3-d tensor, got 2-d", distill.bmm,
        f32(A), f32(BB))
    end)
  end)

  describe("matmul", function()
    it("1-d . 1-d is a 0-d dot product", function()
      local r = distill.matmul(f32 { 1, 2, 3 }, f32 { 4, 5, 6 })
      assert.are.equal(0, r:dim())
      assert.are.equal(32, r:item())
    end)

    it("2-d @ 1-d and 1-d @ 2-d drop the added dim", function()
      local r = distill.matmul(f32(A), f32 { 1, 1, 1 })
      assert.are.same({ 2 }, r:shape())
      assert.are.same({ 6, 15 }, r:totable())
      r = distill.matmul(f32 { 1, 1 }, f32(A))
      assert.are.same({ 3 }, r:shape())
      assert.are.same({ 5, 7, 9 }, r:totable())
    end)

    it("2-d @ 2-d is mm", function()
      assert.are.same({ { 58, 64 }, { 139, 154 } }, f32(A):matmul(f32(B)):totable())
    end)

    it("3-d @ 2-d, contiguous and not", function()
      local a3 = f32 { A, { { 1, 0, 0 }, { 0, 1, 0 } } }
      local r = distill.matmul(a3, f32(B))
      assert.are.same({ { { 58, 64 }, { 139, 154 } }, { { 7, 8 }, { 9, 10 } } }, r:totable())
      -- transpose(1, 2): r[i] = rows {a3[1][i], a3[2][i]} @ B
      r = distill.matmul(a3:transpose(1, 2), f32(B))
      assert.are.same({ { { 58, 64 }, { 7, 8 } }, { { 139, 154 }, { 9, 10 } } }, r:totable())
    end)

    it("2-d @ 3-d broadcasts the matrix over the batch", function()
      local b3 = f32 { B, { { 1, 0 }, { 0, 1 }, { 0, 0 } } }
      local r = distill.matmul(f32(A), b3)
      assert.are.same({ 2, 2, 2 }, r:shape())
      assert.are.same({ { { 58, 64 }, { 139, 154 } }, { { 1, 2 }, { 4, 5 } } }, r:totable())
    end)

    it("broadcasts batch dims of both sides", function()
      local x = f32(A):view { 2, 1, 1, 3 }     -- two row vectors
      local y = distill.eye(3):view { 3, 3, 1 } -- three unit columns
      local r = distill.matmul(x, y)
      assert.are.same({ 2, 3, 1, 1 }, r:shape())
      assert.are.same({ { { { 1 } }, { { 2 } }, { { 3 } } }, { { { 4 } }, { { 5 } }, { { 6 } } } },
        r:totable())
    end)

    it("1-d with batched operands", function()
      local y = distill.eye(3):view { 3, 3, 1 }
      local r = distill.matmul(f32 { 1, 1, 1 }, y)
      assert.are.same({ 3, 1 }, r:shape())
      assert.are.same({ { 1 }, { 1 }, { 1 } }, r:totable())
      local x = f32(A):view { 2, 1, 1, 3 }
      r = distill.matmul(x, f32 { 1, 2, 3 })
      assert.are.same({ 2, 1, 1 }, r:shape())
      assert.are.same({ { { 14 } }, { { 32 } } }, r:totable())
    end)

    it("k = 0 gives zeros", function()
      local r = distill.matmul(distill.zeros { 2, 2, 0 }, distill.zeros { 0, 3 })
      assert.are.same({ 2, 2, 3 }, r:shape())
      assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, r[2]:totable())
      assert.are.equal(0, distill.matmul(distill.zeros { 0 }, distill.zeros { 0 }):item())
    end)

    it("reports mismatches with both shapes", function()
      fails("distill.matmul: shapes [3] and [2] cannot be multiplied (3 != 2)",
        distill.matmul, f32 { 1, 2, 3 }, f32 { 1, 2 })
      fails("distill.matmul: shapes [2, 3] and [2] cannot be multiplied (3 != 2)",
        distill.matmul, f32(A), f32 { 1, 2 })
      fails("distill.matmul: batch dims of shapes [2, 2, 3] and [3, 3, 2] cannot be broadcast",
        distill.matmul, distill.zeros { 2, 2, 3 }, distill.zeros { 3, 3, 2 })
      fails("distill.matmul: both arguments need at least 1 dim, got shapes [] and [3]",
        distill.matmul, distill.tensor(1.5), f32 { 1, 2, 3 })
      fails("distill.matmul: expected float32 tensors, got float32 and int64",
        distill.matmul, f32(A), distill.tensor { 1, 2, 3 })
    end)
  end)

  describe("dot, mv, outer", function()
    it("dot of 1-d tensors", function()
      assert.are.equal(32, distill.dot(f32 { 1, 2, 3 }, f32 { 4, 5, 6 }):item())
      assert.are.equal(32, f32 { 1, 2, 3 }:dot(f32 { 4, 5, 6 }):item())
      fails("distill.dot: argument #1: expected a 1-d tensor, got 2-d", distill.dot,
        f32(A), f32 { 1 })
      fails("distill.dot: shapes [3] and [2] cannot be multiplied", distill.dot,
        f32 { 1, 2, 3 }, f32 { 1, 2 })
    end)

    it("mv of a matrix and a vector", function()
      assert.are.same({ 6, 15 }, distill.mv(f32(A), f32 { 1, 1, 1 }):totable())
      assert.are.same({ 1, 4 }, f32(A):mv(f32 { 1, 0, 0 }):totable())
      fails("distill.mv: argument #2: expected a 1-d tensor, got 2-d", distill.mv,
        f32(A), f32(B))
    end)

    it("outer of two vectors", function()
      assert.are.same({ { 3, 4, 5 }, { 6, 8, 10 } },
        distill.outer(f32 { 1, 2 }, f32 { 3, 4, 5 }):totable())
      fails("distill.outer: expected two 1-d tensors, got 2-d and 1-d", distill.outer,
        f32(A), f32 { 1 })
    end)
  end)

  it("wallclock is a monotonic number of seconds", function()
    local t0 = distill.wallclock()
    local t1 = distill.wallclock()
    assert.are.equal("number", type(t0))
    assert.is_true(t1 >= t0)
  end)

  -- r = a @ b against a double-precision sum, element by element
  local function check_naive(a, b, r, tol)
    local at, bt, rt = a:totable(), b:totable(), r:totable()
    local n, k, m = #at, #bt, #bt[1]
    for i = 1, n do
      for j = 1, m do
        local s = 0
        for p = 1, k do
          s = s + at[i][p] * bt[p][j]
        end
        assert.is_true(math.abs(s - rt[i][j]) < tol, "mismatch at " .. i .. "," .. j)
      end
    end
  end

  it("agrees with a naive product on a larger random case", function()
    distill.manual_seed(3)
    local n, k, m = 17, 33, 9
    local a, b = distill.randn { k, n }:t(), distill.randn { m, k }:t()
    check_naive(a, b, distill.mm(a, b), 1e-4)
  end)

  -- products of 2M+ multiply-adds are split over the OpenMP threads by
  -- blocks of columns (wide results) or rows (tall ones), ragged last block
  for _, c in ipairs { { n = 70, k = 200, m = 301, name = "by columns" },
                       { n = 301, k = 200, m = 70, name = "by rows" } } do
    it("agrees with a naive product when split over threads " .. c.name, function()
      distill.manual_seed(4)
      for _, transposed in ipairs { false, true } do
        local a = transposed and distill.randn { c.k, c.n }:t() or distill.randn { c.n, c.k }
        local b = transposed and distill.randn { c.m, c.k }:t() or distill.randn { c.k, c.m }
        check_naive(a, b, distill.mm(a, b), 1e-3)
      end
    end)
  end
end)

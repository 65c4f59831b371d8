-- Elementwise maths, comparisons, where, reductions and operators.
local distill = require "distill"
local helpers = require "support.helpers"

local T = distill.tensor

local function values(t)
  if t:dim() == 0 then return { t:item() } end
  return t:contiguous():view{-1}:totable()
end

local function close(a, b, tol)
  tol = tol or 1e-5
  if a ~= a or b ~= b then return a ~= a and b ~= b end
  if a == b then return true end
  return math.abs(a - b) <= tol * math.max(1, math.abs(a), math.abs(b))
end

-- t has the given shape and (flattened) values, approximately.
local function check(t, shape, expected, tol)
  assert.are.same(shape, t:shape())
  local got = values(t)
  assert.are.equal(#expected, #got)
  for i = 1, #expected do
    if not close(got[i], expected[i], tol) then
      error(("element %d: expected %s, got %s"):format(i, tostring(expected[i]),
        tostring(got[i])), 2)
    end
  end
end

local function errors_with(fn, pattern)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error matching " .. pattern)
  err = tostring(err)
  if not err:find(pattern, 1, true) then
    error(("error %q does not contain %q"):format(err, pattern), 2)
  end
end

local inf, nan = math.huge, 0 / 0

describe("elementwise", function()
  local x = T{{1, 2, 3}, {4, 5, 6}}:float()

  describe("binary arithmetic", function()
    it("adds, subtracts, multiplies, divides and powers same-shaped tensors", function()
      local y = T{{2, 2, 2}, {1, 0.5, -1}}
      check(x:add(y), {2, 3}, {3, 4, 5, 5, 5.5, 5})
      check(x:sub(y), {2, 3}, {-1, 0, 1, 3, 4.5, 7})
      check(x:mul(y), {2, 3}, {2, 4, 6, 4, 2.5, -6})
      check(x:div(y), {2, 3}, {0.5, 1, 1.5, 4, 10, -6})
      check(x:pow(y), {2, 3}, {1, 4, 9, 4, math.sqrt(5), 1 / 6})
      check(distill.add(x, y), {2, 3}, {3, 4, 5, 5, 5.5, 5})
    end)

    it("squares and first powers exactly, special values included, at any stride", function()
      local v = T{-3.5, -0, 0, 1e-20, 1.7e19, 3e38, inf, -inf, nan, 0.1}:float()
      for _, operand in ipairs{ v, v:view{ 2, 5 }:t() } do
        local squared, first = operand:pow(2), operand:pow(T{1}:float())
        local product = operand * operand
        local flat_s, flat_p = squared:contiguous():view{ -1 }, product:contiguous():view{ -1 }
        local flat_f, flat_o = first:contiguous():view{ -1 }, operand:contiguous():view{ -1 }
        for i = 1, 10 do
          local s, p, f, o = flat_s[i], flat_p[i], flat_f[i], flat_o[i]
          assert.is_true(s == p or (s ~= s and p ~= p), ("pow(2) of element %d: %s vs %s"):format(i, s, p))
          assert.is_true(f == o or (f ~= f and o ~= o), ("pow(1) of element %d: %s vs %s"):format(i, f, o))
        end
      end
      check(T{-2, 0.5}:float():pow(3), {2}, {-8, 0.125})
    end)

    it("broadcasts a scalar, a row, a column and across 3-d", function()
      check(x + 10, {2, 3}, {11, 12, 13, 14, 15, 16})
      check(x + T{10, 20, 30}, {2, 3}, {11, 22, 33, 14, 25, 36})
      check(x + T{{100}, {200}}, {2, 3}, {101, 102, 103, 204, 205, 206})
      check(T{1, 2, 3}:view{3, 1} * T{1, 10}, {3, 2}, {1, 10, 2, 20, 3, 30})
      local a = distill.arange(0, 6):float():view{2, 1, 3}
      local b = T{{1}, {2}}:float()  -- 2 x 1 -> broadcast to 2 x 2 x 3
      check(a * b, {2, 2, 3}, {0, 1, 2, 0, 2, 4, 3, 4, 5, 6, 8, 10})
      check(x + T(5), {2, 3}, {6, 7, 8, 9, 10, 11})  -- 0-d tensor
    end)

    it("handles number op tensor for every operator", function()
      check(2 - x, {2, 3}, {1, 0, -1, -2, -3, -4})
      check(12 / x, {2, 3}, {12, 6, 4, 3, 2.4, 2})
      check(2 ^ x, {2, 3}, {2, 4, 8, 16, 32, 64})
      check(x ^ 2, {2, 3}, {1, 4, 9, 16, 25, 36})
      check(3 * x, {2, 3}, {3, 6, 9, 12, 15, 18})
      check(1 + x, {2, 3}, {2, 3, 4, 5, 6, 7})
      check(-x, {2, 3}, {-1, -2, -3, -4, -5, -6})
      check(x - x, {2, 3}, {0, 0, 0, 0, 0, 0})
      check(distill.sub(10, x), {2, 3}, {9, 8, 7, 6, 5, 4})
    end)

    it("supports alpha in add and sub", function()
      check(x:add(T{1, 1, 1}, 2), {2, 3}, {3, 4, 5, 6, 7, 8})
      check(x:sub(1, 3), {2, 3}, {-2, -1, 0, 1, 2, 3})
    end)

    it("gives maximum and minimum, propagating NaN", function()
      local a, b = T{1, 5, nan, 2}, T{3, 4, 1, nan}
      check(distill.maximum(a, b), {4}, {3, 5, nan, nan})
      check(a:minimum(b), {4}, {1, 4, nan, nan})
      check(a:maximum(2), {4}, {2, 5, nan, 2})
      check(a:max(b), {4}, {3, 5, nan, nan})
    end)

    it("does not crash on integer division by zero", function()
      local r = T{1, -1, 0} / T{0, 0, 0}
      assert.are.equal("float32", r:dtype())
      check(r, {3}, {inf, -inf, nan})
      check(T{7, 8} / 0, {2}, {inf, inf})
    end)

    it("does integer powers on integer tensors and rejects negative exponents", function()
      local r = T{2, 3, -2} ^ 3
      assert.are.equal("int64", r:dtype())
      assert.are.same({8, 27, -8}, r:totable())
      assert.are.same({1, 2, 4}, (2 ^ T{0, 1, 2}):totable())
      errors_with(function() return T{2, 3} ^ -1 end, "negative integer powers")
      errors_with(function() return T{2, 3}:pow(T{1, -2}) end, "negative integer powers")
      check(T{4, 9} ^ 0.5, {2}, {2, 3})
    end)

    it("wraps uint8 arithmetic like torch", function()
      local b = T({250, 3}, "uint8")
      local r = b + 10
      assert.are.equal("uint8", r:dtype())
      assert.are.same({4, 13}, r:totable())
      assert.are.same({247, 0}, (b - 3):totable())
    end)
  end)

  describe("type promotion", function()
    local f = T{1.5, 2}:float()
    local l = T{1, 2}
    local u = T({1, 2}, "uint8")
    local cases = {
      {"float32", f, f, "float32"}, {"float32+int64", f, l, "float32"},
      {"int64+float32", l, f, "float32"}, {"float32+uint8", f, u, "float32"},
      {"int64+int64", l, l, "int64"}, {"int64+uint8", l, u, "int64"},
      {"uint8+int64", u, l, "int64"}, {"uint8+uint8", u, u, "uint8"},
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " -> " .. c[4], function()
        assert.are.equal(c[4], (c[2] + c[3]):dtype())
        assert.are.equal(c[4], (c[2] * c[3]):dtype())
        assert.are.equal("float32", (c[2] / c[3]):dtype())
        assert.are.equal("uint8", c[2]:lt(c[3]):dtype())
      end)
    end

    it("keeps the dtype with an integer scalar and goes float32 with a float scalar", function()
      assert.are.equal("int64", (l + 2):dtype())
      assert.are.equal("uint8", (u * 2):dtype())
      assert.are.equal("float32", (l + 2.0):dtype())
      assert.are.equal("float32", (u + 0.5):dtype())
      assert.are.equal("float32", (f + 2):dtype())
      check(l * 1.5, {2}, {1.5, 3})
      assert.are.equal("float32", (l / 2):dtype())
    end)

    it("compares uint8 with out-of-range integers without wrapping", function()
      local b = T({0, 200}, "uint8")
      assert.are.same({1, 1}, b:lt(300):totable())
      assert.are.same({1, 1}, b:gt(-1):totable())
    end)

    it("makes float32 from exp/log/sqrt/sigmoid/tanh of integers", function()
      for _, name in ipairs{"exp", "log", "sqrt", "rsqrt", "sigmoid", "tanh"} do
        assert.are.equal("float32", l[name](l):dtype())
      end
      check(T{1, 4}:sqrt(), {2}, {1, 2})
      for _, name in ipairs{"neg", "abs", "sign", "relu"} do
        assert.are.equal("int64", l[name](l):dtype())
      end
    end)
  end)

  describe("comparisons", function()
    local a, b = T{1, 2, 3}:float(), T{3, 2, 1}:float()
    it("return uint8 0/1", function()
      assert.are.same({0, 1, 0}, a:eq(b):totable())
      assert.are.same({1, 0, 1}, a:ne(b):totable())
      assert.are.same({1, 0, 0}, a:lt(b):totable())
      assert.are.same({1, 1, 0}, a:le(b):totable())
      assert.are.same({0, 0, 1}, a:gt(b):totable())
      assert.are.same({0, 1, 1}, a:ge(b):totable())
      assert.are.equal("uint8", a:eq(b):dtype())
    end)

    it("broadcast and accept numbers", function()
      assert.are.same({0, 1, 1}, a:gt(1.5):totable())
      assert.are.same({{1, 0, 0}, {1, 1, 0}}, a:le(T{{1}, {2}}):totable())
      assert.are.same({0, 1, 0}, distill.eq(a, 2):totable())
      assert.are.same({0, 0, 0}, T{nan}:float():eq(T{nan}):expand{3}:totable())
    end)
  end)

  describe("unary", function()
    local v = T{-2, -0.5, 0, 0.5, 2}:float()
    it("computes every op", function()
      check(v:neg(), {5}, {2, 0.5, 0, -0.5, -2})
      check(v:abs(), {5}, {2, 0.5, 0, 0.5, 2})
      check(v:sign(), {5}, {-1, -1, 0, 1, 1})
      check(v:exp(), {5}, {math.exp(-2), math.exp(-0.5), 1, math.exp(0.5), math.exp(2)})
      check(v:relu(), {5}, {0, 0, 0, 0.5, 2})
      check(v:tanh(), {5}, {-0.9640275800758169, -0.46211715726000974, 0,
        0.46211715726000974, 0.9640275800758169})
      check(v:sigmoid(), {5}, {1 / (1 + math.exp(2)), 1 / (1 + math.exp(0.5)), 0.5,
        1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(-2))})
      check(T{1, 4, 0.25}:float():sqrt(), {3}, {1, 2, 0.5})
      check(T{1, 4, 0.25}:float():rsqrt(), {3}, {1, 0.5, 2})
      check(T{1, math.exp(2), 0}:float():log(), {3}, {0, 2, -inf})
      check(T{-1}:float():log(), {1}, {nan})
      check(distill.exp(T{0}:float()), {1}, {1})
    end)

    it("keeps sigmoid finite at the extremes", function()
      check(T{-1000, 1000}:float():sigmoid(), {2}, {0, 1})
    end)

    it("works on non-contiguous views", function()
      local m = T{{1, -2}, {-3, 4}}:float():t()
      check(m:abs(), {2, 2}, {1, 3, 2, 4})
      check(m:neg(), {2, 2}, {-1, 3, 2, -4})
    end)
  end)

  describe("clamp", function()
    local v = T{-3, -1, 0, 1, 3}:float()
    it("clamps to both bounds or one", function()
      check(v:clamp(-1, 1), {5}, {-1, -1, 0, 1, 1})
      check(v:clamp(nil, 0), {5}, {-3, -1, 0, 0, 0})
      check(v:clamp(0), {5}, {0, 0, 0, 1, 3})
      check(distill.clamp(v, 0, nil), {5}, {0, 0, 0, 1, 3})
      assert.are.same({2, 2, 3}, T{1, 2, 5}:clamp(1.5, 3.5):totable())
      assert.are.equal("int64", T{1, 2, 5}:clamp(1.5, 3.5):dtype())
      check(T{nan}:float():clamp(0, 1), {1}, {nan})
    end)

    it("rejects missing or bad bounds", function()
      errors_with(function() v:clamp() end, "Tensor:clamp: at least one of min and max")
      errors_with(function() v:clamp("a") end, "Tensor:clamp: min: expected a number, got string")
    end)
  end)

  describe("where", function()
    local c = T({1, 0, 1}, "uint8")
    it("selects with broadcasting", function()
      check(distill.where(c, T{1, 2, 3}:float(), T{-1, -2, -3}:float()), {3}, {1, -2, 3})
      check(distill.where(T({{1}, {0}}, "uint8"), T{1, 2}:float(), 0), {2, 2}, {1, 2, 0, 0})
      check(c:where(5, T{0, 0, 0}:float()), {3}, {5, 0, 5})
    end)

    it("picks the dtype of number operands", function()
      assert.are.equal("int64", distill.where(c, 1, 0):dtype())
      assert.are.equal("float32", distill.where(c, 1.5, 0):dtype())
      assert.are.equal("int64", distill.where(c, T{1, 2, 3}, 0):dtype())
      assert.are.equal("float32", distill.where(c, T{1, 2, 3}, 0.5):dtype())
      assert.are.same({1, 1, 0}, distill.where(T{1, 2, 3}:gt(2):eq(0), 1, 0):totable())
    end)

    it("selects against a number operand on either side, on long runs too", function()
      check(distill.where(c, T{1, 2, 3}:float(), 0), {3}, {1, 0, 3})
      check(distill.where(c, -1, T{4, 5, 6}:float()), {3}, {-1, 5, -1})
      check(distill.where(c, T{7, 8, 9}, -2), {3}, {7, -2, 9})
      check(distill.where(c, T({7, 8, 9}, "uint8"), 200), {3}, {7, 200, 9})
      local n = 100003   -- the parallel path, with a ragged last piece
      distill.manual_seed(4)
      local x = distill.randn{n}
      local cond, xs = x:gt(0):totable(), x:totable()
      local left, right = {}, {}
      for i = 1, n do
        left[i] = cond[i] == 1 and xs[i] or 0.5
        right[i] = cond[i] == 1 and -3 or xs[i]
      end
      check(distill.where(x:gt(0), x, 0.5), {n}, left, 0)
      check(distill.where(x:gt(0), -3, x), {n}, right, 0)
      -- strided operands take the general loop
      local m = x:narrow(1, 1, 100000):view{100, 1000}
      local mt = m:t()
      local got = values(distill.where(mt:gt(0), mt, 0))
      for i = 1, 1000, 37 do
        for j = 1, 100, 11 do
          local v = xs[(j - 1) * 1000 + i]
          assert.are.equal(v > 0 and v or 0, got[(i - 1) * 100 + j])
        end
      end
    end)

    it("rejects a non-uint8 condition", function()
      errors_with(function() distill.where(T{1, 0}, 1, 0) end,
        "Tensor:where: condition must be a uint8 tensor")
      errors_with(function() distill.where(c, "a", 0) end, "argument #2: expected a tensor or a number")
    end)
  end)

  describe("in-place ops", function()
    it("write into the tensor, return it and bump nothing else", function()
      local a = T{1, 2, 3}:float()
      local r = a:add_(1)
      assert.are.equal(a, r)
      assert.is_true(rawequal(a, r))
      check(a, {3}, {2, 3, 4})
      a:mul_(T{2, 2, 2}):sub_(1):div_(2)
      check(a, {3}, {1.5, 2.5, 3.5})
      a:add_(T{1, 1, 1}, 2)
      check(a, {3}, {3.5, 4.5, 5.5})
      a:pow_(2)
      check(a, {3}, {12.25, 20.25, 30.25})
      a:sqrt_():neg_():abs_()
      check(a, {3}, {3.5, 4.5, 5.5})
      a:clamp_(4, 5)
      check(a, {3}, {4, 4.5, 5})
      local e = T{0, 1}:float()
      e:exp_()
      check(e, {2}, {1, math.exp(1)})
      e:log_()
      check(e, {2}, {0, 1})
      local s = T{-1, 0, 1}:float()
      s:relu_()
      check(s, {3}, {0, 0, 1})
      s:sigmoid_()
      check(s, {3}, {0.5, 0.5, 1 / (1 + math.exp(-1))})
      local h = T{0}:float()
      h:tanh_()
      check(h, {1}, {0})
    end)

    it("work on non-contiguous views and write through to the base", function()
      local base = distill.zeros{3, 4}
      local tview = base:t()                   -- 4 x 3, non-contiguous
      tview:add_(T{1, 2, 3}:float())           -- each row of the view
      check(base, {3, 4}, {1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3})
      local col = base:narrow(2, 2, 2)         -- columns 2..3
      col:mul_(10)
      check(base, {3, 4}, {1, 10, 10, 1, 2, 20, 20, 2, 3, 30, 30, 3})
      col:neg_()
      check(base, {3, 4}, {1, -10, -10, 1, 2, -20, -20, 2, 3, -30, -30, 3})
    end)

    it("handle an operand that aliases the target", function()
      local m = T{{1, 2}, {3, 4}}:float()
      m:add_(m:t())
      check(m, {2, 2}, {2, 5, 5, 8})
      local v = T{1, 2, 3}:float()
      v:mul_(v)
      check(v, {3}, {1, 4, 9})
    end)

    it("keep the target's dtype", function()
      local l = T{1, 2, 3}
      l:div_(2)
      assert.are.equal("int64", l:dtype())
      assert.are.same({0, 1, 1}, l:totable())
      local l2 = T{1, 2}
      l2:add_(T{0.5, 0.5}:float())
      assert.are.same({1, 2}, l2:totable())
      l2:add_(3)
      assert.are.same({4, 5}, l2:totable())
    end)

    it("refuse to broadcast the target or write overlapping views", function()
      local a = T{1, 2, 3}:float()
      errors_with(function() a:add_(distill.zeros{2, 3}) end, "Tensor:add_: in-place")
      local e = T{1}:float():expand{3}
      errors_with(function() e:add_(1) end, "overlap")
    end)

    it("refuse tensors that require grad", function()
      local w = distill.zeros{2}
      w.requires_grad = true
      errors_with(function() w:add_(1) end, "Tensor:add_: in-place operation on a tensor that requires grad")
      distill.no_grad(function() w:add_(1) end)
      check(w, {2}, {1, 1})
    end)
  end)

  describe("argument errors", function()
    it("name the function and the problem", function()
      local a = distill.zeros{2, 3}
      errors_with(function() return a:add(distill.zeros{4}) end,
        "Tensor:add: shapes [2, 3] and [4] cannot be broadcast")
      errors_with(function() return a + "x" end, "Tensor.__add: argument #2: expected a tensor or a number, got string")
      errors_with(function() return {} * a end, "Tensor.__mul: argument #1")
      errors_with(function() return distill.mul(1, 2) end, "Tensor:mul: expected a tensor operand, got number and number")
      errors_with(function() return a:add() end, "expected a tensor or a number, got no value")
      errors_with(function() return distill.exp(3) end, "Tensor:exp: argument #1: expected a tensor")
      errors_with(function() return a:add(1, "z") end, "Tensor:add: alpha: expected a number")
      local freed = distill.zeros{2}
      freed:free()
      errors_with(function() return a:add(freed) end, "freed")
    end)
  end)
end)

describe("reductions", function()
  -- 2 x 3 x 2, values 1..12
  local x = distill.arange(1, 13):float():view{2, 3, 2}

  describe("sum and mean", function()
    it("over everything gives a 0-d tensor", function()
      local s = x:sum()
      assert.are.same({}, s:shape())
      assert.are.equal(78, s:item())
      assert.are.equal(6.5, x:mean():item())
      assert.are.equal(78, distill.sum(x):item())
    end)

    it("over one dim, with and without keepdim, negative dims", function()
      check(x:sum(1), {3, 2}, {8, 10, 12, 14, 16, 18})
      check(x:sum(2), {2, 2}, {9, 12, 27, 30})
      check(x:sum(3), {2, 3}, {3, 7, 11, 15, 19, 23})
      check(x:sum(-1), {2, 3}, {3, 7, 11, 15, 19, 23})
      check(x:sum(2, true), {2, 1, 2}, {9, 12, 27, 30})
      check(x:mean(2), {2, 2}, {3, 4, 9, 10})
      check(x:mean(1, true), {1, 3, 2}, {4, 5, 6, 7, 8, 9})
    end)

    it("over several dims", function()
      check(x:sum{1, 3}, {3}, {18, 26, 34})
      check(x:sum({1, 3}, true), {1, 3, 1}, {18, 26, 34})
      check(x:mean{2, 3}, {2}, {3.5, 9.5})
      check(x:sum{-1, 1}, {3}, {18, 26, 34})
      check(x:sum(nil, true), {1, 1, 1}, {78})
    end)

    it("on non-contiguous views", function()
      local t = x:transpose(1, 3)   -- 2 x 3 x 2, permuted
      check(t:sum(1), {3, 2}, {3, 15, 7, 19, 11, 23})
      check(x:narrow(2, 2, 2):sum(2), {2, 2}, {8, 10, 20, 22})
    end)

    it("sums integers exactly into int64 and means them as float32", function()
      local l = T{{1, 2}, {3, 4}}
      assert.are.equal("int64", l:sum():dtype())
      assert.are.equal(10, l:sum():item())
      assert.are.equal("int64", T({200, 200}, "uint8"):sum():dtype())
      assert.are.equal(400, T({200, 200}, "uint8"):sum():item())
      local big = T{math.tointeger(2 ^ 53) + 1, 1} -- beyond double precision
      assert.are.equal(math.tointeger(2 ^ 53) + 2, big:sum():item())
      assert.are.equal("float32", l:mean():dtype())
      assert.are.equal(2.5, l:mean():item())
    end)

    it("of empty dims: sum 0, mean NaN, prod 1", function()
      local e = distill.zeros{2, 0}
      check(e:sum(2), {2}, {0, 0})
      check(e:mean(2), {2}, {nan, nan})
      check(e:prod(2), {2}, {1, 1})
      check(e:sum(1), {0}, {})
    end)

    it("of a 0-d tensor", function()
      local s = T(4.5)
      assert.are.equal(4.5, s:sum():item())
      assert.are.equal(4.5, s:sum(1):item())
    end)
  end)

  describe("max, min, argmax, argmin", function()
    it("over everything", function()
      assert.are.equal(12, x:max():item())
      assert.are.equal(1, x:min():item())
      assert.are.same({}, x:max():shape())
      assert.are.equal(12, x:argmax():item())   -- 1-based flat position
      assert.are.equal(1, x:argmin():item())
    end)

    it("over a dim return values and 1-based indices", function()
      local m = T{{3, 7, 7}, {9, 1, 9}}:float()
      local v, i = m:max(2)
      check(v, {2}, {7, 9})
      assert.are.same({2, 1}, i:totable())           -- ties: first occurrence
      assert.are.equal("int64", i:dtype())
      v, i = m:min(1, true)
      check(v, {1, 3}, {3, 1, 7})
      assert.are.same({{1, 2, 1}}, i:totable())
      assert.are.same({2, 1}, m:argmax(2):totable())
      assert.are.same({{1}, {2}}, m:argmin(2, true):totable())
      assert.are.same({2, 1, 2}, m:argmax(1):totable())
      assert.are.same({2, 1, 2}, distill.argmax(m, -2):totable())
    end)

    it("keep integer dtypes and values exactly", function()
      local l = T{{5, -3}, {2, 8}}
      assert.are.equal("int64", l:max():dtype())
      assert.are.equal(8, l:max():item())
      assert.are.same({-3, 2}, l:min(2):totable())
      local u = T({{5, 3}, {250, 8}}, "uint8")
      assert.are.equal("uint8", u:max(1):dtype())
      assert.are.same({250, 8}, u:max(1):totable())
      assert.are.same({2, 2}, u:argmax(1):totable())
    end)

    it("propagate NaN", function()
      local m = T{1, nan, 3}
      assert.is_true(m:max():item() ~= m:max():item())
      assert.are.equal(2, m:argmax():item())
      assert.are.equal(2, m:argmin():item())
    end)

    it("raise on empty reductions", function()
      errors_with(function() distill.zeros{2, 0}:max(2) end, "Tensor:max: max of an empty dim")
      errors_with(function() distill.zeros{0}:argmax() end, "Tensor:argmax: argmax of an empty dim")
      errors_with(function() distill.zeros{0}:min() end, "Tensor:min: min of an empty dim")
    end)

    it("reject several dims for argmax", function()
      errors_with(function() x:argmax{1, 2} end, "Tensor:argmax: takes a single dim")
      errors_with(function() x:max{1, 2} end, "Tensor:max: takes a single dim")
    end)
  end)

  describe("var and std", function()
    local v = T{{1, 2, 3, 4}, {2, 4, 6, 8}}:float()
    it("default to the unbiased estimate", function()
      check(v:var(2), {2}, {5 / 3, 20 / 3})
      check(v:std(2), {2}, {math.sqrt(5 / 3), math.sqrt(20 / 3)})
      check(v:var(), {}, {(function()
        local mean, s = 30 / 8, 0
        for _, a in ipairs{1, 2, 3, 4, 2, 4, 6, 8} do s = s + (a - mean) ^ 2 end
        return s / 7
      end)()})
    end)

    it("take a correction or unbiased option", function()
      check(v:var(2, {correction = 0}), {2}, {1.25, 5})
      check(v:var(2, true, {unbiased = false}), {2, 1}, {1.25, 5})
      check(v:std(2, false, {correction = 0}), {2}, {math.sqrt(1.25), math.sqrt(5)})
      check(v:var(1, {correction = 2}), {4}, {inf, inf, inf, inf}) -- divides by max(0, 2 - 2)
    end)

    it("are NaN when there are too few elements", function()
      check(T{3}:float():var(), {}, {nan})
      check(T{3}:float():std(1, {correction = 0}), {}, {0})
    end)

    it("are numerically stable for large offsets", function()
      local big = T{1e4 + 1, 1e4 + 2, 1e4 + 3}:float()
      check(big:var(), {}, {1}, 1e-4)
    end)

    it("of integer tensors are float32", function()
      assert.are.equal("float32", T{1, 2, 3}:var():dtype())
      check(T{1, 2, 3}:var(), {}, {1})
    end)

    it("reject bad options", function()
      errors_with(function() v:var(2, {bias = 1}) end, "Tensor:var: unknown option 'bias'")
      errors_with(function() v:var(2, {correction = 1, unbiased = true}) end,
        "either correction or unbiased")
      errors_with(function() v:var(2, "yes") end, "Tensor:var: keepdim must be a boolean")
    end)
  end)

  describe("norm", function()
    local v = T{{3, -4}, {1, 2}}:float()
    it("computes p = 2 by default, p = 1, inf, -inf, 0 and general p", function()
      check(v:norm(), {}, {math.sqrt(30)})
      check(v:norm(2, 2), {2}, {5, math.sqrt(5)})
      check(v:norm(1, 2), {2}, {7, 3})
      check(v:norm(1), {}, {10})
      check(v:norm(math.huge, 2), {2}, {4, 2})
      check(v:norm("inf"), {}, {4})
      check(v:norm("-inf", 1), {2}, {1, 2})
      check(v:norm(0), {}, {4})
      check(v:norm(3, 2, true), {2, 1}, {(27 + 64) ^ (1 / 3), (1 + 8) ^ (1 / 3)})
      check(v:norm("fro"), {}, {math.sqrt(30)})
      check(distill.norm(v, nil, 1), {2}, {math.sqrt(10), math.sqrt(20)})
    end)

    it("rejects a bad p", function()
      errors_with(function() v:norm("two") end, "Tensor:norm: p must be a number")
    end)
  end)

  describe("logsumexp", function()
    it("matches the direct formula on small values", function()
      local v = T{{0, 1, 2}, {-1, 0, 1}}:float()
      local e = function(a, b, c) return math.log(math.exp(a) + math.exp(b) + math.exp(c)) end
      check(v:logsumexp(2), {2}, {e(0, 1, 2), e(-1, 0, 1)})
      check(v:logsumexp(2, true), {2, 1}, {e(0, 1, 2), e(-1, 0, 1)})
    end)

    it("is stable for large and very negative values", function()
      local v = T{1000, 1000, 999}:float()
      check(v:logsumexp(1), {}, {1000 + math.log(2 + math.exp(-1))})
      check(T{-1000, -1000}:float():logsumexp(1), {}, {-1000 + math.log(2)})
      check(T{-inf, -inf}:float():logsumexp(1), {}, {-inf})
      check(T{inf, 1}:float():logsumexp(1), {}, {inf})
      check(distill.zeros{0}:logsumexp(1), {}, {-inf})
    end)
  end)

  describe("prod", function()
    it("multiplies over all or some dims", function()
      local v = T{{1, 2, 3}, {4, 5, 6}}:float()
      check(v:prod(), {}, {720})
      check(v:prod(2), {2}, {6, 120})
      check(v:prod(1, true), {1, 3}, {4, 10, 18})
      assert.are.equal("int64", T{2, 3}:prod():dtype())
      assert.are.equal(6, T{2, 3}:prod():item())
    end)
  end)

  describe("argument checking", function()
    it("rejects bad dims", function()
      errors_with(function() x:sum(4) end, "Tensor:sum: dim 4 out of range for a 3-d tensor")
      errors_with(function() x:sum(0) end, "Tensor:sum: dim 0 out of range")
      errors_with(function() x:sum{1, 1} end, "Tensor:sum: dim 1 appears more than once")
      errors_with(function() x:sum{1, "a"} end, "Tensor:sum: dims entry 2 must be an integer")
      errors_with(function() x:sum(1.5) end, "Tensor:sum: dim must be an integer")
      errors_with(function() x:sum("a") end, "Tensor:sum: dim: expected an integer or a table")
      errors_with(function() x:mean(1, 1) end, "Tensor:mean: keepdim must be a boolean, got number")
      errors_with(function() x:sum(1, true, {a = 1}) end, "Tensor:sum: takes (dim, keepdim) and no options")
      errors_with(function() distill.sum(5) end, "Tensor:sum: argument #1: expected a tensor, got number")
    end)
  end)

  describe("large inputs", function()
    it("sum a million floats accurately", function()
      local n = 1000000
      local ones = distill.ones{n}
      assert.are.equal(n, ones:sum():item())
      assert.are.equal(1, ones:mean():item())
      local a = distill.arange(0, n):float()
      check(a:sum(), {}, {n * (n - 1) / 2}, 1e-7)   -- float32 result
      check(a:view{1000, 1000}:sum(1), {1000}, (function()
        local r = {}
        for j = 0, 999 do r[j + 1] = 1000 * j + 1000 * 999 * 1000 / 2 end
        return r
      end)())
      check(a:view{1000, 1000}:max(2), {1000}, (function()
        local r = {}
        for i = 1, 1000 do r[i] = i * 1000 - 1 end
        return r
      end)())
    end)

    it("gives the same elementwise results on the parallel path", function()
      local n = 100000
      local a = distill.arange(0, n):float()
      local b = (a * 2 + 1):sub(a)   -- = a + 1
      check(b:sum(), {}, {n * (n + 1) / 2}, 1e-7)
      local m = a:view{100, 1000}:t() + T{1}:float()  -- non-contiguous, many runs
      check(m:sum(), {}, {n * (n - 1) / 2 + n}, 1e-7)
    end)
  end)

  helpers.describe_thread_determinism("sums a million random floats to the same bits with 1, 2 and 4 threads",
    { 1, 2, 4 }, [[
      local d = require "distill"
      d.manual_seed(123)
      local x = d.randn{1000000}
      local m = x:view{1000, 1000}
      local out = {
        x:sum():item(), x:mean():item(), x:var():item(), x:norm():item(),
        x:logsumexp(1):item(), m:sum(1):sum():item(), m:t():std(2):sum():item(),
        (x * 3 + 1):exp():sum():item(), x:sigmoid():sum():item(),
      }
      for i, v in ipairs(out) do out[i] = string.format("%.17g", v) end
      print(table.concat(out, " "))
    ]])
end)

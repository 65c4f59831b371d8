-- Gradients of the tensor core's differentiable ops: products (mm, bmm,
-- matmul, dot, mv, outer, linear), indexing (index_select, gather,
-- scatter_add, masked_fill, cat, stack, repeat), elementwise maths and
-- reductions. Every op gets a finite-difference gradcheck (random shapes,
-- batch 1, broadcasting, non-contiguous inputs made inside fn, one or both
-- inputs requiring grad), plus checks that recording changes no value,
-- that no_grad records nothing and that in-place ops refuse graph tensors.
local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local check, leaf = h.check, h.leaf

local function const(shape)
  return distill.randn(shape)
end

-- Values in [0.5, 1.5): safe for log, sqrt, division, pow bases.
local function positive(shape)
  local t = distill.rand(shape) + 0.5
  t.requires_grad = true
  return t
end

-- Values at least `gap` apart from each other (a shuffled 0, gap, 2 gap ...,
-- shifted by `offset`), so no finite-difference step crosses a tie or kink.
local function spaced(shape, gap, offset)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local t = (distill.randperm(n):float() * gap + (offset or 0) - gap * n / 2):view(shape)
  t = t:contiguous()
  t.requires_grad = true
  return t
end

-- randn pushed at least `margin` away from 0 (abs, relu, sign kinks).
local function off_zero(shape, margin)
  local x = distill.randn(shape)
  local t = x + x:sign() * (margin or 0.1)
  t.requires_grad = true
  return t
end

-- A random size in lo..hi (math.random is seeded in before_each).
local function rnd(lo, hi)
  return math.random(lo, hi)
end

local function same_values(a, b)
  assert.are.same(a:contiguous():view{-1}:totable(), b:contiguous():view{-1}:totable())
end

local function close(a, b, tol)
  local x, y = a:contiguous():view{-1}:totable(), b:contiguous():view{-1}:totable()
  assert.are.equal(#x, #y)
  for i = 1, #x do
    assert(math.abs(x[i] - y[i]) <= (tol or 1e-5) * (1 + math.abs(y[i])),
      ("element %d: %g vs %g"):format(i, x[i], y[i]))
  end
end

local function ilist(rows)
  return distill.tensor(rows, "int64")
end

local function ft(rows)
  return distill.tensor(rows, "float32")
end

describe("gradients of the core ops", function()
  before_each(function()
    distill.manual_seed(11)
    math.randomseed(11)
  end)

  describe("products", function()
    it("mm, both inputs and only one, random shapes and a transposed operand", function()
      local n, k, m = rnd(1, 4), rnd(1, 5), rnd(1, 4)
      check(function(a, b) return distill.mm(a, b) end, { leaf{n, k}, leaf{k, m} })
      check(function(a, b) return a:mm(b) end, { leaf{n, k}, const{k, m} })
      check(function(a, b) return distill.mm(a:t(), b) end, { leaf{k, n}, leaf{k, m} })
      check(function(a, b) return distill.mm(a, b:t()) end, { const{n, k}, leaf{m, k} })
    end)

    it("bmm, including batch 1 and non-contiguous operands", function()
      check(function(a, b) return distill.bmm(a, b) end, { leaf{2, 3, 4}, leaf{2, 4, 2} })
      check(function(a, b) return distill.bmm(a, b) end, { leaf{1, 3, 4}, const{1, 4, 5} })
      check(function(a, b) return distill.bmm(a:transpose(2, 3), b) end,
        { leaf{2, 4, 3}, leaf{2, 4, 2} })
    end)

    it("matmul over every rank combination", function()
      local mm = function(a, b) return distill.matmul(a, b) end
      check(mm, { leaf{4}, leaf{4} })                 -- dot
      check(mm, { leaf{4}, leaf{4, 3} })              -- vector @ matrix
      check(mm, { leaf{3, 4}, leaf{4} })              -- matrix @ vector
      check(mm, { leaf{3, 4}, leaf{4, 2} })
      check(mm, { leaf{2, 3, 4}, leaf{4, 2} })        -- batch @ matrix (flattened)
      check(mm, { leaf{3, 4}, leaf{2, 4, 2} })        -- matrix @ batch
      check(mm, { leaf{4}, leaf{2, 4, 3} })           -- vector @ batch
      check(mm, { leaf{2, 3, 4}, leaf{4} })           -- batch @ vector
      check(mm, { leaf{1, 3, 4}, leaf{4, 2} })        -- batch 1
    end)

    it("matmul broadcasts batch dims and sums their gradients back", function()
      local mm = function(a, b) return distill.matmul(a, b) end
      check(mm, { leaf{2, 1, 3, 4}, leaf{3, 4, 2} })
      check(mm, { leaf{1, 3, 2}, leaf{2, 2, 4} })
      check(mm, { const{2, 1, 3, 2}, leaf{1, 2, 2, 3} })
      check(function(a, b) return distill.matmul(a:transpose(-1, -2), b) end,
        { leaf{2, 4, 3}, leaf{1, 4, 2} })
    end)

    it("dot, mv and outer", function()
      check(function(a, b) return distill.dot(a, b) end, { leaf{5}, leaf{5} })
      check(function(a, b) return a:dot(b) end, { leaf{5}, const{5} })
      check(function(a, b) return distill.mv(a, b) end, { leaf{3, 4}, leaf{4} })
      check(function(a, b) return distill.mv(a:t(), b) end, { leaf{4, 3}, const{4} })
      check(function(a, b) return distill.outer(a, b) end, { leaf{3}, leaf{4} })
      check(function(a, b) return distill.outer(a, b) end, { const{1}, leaf{4} })
    end)

    it("linear matches hand-computed values", function()
      local x = ft{ { 1, 2 } }
      local w = ft{ { 1, 0 }, { 0, 1 }, { 1, 1 } }
      local b = ft{ 0.5, -1, 2 }
      assert.are.same({ { 1.5, 1, 5 } }, distill.linear(x, w, b):totable())
      assert.are.same({ { 1, 2, 3 } }, distill.linear(x, w):totable())
      assert.are.same({ 1, 2, 3 }, distill.linear(ft{ 1, 2 }, w):totable())
      assert.are.equal(distill.linear, distill.F.linear)
    end)

    it("linear agrees with matmul + bias over leading dims", function()
      local x, w, b = const{2, 3, 5}, const{4, 5}, const{4}
      close(distill.linear(x, w, b), distill.matmul(x, w:t()) + b)
      close(distill.linear(x:transpose(1, 2), w:t():contiguous():t(), b),
        distill.matmul(x:transpose(1, 2), w:t()) + b)
    end)

    it("linear gradients to x, w and b", function()
      local lin = function(x, w, b) return distill.linear(x, w, b) end
      check(lin, { leaf{3, 4}, leaf{5, 4}, leaf{5} })
      check(lin, { leaf{2, 3, 4}, leaf{2, 4}, leaf{2} })          -- leading dims
      check(lin, { leaf{1, 4}, leaf{3, 4}, leaf{3} })             -- batch 1
      check(lin, { leaf{4}, leaf{3, 4}, const{3} })               -- 1-d input
      check(function(x, w) return distill.linear(x, w) end, { leaf{3, 4}, leaf{2, 4} })
      check(function(x, w, b) return distill.linear(x:t(), w:t(), b) end,
        { leaf{4, 3}, leaf{4, 5}, leaf{5} })                      -- non-contiguous
      check(function(x, w) return distill.linear(x, w, nil) end, { const{3, 4}, leaf{2, 4} })
    end)

    it("linear rejects mismatched shapes", function()
      h.fails("distill.linear:", distill.linear, const{2, 3}, const{4, 5})
      h.fails("bias", distill.linear, const{2, 3}, const{4, 3}, const{5})
    end)
  end)

  describe("indexing", function()
    it("index_select sums gradients of repeated indices", function()
      check(function(a) return distill.index_select(a, 1, { 2, 1, 2 }) end, { leaf{3, 4} })
      check(function(a) return a:index_select(2, ilist{ 4, 4, 1 }) end, { leaf{2, 4} })
      check(function(a) return a:t():index_select(1, { 3 }) end, { leaf{2, 3} })
    end)

    it("gather scatters the gradient back", function()
      local idx = ilist{ { 1, 1 }, { 2, 3 }, { 4, 1 } }
      check(function(a) return distill.gather(a, 2, idx) end, { leaf{3, 4} })
      check(function(a) return a:gather(1, ilist{ { 1, 3, 3, 2 } }) end, { leaf{3, 4} })
      check(function(a) return a:t():gather(2, ilist{ { 1 }, { 3 } }) end, { leaf{3, 2} })
    end)

    it("scatter_add passes the gradient to self and gathers it for src", function()
      local idx = ilist{ { 1, 2 }, { 3, 1 } }
      local sa = function(a, s) return distill.scatter_add(a, 1, idx, s) end
      check(sa, { leaf{3, 4}, leaf{2, 2} })
      check(sa, { leaf{3, 4}, leaf{3, 3} })   -- src larger than the index
      check(sa, { const{3, 4}, leaf{2, 2} })
      check(function(a, s) return a:scatter_add(2, idx, s:t()) end, { leaf{2, 3}, leaf{2, 2} })
    end)

    it("masked_fill blocks the gradient where the mask is set", function()
      local mask = distill.tensor({ 1, 0, 1, 0 }, "uint8")
      check(function(a) return distill.masked_fill(a, mask, 5) end, { leaf{3, 4} })
      check(function(a) return a:t():masked_fill(distill.tensor({ 0, 1, 1 }, "uint8"), -1) end,
        { leaf{3, 3} })
      local a = leaf{2, 4}
      distill.masked_fill(a, mask, 0):sum():backward()
      assert.are.same({ { 0, 1, 0, 1 }, { 0, 1, 0, 1 } }, a.grad:totable())
    end)

    it("cat cuts the gradient per input", function()
      check(function(a, b) return distill.cat({ a, b }, 2) end, { leaf{3, 4}, leaf{3, 2} })
      check(function(a, b, c) return distill.cat({ a, b:t(), c }) end,
        { leaf{2, 3}, leaf{3, 1}, const{4, 3} })
      check(function(a, b) return distill.cat({ a, distill.zeros{0}, b }, 1) end,
        { leaf{2}, leaf{3} })
    end)

    it("stack selects the gradient per input", function()
      check(function(a, b) return distill.stack({ a, b }) end, { leaf{3, 4}, leaf{3, 4} })
      check(function(a, b) return distill.stack({ a:t(), b }, -1) end, { leaf{4, 3}, const{3, 4} })
      check(function(a) return distill.stack({ a }, 2) end, { leaf{1, 3} })
    end)

    it("repeat sums the copies", function()
      check(function(a) return a:repeat_tensor{ 2, 1, 3 } end, { leaf{3, 4} })
      check(function(a) return distill.repeat_tensor(a:t(), { 2, 2 }) end, { leaf{2, 3} })
      check(function(a) return a:repeat_tensor{ 1, 1 } end, { leaf{2, 3} })
      -- 5 dims all repeated need 10 > 8 dims in one reshape: reduced one by one
      check(function(a) return a:repeat_tensor{ 2, 2, 2, 2, 2 } end, { leaf{2, 1, 2, 1, 2} },
        { max_checks = 8 })
    end)

    it("split and chunk pieces carry gradients", function()
      check(function(a)
        local p = distill.split(a, { 1, 3 }, 2)
        return { p[1], p[2] * 2 }
      end, { leaf{2, 4} })
      check(function(a) return a:chunk(2, 1)[2] end, { leaf{4, 2} })
    end)
  end)

  describe("elementwise", function()
    it("add, sub, mul, div with broadcasting (row vs matrix, scalar tensor)", function()
      for _, op in ipairs{ "add", "sub", "mul" } do
        local f = function(a, b) return distill[op](a, b) end
        check(f, { leaf{3, 4}, leaf{3, 4} })
        check(f, { leaf{3, 4}, leaf{4} })
        check(f, { leaf{3, 1}, leaf{1, 4} })
        check(f, { leaf{}, leaf{2, 3} })
        check(f, { const{3, 4}, leaf{4} })
        check(function(a, b) return distill[op](a:t(), b) end, { leaf{4, 3}, leaf{3, 1} })
      end
      check(function(a, b) return a / b end, { leaf{3, 4}, positive{4} })
      check(function(a, b) return a / b end, { const{3, 4}, positive{3, 1} })
      check(function(a, b) return a:t() / b end, { leaf{4, 3}, positive{} })
    end)

    it("add and sub with alpha", function()
      check(function(a, b) return a:add(b, 0.5) end, { leaf{3}, leaf{2, 3} })
      check(function(a, b) return distill.sub(a, b, 2) end, { leaf{3}, leaf{3} })
    end)

    it("pow to the base and, where the base is positive, to the exponent", function()
      check(function(a, b) return a ^ b end, { positive{3, 4}, leaf{3, 4} })
      check(function(a, b) return distill.pow(a, b) end, { positive{3, 4}, leaf{4} })
      check(function(a, b) return a:t() ^ b end, { positive{4, 3}, const{3, 1} })
      local base = ft{ -2, 0, 3 }
      base.requires_grad = true
      local e = ft{ 2, 2, 2 }
      e.requires_grad = true
      (base ^ e):sum():backward()
      assert.are.same({ -4, 0, 6 }, base.grad:totable())
      close(e.grad, ft{ 0, 0, 9 * math.log(3) })
    end)

    it("maximum and minimum send the gradient to the chosen side, halves on ties", function()
      for _, op in ipairs{ "maximum", "minimum" } do
        local f = function(a, b) return distill[op](a, b) end
        check(f, { spaced({ 3, 4 }, 0.1), spaced({ 3, 4 }, 0.1, 0.05) })
        check(f, { spaced({ 3, 4 }, 0.1), spaced({ 4 }, 0.1, 0.05) })
        check(function(a) return distill[op](a, 0.02) end, { spaced({ 3, 4 }, 0.1) })
      end
      local a, b = ft{ 1, 2, 3 }, ft{ 3, 2, 1 }
      a.requires_grad, b.requires_grad = true, true
      distill.maximum(a, b):sum():backward()
      assert.are.same({ 0, 0.5, 1 }, a.grad:totable())
      assert.are.same({ 1, 0.5, 0 }, b.grad:totable())
    end)

    it("scalar operands on either side", function()
      check(function(a) return a * 2 + 1 - 3 end, { leaf{3, 4} })
      check(function(a) return (2 - a) / 4 end, { leaf{3, 4} })
      check(function(a) return 3 / a end, { positive{3, 4} })
      check(function(a) return a ^ 3 end, { leaf{3, 4} })
      check(function(a) return a ^ 0.5 end, { positive{3, 4} })
      check(function(a) return 2 ^ a end, { leaf{3, 4} })
      check(function(a) return 2 * a:t() end, { leaf{3, 4} })
      local z = ft{ 0, 1 }
      z.requires_grad = true
      (z ^ 0):sum():backward()
      assert.are.same({ 0, 0 }, z.grad:totable())
    end)

    it("unary ops", function()
      local smooth = { "neg", "exp", "sigmoid", "tanh" }
      for _, op in ipairs(smooth) do
        check(function(a) return a[op](a) end, { leaf{3, 4} })
        check(function(a) return distill[op](a:t()) end, { leaf{2, 3} })
      end
      for _, op in ipairs{ "log", "sqrt", "rsqrt" } do
        check(function(a) return a[op](a) end, { positive{3, 4} })
        check(function(a) return distill[op](a:t()) end, { positive{2, 3} })
      end
      for _, op in ipairs{ "abs", "relu" } do
        check(function(a) return a[op](a) end, { off_zero({ 3, 4 }) })
        check(function(a) return distill[op](a:t()) end, { off_zero({ 2, 3 }) })
      end
      check(function(a) return -a end, { leaf{2, 3} })
      check(function(a) return a:sign() end, { off_zero({ 2, 3 }) })
    end)

    it("clamp passes the gradient inside the bounds", function()
      local x = spaced({ 3, 4 }, 0.1, 0.03)
      check(function(a) return a:clamp(-0.5, 0.5) end, { x })
      check(function(a) return a:clamp(nil, 0) end, { x })
      check(function(a) return distill.clamp(a:t(), 0.1) end, { x })
      local b = ft{ -1, 0, 0.5, 1, 2 }
      b.requires_grad = true
      b:clamp(0, 1):sum():backward()
      assert.are.same({ 0, 1, 1, 1, 0 }, b.grad:totable())
    end)

    it("where routes gradients by the condition", function()
      local cond = distill.tensor({ { 1, 0, 1, 0 } }, "uint8")
      check(function(a, b) return distill.where(cond, a, b) end, { leaf{3, 4}, leaf{3, 4} })
      check(function(a, b) return distill.where(cond, a, b) end, { leaf{3, 1}, leaf{4} })
      check(function(a) return distill.where(cond, a, 0) end, { leaf{2, 4} })
      check(function(b) return distill.where(cond, 1.5, b:t()) end, { leaf{4, 2} })
    end)

    it("comparisons never require grad", function()
      local a, b = leaf{3}, leaf{3}
      for _, op in ipairs{ "eq", "ne", "lt", "le", "gt", "ge" } do
        local r = a[op](a, b)
        assert.is_false(r.requires_grad)
        assert.is_nil(r.grad_fn)
        assert.is_false(a[op](a, 0).requires_grad)
      end
    end)
  end)

  describe("reductions", function()
    it("sum and mean over all, one, several and negative dims", function()
      for _, op in ipairs{ "sum", "mean" } do
        check(function(a) return a[op](a) end, { leaf{3, 4} })
        check(function(a) return a[op](a, 2) end, { leaf{rnd(1, 3), rnd(1, 4)} })
        check(function(a) return a[op](a, { 1, 3 }, true) end, { leaf{2, 3, 2} })
        check(function(a) return a[op](a, -1) end, { leaf{1, 4} })
        check(function(a) return distill[op](a:t(), 1) end, { leaf{3, 2} })
      end
    end)

    it("max and min with a dim send the gradient to the argmax", function()
      for _, op in ipairs{ "max", "min" } do
        check(function(a) return (a[op](a, 2)) end, { spaced({ 3, 4 }, 0.1) })
        check(function(a) return (a[op](a, 1, true)) end, { spaced({ 3, 4 }, 0.1) })
        check(function(a) return (a:t()[op](a:t(), 1)) end, { spaced({ 2, 3 }, 0.1) })
      end
      local x = ft{ { 1, 3, 3 }, { 2, 0, 2 } }
      x.requires_grad = true
      local v = x:max(2)
      v:sum():backward()
      assert.are.same({ { 0, 1, 0 }, { 1, 0, 0 } }, x.grad:totable())
    end)

    it("max and min over everything split ties evenly", function()
      check(function(a) return a:max() end, { spaced({ 3, 4 }, 0.1) })
      check(function(a) return distill.min(a:t()) end, { spaced({ 3, 4 }, 0.1) })
      local x = ft{ 1, 3, 3, -1 }
      x.requires_grad = true
      x:max():backward()
      assert.are.same({ 0, 0.5, 0.5, 0 }, x.grad:totable())
    end)

    it("var and std with either correction", function()
      for _, op in ipairs{ "var", "std" } do
        check(function(a) return a[op](a) end, { leaf{3, 4} })
        check(function(a) return a[op](a, 2) end, { leaf{3, 4} })
        check(function(a) return a[op](a, 1, true, { correction = 0 }) end, { leaf{3, 2} })
        check(function(a) return a[op](a:t(), { 1 }, { unbiased = false }) end, { leaf{2, 3} })
      end
    end)

    it("norm for p = 2, 3, 1 and inf; zero at a zero norm", function()
      check(function(a) return a:norm() end, { leaf{3, 4} })
      check(function(a) return a:norm(2, 2) end, { leaf{3, 4} })
      check(function(a) return a:norm(3, 1, true) end, { off_zero({ 3, 4 }) })
      check(function(a) return a:norm(1) end, { off_zero({ 3, 4 }) })
      check(function(a) return a:t():norm("inf", 1) end, { spaced({ 3, 4 }, 0.1, 0.03) })
      check(function(a) return a:norm(1.5, 2) end, { off_zero({ 2, 3 }) })
      local z = distill.zeros{ 2, 3 }
      z.requires_grad = true
      z:norm(2, 2):sum():backward()
      assert.are.same({ { 0, 0, 0 }, { 0, 0, 0 } }, z.grad:totable())
      local y = ft{ { 0, 0 }, { 3, 4 } }
      y.requires_grad = true
      y:norm(2, 2):sum():backward()
      close(y.grad, ft{ { 0, 0 }, { 0.6, 0.8 } })
    end)

    it("logsumexp weights by softmax", function()
      check(function(a) return a:logsumexp(2) end, { leaf{3, 4} })
      check(function(a) return a:logsumexp() end, { leaf{2, 3} })
      check(function(a) return a:t():logsumexp(1, true) end, { leaf{3, 2} })
    end)

    it("prod, including slices with one and with two zeros", function()
      check(function(a) return a:prod(2) end, { leaf{3, 4} })
      check(function(a) return a:prod() end, { leaf{2, 3} })
      local x = ft{ { 2, 0, 3 }, { 0, 0, 5 }, { 1, 2, 3 } }
      x.requires_grad = true
      x:prod(2):sum():backward()
      assert.are.same({ { 0, 6, 0 }, { 0, 0, 0 }, { 6, 3, 2 } }, x.grad:totable())
      check(function(a) return a:prod(2) end, { x:detach():clone():requires_grad_() })
    end)

    it("argmax and argmin never require grad", function()
      local a = leaf{3, 4}
      assert.is_false(a:argmax().requires_grad)
      assert.is_false(a:argmin(2).requires_grad)
      local _, idx = a:max(2)
      assert.is_false(idx.requires_grad)
    end)
  end)

  describe("recording", function()
    -- op name -> function of (a, b) on 3 x 4 operands (b: 4 x 3 for products)
    local ops = {
      mm = function(a, b) return distill.mm(a, b) end,
      matmul = function(a, b) return distill.matmul(a:view{1, 3, 4}, b) end,
      linear = function(a, b) return distill.linear(a, b:t(), b:select(1, 1)) end,
      gather = function(a) return a:gather(2, ilist{ { 1 }, { 2 }, { 4 } }) end,
      cat = function(a) return distill.cat({ a, a }, 2) end,
      repeat_tensor = function(a) return a:repeat_tensor{ 2, 1 } end,
      masked_fill = function(a) return a:masked_fill(a:gt(0), 0) end,
      add = function(a, b) return a + b:t() end,
      pow = function(a) return a:abs() ^ 1.5 end,
      maximum = function(a, b) return distill.maximum(a, b:t()) end,
      tanh = function(a) return a:tanh() end,
      clamp = function(a) return a:clamp(-0.3, 0.3) end,
      where = function(a, b) return distill.where(a:gt(0), a, b:t()) end,
      sum = function(a) return a:sum(2) end,
      std = function(a) return a:std(1) end,
      norm = function(a) return a:norm(3, 2) end,
      logsumexp = function(a) return a:logsumexp(1) end,
      prod = function(a) return a:prod() end,
      max = function(a) return a:max() end,
    }

    it("computes the same values with and without recording", function()
      for name, f in pairs(ops) do
        local a, b = const{3, 4}, const{4, 3}
        local plain = f(a, b)
        a.requires_grad, b.requires_grad = true, true
        local recorded = f(a, b)
        assert(recorded.requires_grad, name .. " did not record")
        same_values(plain, recorded)
      end
    end)

    it("records nothing under no_grad", function()
      for name, f in pairs(ops) do
        local a, b = leaf{3, 4}, leaf{4, 3}
        local r = distill.no_grad(function() return f(a, b) end)
        assert(not r.requires_grad and r.grad_fn == nil, name .. " recorded under no_grad")
      end
    end)

    it("names the nodes", function()
      local a, b = leaf{2, 2}, leaf{2, 2}
      assert.are.equal("MulBackward", (a * b).grad_fn)
      assert.are.equal("LinearBackward", distill.linear(a, b).grad_fn)
      assert.are.equal("SumBackward", a:sum().grad_fn)
      assert.are.equal("CatBackward", distill.cat{ a, b }.grad_fn)
    end)

    it("catches in-place writes to a tensor a product saved", function()
      local a, b = leaf{2, 3}, const{3, 2}
      local y = distill.mm(a, b)
      b:add_(1)   -- b is outside the graph, so the write itself is allowed
      h.fails("modified by an in-place operation", function() y:sum():backward() end)
    end)

    it("accumulates through a small network", function()
      local x, w, b = const{5, 3}, leaf{4, 3}, leaf{4}
      check(function(w_, b_)
        local h = distill.linear(x, w_, b_):relu()
        return (h * h):mean() + h:logsumexp(2):sum() / 10
      end, { w, b })
    end)
  end)

  describe("in-place ops on tensors that require grad", function()
    local inplace = {
      add_ = function(t) t:add_(1) end,
      sub_ = function(t) t:sub_(distill.ones{3}, 2) end,
      mul_ = function(t) t:mul_(2) end,
      div_ = function(t) t:div_(2) end,
      pow_ = function(t) t:pow_(2) end,
      neg_ = function(t) t:neg_() end,
      abs_ = function(t) t:abs_() end,
      exp_ = function(t) t:exp_() end,
      log_ = function(t) t:log_() end,
      sqrt_ = function(t) t:sqrt_() end,
      relu_ = function(t) t:relu_() end,
      sigmoid_ = function(t) t:sigmoid_() end,
      tanh_ = function(t) t:tanh_() end,
      clamp_ = function(t) t:clamp_(0, 1) end,
      masked_fill_ = function(t) t:masked_fill_(distill.tensor({ 1, 0, 1 }, "uint8"), 0) end,
      scatter_add_ = function(t) t:scatter_add_(1, ilist{ 1 }, distill.ones{1}) end,
    }

    it("raise the lt_check_inplace error on leaves and on recorded results", function()
      for name, f in pairs(inplace) do
        local x = leaf{3}
        local ok, err = pcall(f, x)
        assert(not ok, name .. " did not raise on a leaf")
        assert(err:find("in-place operation on a tensor that requires grad", 1, true), err)
        local y = x * 2
        ok, err = pcall(f, y)
        assert(not ok, name .. " did not raise on a recorded result")
        assert(err:find(name, 1, true), err)
      end
    end)

    it("are allowed under no_grad", function()
      local x = leaf{3}
      distill.no_grad(function()
        for _, f in pairs(inplace) do
          f(x)
        end
      end)
      assert.is_true(x.requires_grad)
    end)

    it("refuse an operand that requires grad (its gradient would be lost)", function()
      h.fails("Tensor:add_: argument #2 requires grad", function() distill.zeros{3}:add_(leaf{3}) end)
      local x = distill.zeros{3}
      distill.no_grad(function() x:mul_(leaf{3}) end)   -- fine without recording
    end)

    it("scatter_add_ refuses a src that requires grad", function()
      h.fails("out-of-place scatter_add", function()
        distill.zeros{3}:scatter_add_(1, ilist{ 1 }, leaf{1})
      end)
    end)
  end)
end)

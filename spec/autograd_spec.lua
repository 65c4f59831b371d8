local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local leaf = h.leaf

local function values(t)
  return t:contiguous():view{-1}:totable()
end

describe("autograd", function()
  before_each(function()
    distill.manual_seed(7)
  end)

  describe("leaves and flags", function()
    it("starts without requires_grad and without grad", function()
      local x = distill.zeros{2}
      assert.is_false(x.requires_grad)
      assert.is_nil(x.grad)
      assert.is_true(x.is_leaf)
      assert.is_nil(x.grad_fn)
    end)

    it("records ops on tensors that require grad", function()
      local x = leaf{2, 3}
      local y = x:t()
      assert.is_true(y.requires_grad)
      assert.is_false(y.is_leaf)
      assert.are.equal("TransposeBackward", y.grad_fn)
    end)

    it("only lets float32 leaves require grad", function()
      h.fails("only float32 tensors can require gradients", function() distill.zeros({2}, "int64").requires_grad = true end)
    end)

    it("refuses to turn off requires_grad on a non-leaf", function()
      local y = leaf{2}:view{2}
      h.fails("only leaf tensors", function() y.requires_grad = false end)
    end)

    it("requires_grad_ returns the tensor and sets the flag", function()
      local x = distill.zeros{3}
      assert.are.equal(x, x:requires_grad_())
      assert.is_true(x.requires_grad)
      x:requires_grad_(false)
      assert.is_false(x.requires_grad)
    end)

    it("detach gives a view outside the graph sharing storage", function()
      local x = leaf{2, 2}
      local d = x:t():detach()
      assert.is_false(d.requires_grad)
      assert.is_true(d:shares_storage(x))
      local d2 = x:view{4}
      d2:detach_()
      assert.is_nil(d2.grad_fn)
      assert.is_false(d2.requires_grad)
    end)
  end)

  describe("backward", function()
    it("seeds a one-element root with 1", function()
      local x = leaf{1}
      x:view{}:backward()
      assert.are.same({ 1 }, values(x.grad))
    end)

    it("needs an explicit gradient for a non-scalar root", function()
      local x = leaf{2, 2}
      h.fails("Tensor:backward: a gradient can be implied only for a one-element", function() x:t():backward() end)
    end)

    it("checks the shape of an explicit gradient", function()
      local x = leaf{2, 3}
      h.fails("gradient of shape [2, 3] given for a tensor of shape [3, 2]", function() x:t():backward(distill.ones{2, 3}) end)
    end)

    it("routes an explicit gradient through views", function()
      local x = leaf{2, 3}
      local g = distill.tensor{{1, 2}, {3, 4}, {5, 6}}:float()
      x:t():backward(g)
      assert.are.same({ { 1, 3, 5 }, { 2, 4, 6 } }, x.grad:totable())
    end)

    it("accumulates into .grad across backward calls until reset", function()
      local x = leaf{3}
      x:view{3}:backward(distill.ones{3})
      x:view{3}:backward(distill.ones{3})
      assert.are.same({ 2, 2, 2 }, values(x.grad))
      x.grad = nil
      x:view{3}:backward(distill.ones{3})
      assert.are.same({ 1, 1, 1 }, values(x.grad))
    end)

    it("adds the gradients of a tensor used twice", function()
      local x = leaf{2}
      local y = distill.add(x:view{2}, x:view{2})
      y:backward(distill.tensor{1.5, -1}:float())
      assert.are.same({ 3, -2 }, values(x.grad))
    end)

    it("errors when backward runs through a freed graph, unless retain_graph", function()
      local x = leaf{2}
      local y = distill.mul(x, x)
      y:backward(distill.ones{2}, { retain_graph = true })
      y:backward(distill.ones{2})
      h.fails("second time", function() y:backward(distill.ones{2}) end)
    end)

    it("rejects unknown options", function()
      local x = leaf{1}
      h.fails("unknown option 'retian_graph'", function() x:view{}:backward({ retian_graph = true }) end)
    end)

    it("errors for a tensor outside the graph", function()
      h.fails("does not require grad", function() distill.ones{1}:backward() end)
    end)

    it("detects in-place writes to tensors saved for backward", function()
      local x = leaf{3}
      local y = x:view{3}
      local z = distill.mul(y, y)
      distill.no_grad(function() y:fill_(2) end)
      h.fails("modified by an in-place operation", function() z:backward(distill.ones{3}) end)
    end)

    it("refuses in-place writes to tensors in the graph while grad is on", function()
      local x = leaf{3}
      h.fails("in-place operation on a tensor that requires grad", function() x[1] = 5 end)
      distill.no_grad(function() x[1] = 5 end)
      assert.are.equal(5, x[1])
    end)

    it("frees a long chain without exhausting the C stack", function()
      local x = leaf{4}
      local y = x
      for _ = 1, 100000 do
        y = y:view{4}
      end
      y:backward(distill.ones{4})
      assert.are.same({ 1, 1, 1, 1 }, values(x.grad))
      y = nil
      collectgarbage()
    end)
  end)

  describe("grad modes", function()
    it("no_grad records nothing and returns the function's results", function()
      local x = leaf{2}
      local a, b = distill.no_grad(function(v) return x:view{2}, v end, 42)
      assert.is_false(a.requires_grad)
      assert.are.equal(42, b)
    end)

    it("restores the mode when the function errors", function()
      assert.is_true(distill.is_grad_enabled())
      local ok = pcall(distill.no_grad, function() error("boom") end)
      assert.is_false(ok)
      assert.is_true(distill.is_grad_enabled())
    end)

    it("enable_grad re-enables inside no_grad", function()
      local x = leaf{2}
      local y = distill.no_grad(function()
        return distill.enable_grad(function() return x:view{2} end)
      end)
      assert.is_true(y.requires_grad)
    end)

    it("set_grad_enabled returns the previous mode", function()
      assert.is_true(distill.set_grad_enabled(false))
      assert.is_false(distill.is_grad_enabled())
      assert.is_false(distill.set_grad_enabled(true))
    end)

    it("rejects a non-function", function()
      h.fails("distill.no_grad: expected a function, got number", distill.no_grad, 3)
    end)
  end)

  describe("gradient checks of the view ops", function()
    local cases = {
      { "view", function(a) return a:view{4, 3} end },
      { "reshape of a transpose", function(a) return a:t():reshape{12} end },
      { "narrow", function(a) return a:narrow(2, 2, 3) end },
      { "select", function(a) return a:select(1, -1) end },
      { "index sugar", function(a) return a[{ 2, { 1, 3 } }] end },
      { "transpose", function(a) return a:transpose(1, 2) end },
      { "permute", function(a) return a:view{3, 2, 2}:permute{3, 1, 2} end },
      { "squeeze/unsqueeze", function(a) return a:unsqueeze(2):squeeze() end },
      { "expand", function(a) return a:narrow(1, 1, 1):expand{5, 4} end },
      { "flatten", function(a) return a:view{3, 2, 2}:flatten(2) end },
      { "contiguous of a transpose", function(a) return a:t():contiguous() end },
      { "clone", function(a) return a:clone() end },
      { "float", function(a) return a:t():float() end },
    }
    for _, case in ipairs(cases) do
      it(case[1], function()
        assert.is_true(gradcheck.gradcheck(case[2], { leaf{3, 4} }))
      end)
    end

    it("fails when the analytic gradient is wrong", function()
      -- cutting the graph inside fn makes the analytic gradient zero
      local fn = function(a)
        return distill.no_grad(function() return a:clone() end):add(a:view{3, 4})
      end
      local ok, report = gradcheck.gradcheck(fn, { leaf{3, 4} })
      assert.is_false(ok)
      assert.truthy(report:find("gradcheck failed", 1, true))
    end)
  end)
  describe("node storage", function()
    it("backpropagates through a node with more inputs than fit on the stack", function()
      -- cat of 12 inputs: one node, 12 edges (run_node keeps 8 on the C stack)
      local xs, parts = {}, {}
      for i = 1, 12 do
        xs[i] = distill.full({ 2, 3 }, i + 0.0)
        xs[i].requires_grad = true
        parts[i] = xs[i] * i
      end
      local y = distill.cat(parts, 1)
      assert.are.same({ 24, 3 }, y:shape())
      local loss = (y * y):sum()
      loss:backward()
      for i = 1, 12 do
        -- d/dx sum((i x)^2) = 2 i^2 x = 2 i^3
        assert.are.same({ { 2 * i ^ 3, 2 * i ^ 3, 2 * i ^ 3 }, { 2 * i ^ 3, 2 * i ^ 3, 2 * i ^ 3 } },
          xs[i].grad:totable())
      end
    end)

    it("frees a wide graph (more children than the release stack holds)", function()
      local baseline = h.settled_live_bytes()
      do
        local x = distill.randn { 100, 100 }
        x.requires_grad = true
        local parts = {}
        for i = 1, 80 do
          parts[i] = (x * i):narrow(1, i, 1)
        end
        local y = distill.cat(parts, 1)
        parts = nil
        assert.are.same({ 80, 100 }, y:shape())
        x = nil
        y = nil
      end
      assert.are.equal(baseline, h.settled_live_bytes())
    end)

    it("frees a chain of 100000 nodes without recursion", function()
      local baseline = h.settled_live_bytes()
      do
        local x = distill.ones { 2 }
        x.requires_grad = true
        local y = x
        for _ = 1, 100000 do
          y = y + 1
        end
        assert.are.equal(200002, y:sum():item())
      end
      assert.are.equal(baseline, h.settled_live_bytes())
    end)
  end)
end)

local distill = require "distill"
local gradcheck = require "distill.gradcheck"
local h = require "support.helpers"

local leaf = h.leaf

-- The same loss written with plain differentiable ops (and a B x B mask,
-- which the fused op avoids).
local function reference_loss(z, t, labels, opts)
  local tau = opts.tau or 0.1
  local eps = opts.eps or 1e-8
  local b = z:size(1)
  local zh = distill.normalize(z, { dim = 2, eps = eps })
  local th = distill.normalize(t, { dim = 2, eps = eps })
  local logits = zh:matmul(th:t()) / tau
  local mask
  if opts.policy == "class" then
    mask = labels:view{b, 1}:eq(labels:view{1, b}):float()
  else
    mask = distill.eye(b)
  end
  local weights = mask / mask:sum(2, true)
  local function anchored(l, w)
    return -(distill.log_softmax(l, 2) * w):sum() / b
  end
  local loss = anchored(logits, weights)
  if opts.symmetric then
    loss = (loss + anchored(logits:t(), weights:t())) / 2
  end
  return loss
end

local function max_abs_diff(a, b)
  local fa, fb = a:contiguous():view{-1}, b:contiguous():view{-1}
  local worst = 0
  for i = 1, fa:numel() do
    worst = math.max(worst, math.abs(fa[i] - fb[i]))
  end
  return worst
end

local function max_abs(a)
  local f = a:contiguous():view{-1}
  local worst = 0
  for i = 1, f:numel() do
    worst = math.max(worst, math.abs(f[i]))
  end
  return worst
end

local variants = {
  { policy = "instance", symmetric = false },
  { policy = "instance", symmetric = true },
  { policy = "class", symmetric = false },
  { policy = "class", symmetric = true },
}

local function describe_variant(v)
  return ("%s policy, symmetric %s"):format(v.policy, tostring(v.symmetric))
end

describe("fsecd_loss", function()
  before_each(function()
    distill.manual_seed(11)
  end)

  describe("gradient check", function()
    for _, v in ipairs(variants) do
      it(describe_variant(v), function()
        local z, t = leaf{7, 5}, leaf{7, 5}
        local labels = distill.tensor{1, 2, 1, 3, 2, 1, 3}
        local opts = { policy = v.policy, symmetric = v.symmetric, tau = 0.5 }
        local ok, report = gradcheck.gradcheck(function(a, b)
          return distill.fsecd_loss(a, b, labels, opts)
        end, { z, t }, { eps = 1e-3 })
        assert.is_true(ok, report)
      end)
    end
  end)

  describe("equals the loss written from plain ops", function()
    local label_sets = {
      all_distinct = function(b) return distill.arange(1, b + 1) end,
      all_equal = function(b) return distill.ones({b}, "int64") end,
      duplicates = function(b) return distill.randint(1, 4, {b}) end,
    }
    for _, b in ipairs{ 1, 2, 7, 128, 1024 } do
      for name, make_labels in pairs(label_sets) do
        for _, v in ipairs(variants) do
          it(("B = %d, %s labels, %s"):format(b, name, describe_variant(v)), function()
            local d = b >= 128 and 32 or 6
            local z, t = leaf{b, d}, leaf{b, d}
            local labels = make_labels(b)
            local opts = { policy = v.policy, symmetric = v.symmetric }
            local fused = distill.fsecd_loss(z, t, labels, opts)
            fused:backward()
            local gz, gt = z.grad, t.grad
            z.grad, t.grad = nil, nil
            local plain = reference_loss(z, t, labels, opts)
            plain:backward()
            local scale = math.max(1, math.abs(plain:item()))
            assert.is_true(math.abs(fused:item() - plain:item()) <= 1e-5 * scale,
              ("fused %.8g vs plain %.8g"):format(fused:item(), plain:item()))
            local gscale = math.max(1e-3, max_abs(z.grad))
            assert.is_true(max_abs_diff(gz, z.grad) <= 1e-4 * gscale, "student gradient differs")
            assert.is_true(max_abs_diff(gt, t.grad) <= 1e-4 * math.max(1e-3, max_abs(t.grad)),
              "teacher gradient differs")
          end)
        end
      end
    end
  end)

  describe("defined edge cases", function()
    it("is 0 for a batch of one under the instance policy", function()
      local z = leaf{1, 8}
      local loss = distill.fsecd_loss(z, distill.randn{1, 8})
      assert.are.equal(0, loss:item())
      loss:backward()
      assert.are.equal(0, max_abs(z.grad))
    end)

    it("stays finite for a zero feature row", function()
      local z = leaf{3, 4}
      distill.no_grad(function() z[2]:zero_() end)
      local t = distill.randn{3, 4}
      distill.no_grad(function() t[3]:zero_() end)
      local loss = distill.fsecd_loss(z, t, distill.tensor{1, 2, 3}, { policy = "class" })
      loss:backward()
      local v = loss:item()
      assert.is_true(v == v and v < math.huge)
      local g = z.grad:view{-1}
      for i = 1, g:numel() do
        assert.is_true(g[i] == g[i] and math.abs(g[i]) < math.huge)
      end
    end)

    it("sends no gradient to teacher features that do not require grad", function()
      local z = leaf{4, 3}
      local t = distill.randn{4, 3}
      distill.fsecd_loss(z, t):backward()
      assert.is_nil(t.grad)
      assert.is_not_nil(z.grad)
    end)

    it("records nothing under no_grad", function()
      local z = leaf{4, 3}
      local loss = distill.no_grad(function() return distill.fsecd_loss(z, distill.randn{4, 3}) end)
      assert.is_false(loss.requires_grad)
    end)

    it("gives the same value for any number of threads", function()
      local code = [[
        local d = require "distill"
        d.manual_seed(5)
        local z, t = d.randn{512, 64}, d.randn{512, 64}
        local y = d.randint(1, 10, {512})
        io.write(string.format("%.17g", d.fsecd_loss(z, t, y, {policy = "class", symmetric = true}):item()))
      ]]
      local one, two = h.run_lua_with_threads(code, 1), h.run_lua_with_threads(code, 2)
      assert.are.equal(one, two)
      assert.is_true(#one > 0)
    end)
  end)

  describe("bad input", function()
    local function message(...)
      return h.err(distill.fsecd_loss, ...)
    end

    it("names mismatched shapes", function()
      assert.truthy(message(distill.randn{3, 4}, distill.randn{2, 4}):find(
        "distill.fsecd_loss: student embeddings [3, 4] and teacher features [2, 4]", 1, true))
      assert.truthy(message(distill.randn{3, 4}, distill.randn{3, 5}):find("same B and D", 1, true))
      assert.truthy(message(distill.randn{3}, distill.randn{3}):find("B x D", 1, true))
    end)

    it("checks the labels' length, dtype and range", function()
      local z, t = distill.randn{3, 4}, distill.randn{3, 4}
      assert.truthy(message(z, t, distill.tensor{1, 2}, { policy = "class" }):find(
        "2 labels for a batch of 3", 1, true))
      assert.truthy(message(z, t, distill.tensor{1.0, 2.0, 3.5}, { policy = "class" }):find(
        "labels must be a 1-d int64 tensor", 1, true))
      assert.truthy(message(z, t, distill.tensor{0, 1, 2}, { policy = "class" }):find(
        "label 0 at position 1 is out of range", 1, true))
      assert.truthy(message(z, t, distill.tensor{1, 2, 11}, { num_classes = 10 }):find(
        "label 11 at position 3 is out of range", 1, true))
    end)

    it("needs labels for the class policy", function()
      assert.truthy(message(distill.randn{3, 4}, distill.randn{3, 4}, nil, { policy = "class" })
        :find("the class policy needs labels", 1, true))
    end)

    it("checks options", function()
      local z, t = distill.randn{3, 4}, distill.randn{3, 4}
      assert.truthy(message(z, t, nil, { policy = "pairs" }):find(
        'policy must be "instance" or "class", got "pairs"', 1, true))
      assert.truthy(message(z, t, nil, { tau = 0 }):find("tau and eps must be > 0", 1, true))
      assert.truthy(message(z, t, nil, { temperature = 1 }):find("unknown option 'temperature'", 1, true))
      assert.truthy(message(z, distill.randn({3, 4}):long()):find("must be float32", 1, true))
    end)
  end)
end)

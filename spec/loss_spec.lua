local distill = require "distill"
local h = require "support.helpers"

local f32, long, flat, leaf, check = h.f32, h.long, h.flat, h.leaf, h.check
local assert_close = h.assert_close_with{ tol = 1e-5, format = "%.7g", strict = true, convert = true }

local function leaf_of(values)
  local t = f32(values)
  t.requires_grad = true
  return t
end

-- torch's per-row cross entropy with label smoothing eps (1-based target)
local function ref_ce(row, target, eps)
  eps = eps or 0
  local l, mean = h.logsumexp(row), 0
  for _, v in ipairs(row) do mean = mean + v / #row end
  return (1 - eps) * (l - row[target]) + eps * (l - mean)
end

local function random_labels(n, classes)
  local t = {}
  for i = 1, n do t[i] = math.random(1, classes) end
  return long(t)
end

local logits2 = { { 1, 2, 3 }, { 0.5, -1, 2 } }

describe("losses", function()
  before_each(function()
    distill.manual_seed(5)
    math.randomseed(5)
  end)

  describe("cross_entropy", function()
    it("matches the hand value log(e^1+e^2+e^3) - 3", function()
      local loss = distill.cross_entropy(f32{ { 1, 2, 3 } }, long{ 3 })
      assert.are.same({}, loss:shape())
      assert_close(math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 3, loss:item())
      assert_close(0.4076, loss:item(), 1e-4)
    end)

    it("supports every reduction", function()
      local a, b = ref_ce(logits2[1], 3), ref_ce(logits2[2], 1)
      local x, y = f32(logits2), long{ 3, 1 }
      assert_close({ a, b }, distill.cross_entropy(x, y, { reduction = "none" }))
      assert_close(a + b, distill.cross_entropy(x, y, { reduction = "sum" }))
      assert_close((a + b) / 2, distill.cross_entropy(x, y, { reduction = "mean" }))
      assert_close((a + b) / 2, distill.cross_entropy(x, y))
    end)

    it("applies label smoothing as torch", function()
      local a, b = ref_ce(logits2[1], 3, 0.1), ref_ce(logits2[2], 1, 0.1)
      local x, y = f32(logits2), long{ 3, 1 }
      assert_close((a + b) / 2, distill.cross_entropy(x, y, { label_smoothing = 0.1 }))
      assert_close({ a, b }, distill.cross_entropy(x, y, { label_smoothing = 0.1, reduction = "none" }))
      -- eps = 1 leaves only the uniform term
      assert_close(ref_ce(logits2[1], 1, 1), distill.cross_entropy(f32{ logits2[1] }, long{ 2 },
        { label_smoothing = 1 }))
    end)

    it("ignores targets equal to ignore_index and averages over the rest", function()
      local x = f32{ { 1, 2, 3 }, { 0.5, -1, 2 }, { 0, 0, 0 } }
      local a, c = ref_ce(logits2[1], 3), math.log(3)
      local y = long{ 3, 7, 2 }
      assert_close((a + c) / 2, distill.cross_entropy(x, y, { ignore_index = 7 }))
      assert_close(a + c, distill.cross_entropy(x, y, { ignore_index = 7, reduction = "sum" }))
      assert_close({ a, 0, c }, distill.cross_entropy(x, y, { ignore_index = 7, reduction = "none" }))
      -- ignore_index compares raw (1-based) labels, including in-range ones
      assert_close(a, distill.cross_entropy(x, long{ 3, 2, 2 }, { ignore_index = 2 }))
      -- the default -100 is ignored too
      assert_close(c, distill.cross_entropy(x, long{ -100, -100, 2 }))
      -- smoothing is masked at ignored positions as well
      local as, cs = ref_ce(logits2[1], 3, 0.2), math.log(3)
      assert_close((as + cs) / 2, distill.cross_entropy(x, y, { ignore_index = 7, label_smoothing = 0.2 }))
    end)

    it("gives NaN for a mean over no target, and zero gradient", function()
      local x = leaf{ 2, 3 }
      local loss = distill.cross_entropy(x, long{ 5, 5 }, { ignore_index = 5 })
      assert.is_true(loss:item() ~= loss:item())
      loss:backward()
      for _, v in ipairs(flat(x.grad)) do assert.are.equal(0, v) end
    end)

    it("handles N x C x d inputs like the flattened N*d x C problem", function()
      local x = distill.randn{ 2, 3, 4 }
      local y = long{ { 1, 2, 3, 1 }, { 3, 3, 2, 1 } }
      local out = distill.cross_entropy(x, y, { reduction = "none" })
      assert.are.same({ 2, 4 }, out:shape())
      local v, t, o = x:totable(), y:totable(), out:totable()
      for n = 1, 2 do
        for d = 1, 4 do
          local row = { v[n][1][d], v[n][2][d], v[n][3][d] }
          assert_close(ref_ce(row, t[n][d]), { o[n][d] }, 1e-5)
        end
      end
    end)

    it("works on non-contiguous logits", function()
      local base = f32{ { 1, 0.5 }, { 2, -1 }, { 3, 2 } }
      assert_close({ ref_ce(logits2[1], 3), ref_ce(logits2[2], 1) },
        distill.cross_entropy(base:t(), long{ 3, 1 }, { reduction = "none" }))
    end)

    it("validates targets, shapes and options", function()
      local function err_of(...)
        return h.err(distill.cross_entropy, ...)
      end
      assert.truthy(err_of(distill.randn{ 2, 10 }, long{ 1, 11 }):find(
        "distill.cross_entropy: target 11 out of range for 10 classes (labels count from 1)", 1, true))
      assert.truthy(err_of(distill.randn{ 2, 10 }, long{ 0, 1 }):find(
        "target 0 out of range for 10 classes", 1, true))
      assert.truthy(err_of(distill.randn{ 4, 3 }, long{ 1, 2, 3, 1, 2 }):find(
        "distill.cross_entropy: target has 5 entries but logits have 4 rows", 1, true))
      assert.truthy(err_of(distill.randn{ 2, 3 }, f32{ 1, 2 }):find(
        "target must be an int64 tensor of class labels, got float32", 1, true))
      assert.truthy(err_of(distill.randn{ 3 }, long{ 1 }):find(
        "logits must be N x C", 1, true))
      assert.truthy(err_of(distill.randn{ 2, 3 }, long{ 1, 2 }, { reduction = "avg" }):find(
        "reduction must be \"mean\", \"sum\" or \"none\", got \"avg\"", 1, true))
      assert.truthy(err_of(distill.randn{ 2, 3 }, long{ 1, 2 }, { smoothing = 0.1 }):find(
        "unknown option 'smoothing'", 1, true))
      assert.truthy(err_of(distill.randn{ 2, 3 }, long{ 1, 2 }, { label_smoothing = 2 }):find(
        "label_smoothing must be in [0, 1]", 1, true))
    end)

    it("passes gradcheck for every reduction, smoothing, ignore_index and shape", function()
      local n, c = math.random(2, 5), math.random(2, 6)
      local y = random_labels(n, c)
      for _, opts in ipairs{
        {}, { reduction = "sum" }, { reduction = "none" }, { label_smoothing = 0.2 },
        { label_smoothing = 0.3, reduction = "none" }, { ignore_index = y[1] },
      } do
        check(function(a) return distill.cross_entropy(a, y, opts) end, { leaf{ n, c } })
      end
      check(function(a) return distill.cross_entropy(a, long{ 2 }) end, { leaf{ 1, 4 } })
      check(function(a) return distill.cross_entropy(a, long{ { 1, 3 }, { 2, 2 } }, { label_smoothing = 0.1 }) end,
        { leaf{ 2, 3, 2 } })
      check(function(a) return distill.cross_entropy(a:t(), long{ 1, 3 }) end, { leaf{ 3, 2 } })
    end)
  end)

  describe("nll_loss", function()
    it("picks -logp of the target", function()
      local logp = f32{ { -1, -2, -3 }, { -0.5, -0.25, -4 } }
      assert_close(2, distill.nll_loss(f32{ { -1, -2, -3 } }, long{ 2 }))
      assert_close({ 3, 0.5 }, distill.nll_loss(logp, long{ 3, 1 }, { reduction = "none" }))
      assert_close(3.5, distill.nll_loss(logp, long{ 3, 1 }, { reduction = "sum" }))
      assert_close(1.75, distill.nll_loss(logp, long{ 3, 1 }))
      assert_close(3, distill.nll_loss(logp, long{ 3, 1 }, { ignore_index = 1 }))
    end)

    it("composes with log_softmax into cross_entropy", function()
      local x, y = distill.randn{ 4, 5 }, long{ 1, 5, 2, 2 }
      assert_close(distill.cross_entropy(x, y):item(), distill.nll_loss(distill.log_softmax(x, 2), y))
    end)

    it("validates targets", function()
      h.fails("distill.nll_loss: target 4 out of range for 3 classes (labels count from 1)", distill.nll_loss, distill.randn{ 2, 3 }, long{ 1, 4 })
      h.fails("target has 3 entries but log-probabilities have 2 rows", distill.nll_loss, distill.randn{ 2, 3 }, long{ 1, 2, 3 })
    end)

    it("passes gradcheck", function()
      local y = long{ 2, 3, 1 }
      for _, opts in ipairs{ {}, { reduction = "sum" }, { reduction = "none" }, { ignore_index = 3 } } do
        check(function(a) return distill.nll_loss(a, y, opts) end, { leaf{ 3, 3 } })
      end
      check(function(a) return distill.nll_loss(a, long{ 1 }) end, { leaf{ 1, 2 } })
    end)
  end)

  describe("kl_div", function()
    -- input: log q, target: p; pointwise p * (log p - log q), 0 where p == 0
    local logq = { { math.log(0.2), math.log(0.3), math.log(0.5) }, { math.log(0.6), math.log(0.3), math.log(0.1) } }
    local p = { { 0.5, 0.5, 0 }, { 0.1, 0.2, 0.7 } }
    local function pointwise()
      local out = {}
      for i = 1, 2 do
        for j = 1, 3 do
          out[#out + 1] = p[i][j] == 0 and 0 or p[i][j] * (math.log(p[i][j]) - logq[i][j])
        end
      end
      return out
    end

    it("supports none, sum, mean and batchmean", function()
      local ref, total = pointwise(), 0
      for _, v in ipairs(ref) do total = total + v end
      local x, t = f32(logq), f32(p)
      assert_close(ref, distill.kl_div(x, t, { reduction = "none" }))
      assert_close(total, distill.kl_div(x, t, { reduction = "sum" }))
      assert_close(total / 6, distill.kl_div(x, t, { reduction = "mean" }))
      assert_close(total / 6, distill.kl_div(x, t))
      assert_close(total / 2, distill.kl_div(x, t, { reduction = "batchmean" }))
    end)

    it("accepts log-probability targets", function()
      local logp = {}
      for i = 1, 2 do
        logp[i] = {}
        for j = 1, 3 do logp[i][j] = p[i][j] > 0 and math.log(p[i][j]) or -math.huge end
      end
      local ref, total = pointwise(), 0
      for _, v in ipairs(ref) do total = total + v end
      assert_close(total / 2, distill.kl_div(f32(logq), f32(logp), { reduction = "batchmean", log_target = true }))
    end)

    it("validates the reduction and shapes", function()
      h.fails("\"mean\", \"batchmean\", \"sum\" or \"none\"", distill.kl_div, distill.randn{ 2 }, distill.randn{ 2 }, { reduction = "avg" })
      h.fails("distill.kl_div: input of shape [2, 3] and target of shape [3, 2] differ", distill.kl_div, distill.randn{ 2, 3 }, distill.randn{ 3, 2 })
    end)

    it("passes gradcheck into both inputs", function()
      local n, c = math.random(1, 4), math.random(2, 5)
      local function probs()
        local t = distill.softmax(distill.randn{ n, c }, 2)
        t.requires_grad = true
        return t
      end
      for _, red in ipairs{ "batchmean", "mean", "sum", "none" } do
        check(function(a, b) return distill.kl_div(a, b, { reduction = red }) end,
          { distill.log_softmax(distill.randn{ n, c }, 2):requires_grad_(), probs() }, { eps = 1e-3 })
      end
      check(function(a, b) return distill.kl_div(a, b, { reduction = "batchmean", log_target = true }) end,
        { leaf{ n, c }, leaf{ n, c } })
    end)
  end)

  describe("regression losses", function()
    local a, b = { { 1, 2 }, { 3, 4 } }, { { 1.5, 0 }, { 3, 8 } }
    -- differences: -0.5, 2, 0, -4

    it("mse_loss", function()
      assert_close({ 0.25, 4, 0, 16 }, distill.mse_loss(f32(a), f32(b), { reduction = "none" }))
      assert_close(20.25, distill.mse_loss(f32(a), f32(b), { reduction = "sum" }))
      assert_close(20.25 / 4, distill.mse_loss(f32(a), f32(b)))
    end)

    it("l1_loss", function()
      assert_close({ 0.5, 2, 0, 4 }, distill.l1_loss(f32(a), f32(b), { reduction = "none" }))
      assert_close(6.5, distill.l1_loss(f32(a), f32(b), { reduction = "sum" }))
      assert_close(6.5 / 4, distill.l1_loss(f32(a), f32(b)))
    end)

    it("smooth_l1_loss with beta 1, another beta and beta 0", function()
      assert_close({ 0.125, 1.5, 0, 3.5 }, distill.smooth_l1_loss(f32(a), f32(b), { reduction = "none" }))
      assert_close(5.125 / 4, distill.smooth_l1_loss(f32(a), f32(b)))
      assert_close(5.125, distill.smooth_l1_loss(f32(a), f32(b), { reduction = "sum" }))
      -- beta 3: 0.5 d^2 / 3 below 3, |d| - 1.5 above
      assert_close({ 0.25 / 6, 4 / 6, 0, 2.5 },
        distill.smooth_l1_loss(f32(a), f32(b), { reduction = "none", beta = 3 }))
      assert_close({ 0.5, 2, 0, 4 }, distill.smooth_l1_loss(f32(a), f32(b), { reduction = "none", beta = 0 }))
    end)

    it("validates shapes, dtypes and options", function()
      h.fails("distill.mse_loss: input of shape [2] and target of shape [3] differ", distill.mse_loss, distill.randn{ 2 }, distill.randn{ 3 })
      h.fails("must be float32", distill.l1_loss, distill.randn{ 2 }, long{ 1, 2 })
      h.fails("reduction must be \"mean\", \"sum\" or \"none\", got \"batchmean\"", distill.mse_loss, distill.randn{ 2 }, distill.randn{ 2 }, { reduction = "batchmean" })
      h.fails("unknown option 'beta'", distill.mse_loss, distill.randn{ 2 }, distill.randn{ 2 }, { beta = 1 })
      h.fails("beta must be >= 0", distill.smooth_l1_loss, distill.randn{ 2 }, distill.randn{ 2 }, { beta = -1 })
    end)

    -- pairs whose differences stay at least `gap` away from the kinks
    local function pair_away(shape, kinks, gap)
      local x, y = distill.randn(shape), distill.randn(shape)
      local xv, yv = x:view{-1}, y:view{-1}
      for i = 1, xv:numel() do
        local d = xv[i] - yv[i]
        for _, k in ipairs(kinks) do
          if math.abs(math.abs(d) - k) < gap then
            local sign = d >= 0 and 1 or -1
            local mag = math.abs(d) >= k and k + gap or math.max(k - gap, 0)
            xv[i] = yv[i] + sign * mag
          end
        end
      end
      x.requires_grad = true
      y.requires_grad = true
      return x, y
    end

    it("pass gradcheck into both inputs", function()
      local shape = { math.random(1, 3), math.random(1, 4) }
      for _, red in ipairs{ "mean", "sum", "none" } do
        check(function(x, y) return distill.mse_loss(x, y, { reduction = red }) end, { leaf(shape), leaf(shape) })
        local x, y = pair_away(shape, { 0 }, 0.05)
        check(function(u, v) return distill.l1_loss(u, v, { reduction = red }) end, { x, y })
        x, y = pair_away(shape, { 0.5 }, 0.05)
        check(function(u, v) return distill.smooth_l1_loss(u, v, { reduction = red, beta = 0.5 }) end, { x, y })
      end
      local x, y = pair_away({ 1, 3 }, { 1 }, 0.05)
      check(function(u, v) return distill.smooth_l1_loss(u, v) end, { x, y })
      -- gradient into the input only
      local t = distill.randn{ 2, 2 }
      check(function(u) return distill.mse_loss(u:t(), t) end, { leaf{ 2, 2 } })
    end)
  end)
end)

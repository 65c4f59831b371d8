-- distill.profile: the per-op-kind timers of the performance issue.
local distill = require "distill"

local KINDS = { "conv_forward", "conv_backward_data", "conv_backward_weight", "batchnorm",
  "pooling", "elementwise", "gemm", "loss", "optimizer", "other" }

describe("profile", function()
  after_each(function() distill.profile.stop() end)

  it("is off by default and records nothing while off", function()
    distill.profile.start()
    distill.profile.stop()
    assert.is_false(distill.profile.enabled())
    local x = distill.randn { 2, 3, 8, 8 }
    local w = distill.randn { 4, 3, 3, 3 }
    distill.F.conv2d(x, w, nil, { padding = 1 })
    local r = distill.profile.report()
    for _, k in ipairs(KINDS) do
      assert.are.equal(0, r[k].calls, k)
      assert.are.equal(0, r[k].seconds, k)
    end
  end)

  it("counts a training step by op kind", function()
    local x = distill.randn { 4, 3, 8, 8 }
    local w = distill.randn { 4, 3, 3, 3 }
    w.requires_grad = true
    local conv = distill.nn.Conv2d(3, 4, 3, { padding = 1 })
    local bn = distill.nn.BatchNorm2d(4)
    local fc = distill.nn.Linear(4, 5)
    local opt = distill.optim.SGD(conv:parameters(), { lr = 0.1, momentum = 0.9 })
    local y = distill.tensor({ 1, 2, 3, 4 }, "int64")
    distill.profile.start()
    assert.is_true(distill.profile.enabled())
    local h = distill.F.relu(bn(conv(x)))
    h = distill.F.avg_pool2d(h, 8):flatten(2)
    local loss = distill.F.cross_entropy(fc(h), y)
    loss:backward()
    opt:step()
    distill.profile.stop()
    local r = distill.profile.report()
    assert.are.equal(1, r.conv_forward.calls)
    assert.are.equal(1, r.conv_backward_weight.calls >= 1 and 1 or 0)
    assert.is_true(r.batchnorm.calls >= 2)      -- forward and backward
    assert.is_true(r.pooling.calls >= 2)
    assert.is_true(r.elementwise.calls >= 1)   -- relu
    assert.is_true(r.loss.calls >= 2)
    assert.is_true(r.optimizer.calls >= 1)
    local sum = 0
    for _, k in ipairs(KINDS) do
      assert.is_true(r[k].seconds >= 0)
      sum = sum + r[k].seconds
    end
    assert.is_true(r.wall >= sum - 1e-9)
    assert.is_true(math.abs(r.wall - sum - r.untimed.seconds) < 1e-6)
  end)

  it("start() clears the counters; now() is monotonic", function()
    distill.profile.start()
    distill.F.relu(distill.randn { 10 })
    distill.profile.start()
    distill.profile.stop()
    assert.are.equal(0, distill.profile.report().elementwise.calls)
    local a = distill.profile.now()
    local b = distill.profile.now()
    assert.is_true(b >= a)
  end)
end)

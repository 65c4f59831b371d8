-- Batch-norm folding (nn.fold_batchnorm, nn.fuse_conv_bn_eval), in-place
-- ReLU/ReLU6 and the distillers' frozen-teacher runner.
-- Every BN gets random running statistics and affine parameters first:
-- with the init values (mean 0, var 1, gamma 1, beta 0) a BN is nearly the
-- identity and a wrong fold would go unnoticed.
local distill = require "distill"
local nn = require "distill.nn"
local models = require "distill.models"
local base = require "distill.distillers.base"
local h = require "support.helpers"

local TOL = 1e-4

local function randomize_bns(model)
  distill.no_grad(function()
    for _, m in ipairs(model:modules()) do
      if getmetatable(m) == nn.BatchNorm2d then
        local c = m.num_features
        m.running_mean:copy_(distill.randn{ c } * 0.5)
        m.running_var:copy_(distill.rand{ c } * 1.5 + 0.5)
        if m.weight then
          m.weight:copy_(distill.rand{ c } + 0.5)
          m.bias:copy_(distill.randn{ c } * 0.2)
        end
      end
    end
  end)
  return model
end

-- max |a - b| / max |b|
local function rel_diff(a, b)
  assert.are.same(b:shape(), a:shape())
  local scale = math.max(b:abs():max():item(), 1e-30)
  return (a - b):abs():max():item() / scale
end

local function count(model, class)
  local n = 0
  for _, m in ipairs(model:modules()) do
    if getmetatable(m) == class then
      n = n + 1
    end
  end
  return n
end

local function run(model, x, opts)
  return distill.no_grad(function() return model:forward(x, opts) end)
end

-- Asserts that every output of `folded` (logits, feats, preact feats)
-- matches `model` within TOL.
local function assert_same_outputs(model, folded, x, name)
  local a, b = run(folded, x), run(model, x)
  assert.is_true(rel_diff(a, b) <= TOL, name .. " logits")
  for _, opts in ipairs({ { features = true }, { features = true, preact = true } }) do
    local fa, fb = run(folded, x, opts), run(model, x, opts)
    local label = name .. (opts.preact and " preact" or " features")
    assert.are.equal(#fb.feats, #fa.feats, label)
    for i = 1, #fb.feats do
      local d = rel_diff(fa.feats[i], fb.feats[i])
      assert.is_true(d <= TOL, ("%s feats[%d] differs by %.3g"):format(label, i, d))
    end
    assert.is_true(rel_diff(fa.logits, fb.logits) <= TOL, label .. " logits")
    assert.is_true(rel_diff(fa.pooled, fb.pooled) <= TOL, label .. " pooled")
  end
end

describe("nn.fuse_conv_bn_eval", function()
  local function check(conv, bn, x)
    randomize_bns(nn.Sequential(bn))
    conv:eval()
    bn:eval()
    local want = run(nn.Sequential(conv, bn), x)
    local w0 = conv.weight:clone()
    local folded = nn.fuse_conv_bn_eval(conv, bn)
    assert.is_true(rel_diff(run(folded, x), want) <= 1e-5)
    assert.are.equal(0, (conv.weight - w0):abs():max():item())
    assert.are_not.equal(conv.weight, folded.weight)
    assert.is_not_nil(folded.bias)
    return folded
  end

  it("folds a bias-free conv", function()
    check(nn.Conv2d(3, 8, 3, { padding = 1, bias = false }), nn.BatchNorm2d(8), distill.randn{ 2, 3, 6, 6 })
  end)

  it("folds a conv with a bias and strides", function()
    local conv = nn.Conv2d(4, 6, 3, { stride = 2, padding = 1 })
    check(conv, nn.BatchNorm2d(6), distill.randn{ 2, 4, 7, 7 })
  end)

  it("folds grouped and depthwise convs", function()
    check(nn.Conv2d(6, 9, 1, { groups = 3, bias = false }), nn.BatchNorm2d(9), distill.randn{ 2, 6, 5, 5 })
    check(nn.Conv2d(8, 8, 3, { padding = 1, groups = 8, bias = false }), nn.BatchNorm2d(8),
      distill.randn{ 2, 8, 5, 5 })
  end)

  it("folds a non-affine batch norm", function()
    check(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4, { affine = false }), distill.randn{ 2, 3, 4, 4 })
  end)

  it("refuses training mode, batch statistics, mismatched channels and other layers", function()
    local conv, bn = nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
    h.fails("nn.fuse_conv_bn_eval: the convolution and the batch norm must be in eval mode",
      nn.fuse_conv_bn_eval, conv, bn)
    conv:eval()
    h.fails("track_running_stats = false", nn.fuse_conv_bn_eval, conv,
      nn.BatchNorm2d(4, { track_running_stats = false }):eval())
    h.fails("has 5 features but the Conv2d 4 output channels", nn.fuse_conv_bn_eval, conv,
      nn.BatchNorm2d(5):eval())
    h.fails("expected an nn.BatchNorm2d, got Linear", nn.fuse_conv_bn_eval, conv, nn.Linear(2, 2))
    h.fails("expected an nn.Conv2d", nn.fuse_conv_bn_eval, {}, bn)
  end)
end)

describe("nn.fold_batchnorm on the model zoo", function()
  for _, name in ipairs(models.list()) do
    it(name .. ": logits and every feature output match the eval model", function()
      distill.manual_seed(7)
      local model = randomize_bns(models.create(name)):eval()
      local size = models.info(name).dataset == "ImageNet" and 64 or 32
      local x = distill.randn{ 2, 3, size, size }
      local before = {}
      for key, t in pairs(model:state_dict()) do
        before[key] = t:clone()
      end
      local bns = count(model, nn.BatchNorm2d)

      -- structural pairs only
      local plain, plain_report = nn.fold_batchnorm(model)
      assert_same_outputs(model, plain, x, name .. " (no example)")

      -- confirmed by the example, in-place ReLUs, self-checked
      local folded, report = nn.fold_batchnorm(model, { example = x:narrow(1, 1, 1):contiguous() })
      assert_same_outputs(model, folded, x, name)
      assert.are.equal(#plain_report.pairs, #report.pairs)
      assert.are.equal(0, #report.skipped)
      assert.is_true(#report.pairs > 0)
      assert.are.equal(bns - #report.pairs, count(folded, nn.BatchNorm2d))
      assert.is_true(report.max_rel_diff <= TOL)

      -- the original is untouched
      assert.are.equal(bns, count(model, nn.BatchNorm2d))
      for key, t in pairs(model:state_dict()) do
        assert.are.equal(0, (t - before[key]):abs():max():item(), key)
      end
      assert.is_false(model.training)
    end)
  end

  it("folds all 34 conv-BN pairs of resnet32x4 and runs its block ReLUs in place", function()
    local model = randomize_bns(models.create("resnet32x4")):eval()
    local folded, report = nn.fold_batchnorm(model, { example = distill.randn{ 1, 3, 32, 32 } })
    assert.are.equal(34, #report.pairs)
    assert.are.equal(0, count(folded, nn.BatchNorm2d))
    assert.are.equal("conv1", report.pairs[1].conv)
    assert.are.equal("bn1", report.pairs[1].bn)
    local inplace = {}
    for _, path in ipairs(report.inplace) do
      inplace[path] = true
    end
    assert.is_true(inplace["relu"])
    assert.is_true(inplace["layer1.0.relu"])
    assert.is_true(folded.layer1[1].relu.inplace)
    assert.is_false(model.layer1[1].relu.inplace)
  end)

  it("keeps the ReLU out of place when the model also returns its input (ImageNet stem preact)", function()
    local model = randomize_bns(models.create("resnet18")):eval()
    local folded, report = nn.fold_batchnorm(model, { example = distill.randn{ 1, 3, 64, 64 } })
    for _, path in ipairs(report.inplace) do
      assert.are_not.equal("relu", path)
    end
    assert.is_false(folded.relu.inplace)
    assert.is_true(folded.layer1[1].relu.inplace)
  end)

  it("pairs WRN's conv1 with bn2 (its bn1 normalises the block input)", function()
    local model = randomize_bns(models.create("wrn_16_1")):eval()
    local _, report = nn.fold_batchnorm(model, { example = distill.randn{ 1, 3, 32, 32 } })
    local found = {}
    for _, p in ipairs(report.pairs) do
      found[p.conv] = p.bn
    end
    assert.are.equal("block1.layer.0.bn2", found["block1.layer.0.conv1"])
    assert.is_nil(found["conv1"])
  end)
end)

describe("nn.fold_batchnorm checks", function()
  -- registers conv1 before bn1 but normalises the input first:
  -- the registration order suggests a pair that does not exist
  local PreAct = nn.class("PreAct")
  function PreAct:init()
    self.conv1 = nn.Conv2d(4, 4, 3, { padding = 1, bias = false })
    self.bn1 = nn.BatchNorm2d(4)
  end
  function PreAct:forward(x)
    return self.conv1(self.bn1(x))
  end

  it("skips a pair the example run does not confirm", function()
    local model = randomize_bns(PreAct()):eval()
    local x = distill.randn{ 2, 4, 5, 5 }
    local want = run(model, x)
    -- without an example the registration order is trusted (and wrong here)
    local guessed = nn.fold_batchnorm(model)
    assert.is_true(rel_diff(run(guessed, x), want) > 1e-2)
    local folded, report = nn.fold_batchnorm(model, { example = x })
    assert.are.equal(0, #report.pairs)
    assert.are.equal("conv1", report.skipped[1].conv)
    assert.is_true(rel_diff(run(folded, x), want) <= TOL)
  end)

  -- returns the conv output next to its normalised value: folding would
  -- change the first output, which the pairing cannot see
  local Leaky = nn.class("Leaky")
  function Leaky:init()
    self.conv = nn.Conv2d(3, 4, 1)
    self.bn = nn.BatchNorm2d(4)
  end
  function Leaky:forward(x)
    local c = self.conv(x)
    return { c, self.bn(c) }
  end

  it("refuses a fold that changes the outputs on the example", function()
    local model = randomize_bns(Leaky()):eval()
    h.fails("nn.fold_batchnorm: the folded Leaky does not reproduce the original on the example",
      nn.fold_batchnorm, model, { example = distill.randn{ 2, 3, 4, 4 } })
  end)

  -- feeds a conv output to a ReLU module and also returns it
  local Tap = nn.class("Tap")
  function Tap:init()
    self.conv = nn.Conv2d(3, 4, 1)
    self.bn = nn.BatchNorm2d(4)
    self.relu = nn.ReLU()
    self.conv2 = nn.Conv2d(4, 4, 1)
    self.bn2 = nn.BatchNorm2d(4)
    self.relu2 = nn.ReLU()
  end
  function Tap:forward(x)
    local pre = self.bn(self.conv(x))
    local out = self.relu2(self.bn2(self.conv2(self.relu(pre))))
    return { pre, out }
  end

  it("makes a ReLU in place only when the outputs stay identical", function()
    local model = randomize_bns(Tap()):eval()
    local x = distill.randn{ 2, 3, 4, 4 }
    local folded, report = nn.fold_batchnorm(model, { example = x })
    assert.are.same({ "relu2" }, report.inplace)
    assert.is_false(folded.relu.inplace)
    local want, got = run(model, x), run(folded, x)
    assert.is_true(rel_diff(got[1], want[1]) <= TOL)
    assert.is_true(rel_diff(got[2], want[2]) <= TOL)
    local _, none = nn.fold_batchnorm(model, { example = x, inplace = false })
    assert.are.same({}, none.inplace)
  end)

  it("refuses a model in training mode, naming the module", function()
    local model = models.create("resnet8")
    h.fails("nn.fold_batchnorm: ResNet is in training mode", nn.fold_batchnorm, model)
    model:eval()
    model.layer1[1].bn1:train()
    h.fails("BatchNorm2d (module 'layer1.0.bn1') is in training mode", nn.fold_batchnorm, model)
  end)

  it("returns an eval-only model", function()
    local model = models.create("resnet8"):eval()
    local x = distill.randn{ 1, 3, 32, 32 }
    local folded = nn.fold_batchnorm(model, { example = x })
    h.fails("nn.fold_batchnorm: the folded ResNet is eval-only", function() folded:train() end)
    h.fails("eval-only", function() folded:train(true) end)
    assert.are.equal(folded, folded:eval())
    assert.is_false(folded.training)
    -- a parent's train() flips the flags without asking the folded model
    local parent = nn.Sequential(folded)
    parent:train()
    h.fails("Conv2d 'conv1' of the folded ResNet is eval-only", parent, x)
    for _, p in ipairs(folded:parameters()) do
      assert.is_false(p.requires_grad)
    end
  end)

  it("rejects bad arguments", function()
    local model = models.create("resnet8"):eval()
    h.fails("nn.fold_batchnorm: expected a module, got number", nn.fold_batchnorm, 3)
    h.fails("nn.fold_batchnorm: unknown option 'exemple'", nn.fold_batchnorm, model, { exemple = 1 })
    h.fails("nn.fold_batchnorm: example must be an input tensor", nn.fold_batchnorm, model,
      { example = {} })
    h.fails("nn.fold_batchnorm: options must be a table", nn.fold_batchnorm, model, 1)
  end)
end)

describe("in-place ReLU and ReLU6", function()
  it("overwrites the input under no_grad", function()
    local relu = nn.ReLU({ inplace = true })
    local x = h.f32({ -1, 2, -3, 4 })
    local y = distill.no_grad(function() return relu(x) end)
    assert.are.equal(x, y)
    assert.are.same({ 0, 2, 0, 4 }, h.flat(x))
    assert.are.equal("ReLU(inplace=True)", tostring(relu))
    assert.are.equal("ReLU()", tostring(nn.ReLU()))
  end)

  it("overwrites an input that does not require grad with grad enabled", function()
    local x = h.f32({ -1, 2 })
    nn.ReLU(true)(x)
    assert.are.same({ 0, 2 }, h.flat(x))
    local x6 = h.f32({ -1, 3, 9 })
    assert.are.equal(x6, nn.ReLU6({ inplace = true })(x6))
    assert.are.same({ 0, 3, 6 }, h.flat(x6))
  end)

  it("stays out of place when autograd records it, with the right gradient", function()
    local x = h.leaf({ 5 })
    local pre = x * 1
    local y = nn.ReLU({ inplace = true })(pre)
    assert.are_not.equal(pre, y)
    y:sum():backward()
    local xs, gs = h.flat(x), h.flat(x.grad)
    for i = 1, 5 do
      assert.are.equal(xs[i] > 0 and 1 or 0, gs[i])
    end
    local x6 = h.leaf({ 4 })
    local y6 = nn.ReLU6(true)(x6)
    assert.are_not.equal(x6, y6)
  end)

  it("matches the out-of-place result", function()
    local x = distill.randn{ 3, 7 } * 5
    local want, want6 = nn.ReLU()(x), nn.ReLU6()(x)
    local a, b = x:clone(), x:clone()
    nn.ReLU(true)(a)
    nn.ReLU6(true)(b)
    assert.are.same(h.flat(want), h.flat(a))
    assert.are.same(h.flat(want6), h.flat(b))
  end)

  it("rejects unknown options", function()
    h.fails("nn.ReLU: unknown option 'in_place'", nn.ReLU, { in_place = true })
    h.fails("nn.ReLU6: options must be a table", nn.ReLU6, 3)
  end)
end)

describe("distillers frozen teacher", function()
  it("runs a folded copy in eval mode with the teacher's outputs", function()
    local teacher = randomize_bns(models.create("resnet8")):eval()
    local x = distill.randn{ 3, 3, 32, 32 }
    local runner = base.frozen_teacher(teacher)
    local got = runner(x, { features = true, preact = true })
    assert.is_not_nil(runner.folded)
    assert.are_not.equal(teacher, runner.folded)
    local want = run(teacher, x, { features = true, preact = true })
    for i = 1, #want.feats do
      assert.is_true(rel_diff(got.feats[i], want.feats[i]) <= TOL)
    end
    assert.is_true(rel_diff(got.logits, want.logits) <= TOL)
    assert.is_false(got.logits.requires_grad)
    -- the original keeps its BNs for OFD's margins
    assert.are.equal(nn.BatchNorm2d, getmetatable(teacher:get_bn_before_relu()[1]))
  end)

  it("runs the teacher itself in training mode, unfolded on request, and refreshes", function()
    local teacher = models.create("resnet8")
    local x = distill.randn{ 2, 3, 32, 32 }
    local runner = base.frozen_teacher(teacher)
    runner(x)
    assert.is_nil(runner.folded)
    teacher:eval()
    local off = base.frozen_teacher(teacher, { fold = false })
    off(x)
    assert.is_nil(off.folded)
    local first = runner:prepare(x).folded
    assert.is_not_nil(first)
    assert.are.equal(first, runner:prepare(x).folded)
    runner:refresh()
    assert.is_nil(runner.folded)
    runner(x)
    assert.are_not.equal(first, runner.folded)
    h.fails("distillers.frozen_teacher: expected the teacher module", base.frozen_teacher, 1)
  end)
end)

-- Model zoo: registry, parameter counts and names, forward/backward shapes,
-- BN train/eval behaviour, state_dict round trips and MACs.
-- Reference figures: ../shared/reference/model_facts.md (CRD code base,
-- PyTorch 1.13.1) and torchvision for the ImageNet models.
-- CIFAR models run at 2x3x32x32. ImageNet models run at 2x3x64x64 (their
-- 224x224 shapes are only checked through the printed table in
-- docs/models.md) to keep the spec fast on a CPU.
local distill = require "distill"
local models = require "distill.models"
local common = require "distill.models.common"
local h = require "support.helpers"

-- name -> params, forward MACs per image (CIFAR only), feats shapes and
-- logits shape at batch 2 ("[2,16,32,32] ..." as printed in model_facts.md)
local reference = {
  resnet8 = { 83892, 12507392, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet14 = { 181108, 26663168, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet20 = { 278324, 40818944, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet32 = { 472756, 69130496, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet44 = { 667188, 97442048, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet56 = { 861620, 125753600, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet110 = { 1736564, 253155584, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  resnet8x4 = { 1233540, 177071104, "[2,32,32,32] [2,64,32,32] [2,128,16,16] [2,256,8,8] [2,256]" },
  resnet32x4 = { 7433860, 1083040768, "[2,32,32,32] [2,64,32,32] [2,128,16,16] [2,256,8,8] [2,256]" },
  wrn_16_1 = { 180916, 26663168, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  wrn_16_2 = { 703284, 101118464, "[2,16,32,32] [2,32,32,32] [2,64,16,16] [2,128,8,8] [2,128]" },
  wrn_40_1 = { 569780, 83286272, "[2,16,32,32] [2,16,32,32] [2,32,16,16] [2,64,8,8] [2,64]" },
  wrn_40_2 = { 2255156, 327610880, "[2,16,32,32] [2,32,32,32] [2,64,16,16] [2,128,8,8] [2,128]" },
  vgg8 = { 3965028, 96192512,
    "[2,64,32,32] [2,128,16,16] [2,256,8,8] [2,512,4,4] [2,512,4,4] [2,512]" },
  vgg11 = { 9277284, 209438720,
    "[2,64,32,32] [2,128,16,16] [2,256,8,8] [2,512,4,4] [2,512,4,4] [2,512]" },
  vgg13 = { 9462180, 284936192,
    "[2,64,32,32] [2,128,16,16] [2,256,8,8] [2,512,4,4] [2,512,4,4] [2,512]" },
  vgg16 = { 14774436, 398182400,
    "[2,64,32,32] [2,128,16,16] [2,256,8,8] [2,512,4,4] [2,512,4,4] [2,512]" },
  vgg19 = { 20086692, 511428608,
    "[2,64,32,32] [2,128,16,16] [2,256,8,8] [2,512,4,4] [2,512,4,4] [2,512]" },
  MobileNetV2 = { 812836, 6523648,
    "[2,16,16,16] [2,12,16,16] [2,16,8,8] [2,48,4,4] [2,160,2,2] [2,1280]" },
  ShuffleV1 = { 949258, 38691456, "[2,24,32,32] [2,240,16,16] [2,480,8,8] [2,960,4,4] [2,960]" },
  ShuffleV2 = { 1355528, 44504448, "[2,24,32,32] [2,116,16,16] [2,232,8,8] [2,464,4,4] [2,1024]" },
  ResNet50 = { 23705252, 1298014208,
    "[2,64,32,32] [2,256,32,32] [2,512,16,16] [2,1024,8,8] [2,2048,4,4] [2,2048]" },
  -- ImageNet models at 64x64 input (no MACs reference: those are for 224)
  resnet18 = { 11689512, nil,
    "[2,64,32,32] [2,64,16,16] [2,128,8,8] [2,256,4,4] [2,512,2,2] [2,512]", 64 },
  resnet34 = { 21797672, nil,
    "[2,64,32,32] [2,64,16,16] [2,128,8,8] [2,256,4,4] [2,512,2,2] [2,512]", 64 },
  resnet50 = { 25557032, nil,
    "[2,64,32,32] [2,256,16,16] [2,512,8,8] [2,1024,4,4] [2,2048,2,2] [2,2048]", 64 },
  mobilenetv1 = { 4231976, nil,
    "[2,128,16,16] [2,256,8,8] [2,512,4,4] [2,1024,2,2] [2,1024]", 64 },
}

local imagenet = { resnet18 = true, resnet34 = true, resnet50 = true, mobilenetv1 = true }

local function parse_shapes(text)
  local shapes = {}
  for inner in text:gmatch("%[([%d,]+)%]") do
    local shape = {}
    for n in inner:gmatch("%d+") do
      shape[#shape + 1] = tonumber(n)
    end
    shapes[#shapes + 1] = shape
  end
  return shapes
end

local sorted_keys, flat, max_abs_diff = h.sorted_keys, h.flat, h.max_abs_diff

local function max_abs(t)
  local m = 0
  for _, v in ipairs(flat(t)) do
    m = math.max(m, math.abs(v))
  end
  return m
end

local function min_of(t)
  local m = math.huge
  for _, v in ipairs(flat(t)) do
    if v < m then
      m = v
    end
  end
  return m
end

local function first_bn(model)
  for _, m in ipairs(model:modules()) do
    if m.__name == "BatchNorm2d" then
      return m
    end
  end
end

-- one instance per model, built on first use and shared by the tests
local built = {}
local function get(name)
  if not built[name] then
    distill.manual_seed(1)
    built[name] = models.create(name)
  end
  return built[name]
end

local function input_for(name, batch)
  distill.manual_seed(2)
  local size = reference[name][4] or 32
  return distill.randn{ batch or 2, 3, size, size }
end

local function has_forward_ops()
  for _, fn in ipairs({ "conv2d", "batch_norm", "linear", "relu", "avg_pool2d", "cat" }) do
    if not distill[fn] then
      return false, fn
    end
  end
  local ok = pcall(function() return distill.zeros{ 1 } + distill.zeros{ 1 } end)
  return ok, "tensor +"
end

describe("models registry", function()
  it("lists the 26 models, sorted", function()
    local names = models.list()
    assert.are.same(sorted_keys(reference), names)
    assert.are.equal(26, #names)
  end)

  it("lists aliases on request", function()
    local names = models.list({ aliases = true })
    local set = {}
    for _, n in ipairs(names) do
      set[n] = true
    end
    assert.is_true(set.mobile_half and set.vgg8_bn and set.MobileNetV2 and true)
  end)

  it("reports an unknown name with the known ones", function()
    local err = h.err(models.create, "resnet9000")
    assert.truthy(err:find("unknown model 'resnet9000'", 1, true))
    assert.truthy(err:find("resnet8x4", 1, true))
    assert.truthy(err:find("ShuffleV2", 1, true))
  end)

  it("hints at the right case", function()
    h.fails("did you mean 'ShuffleV1'", models.create, "shufflev1")
  end)

  it("keeps the CIFAR ResNet50 and the ImageNet resnet50 apart", function()
    assert.are.equal("resnetv2", models.info("ResNet50").family)
    assert.are.equal("imagenet_resnet", models.info("resnet50").family)
    assert.are.same({ 3, 32, 32 }, models.info("ResNet50").input_size)
    assert.are.same({ 3, 224, 224 }, models.info("resnet50").input_size)
    assert.are.equal(1000, models.info("resnet50").num_classes)
    assert.are.equal(100, models.info("ResNet50").num_classes)
  end)

  it("resolves aliases", function()
    assert.are.equal("MobileNetV2", models.info("mobile_half").name)
    assert.are.equal("vgg13", models.info("vgg13_bn").name)
  end)

  it("takes num_classes", function()
    local m = models.create("resnet8", { num_classes = 10 })
    assert.are.same({ 10, 64 }, m.fc.weight:shape())
    assert.are.equal(83892 - 90 * 65, m:num_parameters())
  end)

  it("rejects bad options", function()
    h.fails("num_classes must be a positive integer", models.create, "resnet8", { num_classes = 0 })
    h.fails("unknown option 'classes'", models.create, "resnet8", { classes = 10 })
  end)

  it("registers every family, the Fashion-MNIST one included", function()
    assert.are.same({ "fmnist", "imagenet_resnet", "mobilenetv1", "mobilenetv2", "resnet", "resnetv2",
      "shufflenetv1", "shufflenetv2", "vgg", "wrn" }, models.families())
    local all = models.list({ all = true })
    assert.are.equal(28, #all)
    local info = models.info("fmnist_resnet_s")
    assert.are.equal("fmnist", info.family)
    assert.are.equal("Fashion-MNIST", info.dataset)
    assert.are.same({ 1, 28, 28 }, info.input_size)
    for _, name in ipairs { "fmnist_resnet_t", "fmnist_resnet_s" } do
      distill.manual_seed(1)
      local net = models.create(name, { num_classes = 10 })
      assert.are.equal(models.info(name).params, net:num_parameters(), name)
      assert.are.same({ 2, 10 }, net(distill.randn{ 2, 1, 28, 28 }):shape())
    end
  end)

  it("builds from a registry name or a family table", function()
    assert.are.equal(83892 - 90 * 65, models.build("resnet8", { num_classes = 10 }):num_parameters())
    local net = models.build({ family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } },
      { num_classes = 3 })
    assert.are.same({ 3, 8 }, net.fc.weight:shape())
    net = models.build({ family = "fmnist", name = "fmnist_resnet_s", num_classes = 5 }, { num_classes = 3 })
    assert.are.same({ 5, 32 }, net.fc.weight:shape(), "the spec's own options win")
    h.fails("models: unknown family 'nope' (known: fmnist, imagenet_resnet", models.build,
      { family = "nope", name = "x" })
    h.fails("models.build: models.fmnist has no model 'x'", models.build, { family = "fmnist", name = "x" })
    h.fails("models.build: a model table needs family", models.build, { name = "x" })
    h.fails("models.build: a model must be a registry name or {family =, name =}, got number",
      models.build, 3)
    h.fails("unknown model 'resnet9000'", models.build, "resnet9000")
  end)
end)

describe("models parameter counts", function()
  for _, name in ipairs(sorted_keys(reference)) do
    it(name .. " has " .. reference[name][1] .. " trainable parameters", function()
      assert.are.equal(reference[name][1], get(name):num_parameters())
    end)
  end
end)

describe("models parameter names", function()
  local function has_keys(name, keys)
    local state = get(name):state_dict()
    for _, key in ipairs(keys) do
      assert.is_not_nil(state[key], name .. " lacks " .. key)
    end
  end

  it("resnet8x4 uses resnet.py's names", function()
    has_keys("resnet8x4", {
      "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
      "bn1.num_batches_tracked", "layer1.0.conv1.weight", "layer1.0.bn2.running_var",
      "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight",
      "layer3.0.downsample.1.running_mean", "fc.weight", "fc.bias" })
    local keys = get("resnet8x4"):state_dict_keys()
    assert.are.equal("conv1.weight", keys[1])
    assert.are.equal("fc.bias", keys[#keys])
    -- 10 convs + 10 BNs x 5 entries + fc weight and bias
    assert.are.equal(10 + 50 + 2, #keys)
  end)

  it("resnet20 has projections only in stages 2 and 3", function()
    local state = get("resnet20"):state_dict()
    assert.is_nil(state["layer1.0.downsample.0.weight"])
    assert.is_not_nil(state["layer2.0.downsample.0.weight"])
    assert.is_not_nil(state["layer3.2.conv2.weight"])
  end)

  it("wrn_40_2 uses wrn.py's names", function()
    has_keys("wrn_40_2", {
      "conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.conv1.weight",
      "block1.layer.0.convShortcut.weight", "block3.layer.5.conv2.weight",
      "bn1.running_var", "fc.weight", "fc.bias" })
    assert.is_nil(get("wrn_40_1"):state_dict()["block1.layer.0.convShortcut.weight"])
  end)

  it("vgg8 uses vgg.py's names", function()
    has_keys("vgg8", { "block0.0.weight", "block0.0.bias", "block0.1.running_mean",
      "block4.1.weight", "classifier.weight", "classifier.bias" })
    assert.is_nil(get("vgg8"):state_dict()["block0.2.weight"])
    has_keys("vgg13", { "block0.3.weight", "block0.4.running_var" })
  end)

  it("MobileNetV2 uses mobilenetv2.py's names", function()
    has_keys("MobileNetV2", { "conv1.0.weight", "conv1.1.running_mean",
      "blocks.0.0.conv.0.weight", "blocks.0.0.conv.3.weight", "blocks.0.0.conv.7.bias",
      "blocks.6.0.conv.6.weight", "conv2.0.weight", "conv2.1.bias",
      "classifier.0.weight", "classifier.0.bias" })
    assert.are.same({ 48, 1, 3, 3 }, get("MobileNetV2"):state_dict()["blocks.1.0.conv.3.weight"]:shape())
  end)

  it("ShuffleV1 and ShuffleV2 use their files' names", function()
    has_keys("ShuffleV1", { "conv1.weight", "bn1.weight", "layer1.0.conv1.weight",
      "layer1.0.conv3.weight", "layer3.3.bn3.running_var", "linear.weight" })
    assert.are.same({ 54, 24, 1, 1 }, get("ShuffleV1"):state_dict()["layer1.0.conv1.weight"]:shape())
    assert.are.same({ 216, 18, 1, 1 }, get("ShuffleV1"):state_dict()["layer1.0.conv3.weight"]:shape())
    has_keys("ShuffleV2", { "layer1.0.conv5.weight", "layer1.0.bn4.bias", "layer1.3.conv3.weight",
      "layer2.7.bn2.running_mean", "conv2.weight", "bn2.weight", "linear.bias" })
  end)

  it("ResNet50 uses resnetv2.py's names", function()
    has_keys("ResNet50", { "conv1.weight", "layer1.0.shortcut.0.weight", "layer1.0.shortcut.1.bias",
      "layer1.2.conv3.weight", "layer4.2.bn3.running_mean", "linear.weight", "linear.bias" })
    assert.is_nil(get("ResNet50"):state_dict()["layer1.1.shortcut.0.weight"])
  end)

  it("the ImageNet models use torchvision's and mdistiller's names", function()
    has_keys("resnet18", { "conv1.weight", "layer1.0.conv2.weight", "layer2.0.downsample.0.weight",
      "layer4.1.bn2.running_var", "fc.weight" })
    assert.are.same({ 64, 3, 7, 7 }, get("resnet18"):state_dict()["conv1.weight"]:shape())
    has_keys("resnet50", { "layer1.0.downsample.0.weight", "layer1.0.conv3.weight",
      "layer4.2.bn3.weight", "fc.bias" })
    has_keys("mobilenetv1", { "model.0.0.weight", "model.0.1.running_mean", "model.1.0.weight",
      "model.1.3.weight", "model.13.4.running_var", "fc.weight", "fc.bias" })
    assert.are.same({ 1024, 1, 3, 3 }, get("mobilenetv1"):state_dict()["model.13.0.weight"]:shape())
  end)

  it("orders parameters as PyTorch registers them", function()
    local names = {}
    for i, pair in ipairs(get("wrn_16_1"):named_parameters()) do
      names[i] = pair[1]
    end
    assert.are.same({ "conv1.weight", "block1.layer.0.bn1.weight", "block1.layer.0.bn1.bias",
      "block1.layer.0.conv1.weight" }, { names[1], names[2], names[3], names[4] })
    assert.are.equal("fc.bias", names[#names])
  end)
end)

describe("models initialisation", function()
  local function std(t)
    local v = flat(t)
    local s, s2 = 0, 0
    for _, x in ipairs(v) do
      s, s2 = s + x, s2 + x * x
    end
    local mean = s / #v
    return math.sqrt(s2 / #v - mean * mean)
  end

  it("draws conv weights with the family's scale", function()
    -- kaiming fan_out: std sqrt(2 / (9 * 256)) for resnet8x4's layer3 convs
    local w = get("resnet8x4").layer3[1].conv2.weight
    assert.is_true(math.abs(std(w) / math.sqrt(2 / (9 * 256)) - 1) < 0.05)
    -- WRN: normal(0, sqrt(2 / (9 * out))), Linear bias zero
    local wrn = get("wrn_40_2")
    assert.is_true(math.abs(std(wrn.block3.layer[2].conv1.weight) / math.sqrt(2 / (9 * 128)) - 1) < 0.05)
    assert.are.equal(0, min_of(wrn.fc.bias))
    -- VGG: Linear normal(0, 0.01)
    assert.is_true(math.abs(std(get("vgg8").classifier.weight) / 0.01 - 1) < 0.05)
  end)
end)

local ops_ok, missing_op = has_forward_ops()

describe("models forward and backward", function()
  if not ops_ok then
    pending("the engine lacks " .. missing_op .. "; forward specs skipped")
    return
  end

  for _, name in ipairs(sorted_keys(reference)) do
    local ref = reference[name]
    local expected = parse_shapes(ref[3])

    describe(name, function()
      it("returns logits, feats and pooled with the reference shapes; backward reaches every parameter", function()
        local model = get(name)
        model:train()
        model:zero_grad()
        local x = input_for(name)
        local out = model:forward(x, { features = true })
        assert.are.equal(#expected, #out.feats)
        for i, f in ipairs(out.feats) do
          assert.are.same(expected[i], f:shape(), ("feats[%d]"):format(i))
        end
        assert.are.equal(out.feats[#out.feats], out.pooled)
        assert.are.same({ 2, imagenet[name] and 1000 or 100 }, out.logits:shape())
        out.logits:sum():backward()
        for _, pair in ipairs(model:named_parameters()) do
          assert.is_not_nil(pair[2].grad, name .. ": no gradient for " .. pair[1])
        end
        model:zero_grad()
      end)

      it("gives the same shapes with preact", function()
        local model = get(name)
        model:train()
        local out = distill.no_grad(function()
          return model:forward(input_for(name), { features = true, preact = true })
        end)
        for i, f in ipairs(out.feats) do
          assert.are.same(expected[i], f:shape(), ("preact feats[%d]"):format(i))
        end
      end)

      it("updates BN stats in train mode only, is batch-independent in eval and round-trips its state_dict", function()
        local model = get(name)
        local bn = first_bn(model)
        local x = input_for(name)
        model:train()
        local mean_before = flat(bn.running_mean)
        local tracked = bn.num_batches_tracked:item()
        distill.no_grad(function() return model(x) end)
        assert.are.equal(tracked + 1, bn.num_batches_tracked:item())
        assert.are_not.same(mean_before, flat(bn.running_mean))

        model:eval()
        local stats = flat(bn.running_mean)
        local both, one = distill.no_grad(function()
          return model(x), model(x:narrow(1, 2, 1))
        end)
        assert.are.same(stats, flat(bn.running_mean))
        assert.are.equal(tracked + 1, bn.num_batches_tracked:item())
        -- without options, model(x) is the logits tensor
        assert.is_true(distill.is_tensor(both))
        assert.are.same({ 2, imagenet[name] and 1000 or 100 }, both:shape())
        -- the same image alone or in a batch: equal up to float rounding
        -- (deep nets at init have large logits, so the tolerance is relative)
        local scale = math.max(1, max_abs(both))
        assert.is_true(max_abs_diff(both:narrow(1, 2, 1), one) <= 1e-5 * scale,
          ("batch-dependent eval output (scale %g)"):format(scale))

        -- a fresh model with other weights, loaded with this one's state,
        -- computes exactly the same eval outputs
        distill.manual_seed(99)
        local fresh = models.create(name)
        fresh:load_state_dict(model:state_dict())
        fresh:eval()
        local again = distill.no_grad(function() return fresh(x) end)
        assert.are.equal(0, max_abs_diff(both, again))
        model:train()
      end)

      if ref[2] then
        it("costs " .. ref[2] .. " forward MACs per image", function()
          distill.manual_seed(3)
          assert.are.equal(ref[2], common.count_macs(get(name), distill.randn{ 1, 3, 32, 32 }))
        end)
      end
    end)
  end

  describe("preact taps", function()
    local function taps(name, preact, train)
      local model = get(name)
      if train then model:train() else model:eval() end
      -- eval-mode taps need no batch: one image is enough
      local x = train and input_for(name) or input_for(name):narrow(1, 1, 1)
      local out = distill.no_grad(function()
        return model:forward(x, { features = true, preact = preact })
      end)
      model:train()
      return out.feats
    end

    it("resnet, vgg, ShuffleNets and ResNet50 take stage outputs before the ReLU", function()
      for _, name in ipairs({ "resnet8", "vgg8", "ShuffleV1", "ShuffleV2", "ResNet50", "resnet18" }) do
        local post, pre = taps(name, false), taps(name, true)
        local k = #post - 1
        assert.is_true(min_of(post[k]) >= 0, name)
        assert.is_true(min_of(pre[k]) < 0, name)
        -- the stem tap (f0) and the pooled vector do not change
        assert.are.equal(0, max_abs_diff(post[#post], pre[#pre]), name)
      end
    end)

    it("WRN passes the raw sums through the next BN (no ReLU)", function()
      local model = get("wrn_16_1")
      local bn = model.block2.layer[1].bn1
      local post, pre = taps("wrn_16_1", false), taps("wrn_16_1", true)
      local expected = distill.no_grad(function()
        model:eval()
        local y = bn(post[2])
        model:train()
        return y
      end)
      assert.is_true(max_abs_diff(pre[2], expected) < 1e-5)
      assert.is_true(min_of(pre[2]) < 0)
    end)

    it("WRN's preact BN calls update those BNs' running stats in train mode", function()
      local model = get("wrn_16_1")
      local bn = model.block2.layer[1].bn1
      local before = bn.num_batches_tracked:item()
      taps("wrn_16_1", true, true)
      -- once in the block, once more for the preact tap
      assert.are.equal(before + 2, bn.num_batches_tracked:item())
    end)

    it("MobileNetV2 ignores preact", function()
      local post, pre = taps("MobileNetV2", false), taps("MobileNetV2", true)
      for i = 1, #post do
        assert.are.equal(0, max_abs_diff(post[i], pre[i]))
      end
    end)
  end)

  it("round-trips state_dicts through a checkpoint file", function()
    local ok_ck, checkpoint = pcall(require, "distill.checkpoint")
    if not ok_ck then
      pending("distill.checkpoint is not available: " .. tostring(checkpoint))
      return
    end
    local path = os.tmpname()
    for _, name in ipairs({ "resnet8x4", "ShuffleV2", "MobileNetV2", "wrn_16_1" }) do
      local model = get(name)
      -- move the BN statistics away from their initial values first
      model:train()
      distill.no_grad(function() return model(input_for(name)) end)
      checkpoint.save(path, { model = model:state_dict(), meta = { name = name } })
      distill.manual_seed(123)
      local fresh = models.create(name)
      local loaded = checkpoint.load(path)
      assert.are.equal(name, loaded.meta.name)
      fresh:load_state_dict(loaded.model)
      model:eval()
      fresh:eval()
      local x = input_for(name)
      local a, b = distill.no_grad(function() return model(x), fresh(x) end)
      assert.are.equal(0, max_abs_diff(a, b), name)
      assert.are.equal(model:state_dict()["bn1.num_batches_tracked"] and
        model:state_dict()["bn1.num_batches_tracked"]:item(),
        fresh:state_dict()["bn1.num_batches_tracked"] and fresh:state_dict()["bn1.num_batches_tracked"]:item())
      model:train()
    end
    os.remove(path)
  end)

  it("learns: SGD steps on a fixed batch drive resnet8's loss down", function()
    local ok_optim, optim = pcall(require, "distill.optim")
    if not ok_optim or not distill.F.cross_entropy then
      pending("distill.optim or F.cross_entropy is not available")
      return
    end
    distill.manual_seed(0)
    local model = models.create("resnet8", { num_classes = 10 })
    local opt = optim.SGD(model:parameters(), { lr = 0.05, momentum = 0.9 })
    local x = distill.randn{ 8, 3, 32, 32 }
    local y = distill.tensor({ 1, 2, 3, 4, 5, 6, 7, 8 }, "int64")
    local first, last
    for step = 1, 12 do
      opt:zero_grad()
      local loss = distill.F.cross_entropy(model(x), y)
      loss:backward()
      opt:step()
      if step == 1 then first = loss:item() end
      last = loss:item()
    end
    assert.is_true(last < 0.6 * first, ("loss %g -> %g"):format(first, last))
  end)

  it("rejects a malformed input with a clear error", function()
    h.fails("expects an input of shape {N, 3, H, W}", function() return get("resnet8")(distill.randn{ 2, 1, 32, 32 }) end)
    h.fails("unknown forward option 'feature'", function() return get("resnet8"):forward(distill.randn{ 1, 3, 32, 32 }, { feature = true }) end)
  end)
end)

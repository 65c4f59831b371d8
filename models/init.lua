-- distill.models: the model zoo registry.
--   local models = require "distill.models"
--   local net = models.create("resnet8x4", {num_classes = 100})
--   models.list()          --> sorted registry names
--   models.info("wrn_40_2") --> {name, family, input_size, num_classes, params, description}
--
-- CIFAR names are the `model_dict` keys of the CRD code base
-- (HobbitLong/RepDistiller); ImageNet names are torchvision's. Beware the
-- two 50-layer ResNets: "ResNet50" is the CRD code base's CIFAR variant
-- (32x32 input, 100 classes by default), "resnet50" is torchvision's
-- ImageNet model (224x224, 1000 classes). Names are case-sensitive.
-- Each family lives in its own file and is loaded on first use.
local registry = require "distill.registry"

local models = {}

local CIFAR = { input_size = { 3, 32, 32 }, num_classes = 100, dataset = "CIFAR" }
local IMAGENET = { input_size = { 3, 224, 224 }, num_classes = 1000, dataset = "ImageNet" }

-- name -> {family (file in models/), constructor, domain, trainable params
-- with the default classes (reference figures), description}, added in
-- the order of model_facts.md (families together)
local zoo = registry.new("models", "model")

local function register(name, family, constructor, domain, params, description)
  zoo:add(name, {
    name = name, family = family, constructor = constructor, domain = domain,
    params = params, description = description,
  })
end

-- Forward MACs per image at 3x32x32 with 100 classes, from model_facts.md
-- (PyTorch forward hooks on Conv2d and Linear); models/common.lua
-- count_macs counts the same way. The ImageNet figures are not part of the
-- reference file.
local reference_macs = {
  resnet8 = 12507392, resnet14 = 26663168, resnet20 = 40818944, resnet32 = 69130496,
  resnet44 = 97442048, resnet56 = 125753600, resnet110 = 253155584,
  resnet8x4 = 177071104, resnet32x4 = 1083040768,
  wrn_16_1 = 26663168, wrn_16_2 = 101118464, wrn_40_1 = 83286272, wrn_40_2 = 327610880,
  vgg8 = 96192512, vgg11 = 209438720, vgg13 = 284936192, vgg16 = 398182400, vgg19 = 511428608,
  MobileNetV2 = 6523648, ShuffleV1 = 38691456, ShuffleV2 = 44504448, ResNet50 = 1298014208,
}

local cifar_resnets = {
  { "resnet8", 83892, 1 }, { "resnet14", 181108, 2 }, { "resnet20", 278324, 3 },
  { "resnet32", 472756, 5 }, { "resnet44", 667188, 7 }, { "resnet56", 861620, 9 },
  { "resnet110", 1736564, 18 },
}
for _, r in ipairs(cifar_resnets) do
  register(r[1], "resnet", r[1], CIFAR, r[2], ("CIFAR ResNet, depth %s, %d basic blocks per stage, widths 16/16/32/64")
    :format(r[1]:sub(7), r[3]))
end
register("resnet8x4", "resnet", "resnet8x4", CIFAR, 1233540,
  "CIFAR ResNet-8 with 4x stage widths 32/64/128/256, 1 basic block per stage")
register("resnet32x4", "resnet", "resnet32x4", CIFAR, 7433860,
  "CIFAR ResNet-32 with 4x stage widths 32/64/128/256, 5 basic blocks per stage")
register("wrn_16_1", "wrn", "wrn_16_1", CIFAR, 180916, "Wide ResNet, depth 16, widen factor 1")
register("wrn_16_2", "wrn", "wrn_16_2", CIFAR, 703284, "Wide ResNet, depth 16, widen factor 2")
register("wrn_40_1", "wrn", "wrn_40_1", CIFAR, 569780, "Wide ResNet, depth 40, widen factor 1")
register("wrn_40_2", "wrn", "wrn_40_2", CIFAR, 2255156, "Wide ResNet, depth 40, widen factor 2")
register("vgg8", "vgg", "vgg8_bn", CIFAR, 3965028, "VGG-8 with batch norm (config S), CIFAR head")
register("vgg11", "vgg", "vgg11_bn", CIFAR, 9277284, "VGG-11 with batch norm (config A), CIFAR head")
register("vgg13", "vgg", "vgg13_bn", CIFAR, 9462180, "VGG-13 with batch norm (config B), CIFAR head")
register("vgg16", "vgg", "vgg16_bn", CIFAR, 14774436, "VGG-16 with batch norm (config D), CIFAR head")
register("vgg19", "vgg", "vgg19_bn", CIFAR, 20086692, "VGG-19 with batch norm (config E), CIFAR head")
register("MobileNetV2", "mobilenetv2", "mobile_half", CIFAR, 812836,
  "CIFAR MobileNetV2, expansion 6, width 0.5 (mobile_half)")
register("ShuffleV1", "shufflenetv1", "ShuffleV1", CIFAR, 949258,
  "CIFAR ShuffleNetV1, 3 groups, stage widths 240/480/960")
register("ShuffleV2", "shufflenetv2", "ShuffleV2", CIFAR, 1355528,
  "CIFAR ShuffleNetV2, net size 1, stage widths 116/232/464")
register("ResNet50", "resnetv2", "ResNet50", CIFAR, 23705252,
  "CIFAR variant of the bottleneck ResNet-50 (3x3 stem, no max-pool); not torchvision's resnet50")
register("resnet18", "imagenet_resnet", "resnet18", IMAGENET, 11689512,
  "torchvision ImageNet ResNet-18")
register("resnet34", "imagenet_resnet", "resnet34", IMAGENET, 21797672,
  "torchvision ImageNet ResNet-34")
register("resnet50", "imagenet_resnet", "resnet50", IMAGENET, 25557032,
  "torchvision ImageNet ResNet-50 (bottleneck v1.5); not the CIFAR ResNet50")
register("mobilenetv1", "mobilenetv1", "mobilenetv1", IMAGENET, 4231976,
  "ImageNet MobileNetV1 1.0/224 (DKD/mdistiller layout)")

-- other spellings the code bases use
local aliases = {
  mobile_half = "MobileNetV2",
  vgg8_bn = "vgg8", vgg11_bn = "vgg11", vgg13_bn = "vgg13", vgg16_bn = "vgg16", vgg19_bn = "vgg19",
  MobileNetV1 = "mobilenetv1",
}

local function lookup(name, fn)
  if type(name) ~= "string" then
    error(("models.%s: model name must be a string, got %s"):format(fn, type(name)), 3)
  end
  local entry = zoo:get(name) or zoo:get(aliases[name] or "")
  if entry then
    return entry
  end
  local candidates = {}
  for _, known in ipairs(zoo:names()) do
    if known:lower() == name:lower() then
      candidates[#candidates + 1] = "'" .. known .. "'"
    end
  end
  local hint = ""
  if #candidates > 0 then
    hint = (" (names are case-sensitive: did you mean %s?)"):format(table.concat(candidates, " or "))
  end
  error(("models.%s: unknown model '%s'%s; known models: %s (aliases: %s)"):format(
    fn, name, hint, table.concat(zoo:names(), ", "),
    table.concat(registry.sorted_keys(aliases), ", ")), 3)
end

--- Builds a model: create(name, {num_classes = N, ...}). num_classes
-- defaults to 100 for CIFAR models and 1000 for ImageNet ones; other
-- options go to the family's constructor (e.g. drop_rate for WRNs).
function models.create(name, opts)
  local entry = lookup(name, "create")
  if opts ~= nil and type(opts) ~= "table" then
    error(("models.create: options must be a table, got %s"):format(type(opts)), 2)
  end
  local family = require("distill.models." .. entry.family)
  return family[entry.constructor](opts)
end

--- Sorted registry names; list{aliases = true} appends the aliases;
-- list{grouped = true} orders them by family as model_facts.md does
-- (CIFAR ResNets, WRNs, VGGs, MobileNetV2, ShuffleNets, ResNet50, then
-- the ImageNet models).
function models.list(opts)
  local names = opts and opts.grouped and zoo:in_order() or zoo:names()
  if opts and opts.aliases then
    for _, alias in ipairs(registry.sorted_keys(aliases)) do
      names[#names + 1] = alias
    end
  end
  return names
end

--- Facts about a registry name: name (canonical), family (file in models/),
-- constructor, dataset, input_size {C, H, W}, num_classes (default),
-- params (reference trainable parameter count with the default classes),
-- macs (reference forward MACs per image, CIFAR models only), description.
function models.info(name)
  local entry = lookup(name, "info")
  return {
    name = entry.name,
    family = entry.family,
    constructor = entry.constructor,
    dataset = entry.domain.dataset,
    input_size = { table.unpack(entry.domain.input_size) },
    num_classes = entry.domain.num_classes,
    params = entry.params,
    macs = reference_macs[entry.name],
    description = entry.description,
  }
end

--- The family module of a registry name (for its block classes).
function models.family(name)
  return require("distill.models." .. lookup(name, "family").family)
end

return models

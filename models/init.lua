-- distill.models: the model zoo registry.
--   local models = require "distill.models"
--   local net = models.create("resnet8x4", {num_classes = 100})
--   models.list()          --> sorted registry names
--   models.info("wrn_40_2") --> {name, family, input_size, num_classes, params, description}
--   models.build{family = "fmnist", name = "FashionResNet", widths = {4, 4, 8, 8}}
--
-- CIFAR names are the `model_dict` keys of the CRD code base
-- (HobbitLong/RepDistiller); ImageNet names are torchvision's. Beware the
-- two 50-layer ResNets: "ResNet50" is the CRD code base's CIFAR variant
-- (32x32 input, 100 classes by default), "resnet50" is torchvision's
-- ImageNet model (224x224, 1000 classes). Names are case-sensitive.
-- Each family lives in its own file, registered below, and is loaded on
-- first use. Besides the 26 zoo models of the CRD/DKD code bases the
-- registry holds this project's small Fashion-MNIST models; models.list()
-- names the zoo, models.list{all = true} both.
local registry = require "distill.registry"

local models = {}

-- family name -> module; a family is a file in models/
local families = registry.new("models", "family")
for _, family in ipairs { "resnet", "wrn", "vgg", "mobilenetv2", "shufflenetv1", "shufflenetv2",
  "resnetv2", "imagenet_resnet", "mobilenetv1", "fmnist" } do
  families:add(family, "distill.models." .. family)
end

local CIFAR = { input_size = { 3, 32, 32 }, num_classes = 100, dataset = "CIFAR" }
local IMAGENET = { input_size = { 3, 224, 224 }, num_classes = 1000, dataset = "ImageNet" }
local FASHION_MNIST = { input_size = { 1, 28, 28 }, num_classes = 10, dataset = "Fashion-MNIST" }

-- name -> {family, constructor (its name in the family), domain, trainable
-- params with the default classes (reference figures), description, zoo
-- (one of the code bases' models)}, added in the order of model_facts.md
-- (families together)
local zoo = registry.new("models", "model")

local function register(name, family, constructor, domain, params, description, opts)
  families:find(family)
  zoo:add(name, {
    name = name, family = family, constructor = constructor, domain = domain,
    params = params, description = description, zoo = not (opts and opts.zoo == false),
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

register("fmnist_resnet_t", "fmnist", "fmnist_resnet_t", FASHION_MNIST, 77754,
  "FashionResNet 16/16/32/64, 1 block per stage: the demo's Fashion-MNIST teacher", { zoo = false })
register("fmnist_resnet_s", "fmnist", "fmnist_resnet_s", FASHION_MNIST, 19810,
  "FashionResNet 8/8/16/32, 1 block per stage: the demo's Fashion-MNIST student", { zoo = false })

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
  local family = require(families:find(entry.family))
  return family[entry.constructor](opts)
end

--- Builds a model from a spec: a registry name ("resnet8x4") or a family
-- table {family = "fmnist", name = "FashionResNet", widths = {...}} naming
-- a constructor of a registered family, whose other keys are its options.
-- opts (e.g. {num_classes = 10}) go to the constructor too; the spec's
-- own keys win.
function models.build(spec, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error(("models.build: options must be a table, got %s"):format(type(opts)), 2)
  end
  if type(spec) == "string" then
    return models.create(spec, opts)
  elseif type(spec) ~= "table" then
    error("models.build: a model must be a registry name or {family =, name =}, got " .. type(spec), 2)
  end
  local family_name, name = spec.family, spec.name
  if type(family_name) ~= "string" or type(name) ~= "string" then
    error("models.build: a model table needs family (a file in models/) and name", 2)
  end
  local family = require(families:find(family_name, 2))
  local constructor = family[name]
  if type(constructor) ~= "function" and type(constructor) ~= "table" then
    error(("models.build: models.%s has no model '%s'"):format(family_name, name), 2)
  end
  local merged = {}
  for k, v in pairs(opts or {}) do
    merged[k] = v
  end
  for k, v in pairs(spec) do
    if k ~= "family" and k ~= "name" then
      merged[k] = v
    end
  end
  return constructor(merged)
end

--- Sorted names of the registered families (files in models/).
function models.families()
  return families:names()
end

--- Sorted names of the zoo's models; list{aliases = true} appends the
-- aliases; list{grouped = true} orders them by family as model_facts.md
-- does (CIFAR ResNets, WRNs, VGGs, MobileNetV2, ShuffleNets, ResNet50,
-- then the ImageNet models); list{all = true} adds the project's own
-- models (Fashion-MNIST).
function models.list(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("models.list: argument #1: expected an options table {aliases =, grouped =, all =} or nil, got "
      .. type(opts), 2)
  end
  local names = {}
  for _, name in ipairs(opts and opts.grouped and zoo:in_order() or zoo:names()) do
    if zoo:get(name).zoo or (opts and opts.all) then
      names[#names + 1] = name
    end
  end
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
  return require(families:find(lookup(name, "family").family))
end

return models

-- ImageNet ResNets with torchvision's definitions (torchvision.models.resnet):
-- resnet18, resnet34 (BasicBlock [2,2,2,2] / [3,4,6,3]) and resnet50
-- (Bottleneck [3,4,6,3], stride on the 3x3 conv, "ResNet v1.5"). 7x7
-- stride-2 stem, 3x3 stride-2 max-pool, four stages, adaptive average pool,
-- Linear `fc`; 224x224 input, num_classes 1000 by default. Parameter names
-- are torchvision's (layer1.0.conv1.weight, layer2.0.downsample.0.weight).
--
-- Not to be confused with the CIFAR "ResNet50" (models/resnetv2.lua).
--
-- feats = {stem (after BN-ReLU, before the max-pool), stage1..stage4,
-- pooled}, the taps of the DKD code base (mdistiller) for these nets; with
-- preact the stem is taken before its ReLU and the stages are the pre-ReLU
-- sums of each stage's last block.
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local imagenet_resnet = {}

local function conv3x3(in_planes, out_planes, stride)
  return nn.Conv2d(in_planes, out_planes, 3, { stride = stride or 1, padding = 1, bias = false })
end

local function conv1x1(in_planes, out_planes, stride)
  return nn.Conv2d(in_planes, out_planes, 1, { stride = stride or 1, bias = false })
end

local BasicBlock = nn.class("BasicBlock")
BasicBlock.expansion = 1

function BasicBlock:init(inplanes, planes, stride, downsample)
  self.conv1 = conv3x3(inplanes, planes, stride)
  self.bn1 = nn.BatchNorm2d(planes)
  self.relu = nn.ReLU()
  self.conv2 = conv3x3(planes, planes)
  self.bn2 = nn.BatchNorm2d(planes)
  if downsample then
    self.downsample = downsample
  end
  self.stride = stride or 1
end

--- Returns (ReLU(sum), sum).
function BasicBlock:forward(x)
  local out = self.relu(self.bn1(self.conv1(x)))
  out = self.bn2(self.conv2(out))
  local identity = self.downsample and self.downsample(x) or x
  local preact = out + identity
  return F.relu(preact), preact
end

local Bottleneck = nn.class("Bottleneck")
Bottleneck.expansion = 4

function Bottleneck:init(inplanes, planes, stride, downsample)
  self.conv1 = conv1x1(inplanes, planes)
  self.bn1 = nn.BatchNorm2d(planes)
  self.conv2 = conv3x3(planes, planes, stride)
  self.bn2 = nn.BatchNorm2d(planes)
  self.conv3 = conv1x1(planes, planes * 4)
  self.bn3 = nn.BatchNorm2d(planes * 4)
  self.relu = nn.ReLU()
  if downsample then
    self.downsample = downsample
  end
  self.stride = stride or 1
end

--- Returns (ReLU(sum), sum).
function Bottleneck:forward(x)
  local out = self.relu(self.bn1(self.conv1(x)))
  out = self.relu(self.bn2(self.conv2(out)))
  out = self.bn3(self.conv3(out))
  local identity = self.downsample and self.downsample(x) or x
  local preact = out + identity
  return F.relu(preact), preact
end

local ResNet = nn.class("ResNet")

--- ResNet(block, {n1, n2, n3, n4}, {num_classes = 1000, zero_init_residual = false})
function ResNet:init(block, layers, opts)
  opts = common.model_options("ResNet", opts, 1000, { zero_init_residual = true })
  self.inplanes = 64
  self.conv1 = nn.Conv2d(3, 64, 7, { stride = 2, padding = 3, bias = false })
  self.bn1 = nn.BatchNorm2d(64)
  self.relu = nn.ReLU()
  self.maxpool = nn.MaxPool2d(3, { stride = 2, padding = 1 })
  self.layer1 = self:_make_layer(block, 64, layers[1], 1)
  self.layer2 = self:_make_layer(block, 128, layers[2], 2)
  self.layer3 = self:_make_layer(block, 256, layers[3], 2)
  self.layer4 = self:_make_layer(block, 512, layers[4], 2)
  self.avgpool = nn.AdaptiveAvgPool2d({ 1, 1 })
  self.fc = nn.Linear(512 * block.expansion, opts.num_classes)
  common.init_kaiming_fan_out(self)
  if opts.zero_init_residual then
    -- each residual branch starts as zero, so each block starts as identity
    for _, m in ipairs(self:modules()) do
      if getmetatable(m) == Bottleneck then
        nn.init.zeros_(m.bn3.weight)
      elseif getmetatable(m) == BasicBlock then
        nn.init.zeros_(m.bn2.weight)
      end
    end
  end
end

function ResNet:_make_layer(block, planes, blocks, stride)
  local downsample
  if stride ~= 1 or self.inplanes ~= planes * block.expansion then
    downsample = nn.Sequential(
      conv1x1(self.inplanes, planes * block.expansion, stride),
      nn.BatchNorm2d(planes * block.expansion))
  end
  local layers = nn.Sequential(block(self.inplanes, planes, stride, downsample))
  self.inplanes = planes * block.expansion
  for _ = 2, blocks do
    layers:append(block(self.inplanes, planes))
  end
  return layers
end

function ResNet:get_bn_before_relu()
  local last = getmetatable(self.layer1[1]) == Bottleneck and "bn3" or "bn2"
  return { self.layer1[-1][last], self.layer2[-1][last], self.layer3[-1][last],
    self.layer4[-1][last] }
end

function ResNet:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local stem = self.bn1(self.conv1(x))
  local f0 = self.relu(stem)
  local f1, f1_pre = common.run_stage(self.layer1, self.maxpool(f0))
  local f2, f2_pre = common.run_stage(self.layer2, f1)
  local f3, f3_pre = common.run_stage(self.layer3, f2)
  local f4, f4_pre = common.run_stage(self.layer4, f3)
  local f5 = self.avgpool(f4):flatten(2)
  local logits = self.fc(f5)
  return common.result(opts, logits, { f0, f1, f2, f3, f4, f5 },
    { stem, f1_pre, f2_pre, f3_pre, f4_pre, f5 })
end

imagenet_resnet.ResNet = ResNet
imagenet_resnet.BasicBlock = BasicBlock
imagenet_resnet.Bottleneck = Bottleneck

local configs = {
  resnet18 = { BasicBlock, { 2, 2, 2, 2 } },
  resnet34 = { BasicBlock, { 3, 4, 6, 3 } },
  resnet50 = { Bottleneck, { 3, 4, 6, 3 } },
  resnet101 = { Bottleneck, { 3, 4, 23, 3 } },
  resnet152 = { Bottleneck, { 3, 8, 36, 3 } },
}

for name, config in pairs(configs) do
  imagenet_resnet[name] = function(opts)
    return ResNet(config[1], config[2],
      common.model_options(name, opts, 1000, { zero_init_residual = true }))
  end
end

return imagenet_resnet

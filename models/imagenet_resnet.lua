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
local nn = require "distill.nn"
local common = require "distill.models.common"
local resnet = require "distill.models.resnet"

local imagenet_resnet = {}

-- torchvision's BasicBlock and Bottleneck are the CRD code's (same layers,
-- names and order; Bottleneck strides its 3x3 conv, "ResNet v1.5"), both
-- returning (ReLU(sum), sum).
local BasicBlock = resnet.BasicBlock
local Bottleneck = resnet.Bottleneck

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
  return common.make_resnet_layer(self, block, planes, blocks, stride)
end

function ResNet:get_bn_before_relu()
  return common.bn_before_relu(self, Bottleneck, 4)
end

function ResNet:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local stem = self.bn1(self.conv1(x))
  local f0 = self.relu(stem)
  return common.four_stage_result(self, opts, self.maxpool(f0), f0, stem, self.fc)
end

imagenet_resnet.ResNet = ResNet
imagenet_resnet.BasicBlock = BasicBlock
imagenet_resnet.Bottleneck = Bottleneck

for depth, config in pairs(common.resnet_configs(BasicBlock, Bottleneck)) do
  local name = "resnet" .. depth
  imagenet_resnet[name] = function(opts)
    return ResNet(config[1], config[2],
      common.model_options(name, opts, 1000, { zero_init_residual = true }))
  end
end

return imagenet_resnet

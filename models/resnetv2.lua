-- The CRD code base's CIFAR variant of the ImageNet ResNets
-- (HobbitLong/RepDistiller models/resnetv2.py). The registry exposes
-- ResNet50: a 3x3 stride-1 stem without max-pool at 32x32, four stages of
-- bottleneck blocks [3, 4, 6, 3] (stride on the 3x3 conv) at 32, 16, 8, 4,
-- adaptive average pool and Linear `linear`.
--
-- Not to be confused with the ImageNet "resnet50" (models/imagenet_resnet.lua).
--
-- feats = {stem, stage1, stage2, stage3, stage4, pooled} (6 entries); with
-- preact the four stage outputs are the pre-ReLU sums of each stage's last
-- block. (PyTorch returns a nested list in that case; here the shape of the
-- result is the same with and without preact.)
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local resnetv2 = {}

-- The shortcut is an empty Sequential (identity) unless the block changes
-- the stride or width, as in the PyTorch code.
local function shortcut(in_planes, out_planes, stride)
  if stride ~= 1 or in_planes ~= out_planes then
    return nn.Sequential(
      nn.Conv2d(in_planes, out_planes, 1, { stride = stride, bias = false }),
      nn.BatchNorm2d(out_planes))
  end
  return nn.Sequential()
end

local BasicBlock = nn.class("BasicBlock")
BasicBlock.expansion = 1

function BasicBlock:init(in_planes, planes, stride)
  self.conv1 = nn.Conv2d(in_planes, planes, 3, { stride = stride, padding = 1, bias = false })
  self.bn1 = nn.BatchNorm2d(planes)
  self.conv2 = nn.Conv2d(planes, planes, 3, { padding = 1, bias = false })
  self.bn2 = nn.BatchNorm2d(planes)
  self.shortcut = shortcut(in_planes, planes, stride)
end

--- Returns (ReLU(sum), sum).
function BasicBlock:forward(x)
  local out = F.relu(self.bn1(self.conv1(x)))
  out = self.bn2(self.conv2(out))
  local preact = out + self.shortcut(x)
  return F.relu(preact), preact
end

local Bottleneck = nn.class("Bottleneck")
Bottleneck.expansion = 4

function Bottleneck:init(in_planes, planes, stride)
  self.conv1 = nn.Conv2d(in_planes, planes, 1, { bias = false })
  self.bn1 = nn.BatchNorm2d(planes)
  self.conv2 = nn.Conv2d(planes, planes, 3, { stride = stride, padding = 1, bias = false })
  self.bn2 = nn.BatchNorm2d(planes)
  self.conv3 = nn.Conv2d(planes, planes * 4, 1, { bias = false })
  self.bn3 = nn.BatchNorm2d(planes * 4)
  self.shortcut = shortcut(in_planes, planes * 4, stride)
end

--- Returns (ReLU(sum), sum).
function Bottleneck:forward(x)
  local out = F.relu(self.bn1(self.conv1(x)))
  out = F.relu(self.bn2(self.conv2(out)))
  out = self.bn3(self.conv3(out))
  local preact = out + self.shortcut(x)
  return F.relu(preact), preact
end

local ResNet = nn.class("ResNet")

--- ResNet(block, {n1, n2, n3, n4}, {num_classes = 100})
function ResNet:init(block, num_blocks, opts)
  opts = common.model_options("ResNet", opts, 100)
  self.in_planes = 64
  self.conv1 = nn.Conv2d(3, 64, 3, { padding = 1, bias = false })
  self.bn1 = nn.BatchNorm2d(64)
  self.layer1 = self:_make_layer(block, 64, num_blocks[1], 1)
  self.layer2 = self:_make_layer(block, 128, num_blocks[2], 2)
  self.layer3 = self:_make_layer(block, 256, num_blocks[3], 2)
  self.layer4 = self:_make_layer(block, 512, num_blocks[4], 2)
  self.avgpool = nn.AdaptiveAvgPool2d({ 1, 1 })
  self.linear = nn.Linear(512 * block.expansion, opts.num_classes)
  -- zero_init_residual is off in the published constructors
  common.init_kaiming_fan_out(self)
end

function ResNet:_make_layer(block, planes, count, stride)
  local layers = nn.Sequential()
  for i = 1, count do
    layers:append(block(self.in_planes, planes, i == 1 and stride or 1))
    self.in_planes = planes * block.expansion
  end
  return layers
end

function ResNet:get_bn_before_relu()
  return common.bn_before_relu(self, Bottleneck, 4)
end

function ResNet:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local f0 = F.relu(self.bn1(self.conv1(x)))
  return common.four_stage_result(self, opts, f0, f0, f0, self.linear)
end

resnetv2.ResNet = ResNet
resnetv2.BasicBlock = BasicBlock
resnetv2.Bottleneck = Bottleneck

for depth, config in pairs(common.resnet_configs(BasicBlock, Bottleneck)) do
  local name = "ResNet" .. depth
  resnetv2[name] = function(opts)
    return ResNet(config[1], config[2], common.model_options(name, opts, 100))
  end
end

return resnetv2

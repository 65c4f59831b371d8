-- CIFAR ResNets of the CRD code base (HobbitLong/RepDistiller models/resnet.py):
-- resnet8, 14, 20, 32, 44, 56, 110 (widths 16/16/32/64) and resnet8x4,
-- resnet32x4 (widths 32/64/128/256). Depth 6n+2, three stages of n basic
-- post-activation blocks at 32x32, 16x16 and 8x8, no max-pool, 8x8 average
-- pool and one Linear. Parameter names match the PyTorch code
-- (conv1.weight, layer1.0.conv1.weight, layer2.0.downsample.0.weight, fc.bias).
--
-- feats = {stem (after ReLU), stage1, stage2, stage3, pooled}; with preact
-- the three stage outputs are the pre-ReLU sums of each stage's last block.
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local resnet = {}

local function conv3x3(in_planes, out_planes, stride)
  return nn.Conv2d(in_planes, out_planes, 3, { stride = stride or 1, padding = 1, bias = false })
end

-- ------------------------------------------------------------ BasicBlock

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

--- Returns (ReLU(sum), sum): the sum is the block's pre-activation.
function BasicBlock:forward(x)
  local out = self.relu(self.bn1(self.conv1(x)))
  out = self.bn2(self.conv2(out))
  local residual = self.downsample and self.downsample(x) or x
  local preact = out + residual
  return F.relu(preact), preact
end

-- ------------------------------------------------------------ Bottleneck
-- Defined by the published file (expansion 4); no listed model uses it, but
-- `resnet.ResNet(depth, widths, "bottleneck")` builds the 9n+2 variants.

local Bottleneck = nn.class("Bottleneck")
Bottleneck.expansion = 4

function Bottleneck:init(inplanes, planes, stride, downsample)
  self.conv1 = nn.Conv2d(inplanes, planes, 1, { bias = false })
  self.bn1 = nn.BatchNorm2d(planes)
  self.conv2 = conv3x3(planes, planes, stride)
  self.bn2 = nn.BatchNorm2d(planes)
  self.conv3 = nn.Conv2d(planes, planes * 4, 1, { bias = false })
  self.bn3 = nn.BatchNorm2d(planes * 4)
  self.relu = nn.ReLU()
  if downsample then
    self.downsample = downsample
  end
  self.stride = stride or 1
end

function Bottleneck:forward(x)
  local out = self.relu(self.bn1(self.conv1(x)))
  out = self.relu(self.bn2(self.conv2(out)))
  out = self.bn3(self.conv3(out))
  local residual = self.downsample and self.downsample(x) or x
  local preact = out + residual
  return F.relu(preact), preact
end

-- ---------------------------------------------------------------- ResNet

local ResNet = nn.class("ResNet")

--- ResNet(depth, {w0, w1, w2, w3}, block_name, {num_classes = 100})
function ResNet:init(depth, num_filters, block_name, opts)
  opts = common.model_options("ResNet", opts, 100)
  local block, n
  if block_name:lower() == "basicblock" then
    assert((depth - 2) % 6 == 0, "models.ResNet: basic-block depth must be 6n+2")
    block, n = BasicBlock, (depth - 2) // 6
  elseif block_name:lower() == "bottleneck" then
    assert((depth - 2) % 9 == 0, "models.ResNet: bottleneck depth must be 9n+2")
    block, n = Bottleneck, (depth - 2) // 9
  else
    error("models.ResNet: block_name must be 'basicblock' or 'bottleneck', got " .. tostring(block_name), 2)
  end
  self.inplanes = num_filters[1]
  self.conv1 = nn.Conv2d(3, num_filters[1], 3, { padding = 1, bias = false })
  self.bn1 = nn.BatchNorm2d(num_filters[1])
  self.relu = nn.ReLU()
  self.layer1 = self:_make_layer(block, num_filters[2], n, 1)
  self.layer2 = self:_make_layer(block, num_filters[3], n, 2)
  self.layer3 = self:_make_layer(block, num_filters[4], n, 2)
  self.avgpool = nn.AvgPool2d(8)
  self.fc = nn.Linear(num_filters[4] * block.expansion, opts.num_classes)
  common.init_kaiming_fan_out(self)
end

function ResNet:_make_layer(block, planes, blocks, stride)
  return common.make_resnet_layer(self, block, planes, blocks, stride)
end

--- The three BNs whose outputs are the stage preacts' residual branches
-- (CRD's get_bn_before_relu, used by OFD).
function ResNet:get_bn_before_relu()
  return common.bn_before_relu(self, Bottleneck, 3)
end

function ResNet:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local f0 = self.relu(self.bn1(self.conv1(x)))
  local f, pre = common.run_stages(self, f0, 3)
  local f4 = self.avgpool(f[3]):flatten(2)
  local logits = self.fc(f4)
  return common.result(opts, logits, { f0, f[1], f[2], f[3], f4 }, { f0, pre[1], pre[2], pre[3], f4 })
end

resnet.ResNet = ResNet
resnet.BasicBlock = BasicBlock
resnet.Bottleneck = Bottleneck

local configs = {
  resnet8 = { 8, { 16, 16, 32, 64 } },
  resnet14 = { 14, { 16, 16, 32, 64 } },
  resnet20 = { 20, { 16, 16, 32, 64 } },
  resnet32 = { 32, { 16, 16, 32, 64 } },
  resnet44 = { 44, { 16, 16, 32, 64 } },
  resnet56 = { 56, { 16, 16, 32, 64 } },
  resnet110 = { 110, { 16, 16, 32, 64 } },
  resnet8x4 = { 8, { 32, 64, 128, 256 } },
  resnet32x4 = { 32, { 32, 64, 128, 256 } },
}

for name, config in pairs(configs) do
  resnet[name] = function(opts)
    local model = ResNet(config[1], config[2], "basicblock", common.model_options(name, opts, 100))
    return model
  end
end

return resnet

-- Small ResNets for 28x28 grey-scale inputs (Fashion-MNIST, MNIST), sized
-- for a CPU: the teacher and student of the demo and the fmnist_* configs.
-- Built from the CIFAR ResNet's BasicBlock: a 3x3 stem, three stages of
-- basic blocks at 28x28, 14x14 and 7x7, global average pooling and one
-- Linear. Same forward convention as every zoo model:
--   model(x) -> logits;  model:forward(x, {features = true[, preact = true]})
--   -> {feats = {stem, stage1, stage2, stage3, pooled}, pooled =, logits =}
--
--   local fmnist = require "distill.models.fmnist"
--   fmnist.fmnist_resnet_t{num_classes = 10}     -- teacher, widths 16/16/32/64
--   fmnist.fmnist_resnet_s{num_classes = 10}     -- student, widths 8/8/16/32
--   fmnist.FashionResNet{widths = {16, 16, 32, 64}, blocks = 1, in_channels = 1}
local nn = require "distill.nn"
local common = require "distill.models.common"
local resnet = require "distill.models.resnet"

local fmnist = {}

local FashionResNet = nn.class("FashionResNet")

local valid = { widths = true, blocks = true, in_channels = true }

function FashionResNet:init(opts)
  opts = common.model_options("FashionResNet", opts, 10, valid)
  local widths = opts.widths or { 16, 16, 32, 64 }
  local blocks = opts.blocks or 1
  self.in_channels = opts.in_channels or 1
  self.inplanes = widths[1]
  self.conv1 = nn.Conv2d(self.in_channels, widths[1], 3, { padding = 1, bias = false })
  self.bn1 = nn.BatchNorm2d(widths[1])
  self.relu = nn.ReLU()
  self.layer1 = self:_make_layer(widths[2], blocks, 1)
  self.layer2 = self:_make_layer(widths[3], blocks, 2)
  self.layer3 = self:_make_layer(widths[4], blocks, 2)
  self.avgpool = nn.AdaptiveAvgPool2d(1)
  self.fc = nn.Linear(widths[4], opts.num_classes)
  common.init_kaiming_fan_out(self)
end

function FashionResNet:_make_layer(planes, blocks, stride)
  local downsample
  if stride ~= 1 or self.inplanes ~= planes then
    downsample = nn.Sequential(
      nn.Conv2d(self.inplanes, planes, 1, { stride = stride, bias = false }),
      nn.BatchNorm2d(planes))
  end
  local layers = nn.Sequential(resnet.BasicBlock(self.inplanes, planes, stride, downsample))
  self.inplanes = planes
  for _ = 2, blocks do
    layers:append(resnet.BasicBlock(self.inplanes, planes))
  end
  return layers
end

function FashionResNet:get_bn_before_relu()
  return { self.layer1[-1].bn2, self.layer2[-1].bn2, self.layer3[-1].bn2 }
end

local function check_input(self, x, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("models.FashionResNet: forward options must be a table", 3)
  end
  local ok, shape = pcall(function() return x:shape() end)
  if not ok or #shape ~= 4 or shape[2] ~= self.in_channels then
    error(("models.FashionResNet: forward expects an input of shape {N, %d, H, W}, got %s")
      :format(self.in_channels, ok and ("{" .. table.concat(shape, ", ") .. "}") or type(x)), 3)
  end
  return opts or {}
end

function FashionResNet:forward(x, opts)
  opts = check_input(self, x, opts)
  local f0 = self.relu(self.bn1(self.conv1(x)))
  local f1, f1_pre = common.run_stage(self.layer1, f0)
  local f2, f2_pre = common.run_stage(self.layer2, f1)
  local f3, f3_pre = common.run_stage(self.layer3, f2)
  local f4 = self.avgpool(f3):flatten(2)
  local logits = self.fc(f4)
  return common.result(opts, logits, { f0, f1, f2, f3, f4 }, { f0, f1_pre, f2_pre, f3_pre, f4 })
end

fmnist.FashionResNet = FashionResNet

local presets = {
  fmnist_resnet_t = { widths = { 16, 16, 32, 64 }, blocks = 1 },
  fmnist_resnet_s = { widths = { 8, 8, 16, 32 }, blocks = 1 },
}

for name, preset in pairs(presets) do
  fmnist[name] = function(opts)
    local merged = {}
    for k, v in pairs(preset) do
      merged[k] = v
    end
    for k, v in pairs(opts or {}) do
      merged[k] = v
    end
    return FashionResNet(merged)
  end
end

return fmnist

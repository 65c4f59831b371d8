-- VGG with batch norm as the CRD code base builds it for CIFAR
-- (HobbitLong/RepDistiller models/vgg.py, the *_bn constructors): five conv
-- blocks `block0`..`block4` (3x3 convs with bias, each followed by BN and
-- ReLU except the block's last ReLU, which forward applies so that it can
-- also return the pre-ReLU tensor), max-pools `pool0`..`pool3`, adaptive
-- average pool `pool4` and Linear `classifier`. The registry names are the
-- model_dict keys vgg8, vgg11, vgg13, vgg16, vgg19.
--
-- feats = {f0..f4 (block outputs after ReLU), pooled}; with preact f1..f4 are
-- the pre-ReLU BN outputs (f0 stays post-ReLU, as published). pool3 runs only
-- for 64x64 inputs, so for CIFAR blocks 3 and 4 both run at 4x4.
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local vgg = {}

local cfg = {
  A = { { 64 }, { 128 }, { 256, 256 }, { 512, 512 }, { 512, 512 } },
  B = { { 64, 64 }, { 128, 128 }, { 256, 256 }, { 512, 512 }, { 512, 512 } },
  D = { { 64, 64 }, { 128, 128 }, { 256, 256, 256 }, { 512, 512, 512 }, { 512, 512, 512 } },
  E = { { 64, 64 }, { 128, 128 }, { 256, 256, 256, 256 }, { 512, 512, 512, 512 },
    { 512, 512, 512, 512 } },
  S = { { 64 }, { 128 }, { 256 }, { 512 }, { 512 } },
}

-- conv [BN] ReLU per width, without the final ReLU
local function make_layers(widths, batch_norm, in_channels)
  local layers = {}
  for _, width in ipairs(widths) do
    layers[#layers + 1] = nn.Conv2d(in_channels, width, 3, { padding = 1 })
    if batch_norm then
      layers[#layers + 1] = nn.BatchNorm2d(width)
    end
    layers[#layers + 1] = nn.ReLU()
    in_channels = width
  end
  layers[#layers] = nil
  return nn.Sequential(layers)
end

local VGG = nn.class("VGG")

--- VGG(config, {batch_norm = false, num_classes = 100})
function VGG:init(config, opts)
  opts = common.model_options("VGG", opts, 100, { batch_norm = true })
  local batch_norm = opts.batch_norm == true
  self.block0 = make_layers(config[1], batch_norm, 3)
  self.block1 = make_layers(config[2], batch_norm, config[1][#config[1]])
  self.block2 = make_layers(config[3], batch_norm, config[2][#config[2]])
  self.block3 = make_layers(config[4], batch_norm, config[3][#config[3]])
  self.block4 = make_layers(config[5], batch_norm, config[4][#config[4]])
  self.pool0 = nn.MaxPool2d(2, { stride = 2 })
  self.pool1 = nn.MaxPool2d(2, { stride = 2 })
  self.pool2 = nn.MaxPool2d(2, { stride = 2 })
  self.pool3 = nn.MaxPool2d(2, { stride = 2 })
  self.pool4 = nn.AdaptiveAvgPool2d({ 1, 1 })
  self.classifier = nn.Linear(512, opts.num_classes)
  common.init_normal_fan_out(self, "normal")
end

function VGG:get_bn_before_relu()
  return { self.block1[-1], self.block2[-1], self.block3[-1], self.block4[-1] }
end

function VGG:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local h = x:shape()[3]
  local f0 = F.relu(self.block0(x))
  local f1_pre = self.block1(self.pool0(f0))
  local f1 = F.relu(f1_pre)
  local f2_pre = self.block2(self.pool1(f1))
  local f2 = F.relu(f2_pre)
  local f3_pre = self.block3(self.pool2(f2))
  local f3 = F.relu(f3_pre)
  local x4 = f3
  if h == 64 then
    x4 = self.pool3(x4)
  end
  local f4_pre = self.block4(x4)
  local f4 = F.relu(f4_pre)
  local f5 = self.pool4(f4):flatten(2)
  local logits = self.classifier(f5)
  return common.result(opts, logits, { f0, f1, f2, f3, f4, f5 },
    { f0, f1_pre, f2_pre, f3_pre, f4_pre, f5 })
end

vgg.VGG = VGG
vgg.cfg = cfg

local constructors = { vgg8 = "S", vgg11 = "A", vgg13 = "B", vgg16 = "D", vgg19 = "E" }
for name, key in pairs(constructors) do
  -- vggN_bn: batch norm (the model_dict's vggN); vggN: without BN
  vgg[name .. "_bn"] = function(opts)
    local o = common.model_options(name .. "_bn", opts, 100)
    o.batch_norm = true
    return VGG(cfg[key], o)
  end
  vgg[name] = function(opts)
    local o = common.model_options(name, opts, 100)
    o.batch_norm = false
    return VGG(cfg[key], o)
  end
end

return vgg

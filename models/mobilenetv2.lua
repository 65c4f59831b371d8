-- MobileNetV2 as the CRD code base builds it for CIFAR
-- (HobbitLong/RepDistiller models/mobilenetv2.py). The registry's
-- "MobileNetV2" (alias "mobile_half") is MobileNetV2(T = 6, width 0.5):
-- a stride-2 stem (the net runs at 16x16 from the start), 17 inverted
-- residual blocks in `blocks` (a ModuleList of 7 Sequentials), the
-- 1x1 head conv `conv2` to 1280 channels, AvgPool2d(2, ceil_mode) and
-- `classifier` (a Sequential holding one Linear).
--
-- Unlike torchvision, the 1x1 expansion conv is present even when t = 1.
-- feats = {stem, after setting 2, after 3, after 5, after 7, pooled}; the
-- preact flag is ignored, as in the published code.
local nn = require "distill.nn"
local common = require "distill.models.common"

local mobilenetv2 = {}

local InvertedResidual = nn.class("InvertedResidual")

function InvertedResidual:init(inp, oup, stride, expand_ratio)
  local hidden = inp * expand_ratio
  self.stride = stride
  self.use_res_connect = stride == 1 and inp == oup
  self.conv = nn.Sequential(
    -- pointwise expansion
    nn.Conv2d(inp, hidden, 1, { bias = false }),
    nn.BatchNorm2d(hidden),
    nn.ReLU(),
    -- depthwise
    nn.Conv2d(hidden, hidden, 3, { stride = stride, padding = 1, groups = hidden, bias = false }),
    nn.BatchNorm2d(hidden),
    nn.ReLU(),
    -- pointwise linear bottleneck
    nn.Conv2d(hidden, oup, 1, { bias = false }),
    nn.BatchNorm2d(oup))
end

function InvertedResidual:forward(x)
  if self.use_res_connect then
    return x + self.conv(x)
  end
  return self.conv(x)
end

local MobileNetV2 = nn.class("MobileNetV2")

--- MobileNetV2(T, width_mult, {num_classes = 100, input_size = 32, remove_avg = false})
function MobileNetV2:init(T, width_mult, opts)
  opts = common.model_options("MobileNetV2", opts, 100, { input_size = true, remove_avg = true })
  local input_size = opts.input_size or 32
  if input_size % 32 ~= 0 then
    error("models.MobileNetV2: input_size must be a multiple of 32, got " .. tostring(input_size), 2)
  end
  self.remove_avg = opts.remove_avg == true
  self.settings = {
    -- t, c, n, s
    { 1, 16, 1, 1 },
    { T, 24, 2, 1 },
    { T, 32, 3, 2 },
    { T, 64, 4, 2 },
    { T, 96, 3, 1 },
    { T, 160, 3, 2 },
    { T, 320, 1, 1 },
  }
  -- int() in the Python code truncates
  local input_channel = math.floor(32 * width_mult)
  self.conv1 = common.conv_bn_relu(3, input_channel, 3, { stride = 2, padding = 1 })
  self.blocks = nn.ModuleList()
  for _, s in ipairs(self.settings) do
    local t, c, n, stride = s[1], s[2], s[3], s[4]
    local output_channel = math.floor(c * width_mult)
    local layers = nn.Sequential()
    for i = 1, n do
      layers:append(InvertedResidual(input_channel, output_channel, i == 1 and stride or 1, t))
      input_channel = output_channel
    end
    self.blocks:append(layers)
  end
  self.last_channel = width_mult > 1 and math.floor(1280 * width_mult) or 1280
  self.conv2 = common.conv_bn_relu(input_channel, self.last_channel, 1)
  self.classifier = nn.Sequential(nn.Linear(self.last_channel, opts.num_classes))
  self.avgpool = nn.AvgPool2d(input_size // 16, { ceil_mode = true })
  common.init_normal_fan_out(self, "normal")
end

function MobileNetV2:get_bn_before_relu()
  local blocks = self.blocks
  return { blocks[2][-1].conv[-1], blocks[3][-1].conv[-1], blocks[5][-1].conv[-1],
    blocks[7][-1].conv[-1] }
end

function MobileNetV2:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local blocks = self.blocks
  local f0 = self.conv1(x)
  local f1 = blocks[2](blocks[1](f0))
  local f2 = blocks[3](f1)
  local f3 = blocks[5](blocks[4](f2))
  local f4 = blocks[7](blocks[6](f3))
  local out = self.conv2(f4)
  if not self.remove_avg then
    out = self.avgpool(out)
  end
  local f5 = out:flatten(2)
  local logits = self.classifier(f5)
  return common.result(opts, logits, { f0, f1, f2, f3, f4, f5 })
end

mobilenetv2.MobileNetV2 = MobileNetV2
mobilenetv2.InvertedResidual = InvertedResidual

--- mobilenetv2_T_w(T, W, {num_classes = 100})
function mobilenetv2.mobilenetv2_T_w(T, W, opts)
  return MobileNetV2(T, W, common.model_options("mobilenetv2_T_w", opts, 100,
    { input_size = true, remove_avg = true }))
end

--- mobile_half({num_classes = 100}): the registry's "MobileNetV2".
-- (The PyTorch constructor also prints "6 0.5"; this one does not.)
function mobilenetv2.mobile_half(opts)
  return MobileNetV2(6, 0.5, common.model_options("mobile_half", opts, 100))
end

return mobilenetv2

-- The standard MobileNetV1 (width 1.0, 224x224 input) with the layout and
-- parameter names of the ImageNet MobileNetV1 of the CRD/DKD code bases
-- (megvii-research/mdistiller, mdistiller/models/imagenet/mobilenetv1.py):
-- `model` is a Sequential of 14 conv units and the pool, `fc` the Linear.
--   model.0           conv3x3(3->32, s2) BN ReLU           (model.0.0.weight, model.0.1.*)
--   model.1..model.13 depthwise conv3x3 BN ReLU, pointwise conv1x1 BN ReLU
--                     (model.N.0 depthwise, model.N.1 BN, model.N.3 pointwise, model.N.4 BN)
--   model.14          global average pool
--   fc                Linear(1024, num_classes = 1000)
-- 4,231,976 trainable parameters with 1000 classes.
--
-- One deliberate difference: model.14 is AdaptiveAvgPool2d(1) instead of the
-- published AvgPool2d(7). At 224x224 both average the final 7x7 map, so the
-- outputs are identical; the adaptive pool also accepts smaller inputs.
--
-- feats = {unit 3 (128x56x56), unit 5 (256x28x28), unit 11 (512x14x14),
-- unit 13 (1024x7x7), pooled (1024)} at 224x224, the taps of mdistiller; with
-- preact the four unit outputs are taken before their final ReLU.
-- Init: PyTorch's defaults (the published code sets none).
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local mobilenetv1 = {}

local function conv_dw(inp, oup, stride)
  return nn.Sequential(
    nn.Conv2d(inp, inp, 3, { stride = stride, padding = 1, groups = inp, bias = false }),
    nn.BatchNorm2d(inp),
    nn.ReLU(),
    nn.Conv2d(inp, oup, 1, { bias = false }),
    nn.BatchNorm2d(oup),
    nn.ReLU())
end

-- (in, out, stride) of the 13 depthwise-separable units
local units = {
  { 32, 64, 1 }, { 64, 128, 2 }, { 128, 128, 1 }, { 128, 256, 2 }, { 256, 256, 1 },
  { 256, 512, 2 }, { 512, 512, 1 }, { 512, 512, 1 }, { 512, 512, 1 }, { 512, 512, 1 },
  { 512, 512, 1 }, { 512, 1024, 2 }, { 1024, 1024, 1 },
}

-- Lua positions (1-based) in `model` of the units whose outputs are taps:
-- model.3, model.5, model.11 and model.13.
local taps = { [4] = 1, [6] = 2, [12] = 3, [14] = 4 }

local MobileNetV1 = nn.class("MobileNetV1")

--- MobileNetV1({num_classes = 1000})
function MobileNetV1:init(opts)
  opts = common.model_options("MobileNetV1", opts, 1000)
  local model = nn.Sequential(common.conv_bn_relu(3, 32, 3, { stride = 2, padding = 1 }))
  for _, u in ipairs(units) do
    model:append(conv_dw(u[1], u[2], u[3]))
  end
  model:append(nn.AdaptiveAvgPool2d({ 1, 1 }))
  self.model = model
  self.fc = nn.Linear(1024, opts.num_classes)
end

-- Runs a unit but its final ReLU; returns (pre-ReLU, post-ReLU).
local function run_unit(unit, x)
  local children = unit:children()
  for i = 1, #children - 1 do
    x = children[i](x)
  end
  return x, F.relu(x)
end

function MobileNetV1:get_bn_before_relu()
  local model = self.model
  return { model[4][5], model[6][5], model[12][5], model[14][5] }
end

function MobileNetV1:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local model = self.model
  local feats, preacts = {}, {}
  for i = 1, 14 do
    local tap = taps[i]
    if tap then
      preacts[tap], x = run_unit(model[i], x)
      feats[tap] = x
    else
      x = model[i](x)
    end
  end
  local pooled = model[15](x):flatten(2)
  local logits = self.fc(pooled)
  feats[5], preacts[5] = pooled, pooled
  return common.result(opts, logits, feats, preacts)
end

mobilenetv1.MobileNetV1 = MobileNetV1

function mobilenetv1.mobilenetv1(opts)
  return MobileNetV1(common.model_options("mobilenetv1", opts, 1000))
end

return mobilenetv1

-- ShuffleNetV1 as the CRD code base builds it for CIFAR
-- (HobbitLong/RepDistiller models/ShuffleNetv1.py, `ShuffleV1`):
-- a 1x1 stem conv to 24 channels at 32x32 (no stride, no max-pool), three
-- stages of bottlenecks with 3 groups (out 240/480/960, blocks 4/8/4, the
-- first of each with stride 2 and a concatenated average-pool shortcut),
-- 4x4 average pool and Linear `linear`.
--
-- feats = {stem, stage1, stage2, stage3, pooled}; with preact the stage
-- outputs are the pre-ReLU preact of each stage's last block.
-- Init: PyTorch's defaults only, as published.
local distill = require "distill"
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local shufflenetv1 = {}

local Bottleneck = nn.class("Bottleneck")

function Bottleneck:init(in_planes, out_planes, stride, groups)
  self.stride = stride
  local mid_planes = out_planes // 4
  -- the first 1x1 of the net sees only 24 stem channels: no grouping there
  local g = in_planes == 24 and 1 or groups
  self.conv1 = nn.Conv2d(in_planes, mid_planes, 1, { groups = g, bias = false })
  self.bn1 = nn.BatchNorm2d(mid_planes)
  self.shuffle1 = common.ShuffleBlock(g)
  self.conv2 = nn.Conv2d(mid_planes, mid_planes, 3,
    { stride = stride, padding = 1, groups = mid_planes, bias = false })
  self.bn2 = nn.BatchNorm2d(mid_planes)
  self.conv3 = nn.Conv2d(mid_planes, out_planes, 1, { groups = groups, bias = false })
  self.bn3 = nn.BatchNorm2d(out_planes)
  if stride == 2 then
    self.shortcut = nn.Sequential(nn.AvgPool2d(3, { stride = 2, padding = 1 }))
  else
    self.shortcut = nn.Sequential()
  end
end

--- Returns (ReLU(preact), preact); preact concatenates branch and pooled
-- input for stride-2 blocks and adds them otherwise.
function Bottleneck:forward(x)
  local out = F.relu(self.bn1(self.conv1(x)))
  out = self.shuffle1(out)
  -- this implementation keeps a ReLU after the depthwise conv
  out = F.relu(self.bn2(self.conv2(out)))
  out = self.bn3(self.conv3(out))
  local res = self.shortcut(x)
  local preact
  if self.stride == 2 then
    preact = distill.cat({ out, res }, 2)
  else
    preact = out + res
  end
  return F.relu(preact), preact
end

local ShuffleNet = nn.class("ShuffleNet")

--- ShuffleNet({out_planes = {...}, num_blocks = {...}, groups = g}, {num_classes = 100})
function ShuffleNet:init(cfg, opts)
  opts = common.model_options("ShuffleNet", opts, 100)
  self.conv1 = nn.Conv2d(3, 24, 1, { bias = false })
  self.bn1 = nn.BatchNorm2d(24)
  self.in_planes = 24
  self.layer1 = self:_make_layer(cfg.out_planes[1], cfg.num_blocks[1], cfg.groups)
  self.layer2 = self:_make_layer(cfg.out_planes[2], cfg.num_blocks[2], cfg.groups)
  self.layer3 = self:_make_layer(cfg.out_planes[3], cfg.num_blocks[3], cfg.groups)
  self.linear = nn.Linear(cfg.out_planes[3], opts.num_classes)
end

function ShuffleNet:_make_layer(out_planes, num_blocks, groups)
  local layers = nn.Sequential()
  for i = 1, num_blocks do
    -- the stride-2 block concatenates its input, so its branch makes the rest
    local cat_planes = i == 1 and self.in_planes or 0
    layers:append(Bottleneck(self.in_planes, out_planes - cat_planes, i == 1 and 2 or 1, groups))
    self.in_planes = out_planes
  end
  return layers
end

function ShuffleNet:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  return common.shuffle_forward(self, x, opts)
end

shufflenetv1.ShuffleNet = ShuffleNet
shufflenetv1.Bottleneck = Bottleneck

function shufflenetv1.ShuffleV1(opts)
  local cfg = { out_planes = { 240, 480, 960 }, num_blocks = { 4, 8, 4 }, groups = 3 }
  return ShuffleNet(cfg, common.model_options("ShuffleV1", opts, 100))
end

return shufflenetv1

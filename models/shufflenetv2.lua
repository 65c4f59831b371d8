-- ShuffleNetV2 as the CRD code base builds it for CIFAR
-- (HobbitLong/RepDistiller models/ShuffleNetv2.py, `ShuffleV2` = net size 1):
-- a 1x1 stem conv to 24 channels at 32x32 (no max-pool), three stages of one
-- DownBlock plus 3/7/3 BasicBlocks (out 116/232/464), a 1x1 head conv to
-- 1024 with BN-ReLU, 4x4 average pool and Linear `linear`.
--
-- feats = {stem, stage1, stage2, stage3, pooled (after the head conv)}; with
-- preact the stage outputs are the last BasicBlock's concat[x1, branch
-- before its final ReLU], not shuffled, as published.
-- Init: PyTorch's defaults only, as published.
local distill = require "distill"
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local shufflenetv2 = {}

local BasicBlock = nn.class("BasicBlock")

function BasicBlock:init(in_channels, split_ratio)
  split_ratio = split_ratio or 0.5
  self.split = common.SplitBlock(split_ratio)
  local c = math.floor(in_channels * split_ratio)
  self.conv1 = nn.Conv2d(c, c, 1, { bias = false })
  self.bn1 = nn.BatchNorm2d(c)
  self.conv2 = nn.Conv2d(c, c, 3, { padding = 1, groups = c, bias = false })
  self.bn2 = nn.BatchNorm2d(c)
  self.conv3 = nn.Conv2d(c, c, 1, { bias = false })
  self.bn3 = nn.BatchNorm2d(c)
  self.shuffle = common.ShuffleBlock(2)
end

--- Returns (shuffled output, unshuffled pre-ReLU concat).
function BasicBlock:forward(x)
  local x1, x2 = self.split(x)
  local out = F.relu(self.bn1(self.conv1(x2)))
  out = self.bn2(self.conv2(out))
  local branch_pre = self.bn3(self.conv3(out))
  local preact = distill.cat({ x1, branch_pre }, 2)
  out = distill.cat({ x1, F.relu(branch_pre) }, 2)
  return self.shuffle(out), preact
end

local DownBlock = nn.class("DownBlock")

function DownBlock:init(in_channels, out_channels)
  local mid = out_channels // 2
  -- left branch
  self.conv1 = nn.Conv2d(in_channels, in_channels, 3,
    { stride = 2, padding = 1, groups = in_channels, bias = false })
  self.bn1 = nn.BatchNorm2d(in_channels)
  self.conv2 = nn.Conv2d(in_channels, mid, 1, { bias = false })
  self.bn2 = nn.BatchNorm2d(mid)
  -- right branch
  self.conv3 = nn.Conv2d(in_channels, mid, 1, { bias = false })
  self.bn3 = nn.BatchNorm2d(mid)
  self.conv4 = nn.Conv2d(mid, mid, 3, { stride = 2, padding = 1, groups = mid, bias = false })
  self.bn4 = nn.BatchNorm2d(mid)
  self.conv5 = nn.Conv2d(mid, mid, 1, { bias = false })
  self.bn5 = nn.BatchNorm2d(mid)
  self.shuffle = common.ShuffleBlock(2)
end

--- Returns (output, output): a DownBlock is never a stage's last block, but
-- returning a pair keeps run_stage uniform.
function DownBlock:forward(x)
  local left = self.bn1(self.conv1(x))
  left = F.relu(self.bn2(self.conv2(left)))
  local right = F.relu(self.bn3(self.conv3(x)))
  right = self.bn4(self.conv4(right))
  right = F.relu(self.bn5(self.conv5(right)))
  local out = self.shuffle(distill.cat({ left, right }, 2))
  return out, out
end

local configs = {
  [0.2] = { out_channels = { 40, 80, 160, 512 }, num_blocks = { 3, 3, 3 } },
  [0.3] = { out_channels = { 40, 80, 160, 512 }, num_blocks = { 3, 7, 3 } },
  [0.5] = { out_channels = { 48, 96, 192, 1024 }, num_blocks = { 3, 7, 3 } },
  [1] = { out_channels = { 116, 232, 464, 1024 }, num_blocks = { 3, 7, 3 } },
  [1.5] = { out_channels = { 176, 352, 704, 1024 }, num_blocks = { 3, 7, 3 } },
  [2] = { out_channels = { 224, 488, 976, 2048 }, num_blocks = { 3, 7, 3 } },
}

local ShuffleNetV2 = nn.class("ShuffleNetV2")

--- ShuffleNetV2(net_size, {num_classes = 100}); net_size one of 0.2, 0.3,
-- 0.5, 1, 1.5, 2.
function ShuffleNetV2:init(net_size, opts)
  opts = common.model_options("ShuffleNetV2", opts, 100)
  local config = configs[net_size]
  if not config then
    error("models.ShuffleNetV2: net_size must be one of 0.2, 0.3, 0.5, 1, 1.5, 2, got "
      .. tostring(net_size), 2)
  end
  local out_channels, num_blocks = config.out_channels, config.num_blocks
  self.conv1 = nn.Conv2d(3, 24, 1, { bias = false })
  self.bn1 = nn.BatchNorm2d(24)
  self.in_channels = 24
  self.layer1 = self:_make_layer(out_channels[1], num_blocks[1])
  self.layer2 = self:_make_layer(out_channels[2], num_blocks[2])
  self.layer3 = self:_make_layer(out_channels[3], num_blocks[3])
  self.conv2 = nn.Conv2d(out_channels[3], out_channels[4], 1, { bias = false })
  self.bn2 = nn.BatchNorm2d(out_channels[4])
  self.linear = nn.Linear(out_channels[4], opts.num_classes)
end

function ShuffleNetV2:_make_layer(out_channels, num_blocks)
  local layers = nn.Sequential(DownBlock(self.in_channels, out_channels))
  for _ = 1, num_blocks do
    layers:append(BasicBlock(out_channels))
    self.in_channels = out_channels
  end
  return layers
end

function ShuffleNetV2:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  -- the 1x1 head conv to out_channels[4] with BN-ReLU before the pool
  return common.shuffle_forward(self, x, opts, function(f3)
    return F.relu(self.bn2(self.conv2(f3)))
  end)
end

shufflenetv2.ShuffleNetV2 = ShuffleNetV2
shufflenetv2.BasicBlock = BasicBlock
shufflenetv2.DownBlock = DownBlock

function shufflenetv2.ShuffleV2(opts)
  return ShuffleNetV2(1, common.model_options("ShuffleV2", opts, 100))
end

return shufflenetv2

-- Wide ResNets of the CRD code base (HobbitLong/RepDistiller models/wrn.py):
-- wrn_16_1, wrn_16_2, wrn_40_1, wrn_40_2. wrn_D_k: depth D = 6n+4, widen
-- factor k, channels {16, 16k, 32k, 64k}. Pre-activation blocks, a bare
-- 3x3 stem conv, final BN-ReLU, 8x8 average pool, Linear `fc`.
--
-- feats = {stem conv output, group1, group2, group3 (raw sums), pooled after
-- the final BN-ReLU}. With preact, f1 and f2 go through the *next* group's
-- first BN1 and f3 through the final BN (BN only, no ReLU), exactly as the
-- published code does; in training mode these extra BN calls also update
-- those BNs' running statistics.
local F = require "distill.functional"
local nn = require "distill.nn"
local common = require "distill.models.common"

local wrn = {}

local BasicBlock = nn.class("BasicBlock")

function BasicBlock:init(in_planes, out_planes, stride, drop_rate)
  self.bn1 = nn.BatchNorm2d(in_planes)
  self.relu1 = nn.ReLU()
  self.conv1 = nn.Conv2d(in_planes, out_planes, 3, { stride = stride, padding = 1, bias = false })
  self.bn2 = nn.BatchNorm2d(out_planes)
  self.relu2 = nn.ReLU()
  self.conv2 = nn.Conv2d(out_planes, out_planes, 3, { padding = 1, bias = false })
  self.droprate = drop_rate or 0
  self.equal_in_out = in_planes == out_planes
  if not self.equal_in_out then
    self.convShortcut = nn.Conv2d(in_planes, out_planes, 1, { stride = stride, bias = false })
  end
end

function BasicBlock:forward(x)
  local out
  if self.equal_in_out then
    -- the shortcut is the raw input
    out = self.relu1(self.bn1(x))
  else
    -- both the branch and the projection start from the activated input
    x = self.relu1(self.bn1(x))
    out = x
  end
  out = self.relu2(self.bn2(self.conv1(out)))
  if self.droprate > 0 then
    out = F.dropout(out, { p = self.droprate, training = self.training })
  end
  out = self.conv2(out)
  local shortcut = self.equal_in_out and x or self.convShortcut(x)
  -- no ReLU after the add: the next block (or the final BN) activates
  return shortcut + out
end

local NetworkBlock = nn.class("NetworkBlock")

function NetworkBlock:init(nb_layers, in_planes, out_planes, stride, drop_rate)
  self.layer = nn.Sequential()
  for i = 1, nb_layers do
    self.layer:append(BasicBlock(i == 1 and in_planes or out_planes, out_planes,
      i == 1 and stride or 1, drop_rate))
  end
end

function NetworkBlock:forward(x)
  return self.layer(x)
end

local WideResNet = nn.class("WideResNet")

--- WideResNet(depth, widen_factor, {num_classes = 100, drop_rate = 0})
function WideResNet:init(depth, widen_factor, opts)
  opts = common.model_options("WideResNet", opts, 100, { drop_rate = true })
  local channels = { 16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor }
  if (depth - 4) % 6 ~= 0 then
    error("models.WideResNet: depth must be 6n+4, got " .. tostring(depth), 2)
  end
  local n = (depth - 4) // 6
  local drop_rate = opts.drop_rate or 0
  self.conv1 = nn.Conv2d(3, channels[1], 3, { padding = 1, bias = false })
  self.block1 = NetworkBlock(n, channels[1], channels[2], 1, drop_rate)
  self.block2 = NetworkBlock(n, channels[2], channels[3], 2, drop_rate)
  self.block3 = NetworkBlock(n, channels[3], channels[4], 2, drop_rate)
  self.bn1 = nn.BatchNorm2d(channels[4])
  self.relu = nn.ReLU()
  self.fc = nn.Linear(channels[4], opts.num_classes)
  self.n_channels = channels[4]
  common.init_normal_fan_out(self, "zero_bias")
end

function WideResNet:get_bn_before_relu()
  return { self.block2.layer[1].bn1, self.block3.layer[1].bn1, self.bn1 }
end

function WideResNet:forward(x, opts)
  opts = common.forward_options(self, x, opts)
  local f0 = self.conv1(x)
  local f1 = self.block1(f0)
  local f2 = self.block2(f1)
  local f3 = self.block3(f2)
  local f4 = F.avg_pool2d(self.relu(self.bn1(f3)), { kernel_size = 8 }):flatten(2)
  local logits = self.fc(f4)
  if opts.features and opts.preact then
    -- the published quirk: the "pre-activation" is the next BN's output
    local bns = self:get_bn_before_relu()
    return common.result(opts, logits, nil, { f0, bns[1](f1), bns[2](f2), bns[3](f3), f4 })
  end
  return common.result(opts, logits, { f0, f1, f2, f3, f4 })
end

wrn.WideResNet = WideResNet
wrn.BasicBlock = BasicBlock
wrn.NetworkBlock = NetworkBlock

for _, config in ipairs({ { 16, 1 }, { 16, 2 }, { 40, 1 }, { 40, 2 } }) do
  local name = ("wrn_%d_%d"):format(config[1], config[2])
  wrn[name] = function(opts)
    return WideResNet(config[1], config[2], common.model_options(name, opts, 100, { drop_rate = true }))
  end
end

return wrn

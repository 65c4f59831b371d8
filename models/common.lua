-- Pieces shared by the model families: option checks, the forward-output
-- convention, weight initialisers, and the parameter-free helper modules
-- (channel shuffle, channel split) that the published PyTorch code keeps as
-- child modules so that the printed layer tree looks the same.
--
-- Forward convention (DESIGN.md): `model(x)` returns logits;
-- `model:forward(x, {features = true})` returns
--   { feats = {f0, ..., fk}, pooled = fk, logits = z }
-- where feats is the CRD code base's `is_feat` list, whose last entry is the
-- pooled penultimate vector (so feats[#feats] is CRD's feat[-1]); pooled is
-- that same tensor. `{features = true, preact = true}` swaps in the pre-ReLU
-- variants each family documents (docs/models.md).
local F = require "distill.functional"
local nn = require "distill.nn"

local common = {}

local function fail(name, message, level)
  error(("models.%s: %s"):format(name, message), (level or 1) + 1)
end

--- Validates constructor options: a table (or nil) whose keys are all in
-- `valid`, with num_classes a positive integer. Returns the options with
-- num_classes defaulted.
function common.model_options(name, opts, default_classes, valid)
  opts = opts or {}
  if type(opts) ~= "table" then
    fail(name, "options must be a table, got " .. type(opts), 3)
  end
  valid = valid or {}
  for key in pairs(opts) do
    if key ~= "num_classes" and not valid[key] then
      local names = { "num_classes" }
      for k in pairs(valid) do
        names[#names + 1] = k
      end
      table.sort(names)
      fail(name, ("unknown option '%s' (valid: %s)"):format(tostring(key),
        table.concat(names, ", ")), 3)
    end
  end
  local num_classes = opts.num_classes or default_classes
  if math.type(num_classes) ~= "integer" or num_classes <= 0 then
    fail(name, "num_classes must be a positive integer, got " .. tostring(opts.num_classes), 3)
  end
  local out = {}
  for key, value in pairs(opts) do
    out[key] = value
  end
  out.num_classes = num_classes
  return out
end

local forward_keys = { features = true, preact = true }

--- Validates forward options and the input batch; returns the options table.
function common.forward_options(model, x, opts)
  local name = model.__name
  if opts ~= nil and type(opts) ~= "table" then
    fail(name, "forward options must be a table, got " .. type(opts), 3)
  end
  opts = opts or {}
  for key in pairs(opts) do
    if not forward_keys[key] then
      fail(name, ("unknown forward option '%s' (valid: features, preact)"):format(tostring(key)), 3)
    end
  end
  local ok, dims = pcall(function() return x:dim() end)
  if not ok then
    fail(name, "forward expects a float32 tensor of shape {N, 3, H, W}, got " .. type(x), 3)
  end
  local shape = x:shape()
  if dims ~= 4 or shape[2] ~= 3 then
    fail(name, ("forward expects an input of shape {N, 3, H, W}, got {%s}"):format(
      table.concat(shape, ", ")), 3)
  end
  return opts
end

--- The forward result: logits alone, or the features table.
-- feats: the post-activation list; preact_feats: the same list with the
-- pre-activation variants (or nil when the family has none).
function common.result(opts, logits, feats, preact_feats)
  if not opts.features then
    return logits
  end
  local list = (opts.preact and preact_feats) or feats
  return { feats = list, pooled = list[#list], logits = logits }
end

--- Runs the blocks of a stage in turn. Every residual block returns
-- (out, preact); the stage returns the last block's pair, as the CRD code's
-- `is_last` blocks do.
function common.run_stage(stage, x)
  local preact
  for _, block in ipairs(stage:children()) do
    x, preact = block(x)
  end
  return x, preact
end

--- Runs model.layer1 .. model.layer<n> in turn from x (common.run_stage on
-- each); returns the list of stage outputs and the list of their preacts.
function common.run_stages(model, x, n)
  local outs, preacts = {}, {}
  for i = 1, n do
    x, preacts[i] = common.run_stage(model["layer" .. i], x)
    outs[i] = x
  end
  return outs, preacts
end

--- The torchvision / CRD ResNet `_make_layer`: `blocks` blocks of `block`
-- (BasicBlock or Bottleneck taking (inplanes, planes, stride, downsample)),
-- the first with `stride` and, when the shape changes, a projection
-- shortcut (1x1 conv + BN, named downsample.0 / downsample.1). Reads and
-- advances model.inplanes.
function common.make_resnet_layer(model, block, planes, blocks, stride)
  local downsample
  if stride ~= 1 or model.inplanes ~= planes * block.expansion then
    downsample = nn.Sequential(
      nn.Conv2d(model.inplanes, planes * block.expansion, 1, { stride = stride, bias = false }),
      nn.BatchNorm2d(planes * block.expansion))
  end
  local layers = nn.Sequential(block(model.inplanes, planes, stride, downsample))
  model.inplanes = planes * block.expansion
  for _ = 2, blocks do
    layers:append(block(model.inplanes, planes))
  end
  return layers
end

--- The last BN of the last block of each of the first n stages (bn3 when the
-- blocks are `bottleneck`s, bn2 otherwise): CRD's get_bn_before_relu.
function common.bn_before_relu(model, bottleneck, n)
  local last = getmetatable(model.layer1[1]) == bottleneck and "bn3" or "bn2"
  local bns = {}
  for i = 1, n do
    bns[i] = model["layer" .. i][-1][last]
  end
  return bns
end

--- The end of the four-stage ResNets' forward (torchvision's and CRD's
-- resnetv2): stages 1-4 from x, the adaptive average pool, then `head` (the
-- Linear). feats = {f0, stage1..4, pooled}; the preact list starts with
-- `stem_preact` instead of f0.
function common.four_stage_result(model, opts, x, f0, stem_preact, head)
  local f, pre = common.run_stages(model, x, 4)
  local f5 = model.avgpool(f[4]):flatten(2)
  local logits = head(f5)
  return common.result(opts, logits, { f0, f[1], f[2], f[3], f[4], f5 },
    { stem_preact, pre[1], pre[2], pre[3], pre[4], f5 })
end

--- torchvision's ResNet depths: depth -> {block, blocks per stage}.
function common.resnet_configs(basic_block, bottleneck)
  return {
    [18] = { basic_block, { 2, 2, 2, 2 } },
    [34] = { basic_block, { 3, 4, 6, 3 } },
    [50] = { bottleneck, { 3, 4, 6, 3 } },
    [101] = { bottleneck, { 3, 4, 23, 3 } },
    [152] = { bottleneck, { 3, 8, 36, 3 } },
  }
end

--- nn.Sequential(Conv2d without bias, BatchNorm2d, ReLU), children 0, 1, 2
-- as in the MobileNets' published conv_bn / conv_1x1_bn. conv_opts: the
-- Conv2d options other than bias (stride, padding, groups...).
function common.conv_bn_relu(in_channels, out_channels, kernel_size, conv_opts)
  local opts = { bias = false }
  for k, v in pairs(conv_opts or {}) do
    opts[k] = v
  end
  return nn.Sequential(
    nn.Conv2d(in_channels, out_channels, kernel_size, opts),
    nn.BatchNorm2d(out_channels),
    nn.ReLU())
end

--- The CIFAR ShuffleNets' forward after the option check: 1x1 stem
-- BN-ReLU, three stages, then `head` (if any) on the last stage output,
-- 4x4 average pool and `linear`.
function common.shuffle_forward(model, x, opts, head)
  local f0 = F.relu(model.bn1(model.conv1(x)))
  local f, pre = common.run_stages(model, f0, 3)
  local out = head and head(f[3]) or f[3]
  local f4 = F.avg_pool2d(out, { kernel_size = 4 }):flatten(2)
  local logits = model.linear(f4)
  return common.result(opts, logits, { f0, f[1], f[2], f[3], f4 }, { f0, pre[1], pre[2], pre[3], f4 })
end

-- ------------------------------------------------------------ initialisers

local function is_a(module, class)
  return getmetatable(module) == class
end
common.is_a = is_a

--- He et al.'s init as torchvision and the CRD ResNets use it: conv weights
-- kaiming-normal (fan_out, ReLU gain), BN gamma 1 and beta 0. Linear keeps
-- PyTorch's default.
function common.init_kaiming_fan_out(model)
  for _, m in ipairs(model:modules()) do
    if is_a(m, nn.Conv2d) then
      nn.init.kaiming_normal_(m.weight, { mode = "fan_out", nonlinearity = "relu" })
    elseif is_a(m, nn.BatchNorm2d) then
      nn.init.ones_(m.weight)
      nn.init.zeros_(m.bias)
    end
  end
end

--- The init of the WRN, VGG and MobileNetV2 code: conv weights
-- normal(0, sqrt(2 / (kh * kw * out_channels))), conv biases 0; BN 1/0.
-- linear = "zero_bias" zeroes the Linear bias only (WRN), "normal" also
-- draws the weight from normal(0, 0.01) (VGG, MobileNetV2).
function common.init_normal_fan_out(model, linear)
  for _, m in ipairs(model:modules()) do
    if is_a(m, nn.Conv2d) then
      local n = m.kernel_size[1] * m.kernel_size[2] * m.out_channels
      nn.init.normal_(m.weight, 0, math.sqrt(2 / n))
      if m.bias then
        nn.init.zeros_(m.bias)
      end
    elseif is_a(m, nn.BatchNorm2d) then
      nn.init.ones_(m.weight)
      nn.init.zeros_(m.bias)
    elseif is_a(m, nn.Linear) then
      if linear == "normal" then
        nn.init.normal_(m.weight, 0, 0.01)
      end
      if m.bias then
        nn.init.zeros_(m.bias)
      end
    end
  end
end

-- ------------------------------------------------------------- profiling

--- Forward MACs per image of `model` on input `x`, counted as the CRD
-- reference does: for every Conv2d, output elements of one image x
-- in_channels / groups x kh x kw; for every Linear, in x out. Biases, BN,
-- activations, pooling, adds, concats and shuffles are not counted. Runs
-- one eval-mode forward without the tape (the model's mode is restored) by
-- wrapping Conv2d/Linear forward for the duration of the call.
-- Returns macs, {conv = .., linear = .., convs = n, linears = n}.
function common.count_macs(model, x)
  local distill = require "distill"
  local counts = { conv = 0, linear = 0, convs = 0, linears = 0 }
  local conv_forward, linear_forward = nn.Conv2d.forward, nn.Linear.forward
  nn.Conv2d.forward = function(self, input)
    local out = conv_forward(self, input)
    local per_image = out:numel() // out:shape()[1]
    counts.conv = counts.conv + per_image * (self.in_channels // self.groups)
      * self.kernel_size[1] * self.kernel_size[2]
    counts.convs = counts.convs + 1
    return out
  end
  nn.Linear.forward = function(self, input)
    counts.linear = counts.linear + self.in_features * self.out_features
    counts.linears = counts.linears + 1
    return linear_forward(self, input)
  end
  local was_training = model.training
  model:eval()
  local batch = x:shape()[1]
  local ok, err = pcall(distill.no_grad, function() return model(x) end)
  nn.Conv2d.forward, nn.Linear.forward = conv_forward, linear_forward
  model:train(was_training)
  if not ok then
    error(err, 0)
  end
  -- the Linear count above is per call, i.e. already per image
  counts.batch = batch
  return counts.conv + counts.linear, counts
end

-- ------------------------------------------------- parameter-free modules

--- Channel shuffle with g groups: view {N, g, C/g, H, W}, swap dims 2 and 3,
-- reshape back to {N, C, H, W}.
function common.channel_shuffle(x, groups)
  if groups == 1 then
    return x
  end
  local s = x:shape()
  local n, c, h, w = s[1], s[2], s[3], s[4]
  return x:view{ n, groups, c // groups, h, w }:transpose(2, 3):reshape{ n, c, h, w }
end

local ShuffleBlock = nn.class("ShuffleBlock")
function ShuffleBlock:init(groups)
  self.groups = groups or 2
end
function ShuffleBlock:forward(x)
  return common.channel_shuffle(x, self.groups)
end
function ShuffleBlock:extra_repr()
  return "groups=" .. self.groups
end
common.ShuffleBlock = ShuffleBlock

--- SplitBlock(ratio): returns the first int(C * ratio) channels and the rest.
local SplitBlock = nn.class("SplitBlock")
function SplitBlock:init(ratio)
  self.ratio = ratio or 0.5
end
function SplitBlock:forward(x)
  local channels = x:shape()[2]
  local c = math.floor(channels * self.ratio)
  return x:narrow(2, 1, c), x:narrow(2, c + 1, channels - c)
end
function SplitBlock:extra_repr()
  return "ratio=" .. self.ratio
end
common.SplitBlock = SplitBlock

return common

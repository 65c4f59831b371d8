-- Layers: Linear, Conv2d, ConvTranspose2d, batch norm, activations, pooling, dropout,
-- Flatten, Identity. Constructors and initialisation follow PyTorch; the
-- maths is the engine's (distill.F).
local distill = require "distill"
local F = require "distill.functional"
local Module = require "distill.nn.module"
local init = require "distill.nn.initializers"

local layers = {}

local function check_options(name, opts, valid)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error(("nn.%s: options must be a table, got %s"):format(name, type(opts)), 3)
  end
  for key in pairs(opts) do
    if not valid[key] then
      local names = {}
      for k in pairs(valid) do
        names[#names + 1] = k
      end
      table.sort(names)
      error(("nn.%s: unknown option '%s' (valid: %s)"):format(
        name, tostring(key), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

local function check_positive_int(name, what, value)
  if math.type(value) ~= "integer" or value <= 0 then
    error(("nn.%s: %s must be a positive integer, got %s"):format(name, what, tostring(value)), 3)
  end
end

local function pair(v)
  if type(v) == "table" then
    return v[1], v[2]
  end
  return v, v
end

local function pair_string(v)
  local a, b = pair(v)
  return ("(%s, %s)"):format(a, b)
end

-- PyTorch's default for Linear and Conv: kaiming_uniform_(a = sqrt(5)) on
-- the weight, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound
-- for the bias.
local function reset_default(weight, bias)
  init.kaiming_uniform_(weight, { a = math.sqrt(5) })
  if bias then
    local fan_in = init.calculate_fans(weight)
    local bound = fan_in > 0 and 1 / math.sqrt(fan_in) or 0
    init.uniform_(bias, -bound, bound)
  end
end

-- ----------------------------------------------------------------- Linear

local Linear = Module.class("Linear")

--- Linear(in_features, out_features, {bias = true})
function Linear:init(in_features, out_features, opts)
  check_positive_int("Linear", "in_features", in_features)
  check_positive_int("Linear", "out_features", out_features)
  opts = check_options("Linear", opts, { bias = true })
  self.in_features, self.out_features = in_features, out_features
  self:register_parameter("weight", distill.empty{out_features, in_features})
  if opts.bias ~= false then
    self:register_parameter("bias", distill.empty{out_features})
  end
  reset_default(self.weight, self.bias)
end

function Linear:forward(x)
  return F.linear(x, self.weight, self.bias)
end

function Linear:extra_repr()
  return ("in_features=%d, out_features=%d, bias=%s"):format(
    self.in_features, self.out_features, tostring(self.bias ~= nil))
end

layers.Linear = Linear

-- ----------------------------------------------------------------- Conv2d

local Conv2d = Module.class("Conv2d")

--- Conv2d(in_channels, out_channels, kernel_size,
---        {stride = 1, padding = 0, dilation = 1, groups = 1, bias = true})
function Conv2d:init(in_channels, out_channels, kernel_size, opts)
  check_positive_int("Conv2d", "in_channels", in_channels)
  check_positive_int("Conv2d", "out_channels", out_channels)
  opts = check_options("Conv2d", opts,
    { stride = true, padding = true, dilation = true, groups = true, bias = true })
  local groups = opts.groups or 1
  check_positive_int("Conv2d", "groups", groups)
  if in_channels % groups ~= 0 or out_channels % groups ~= 0 then
    error(("nn.Conv2d: in_channels (%d) and out_channels (%d) must be divisible by groups (%d)")
      :format(in_channels, out_channels, groups), 2)
  end
  local kh, kw = pair(kernel_size)
  check_positive_int("Conv2d", "kernel height", kh)
  check_positive_int("Conv2d", "kernel width", kw)
  self.in_channels, self.out_channels = in_channels, out_channels
  self.kernel_size = { kh, kw }
  self.stride = opts.stride or 1
  self.padding = opts.padding or 0
  self.dilation = opts.dilation or 1
  self.groups = groups
  self:register_parameter("weight", distill.empty{out_channels, in_channels // groups, kh, kw})
  if opts.bias ~= false then
    self:register_parameter("bias", distill.empty{out_channels})
  end
  reset_default(self.weight, self.bias)
end

function Conv2d:forward(x)
  return F.conv2d(x, self.weight, self.bias, {
    stride = self.stride, padding = self.padding, dilation = self.dilation, groups = self.groups,
  })
end

-- PyTorch's description of a convolution: settings at their defaults are left out.
local function conv_repr(self)
  local text = ("%d, %d, kernel_size=%s, stride=%s"):format(self.in_channels, self.out_channels,
    pair_string(self.kernel_size), pair_string(self.stride))
  local optional = {
    { "padding", self.padding, "(0, 0)" },
    { "output_padding", self.output_padding, "(0, 0)" },
    { "dilation", self.dilation, "(1, 1)" },
  }
  for _, entry in ipairs(optional) do
    if entry[2] ~= nil and pair_string(entry[2]) ~= entry[3] then
      text = text .. ", " .. entry[1] .. "=" .. pair_string(entry[2])
    end
  end
  if self.groups ~= 1 then
    text = text .. ", groups=" .. self.groups
  end
  if self.bias == nil then
    text = text .. ", bias=false"
  end
  return text
end

Conv2d.extra_repr = conv_repr

layers.Conv2d = Conv2d

-- -------------------------------------------------------- ConvTranspose2d

local ConvTranspose2d = Module.class("ConvTranspose2d")

--- ConvTranspose2d(in_channels, out_channels, kernel_size,
---                 {stride = 1, padding = 0, output_padding = 0, dilation = 1,
---                  groups = 1, bias = true})
-- The weight has PyTorch's shape (in_channels, out_channels/groups, kh, kw),
-- so the default init's fan_in is (out_channels/groups)*kh*kw, as PyTorch's.
function ConvTranspose2d:init(in_channels, out_channels, kernel_size, opts)
  check_positive_int("ConvTranspose2d", "in_channels", in_channels)
  check_positive_int("ConvTranspose2d", "out_channels", out_channels)
  opts = check_options("ConvTranspose2d", opts, { stride = true, padding = true,
    output_padding = true, dilation = true, groups = true, bias = true })
  local groups = opts.groups or 1
  check_positive_int("ConvTranspose2d", "groups", groups)
  if in_channels % groups ~= 0 or out_channels % groups ~= 0 then
    error(("nn.ConvTranspose2d: in_channels (%d) and out_channels (%d) must be divisible by "
      .. "groups (%d)"):format(in_channels, out_channels, groups), 2)
  end
  local kh, kw = pair(kernel_size)
  check_positive_int("ConvTranspose2d", "kernel height", kh)
  check_positive_int("ConvTranspose2d", "kernel width", kw)
  self.in_channels, self.out_channels = in_channels, out_channels
  self.kernel_size = { kh, kw }
  self.stride = opts.stride or 1
  self.padding = opts.padding or 0
  self.output_padding = opts.output_padding or 0
  self.dilation = opts.dilation or 1
  self.groups = groups
  self:register_parameter("weight", distill.empty{in_channels, out_channels // groups, kh, kw})
  if opts.bias ~= false then
    self:register_parameter("bias", distill.empty{out_channels})
  end
  reset_default(self.weight, self.bias)
end

function ConvTranspose2d:forward(x)
  return F.conv_transpose2d(x, self.weight, self.bias, {
    stride = self.stride, padding = self.padding, output_padding = self.output_padding,
    dilation = self.dilation, groups = self.groups,
  })
end

ConvTranspose2d.extra_repr = conv_repr

layers.ConvTranspose2d = ConvTranspose2d

-- ------------------------------------------------------------- batch norm

local function make_batch_norm(name, valid_dims)
  local BN = Module.class(name)

  --- BatchNormNd(num_features, {eps = 1e-5, momentum = 0.1, affine = true,
  ---                            track_running_stats = true})
  -- momentum = false gives the cumulative average of PyTorch's momentum=None.
  function BN:init(num_features, opts)
    check_positive_int(name, "num_features", num_features)
    opts = check_options(name, opts,
      { eps = true, momentum = true, affine = true, track_running_stats = true })
    self.num_features = num_features
    self.eps = opts.eps or 1e-5
    if opts.momentum == nil then
      self.momentum = 0.1
    else
      self.momentum = opts.momentum
    end
    self.affine = opts.affine ~= false
    self.track_running_stats = opts.track_running_stats ~= false
    if self.affine then
      self:register_parameter("weight", distill.ones{num_features})
      self:register_parameter("bias", distill.zeros{num_features})
    end
    -- SyncBatchNorm (nn.convert_sync_batchnorm): training statistics over
    -- every rank's share of the batch (distill.dist); alone, a plain BN
    self.sync = false
    if self.track_running_stats then
      self:register_buffer("running_mean", distill.zeros{num_features})
      self:register_buffer("running_var", distill.ones{num_features})
      self:register_buffer("num_batches_tracked", distill.tensor(0, "int64"))
    end
  end

  function BN:forward(x)
    local dims = x:dim()
    if not valid_dims[dims] then
      error(("nn.%s: expected a %s input, got %d dims"):format(name, valid_dims.text, dims), 2)
    end
    local use_batch_stats = self.training or not self.track_running_stats
    local momentum = self.momentum or 0
    if self.training and self.track_running_stats then
      local tracked = self.num_batches_tracked:item() + 1
      self.num_batches_tracked:fill_(tracked)
      if self.momentum == false then
        momentum = 1 / tracked
      end
    end
    return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, {
      training = use_batch_stats, momentum = momentum, eps = self.eps, sync = self.sync,
    })
  end

  function BN:extra_repr()
    return ("%d, eps=%g, momentum=%s, affine=%s, track_running_stats=%s%s"):format(
      self.num_features, self.eps, tostring(self.momentum), tostring(self.affine),
      tostring(self.track_running_stats), self.sync and ", sync=true" or "")
  end

  return BN
end

layers.BatchNorm1d = make_batch_norm("BatchNorm1d", { [2] = true, [3] = true, text = "2-d or 3-d" })
layers.BatchNorm2d = make_batch_norm("BatchNorm2d", { [4] = true, text = "4-d" })

--- Makes every batch norm of a model a SyncBatchNorm (as PyTorch's
-- nn.SyncBatchNorm.convert_sync_batchnorm): in training mode its batch
-- statistics, forward and backward, are those of the whole batch across the
-- ranks of a distributed run. sync = false turns it back. Returns the model.
function layers.convert_sync_batchnorm(model, sync)
  if not Module.is_module(model) then
    error(("nn.convert_sync_batchnorm: expected a module, got %s"):format(type(model)), 2)
  end
  if sync ~= nil and type(sync) ~= "boolean" then
    error(("nn.convert_sync_batchnorm: sync must be true or false, got %s"):format(type(sync)), 2)
  end
  for _, m in ipairs(model:modules()) do
    if m.__name == "BatchNorm1d" or m.__name == "BatchNorm2d" then
      m.sync = sync ~= false
    end
  end
  return model
end

-- ------------------------------------------------------------ activations

local function simple(name, forward, repr)
  local class = Module.class(name)
  class.forward = forward
  if repr then
    class.extra_repr = repr
  end
  return class
end

-- ReLU({inplace = true}) / ReLU(true), as PyTorch's ReLU(inplace=True):
-- overwrites its input instead of allocating an output, but only when
-- autograd is not recording it (under distill.no_grad, or an input that
-- does not require grad); otherwise it falls back to the out-of-place op,
-- since the engine refuses in-place ops on recorded tensors. As in PyTorch
-- the caller must not read the input afterwards.
local function activation(name, out_of_place, in_place)
  local class = Module.class(name)
  function class:init(opts)
    if type(opts) == "boolean" then
      opts = { inplace = opts }
    end
    opts = check_options(name, opts, { inplace = true })
    self.inplace = opts.inplace == true
  end
  function class:forward(x)
    if self.inplace and not (distill.is_grad_enabled() and x.requires_grad) then
      return in_place(x)
    end
    return out_of_place(x)
  end
  function class:extra_repr()
    return self.inplace and "inplace=True" or ""
  end
  return class
end

layers.ReLU = activation("ReLU", function(x) return F.relu(x) end,
  function(x) return x:relu_() end)
layers.ReLU6 = activation("ReLU6", function(x) return F.relu6(x) end,
  function(x) return x:clamp_(0, 6) end)
layers.Sigmoid = simple("Sigmoid", function(_, x) return F.sigmoid(x) end)
layers.Tanh = simple("Tanh", function(_, x) return F.tanh(x) end)
layers.Identity = simple("Identity", function(_, x) return x end)

local LeakyReLU = Module.class("LeakyReLU")
function LeakyReLU:init(negative_slope)
  self.negative_slope = negative_slope or 0.01
end
function LeakyReLU:forward(x)
  return F.leaky_relu(x, self.negative_slope)
end
function LeakyReLU:extra_repr()
  return "negative_slope=" .. self.negative_slope
end
layers.LeakyReLU = LeakyReLU

local Softmax = Module.class("Softmax")
function Softmax:init(dim)
  self.dim = dim or -1
end
function Softmax:forward(x)
  return F.softmax(x, self.dim)
end
layers.Softmax = Softmax

-- ---------------------------------------------------------------- pooling

local function pool_class(name, valid, fn)
  local class = Module.class(name)
  function class:init(kernel_size, opts)
    opts = check_options(name, opts, valid)
    self.options = { kernel_size = kernel_size }
    for key, value in pairs(opts) do
      self.options[key] = value
    end
  end
  function class:forward(x)
    return fn(x, self.options)
  end
  function class:extra_repr()
    local keys = {}
    for key in pairs(self.options) do
      keys[#keys + 1] = key
    end
    table.sort(keys)
    local parts = {}
    for _, key in ipairs(keys) do
      local v = self.options[key]
      parts[#parts + 1] = key .. "=" .. (type(v) == "table" and pair_string(v) or tostring(v))
    end
    return table.concat(parts, ", ")
  end
  return class
end

--- MaxPool2d(kernel_size, {stride = kernel_size, padding = 0, ceil_mode = false})
layers.MaxPool2d = pool_class("MaxPool2d", { stride = true, padding = true, ceil_mode = true },
  function(x, o) return F.max_pool2d(x, o) end)
--- AvgPool2d(kernel_size, {stride =, padding =, ceil_mode =, count_include_pad = true})
layers.AvgPool2d = pool_class("AvgPool2d",
  { stride = true, padding = true, ceil_mode = true, count_include_pad = true },
  function(x, o) return F.avg_pool2d(x, o) end)

local AdaptiveAvgPool2d = Module.class("AdaptiveAvgPool2d")
--- AdaptiveAvgPool2d(output_size) with output_size a number or {h, w}
function AdaptiveAvgPool2d:init(output_size)
  self.output_size = output_size
end
function AdaptiveAvgPool2d:forward(x)
  return F.adaptive_avg_pool2d(x, self.output_size)
end
function AdaptiveAvgPool2d:extra_repr()
  return "output_size=" .. (type(self.output_size) == "table" and pair_string(self.output_size)
    or tostring(self.output_size))
end
layers.AdaptiveAvgPool2d = AdaptiveAvgPool2d

-- ---------------------------------------------------------------- dropout

local Dropout = Module.class("Dropout")
function Dropout:init(p)
  p = p or 0.5
  if type(p) ~= "number" or p < 0 or p > 1 then
    error("nn.Dropout: p must be a probability between 0 and 1, got " .. tostring(p), 2)
  end
  self.p = p
end
function Dropout:forward(x)
  return F.dropout(x, { p = self.p, training = self.training })
end
function Dropout:extra_repr()
  return "p=" .. self.p
end
layers.Dropout = Dropout

-- ---------------------------------------------------------------- Flatten

local Flatten = Module.class("Flatten")
--- Flatten(start_dim = 2, end_dim = -1): keeps the batch dim, as PyTorch.
function Flatten:init(start_dim, end_dim)
  self.start_dim, self.end_dim = start_dim or 2, end_dim or -1
end
function Flatten:forward(x)
  return x:flatten(self.start_dim, self.end_dim)
end
function Flatten:extra_repr()
  return ("start_dim=%d, end_dim=%d"):format(self.start_dim, self.end_dim)
end
layers.Flatten = Flatten

return layers

-- nn.init: weight initialisation, with PyTorch's formulas so that a freshly
-- built model has the same statistics as its PyTorch counterpart.
-- All functions fill the tensor in place (outside the graph) and return it.
local distill = require "distill"

local init = {}

--- fan_in and fan_out of a weight: dim 2 and dim 1 times the receptive field.
function init.calculate_fans(t)
  local shape = t:shape()
  if #shape < 2 then
    error("nn.init: fan in and fan out need a tensor with at least 2 dims, got " .. #shape, 3)
  end
  local receptive = 1
  for d = 3, #shape do
    receptive = receptive * shape[d]
  end
  return shape[2] * receptive, shape[1] * receptive
end

local function fan(t, mode)
  local fan_in, fan_out = init.calculate_fans(t)
  if mode == "fan_in" then
    return fan_in
  elseif mode == "fan_out" then
    return fan_out
  end
  error(("nn.init: mode must be \"fan_in\" or \"fan_out\", got %s"):format(tostring(mode)), 3)
end

--- The recommended gain for a nonlinearity (PyTorch's calculate_gain).
function init.calculate_gain(nonlinearity, param)
  if nonlinearity == "linear" or nonlinearity == "sigmoid" or nonlinearity == "identity"
      or nonlinearity == "conv2d" then
    return 1
  elseif nonlinearity == "tanh" then
    return 5 / 3
  elseif nonlinearity == "relu" then
    return math.sqrt(2)
  elseif nonlinearity == "leaky_relu" then
    local slope = param or 0.01
    return math.sqrt(2 / (1 + slope * slope))
  elseif nonlinearity == "selu" then
    return 3 / 4
  end
  error("nn.init.calculate_gain: unknown nonlinearity " .. tostring(nonlinearity), 2)
end

local function in_place(fn)
  return distill.no_grad(fn)
end

function init.uniform_(t, a, b)
  return in_place(function() return t:uniform_(a or 0, b or 1) end)
end

function init.normal_(t, mean, std)
  return in_place(function() return t:normal_(mean or 0, std or 1) end)
end

function init.constant_(t, value)
  return in_place(function() return t:fill_(value) end)
end

function init.zeros_(t)
  return init.constant_(t, 0)
end

function init.ones_(t)
  return init.constant_(t, 1)
end

--- opts: a (negative slope, 0), mode ("fan_in"), nonlinearity ("leaky_relu").
function init.kaiming_uniform_(t, opts)
  opts = opts or {}
  local gain = init.calculate_gain(opts.nonlinearity or "leaky_relu", opts.a or 0)
  local bound = math.sqrt(3) * gain / math.sqrt(fan(t, opts.mode or "fan_in"))
  return init.uniform_(t, -bound, bound)
end

function init.kaiming_normal_(t, opts)
  opts = opts or {}
  local gain = init.calculate_gain(opts.nonlinearity or "leaky_relu", opts.a or 0)
  return init.normal_(t, 0, gain / math.sqrt(fan(t, opts.mode or "fan_in")))
end

function init.xavier_uniform_(t, gain)
  local fan_in, fan_out = init.calculate_fans(t)
  local bound = (gain or 1) * math.sqrt(6 / (fan_in + fan_out))
  return init.uniform_(t, -bound, bound)
end

function init.xavier_normal_(t, gain)
  local fan_in, fan_out = init.calculate_fans(t)
  return init.normal_(t, 0, (gain or 1) * math.sqrt(2 / (fan_in + fan_out)))
end

return init

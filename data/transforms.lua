-- distill.data.transforms: descriptions of augmentations that the C engine
-- applies (no per-pixel Lua). Compose them and hand them to the loader:
--   local T = require "distill.data.transforms"
--   local tf = T.compose{T.random_crop{size = 32, padding = 4}, T.horizontal_flip{p = 0.5},
--                        T.to_float, T.normalize{mean = {...}, std = {...}}}
-- Each random op draws from the loader's generator, keyed by (seed, epoch,
-- position in the epoch). Geometric ops are composed into one resampling;
-- to_float divides by 255; normalize implies to_float. Without a value op
-- the output stays uint8. T.apply(tf, image, {seed=, epoch=, position=})
-- (or tf(image, ...)) transforms one C x H x W uint8 image directly.
local core = require "distill.core"

local T = {}

local Op = {}
Op.__index = Op

--- The flat list of op descriptions of a transform (an op or a compose).
function T.ops(tf)
  if tf == nil then return {} end
  if type(tf) ~= "table" then
    error("transforms: expected a transform, got " .. type(tf), 3)
  end
  if tf.op then return { tf } end
  local list = {}
  for i, sub in ipairs(tf) do
    if type(sub) ~= "table" then
      error(("transforms.compose: entry %d is a %s, not a transform"):format(i, type(sub)), 3)
    end
    for _, op in ipairs(T.ops(sub)) do list[#list + 1] = op end
  end
  return list
end

function T.apply(tf, image, opts)
  opts = opts or {}
  return core.dataio.transform(T.ops(tf), image, opts.seed or 0, opts.epoch or 1, opts.position or 1)
end

Op.__call = function(self, image, opts) return T.apply(self, image, opts) end

local function make(op, fields)
  fields.op = op
  return setmetatable(fields, Op)
end

-- opts may be a table or just the size
local function with_size(name, opts, default)
  if type(opts) == "number" then opts = { size = opts } end
  opts = opts or {}
  if type(opts) ~= "table" then error(("transforms.%s: expected an options table"):format(name), 3) end
  local size = opts.size or default
  if size == nil then error(("transforms.%s: option 'size' is required"):format(name), 3) end
  return opts, size
end

function T.compose(list)
  if type(list) ~= "table" then error("transforms.compose: expected a list of transforms", 2) end
  local c = setmetatable({}, Op)
  for i, op in ipairs(T.ops(list)) do c[i] = op end
  return c
end

--- Random crop of size (n or {h, w}) after zero padding of `padding` pixels on each side.
function T.random_crop(opts)
  local o, size = with_size("random_crop", opts)
  return make("random_crop", { size = size, padding = o.padding or 0 })
end

function T.horizontal_flip(opts)
  opts = opts or {}
  return make("horizontal_flip", { p = opts.p or 0.5 })
end

function T.normalize(opts)
  if type(opts) ~= "table" or opts.mean == nil or opts.std == nil then
    error("transforms.normalize: expected {mean = ..., std = ...}", 2)
  end
  return make("normalize", { mean = opts.mean, std = opts.std })
end

--- torchvision's RandomResizedCrop: area scale (0.08, 1), aspect ratio (3/4, 4/3) by default.
function T.random_resized_crop(opts)
  local o, size = with_size("random_resized_crop", opts)
  return make("random_resized_crop", { size = size, scale = o.scale or { 0.08, 1.0 },
    ratio = o.ratio or { 3 / 4, 4 / 3 } })
end

--- Resize: size = n makes the shorter side n (aspect kept); size = {h, w} is exact. Bilinear.
function T.resize(opts)
  local _, size = with_size("resize", opts)
  return make("resize", { size = size })
end

function T.center_crop(opts)
  local _, size = with_size("center_crop", opts)
  return make("center_crop", { size = size })
end

-- to_float is both a value (T.to_float) and a constructor (T.to_float()).
T.to_float = setmetatable({ op = "to_float" }, {
  __index = Op,
  __call = function(self, image, opts)
    if image == nil then return self end
    return T.apply(self, image, opts)
  end,
})

return T

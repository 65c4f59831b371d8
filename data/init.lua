-- distill.data: datasets, transforms and the threaded loader.
--   local data = require "distill.data"
--   local ds = data.cifar100{root = dir, split = "train"}
--   local T = data.transforms
--   local loader = data.loader(ds, {batch_size = 64, shuffle = true, workers = 2, seed = 1,
--     transform = T.compose{T.random_crop{size = 32, padding = 4}, T.horizontal_flip{},
--                           T.normalize(data.datasets.stats("cifar100"))}})
--   for batch in loader:epoch(1) do ... batch.input, batch.target, batch.index ... end
-- Datasets load on first use: data.cifar10, data.cifar100, data.mnist,
-- data.fashion_mnist, data.image_folder; data.datasets is the registry of
-- the names configs use (with their statistics).
local data = {
  loader = require "distill.data.loader",
  transforms = require "distill.data.transforms",
}

local lazy = {
  cifar10 = function() return require("distill.data.cifar").cifar10 end,
  cifar100 = function() return require("distill.data.cifar").cifar100 end,
  cifar = function() return require "distill.data.cifar" end,
  mnist = function() return require "distill.data.mnist" end,
  fashion_mnist = function() return require "distill.data.fashion_mnist" end,
  image_folder = function() return require "distill.data.image_folder" end,
  datasets = function() return require "distill.data.datasets" end,
}

return setmetatable(data, {
  __index = function(self, key)
    local get = lazy[key]
    if get then
      local value = get()
      rawset(self, key, value)
      return value
    end
  end,
})

-- distill.data.datasets: the datasets a config names in data.dataset. Each
-- entry knows how to open a split from the config's data table and the
-- per-channel statistics its inputs are normalised with.
--
--   local datasets = require "distill.data.datasets"
--   datasets.names()                        --> {"cifar10", "cifar100", ..., "synthetic"}
--   datasets.stats("cifar100")              --> {mean = {...}, std = {...}} (a copy)
--   local ds = datasets.open(cfg.data, "train", cfg.seed)
--   local T = datasets.transform(cfg.data, ds:get(1).input:shape(), "train")
--   local d = datasets.loaders(cfg.data, {batch_size = 64, workers = 2, seed = 1})
--     --> {train =, test =, train_loader =, test_loader =, input_shape =, num_classes =}
--
-- `d` is a config's data table (distill.config fills its defaults): dataset,
-- root, num_classes, augment, crop_padding, mean, std, train_limit,
-- test_limit and the synthetic_* keys.
local distill = require "distill"
local registry = require "distill.registry"
local dataset = require "distill.data.dataset"

local datasets = {}

local known = registry.new("data", "dataset")

-- A learnable synthetic dataset (specs, smoke tests): noise plus a bright
-- row whose position is the class. Generated from its own seed; the global
-- RNG is left re-seeded, so callers seed after opening data.
local function synthetic(d, split, seed)
  local shape = d.synthetic_shape
  local classes = d.num_classes or 10
  local n = split == "train" and d.synthetic_size or d.synthetic_test_size
  if shape[2] < classes then
    error(("data: synthetic data needs synthetic_shape[2] >= num_classes (%d)"):format(classes), 0)
  end
  distill.manual_seed(seed * 7919 + (split == "train" and 1 or 2))
  local images = distill.rand{ n, shape[1], shape[2], shape[3] } * 120
  local order = distill.randperm(n)
  local labels = {}
  for i = 1, n do
    local label = (order[i] - 1) % classes + 1
    labels[i] = label
    images[i]:narrow(2, label, 1):fill_(230)
  end
  local names = {}
  for c = 1, classes do
    names[c] = "class" .. c
  end
  return dataset.in_memory("synthetic", images:to("uint8"), distill.tensor(labels, "int64"), names)
end

local function cifar(name)
  return function(d, split)
    local root = d.root or os.getenv("DISTILL_CIFAR_ROOT") or "data/" .. name
    return require("distill.data.cifar")[name]{ root = root, split = split }
  end
end

local function idx(name)
  return function(d, split)
    return require("distill.data." .. name){ root = d.root or nil, split = split }
  end
end

local function image_folder(d, split)
  if not d.root then
    error("data: image_folder needs data.root (with train/ and val/ or test/ folders)", 0)
  end
  local sub = split == "train" and "/train" or "/val"
  return require("distill.data.image_folder"){ root = d.root .. sub }
end

-- CIFAR-100's are the CRD code base's (RepDistiller) values; ImageNet's
-- are torchvision's, used for any JPEG folder.
known:add("cifar10", { open = cifar("cifar10"),
  mean = { 0.4914, 0.4822, 0.4465 }, std = { 0.2470, 0.2435, 0.2616 } })
known:add("cifar100", { open = cifar("cifar100"),
  mean = { 0.5071, 0.4867, 0.4408 }, std = { 0.2675, 0.2565, 0.2761 } })
known:add("fashion_mnist", { open = idx("fashion_mnist"), mean = { 0.2860 }, std = { 0.3530 } })
known:add("mnist", { open = idx("mnist"), mean = { 0.1307 }, std = { 0.3081 } })
known:add("image_folder", { open = image_folder,
  mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 } })
known:add("synthetic", { open = synthetic, mean = { 0.5 }, std = { 0.25 } })

--- Sorted dataset names.
function datasets.names()
  return known:names()
end

--- Is name a dataset?
function datasets.has(name)
  return known:get(name) ~= nil
end

--- {mean =, std =} of a dataset's inputs scaled to [0, 1] (a copy).
function datasets.stats(name)
  local entry = known:find(name, 2)
  return { mean = { table.unpack(entry.mean) }, std = { table.unpack(entry.std) } }
end

-- The first `limit` samples, for short runs (0 or nil: all).
local function limit_dataset(ds, limit)
  if not limit or limit <= 0 or limit >= #ds or not ds.images then
    return ds
  end
  local limited = dataset.in_memory(ds.name, ds.images:narrow(1, 1, limit):clone(),
    ds.labels:narrow(1, 1, limit):clone(), ds.classes)
  limited.split, limited.root = ds.split, ds.root
  return limited
end

--- One split ("train" or "test") of the config's dataset, cut to
-- data.train_limit / data.test_limit. seed: the synthetic data's (default 1).
function datasets.open(d, split, seed)
  if type(d) ~= "table" then
    error("datasets.open: expected a config's data table, got " .. type(d), 2)
  end
  if split ~= "train" and split ~= "test" then
    error(("datasets.open: split must be \"train\" or \"test\", got %s"):format(tostring(split)), 2)
  end
  local ds = known:find(d.dataset, 2).open(d, split, seed or 1)
  return limit_dataset(ds, split == "train" and d.train_limit or d.test_limit)
end

--- The transform of a split: data.augment ("crop_flip": random crop with
-- data.crop_padding and a horizontal flip, training split only), then
-- normalisation with data.mean / data.std or the dataset's statistics.
function datasets.transform(d, input_shape, split)
  local T = require "distill.data.transforms"
  local stats = datasets.stats(d.dataset)
  local ops = {}
  if split == "train" and d.augment == "crop_flip" then
    ops[#ops + 1] = T.random_crop{ size = { input_shape[2], input_shape[3] }, padding = d.crop_padding }
    ops[#ops + 1] = T.horizontal_flip{}
  elseif d.augment ~= "none" and d.augment ~= "crop_flip" then
    error(("data: data.augment must be \"none\" or \"crop_flip\", got %s")
      :format(tostring(d.augment)), 0)
  end
  ops[#ops + 1] = T.normalize{ mean = d.mean or stats.mean, std = d.std or stats.std }
  return T.compose(ops)
end

--- Both splits and their loaders: the training loader shuffles (by seed and
-- epoch), the test loader keeps the order. opts: batch_size, workers, seed,
-- and for data-parallel runs shard, shards (this process's share of every
-- batch; batch_size is the global batch; see distill.data.loader).
function datasets.loaders(d, opts)
  if type(opts) ~= "table" then
    error("datasets.loaders: expected options {batch_size =, workers =, seed =}", 2)
  end
  local train = datasets.open(d, "train", opts.seed)
  local test = datasets.open(d, "test", opts.seed)
  local input_shape = train:get(1).input:shape()
  local num_classes = d.num_classes or (train.classes and #train.classes) or 0
  if num_classes < 1 then
    error("data: set data.num_classes (the dataset does not name its classes)", 0)
  end
  local loader = require "distill.data.loader"
  return {
    train = train, test = test, input_shape = input_shape, num_classes = num_classes,
    train_loader = loader(train, { batch_size = opts.batch_size, shuffle = true, drop_last = false,
      workers = opts.workers, seed = opts.seed, shard = opts.shard, shards = opts.shards,
      transform = datasets.transform(d, input_shape, "train") }),
    test_loader = loader(test, { batch_size = opts.batch_size, shuffle = false, workers = opts.workers,
      seed = opts.seed, shard = opts.shard, shards = opts.shards, keep_short = true,
      transform = datasets.transform(d, input_shape, "test") }),
  }
end

return datasets

-- distill.data.cifar: CIFAR-10 and CIFAR-100 as published, in either of
-- their layouts.
--   cifar10{root = dir, split = "train" | "test"}
--   cifar100{root = dir, split = "train" | "test", label = "fine" | "coarse"}
-- The binary version (data_batch_1..5.bin / test_batch.bin; train.bin /
-- test.bin) in root or root/cifar-10-batches-bin (cifar-100-binary), or the
-- python version, the pickled batches torchvision downloads (data_batch_1..5
-- / test_batch; train / test, beside batches.meta / meta) in root or
-- root/cifar-10-batches-py (cifar-100-python). The binary version is taken
-- when both are there.
local core = require "distill.core"
local dataset = require "distill.data.dataset"

local cifar = {}

cifar.cifar10_classes = { "airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
  "horse", "ship", "truck" }

cifar.cifar100_coarse_classes = { "aquatic_mammals", "fish", "flowers", "food_containers",
  "fruit_and_vegetables", "household_electrical_devices", "household_furniture", "insects",
  "large_carnivores", "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
  "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
  "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2" }

cifar.cifar100_fine_classes = { "apple", "aquarium_fish", "baby", "bear", "beaver", "bed",
  "bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel",
  "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud",
  "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant",
  "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp",
  "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
  "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree",
  "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum",
  "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew",
  "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower",
  "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train", "trout",
  "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm" }

local function check_opts(fn, opts)
  if type(opts) ~= "table" then
    error(fn .. ": expected an options table {root = dir, split = ...}", 3)
  end
  if type(opts.root) ~= "string" then
    error(fn .. ": option 'root' (the dataset directory) is required", 3)
  end
  local split = opts.split or "train"
  if split ~= "train" and split ~= "test" then
    error(("%s: split must be \"train\" or \"test\", got %s"):format(fn, tostring(split)), 3)
  end
  return split
end

-- A layout of the files: where they may sit (root or root/<sub>), the file
-- whose presence picks it, the files of a split and how to read them.
local LAYOUTS = {
  cifar10 = {
    { name = "binary version", sub = "cifar-10-batches-bin", probe = { train = "data_batch_1.bin",
        test = "test_batch.bin" }, suffix = ".bin" },
    { name = "python version", sub = "cifar-10-batches-py", probe = { train = "data_batch_1",
        test = "test_batch" }, suffix = "", python = true },
  },
  cifar100 = {
    { name = "binary version", sub = "cifar-100-binary", probe = { train = "train.bin", test = "test.bin" },
      suffix = ".bin" },
    { name = "python version", sub = "cifar-100-python", probe = { train = "train", test = "test" },
      suffix = "", python = true },
  },
}

local function is_file(path)
  local lfs = require "lfs"
  return lfs.attributes(path, "mode") == "file"
end

-- The layout and directory of a split: the first layout whose probe file is
-- in root or root/<its sub>; else an error naming everything looked for.
local function find_layout(fn, root, split)
  local looked = {}
  for _, layout in ipairs(LAYOUTS[fn]) do
    local probe = layout.probe[split]
    for _, dir in ipairs { root, root .. "/" .. layout.sub } do
      if is_file(dir .. "/" .. probe) then
        return layout, dir
      end
    end
    looked[#looked + 1] = ("%s (%s) in %s or %s/%s"):format(probe, layout.name, root, root, layout.sub)
  end
  error(("%s: no %s files found: looked for %s (missing directory or download?)")
    :format(fn, fn == "cifar10" and "CIFAR-10" or "CIFAR-100", table.concat(looked, ", and for ")), 3)
end

-- Reads the split's files in the layout's format; pick: the binary label
-- byte (1-based) or the python label key.
local function load(fn, layout, paths, label_bytes, pick)
  local reader = layout.python and "read_cifar_python" or "read_cifar"
  local ok, images, labels
  if layout.python then
    ok, images, labels = pcall(core.dataio.read_cifar_python, paths, pick)
  else
    ok, images, labels = pcall(core.dataio.read_cifar, paths, label_bytes, pick)
  end
  if not ok then
    error(fn .. ": " .. tostring(images):gsub("^dataio%." .. reader .. ": ", ""), 3)
  end
  return images, labels
end

function cifar.cifar10(opts)
  local fn = "cifar10"
  local split = check_opts(fn, opts)
  local layout, dir = find_layout(fn, opts.root, split)
  local paths = {}
  if split == "train" then
    for k = 1, 5 do paths[k] = dir .. "/data_batch_" .. k .. layout.suffix end
  else
    paths[1] = dir .. "/test_batch" .. layout.suffix
  end
  local images, labels = load(fn, layout, paths, 1, layout.python and "labels" or 1)
  local ds = dataset.in_memory("cifar10", images, labels, cifar.cifar10_classes)
  ds.split = split
  return ds
end

function cifar.cifar100(opts)
  local fn = "cifar100"
  local split = check_opts(fn, opts)
  local label = opts.label or "fine"
  if label ~= "fine" and label ~= "coarse" then
    error(("%s: label must be \"fine\" or \"coarse\", got %s"):format(fn, tostring(label)), 2)
  end
  local layout, dir = find_layout(fn, opts.root, split)
  local pick
  if layout.python then
    pick = label .. "_labels"
  else
    pick = label == "fine" and 2 or 1
  end
  local images, labels = load(fn, layout, { dir .. "/" .. layout.probe[split] }, 2, pick)
  local classes = label == "fine" and cifar.cifar100_fine_classes or cifar.cifar100_coarse_classes
  local ds = dataset.in_memory("cifar100", images, labels, classes)
  ds.split, ds.label = split, label
  return ds
end

return cifar

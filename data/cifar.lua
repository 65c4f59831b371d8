-- distill.data.cifar: CIFAR-10 and CIFAR-100 from the binary distributions.
--   cifar10{root = dir, split = "train" | "test"}
--   cifar100{root = dir, split = "train" | "test", label = "fine" | "coarse"}
-- The files (data_batch_1..5.bin / test_batch.bin; train.bin / test.bin)
-- may sit in root itself or in root/cifar-10-batches-bin (cifar-100-binary).
local core = require "distill.core"
local dataset = require "distill.data.dataset"
local files = require "distill.files"

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

-- The directory among root and root/sub holding `probe`.
local function find_dir(fn, root, sub, probe)
  for _, dir in ipairs { root, root .. "/" .. sub } do
    if files.exists(dir .. "/" .. probe) then return dir end
  end
  error(("%s: %s not found in %s or %s/%s (missing directory or download?)")
    :format(fn, probe, root, root, sub), 3)
end

local function load(fn, files, label_bytes, pick)
  local ok, images, labels = pcall(core.dataio.read_cifar, files, label_bytes, pick)
  if not ok then error(fn .. ": " .. tostring(images):gsub("^dataio%.read_cifar: ", ""), 3) end
  return images, labels
end

function cifar.cifar10(opts)
  local fn = "cifar10"
  local split = check_opts(fn, opts)
  local probe = split == "train" and "data_batch_1.bin" or "test_batch.bin"
  local dir = find_dir(fn, opts.root, "cifar-10-batches-bin", probe)
  local files = {}
  if split == "train" then
    for k = 1, 5 do files[k] = dir .. "/data_batch_" .. k .. ".bin" end
  else
    files[1] = dir .. "/test_batch.bin"
  end
  local images, labels = load(fn, files, 1, 1)
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
  local name = split .. ".bin"
  local dir = find_dir(fn, opts.root, "cifar-100-binary", name)
  local images, labels = load(fn, { dir .. "/" .. name }, 2, label == "fine" and 2 or 1)
  local classes = label == "fine" and cifar.cifar100_fine_classes or cifar.cifar100_coarse_classes
  local ds = dataset.in_memory("cifar100", images, labels, classes)
  ds.split, ds.label = split, label
  return ds
end

return cifar

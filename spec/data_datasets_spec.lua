-- distill.data.datasets: the registry of the datasets configs name, with
-- their statistics, openers, synthetic data and loaders.
local distill = require "distill"
local config = require "distill.config"
local datasets = require "distill.data.datasets"
local h = require "support.helpers"

local function synthetic(extra)
  local d = config.copy(config.data_defaults)
  d.dataset, d.num_classes, d.synthetic_size, d.synthetic_test_size = "synthetic", 4, 40, 12
  d.synthetic_shape = { 1, 6, 6 }
  for k, v in pairs(extra or {}) do
    d[k] = v
  end
  return d
end

describe("distill.data.datasets", function()
  it("names every dataset a config may use", function()
    assert.are.same({ "cifar10", "cifar100", "fashion_mnist", "image_folder", "mnist", "synthetic" },
      datasets.names())
    assert.is_true(datasets.has("cifar100"))
    assert.is_false(datasets.has("imagenet"))
    assert.are.equal(datasets, distill.data.datasets)
  end)

  it("holds one copy of each dataset's statistics, the one the presets use", function()
    local stats = datasets.stats("cifar100")
    assert.are.same({ 0.5071, 0.4867, 0.4408 }, stats.mean)
    assert.are.same({ 0.2675, 0.2565, 0.2761 }, stats.std)
    stats.mean[1] = 0
    assert.are.equal(0.5071, datasets.stats("cifar100").mean[1], "stats hands out copies")
    local preset = config.cifar100_teacher("resnet8")
    assert.are.same(datasets.stats("cifar100").mean, preset.data.mean)
    assert.are.same(datasets.stats("cifar100").std, preset.data.std)
    assert.are.same({ 0.2860 }, datasets.stats("fashion_mnist").mean)
    h.fails("data: unknown dataset 'imagenet' (known: cifar10, cifar100", datasets.stats, "imagenet")
  end)

  it("generates learnable synthetic data from its own seed, cut to the limits", function()
    local a = datasets.open(synthetic(), "train", 3)
    local b = datasets.open(synthetic(), "train", 3)
    assert.are.equal(40, #a)
    assert.is_true(a.images == b.images)
    assert.is_true(a.labels == b.labels)
    local sample = a:get(1)
    assert.are.equal(230, sample.input[1][sample.target][1])   -- the bright row is the class
    assert.are.equal(12, #datasets.open(synthetic(), "test", 3))
    assert.are.equal(10, #datasets.open(synthetic{ train_limit = 10 }, "train", 3))
    h.fails("synthetic data needs synthetic_shape[2] >= num_classes (8)", datasets.open,
      synthetic{ num_classes = 8 }, "train", 1)
  end)

  it("rejects what it cannot open", function()
    h.fails("data: unknown dataset 'imagenet'", datasets.open, synthetic{ dataset = "imagenet" }, "train")
    h.fails("datasets.open: split must be \"train\" or \"test\", got val", datasets.open, synthetic(), "val")
    h.fails("datasets.open: expected a config's data table", datasets.open, "synthetic", "train")
    h.fails("data: image_folder needs data.root", datasets.open,
      synthetic{ dataset = "image_folder", root = false }, "train")
  end)

  it("builds transforms and loaders from the config's data table", function()
    local d = synthetic{ augment = "crop_flip", crop_padding = 1 }
    local data = datasets.loaders(d, { batch_size = 8, workers = 1, seed = 3 })
    assert.are.same({ 1, 6, 6 }, data.input_shape)
    assert.are.equal(4, data.num_classes)
    assert.are.equal(5, #data.train_loader)
    assert.are.equal(2, #data.test_loader)
    for batch in data.test_loader:epoch(1) do
      -- normalised with the synthetic statistics: (230 / 255 - 0.5) / 0.25
      assert.is_true(math.abs(batch.input:max():item() - (230 / 255 - 0.5) / 0.25) < 1e-5)
      break
    end
    data.train_loader:close()
    data.test_loader:close()
    h.fails("data: data.augment must be \"none\" or \"crop_flip\", got flip", datasets.transform,
      synthetic{ augment = "flip" }, { 1, 6, 6 }, "train")
    h.fails("datasets.loaders: expected options", datasets.loaders, d)
  end)
end)

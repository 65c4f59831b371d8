-- Proof of learning: the whole stack (autograd, layers, losses, optimizers,
-- data) fits real problems with a fixed seed.
local distill = require "distill"
local nn = require "distill.nn"
local F = distill.F
local optim = require "distill.optim"

local function accuracy(logits, labels)
  local predicted = logits:argmax(2)
  return predicted:eq(labels):float():mean():item()
end

-- Two interleaved spirals, n points per class, labels 1 and 2.
local function two_spirals(n)
  local points, labels = {}, {}
  for class = 1, 2 do
    for i = 1, n do
      local r = i / n * 5
      local angle = i / n * 3 * math.pi + (class - 1) * math.pi
      points[#points + 1] = { r * math.cos(angle), r * math.sin(angle) }
      labels[#labels + 1] = class
    end
  end
  return distill.tensor(points, "float32"), distill.tensor(labels)
end

describe("learning", function()
  it("an MLP separates two spirals (> 95% train accuracy)", function()
    distill.manual_seed(1)
    local x, y = two_spirals(200)
    local net = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
      nn.Linear(64, 2))
    local opt = optim.Adam(net:parameters(), { lr = 0.01 })
    for _ = 1, 600 do
      opt:zero_grad()
      local loss = F.cross_entropy(net(x), y)
      loss:backward()
      opt:step()
    end
    local acc = distill.no_grad(function() return accuracy(net(x), y) end)
    assert.is_true(acc > 0.95, ("train accuracy %.3f"):format(acc))
  end)

  local fashion_root = "/usr/share/datasets/fashion-mnist"
  local has_fashion = io.open(fashion_root .. "/train-labels-idx1-ubyte.gz", "rb")
  if has_fashion then
    has_fashion:close()
  end

  it("a small CNN fits Fashion-MNIST images (> 95% train accuracy)", function()
    if not has_fashion then
      pending("dataset-fashion-mnist is not installed")
      return
    end
    distill.manual_seed(2)
    local data = require "distill.data"
    local train = require("distill.data.fashion_mnist"){ split = "train" }
    -- the first 512 images, a set the network can fit within seconds
    local subset = {
      images = train.images:narrow(1, 1, 512),
      labels = train.labels:narrow(1, 1, 512),
    }
    local net = nn.Sequential(
      nn.Conv2d(1, 8, 3, { padding = 1, bias = false }), nn.BatchNorm2d(8), nn.ReLU(),
      nn.MaxPool2d(2),
      nn.Conv2d(8, 16, 3, { padding = 1, bias = false }), nn.BatchNorm2d(16), nn.ReLU(),
      nn.MaxPool2d(2),
      nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
    local opt = optim.SGD(net:parameters(), { lr = 0.05, momentum = 0.9 })
    local dataset = require("distill.data.dataset").in_memory("fashion-mnist[1:512]",
      subset.images, subset.labels)
    local loader = data.loader(dataset, { batch_size = 64, shuffle = true, seed = 3,
      transform = data.transforms.normalize{ mean = { 0.286 }, std = { 0.353 } } })
    for epoch = 1, 15 do
      for batch in loader:epoch(epoch) do
        opt:zero_grad()
        F.cross_entropy(net(batch.input), batch.target):backward()
        opt:step()
      end
    end
    net:eval()
    local x = (subset.images:float() / 255 - 0.286) / 0.353
    local acc = distill.no_grad(function() return accuracy(net(x), subset.labels) end)
    assert.is_true(acc > 0.95, ("train accuracy %.3f"):format(acc))
  end)
end)

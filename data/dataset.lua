-- distill.data.dataset: the shared behaviour of in-memory datasets.
-- A dataset has #ds, ds:get(i) -> {input = uint8 C x H x W, target = integer
-- (1-based), index = i}, ds.classes, and for the loader a `source` field
-- telling the C side where the pixels are.
local dataset = {}

local InMemory = {}
InMemory.__index = InMemory
InMemory.__len = function(self) return self.n end

function InMemory:get(i)
  if math.type(i) ~= "integer" or i < 1 or i > self.n then
    error(("%s:get: index %s out of range 1..%d"):format(self.name, tostring(i), self.n), 2)
  end
  return { input = self.images[i], target = self.labels[i], index = i }
end

function InMemory:__tostring()
  return ("%s(%d samples, %d classes)"):format(self.name, self.n, #self.classes)
end

--- An in-memory dataset over images (N x C x H x W uint8) and labels (N int64, 1-based).
function dataset.in_memory(name, images, labels, classes)
  return setmetatable({
    name = name,
    images = images,
    labels = labels,
    classes = classes or {},
    n = #images,
    source = { images = images, labels = labels },
  }, InMemory)
end

return dataset

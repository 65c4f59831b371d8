local distill = require "distill"
local lfs = require "lfs"
local core = require "distill.core"
local mnist = require "distill.data.mnist"
local h = require "support.helpers"

local tmpdir, write, read = h.tmpdir, h.write, h.read

local function be32(v) return string.pack(">I4", v) end

local function idx_images(n, h, w, value)
  local parts = { be32(0x00000803), be32(n), be32(h), be32(w) }
  for k = 0, n - 1 do
    local bytes = {}
    for y = 0, h - 1 do
      for x = 0, w - 1 do bytes[#bytes + 1] = value(k, y, x) end
    end
    parts[#parts + 1] = string.char(table.unpack(bytes))
  end
  return table.concat(parts)
end

local function idx_labels(labels)
  return be32(0x00000801) .. be32(#labels) .. string.char(table.unpack(labels))
end

local function pix(k, y, x) return (k * 31 + y * 4 + x) % 256 end

describe("data.idx", function()
  local root
  before_each(function() root = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. root .. "'") end)

  local function write_split(prefix, n, labels)
    write(root .. "/" .. prefix .. "-images-idx3-ubyte", idx_images(n, 4, 3, pix))
    write(root .. "/" .. prefix .. "-labels-idx1-ubyte", idx_labels(labels))
  end

  it("reads IDX image and label files (1 x H x W samples, 1-based labels)", function()
    write_split("train", 5, { 0, 9, 3, 3, 1 })
    local ds = mnist { root = root }
    assert.equal(5, #ds)
    assert.same({ 5, 1, 4, 3 }, ds.images:shape())
    assert.same({ 1, 10, 4, 4, 2 }, ds.labels:totable())
    local s = ds:get(2)
    assert.same({ 1, 4, 3 }, s.input:shape())
    assert.equal(10, s.target)
    assert.equal(2, s.index)
    for y = 0, 3 do
      for x = 0, 2 do assert.equal(pix(1, y, x), s.input[1][y + 1][x + 1]) end
    end
  end)

  it("reads gzip'ed files (and the generic reader gives the file's dims)", function()
    write_split("t10k", 3, { 7, 8, 9 })
    assert(os.execute("gzip '" .. root .. "/t10k-images-idx3-ubyte' '" .. root .. "/t10k-labels-idx1-ubyte'"))
    local ds = mnist { root = root, split = "test" }
    assert.equal(3, #ds)
    assert.same({ 8, 9, 10 }, ds.labels:totable())
    assert.equal(pix(2, 3, 2), ds:get(3).input[1][4][3])
    local raw = core.dataio.read_idx(root .. "/t10k-images-idx3-ubyte.gz")
    assert.same({ 3, 4, 3 }, raw:shape())
  end)

  it("rejects a wrong magic, naming the file", function()
    local path = root .. "/train-images-idx3-ubyte"
    write(path, be32(0x12345678) .. string.rep("\0", 40))
    write(root .. "/train-labels-idx1-ubyte", idx_labels { 1 })
    local ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(path .. ": wrong IDX magic 0x12345678", err, 1, true)
    -- a label file where an image file belongs
    write(path, idx_labels { 1, 2 })
    ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(path .. ": expected an IDX image file (magic 0x00000803", err, 1, true)
    -- an unsupported data type (0x0D: float)
    write(path, be32(0x00000D01) .. be32(1) .. "abcd")
    ok, err = pcall(core.dataio.read_idx, path)
    assert.is_false(ok)
    assert.matches("IDX data type 0x0d is not supported", err, 1, true)
  end)

  it("rejects dims inconsistent with the file size", function()
    local path = root .. "/train-images-idx3-ubyte"
    write(root .. "/train-labels-idx1-ubyte", idx_labels { 1, 2 })
    local full = idx_images(2, 4, 3, pix)
    write(path, full:sub(1, #full - 5))
    local ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(path .. ": truncated: dims [2, 4, 3] need 24 data bytes, the file has 19", err, 1, true)
    write(path, full .. "xyz")
    ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(path .. ": dims [2, 4, 3] need 24 data bytes but the file has more", err, 1, true)
    write(path, full:sub(1, 10))
    ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(path .. ": truncated IDX header", err, 1, true)
  end)

  it("rejects a label count that does not match the images", function()
    write_split("train", 3, { 1, 2 })
    local err = h.err(mnist, { root = root })
    assert.matches("train-labels-idx1-ubyte has 2 labels but " .. root
      .. "/train-images-idx3-ubyte has 3 images", err, 1, true)
  end)

  it("rejects a truncated or corrupt gzip stream without crashing", function()
    write_split("train", 4, { 1, 2, 3, 4 })
    local img = root .. "/train-images-idx3-ubyte"
    assert(os.execute("gzip '" .. img .. "'"))
    local gz = read(img .. ".gz")
    write(img .. ".gz", gz:sub(1, #gz // 2))
    local ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(img .. ".gz", err, 1, true)
    write(img .. ".gz", gz:sub(1, 12) .. string.rep("\255", #gz - 12))
    ok, err = pcall(mnist, { root = root })
    assert.is_false(ok)
    assert.matches(img .. ".gz", err, 1, true)
  end)

  it("reports a missing directory", function()
    local err = h.err(mnist, { root = root .. "/missing" })
    assert.matches("train-images-idx3-ubyte and train-labels-idx1-ubyte (or .gz) not found in "
      .. root .. "/missing", err, 1, true)
  end)

  local fm_root = "/usr/share/datasets/fashion-mnist"
  local has_fm = lfs.attributes(fm_root, "mode") == "directory"
  local real = has_fm and it or pending

  real("reads the real Fashion-MNIST (Debian's dataset-fashion-mnist)", function()
    local fashion = require "distill.data.fashion_mnist"
    local train = fashion { split = "train" }
    local test = distill.data.fashion_mnist { split = "test" }
    assert.equal(60000, #train)
    assert.equal(10000, #test)
    assert.same({ 60000, 1, 28, 28 }, train.images:shape())
    local function histogram(ds)
      local h = {}
      for c = 1, 10 do h[c] = 0 end
      for _, y in ipairs(ds.labels:totable()) do h[y] = h[y] + 1 end
      return h
    end
    for c = 1, 10 do
      assert.equal(6000, histogram(train)[c])
      assert.equal(1000, histogram(test)[c])
    end
    -- first test labels: Ankle boot, Pullover, Trouser, Trouser, Shirt (0-based 9, 2, 1, 1, 6)
    assert.same({ 10, 3, 2, 2, 7, 2, 5, 7, 6, 8 }, test.labels:narrow(1, 1, 10):totable())
    assert.equal("Ankle boot", test.classes[test:get(1).target])
    -- first training label: Ankle boot as well
    assert.equal(10, train:get(1).target)
  end)
end)

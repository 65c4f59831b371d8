local distill = require "distill"
local lfs = require "lfs"
local cifar = require "distill.data.cifar"
local h = require "support.helpers"

local tmpdir, write = h.tmpdir, h.write

-- pixel (c, y, x) of record k (all 0-based), a pattern that is easy to check
local function pixel(k, c, y, x) return (k * 7 + c * 3 + y * 5 + x) % 256 end

local function record(labels, k)
  local parts = { string.char(table.unpack(labels)) }
  for c = 0, 2 do
    for y = 0, 31 do
      local row = {}
      for x = 0, 31 do row[x + 1] = pixel(k, c, y, x) end
      parts[#parts + 1] = string.char(table.unpack(row))
    end
  end
  return table.concat(parts)
end

describe("data.cifar", function()
  local root
  before_each(function() root = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. root .. "'") end)

  local function write_cifar10(dir, per_batch, test_n)
    local k = 0
    for b = 1, 5 do
      local recs = {}
      for r = 1, per_batch do
        recs[r] = record({ k % 10 }, k)
        k = k + 1
      end
      write(dir .. "/data_batch_" .. b .. ".bin", table.concat(recs))
    end
    local recs = {}
    for r = 1, test_n do recs[r] = record({ (r * 3) % 10 }, 100 + r) end
    write(dir .. "/test_batch.bin", table.concat(recs))
  end

  it("reads CIFAR-10 records (label + R, G, B planes) with 1-based labels", function()
    write_cifar10(root, 2, 3)
    local ds = cifar.cifar10 { root = root, split = "train" }
    assert.equal(10, #ds)
    assert.same({ 10, 3, 32, 32 }, ds.images:shape())
    assert.equal("uint8", ds.images:dtype())
    assert.equal("int64", ds.labels:dtype())
    for i = 1, 10 do assert.equal((i - 1) % 10 + 1, ds.labels[i]) end
    local s = ds:get(4)
    assert.equal(4, s.index)
    assert.equal(4, s.target)
    assert.same({ 3, 32, 32 }, s.input:shape())
    for _, cyx in ipairs { { 0, 0, 0 }, { 1, 5, 7 }, { 2, 31, 31 }, { 0, 17, 3 } } do
      local c, y, x = cyx[1], cyx[2], cyx[3]
      assert.equal(pixel(3, c, y, x), s.input[c + 1][y + 1][x + 1])
    end
    assert.equal("airplane", ds.classes[1])
    local test = cifar.cifar10 { root = root, split = "test" }
    assert.equal(3, #test)
    assert.equal((1 * 3) % 10 + 1, test:get(1).target)
    assert.equal(pixel(103, 2, 9, 4), test:get(3).input[3][10][5])
  end)

  it("finds the files in root/cifar-10-batches-bin", function()
    local sub = root .. "/cifar-10-batches-bin"
    assert(lfs.mkdir(sub))
    write_cifar10(sub, 1, 1)
    assert.equal(5, #cifar.cifar10 { root = root })
  end)

  it("reads CIFAR-100 records (coarse, fine, pixels), fine or coarse labels", function()
    local sub = root .. "/cifar-100-binary"
    assert(lfs.mkdir(sub))
    local recs = {}
    for k = 0, 3 do recs[#recs + 1] = record({ k + 10, 90 + k }, k) end
    write(sub .. "/train.bin", table.concat(recs))
    write(sub .. "/test.bin", record({ 19, 99 }, 9))
    local fine = cifar.cifar100 { root = root, split = "train" }
    assert.equal(4, #fine)
    assert.same({ 91, 92, 93, 94 }, fine.labels:totable())
    local coarse = cifar.cifar100 { root = root, split = "train", label = "coarse" }
    assert.same({ 11, 12, 13, 14 }, coarse.labels:totable())
    assert.equal(pixel(2, 1, 3, 4), coarse:get(3).input[2][4][5])
    local test = require("distill.data").cifar100 { root = root, split = "test" }
    assert.equal(100, test:get(1).target)
    assert.equal("worm", test.classes[100])
  end)

  it("rejects a truncated file, naming it", function()
    write_cifar10(root, 2, 2)
    local path = root .. "/data_batch_3.bin"
    write(path, record({ 1 }, 0) .. record({ 2 }, 1):sub(1, 1000))
    local err = h.err(cifar.cifar10, { root = root })
    assert.matches(path, err, 1, true)
    assert.matches("not a multiple of the 3073%-byte CIFAR record", err)
  end)

  it("rejects an oversized file (extra bytes after the last record)", function()
    write_cifar10(root, 1, 1)
    local path = root .. "/test_batch.bin"
    write(path, record({ 1 }, 0) .. "extra")
    local err = h.err(cifar.cifar10, { root = root, split = "test" })
    assert.matches(path, err, 1, true)
    assert.matches("size 3078 bytes is not a multiple", err)
  end)

  it("rejects out-of-range labels (not a CIFAR file)", function()
    write_cifar10(root, 1, 1)
    write(root .. "/test_batch.bin", record({ 3 }, 0) .. record({ 200 }, 1))
    local err = h.err(cifar.cifar10, { root = root, split = "test" })
    assert.matches("test_batch.bin: record 2 has label 200", err, 1, true)
  end)

  it("reports a missing directory or file", function()
    local ok, err = pcall(cifar.cifar10, { root = root .. "/nowhere" })
    assert.is_false(ok)
    local nowhere = root .. "/nowhere"
    assert.matches(("cifar10: no CIFAR-10 files found: looked for data_batch_1.bin (binary version) in %s "
      .. "or %s/cifar-10-batches-bin, and for data_batch_1 (python version) in %s or %s/cifar-10-batches-py "
      .. "(missing directory or download?)"):format(nowhere, nowhere, nowhere, nowhere), err, 1, true)
    ok, err = pcall(cifar.cifar100, { root = nowhere, split = "test" })
    assert.is_false(ok)
    assert.matches(("looked for test.bin (binary version) in %s or %s/cifar-100-binary, and for test "
      .. "(python version) in %s or %s/cifar-100-python"):format(nowhere, nowhere, nowhere, nowhere), err, 1, true)
    write(root .. "/data_batch_1.bin", record({ 1 }, 0))
    ok, err = pcall(cifar.cifar10, { root = root })
    assert.is_false(ok)
    assert.matches(root .. "/data_batch_2.bin: cannot open", err, 1, true)
    ok, err = pcall(cifar.cifar100, { root = root, split = "valid" })
    assert.is_false(ok)
    assert.matches("split must be", err)
  end)

  -- the python version as published: pickled dicts with a uint8 data array
  local cifar_pickle = require "support.cifar_pickle"
  local function pickled(n, first, labels)
    return cifar_pickle.batch { n = n, labels = labels, label_order = labels.labels and { "labels" }
      or { "fine_labels", "coarse_labels" },
      pixel = function(k, i) return pixel(first + k, i // 1024, i % 1024 // 32, i % 32) end }
  end

  it("reads CIFAR-100's python version (train, test, meta) through a config's data table", function()
    local sub = root .. "/cifar-100-python"
    assert(lfs.mkdir(sub))
    write(sub .. "/train", pickled(4, 0, { fine_labels = { 90, 91, 92, 93 }, coarse_labels = { 10, 11, 12, 13 } }))
    write(sub .. "/test", pickled(2, 50, { fine_labels = { 99, 0 }, coarse_labels = { 19, 0 } }))
    write(sub .. "/meta", cifar_pickle.meta { { "fine_label_names", cifar.cifar100_fine_classes },
      { "coarse_label_names", cifar.cifar100_coarse_classes } })
    local datasets = require "distill.data.datasets"
    local train = datasets.open({ dataset = "cifar100", root = root }, "train")
    assert.equal(4, #train)
    assert.same({ 91, 92, 93, 94 }, train.labels:totable())
    assert.same({ 4, 3, 32, 32 }, train.images:shape())
    assert.equal(pixel(2, 1, 3, 4), train:get(3).input[2][4][5])
    assert.equal(pixel(3, 2, 31, 31), train:get(4).input[3][32][32])
    local test = datasets.open({ dataset = "cifar100", root = root }, "test")
    assert.same({ 100, 1 }, test.labels:totable())
    assert.equal("worm", test.classes[test:get(1).target])
    assert.equal(pixel(51, 0, 7, 9), test:get(2).input[1][8][10])
    local coarse = cifar.cifar100 { root = sub, split = "train", label = "coarse" }
    assert.same({ 11, 12, 13, 14 }, coarse.labels:totable())
    -- the loader and the config's transforms take it like the binary version
    local loader = distill.data.loader(train, { batch_size = 4,
      transform = datasets.transform({ dataset = "cifar100", augment = "none" }, { 3, 32, 32 }, "test") })
    local seen = 0
    for batch in loader:epoch(1) do
      seen = seen + #batch.index
      assert.same({ 4, 3, 32, 32 }, batch.input:shape())
    end
    assert.equal(4, seen)
    -- a malformed batch names the file
    write(sub .. "/test", "\128\002}q\001.")
    local ok, err = pcall(cifar.cifar100, { root = root, split = "test" })
    assert.is_false(ok)
    assert.matches("^cifar100: " .. (sub .. "/test"):gsub("%p", "%%%0") .. ": ", err)
  end)

  it("reads CIFAR-10's python version; the binary version first when both are there", function()
    local sub = root .. "/cifar-10-batches-py"
    assert(lfs.mkdir(sub))
    for b = 1, 5 do
      write(sub .. "/data_batch_" .. b, pickled(2, 10 * b, { labels = { b, 9 - b } }))
    end
    write(sub .. "/test_batch", pickled(1, 7, { labels = { 3 } }))
    local train = cifar.cifar10 { root = root }
    assert.equal(10, #train)
    assert.same({ 2, 9, 3, 8, 4, 7, 5, 6, 6, 5 }, train.labels:totable())
    assert.equal(pixel(51, 2, 0, 31), train:get(10).input[3][1][32])
    assert.equal(4, cifar.cifar10 { root = root, split = "test" }:get(1).target)
    write_cifar10(root, 1, 1)
    assert.equal(5, #cifar.cifar10 { root = root }, "the binary files in root")
  end)

  it("feeds the loader", function()
    write_cifar10(root, 3, 1)
    local ds = cifar.cifar10 { root = root }
    local loader = distill.data.loader(ds, { batch_size = 4 })
    local seen = 0
    for batch in loader:epoch(1) do
      for k = 1, #batch.index do
        local i = batch.index[k]
        assert.equal(ds.labels[i], batch.target[k])
        assert.equal(pixel(i - 1, 1, 2, 3), batch.input[k][2][3][4])
      end
      seen = seen + #batch.index
    end
    assert.equal(15, seen)
  end)
end)

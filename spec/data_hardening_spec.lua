-- Hardening of the C data readers (issue 15): no reader blocks on a FIFO,
-- damaged JPEGs and implausible headers are errors (and skipped by the
-- loader's skip policy), IDX labels are checked against the class count,
-- and CIFAR's pickled "python version" batches read as published.
local distill = require "distill"
local core = require "distill.core"
local h = require "support.helpers"
local cifar_pickle = require "support.cifar_pickle"

local dataio = core.dataio

local write = h.write

local fails = require "support.fails"

local function be32(v) return string.pack(">I4", v) end

local function image(c, hgt, w)
  local t = distill.zeros({ c, hgt, w }, "uint8")
  for k = 1, c do
    for y = 1, hgt do
      for x = 1, w do t[k][y][x] = (k * 70 + y * 11 + x * 7) % 256 end
    end
  end
  return t
end

describe("data readers, hardened", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("refuse a FIFO at once instead of blocking (IDX, CIFAR, JPEG, safetensors)", function()
    local fifo = dir .. "/fifo"
    assert(os.execute("mkfifo '" .. fifo .. "'"))
    -- in a child process with a time limit, so that a regression fails
    -- instead of hanging the suite
    local script = dir .. "/fifo.lua"
    write(script, ([[
      package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
      package.cpath = "%s/?.so;" .. package.cpath
      local io_ = require("distill.core").dataio
      local core = require "distill.core"
      local f = %q
      local calls = {
        function() return io_.read_idx(f) end,
        function() return io_.read_idx_pair(f, f, 10) end,
        function() return io_.read_cifar({ f }, 1) end,
        function() return io_.read_cifar_python({ f }, "labels") end,
        function() return io_.read_jpeg(f) end,
        function() return core.load_safetensors(f) end,
      }
      for _, call in ipairs(calls) do
        local ok, err = pcall(call)
        assert(not ok and tostring(err):find("not a regular file", 1, true), tostring(err))
      end
      local ok, err = io_.check_jpeg(f)
      assert(not ok and err:find("not a regular file", 1, true), tostring(err))
      print("ok")
    ]]):format(os.getenv("DISTILL_BUILD") or "./build", fifo))
    local p = io.popen("timeout 20 lua5.4 '" .. script .. "' 2>&1")
    local out = p:read "a"
    p:close()
    assert.equal("ok\n", out)
  end)

  it("refuse truncated or corrupt JPEG data instead of decoding grey rows", function()
    local jpeg = dataio.encode_jpeg(image(3, 64, 48), 90)
    assert.same({ 3, 64, 48 }, dataio.decode_jpeg(jpeg):shape())
    for _, frac in ipairs { 0.4, 0.7, 0.95 } do
      local cut = jpeg:sub(1, math.floor(#jpeg * frac))
      fails("dataio.decode_jpeg:", function() return dataio.decode_jpeg(cut) end, "corrupt JPEG data")
      write(dir .. "/cut.jpg", cut)
      fails("dataio.read_jpeg:", function() return dataio.read_jpeg(dir .. "/cut.jpg") end,
        dir .. "/cut.jpg", "corrupt JPEG data")
    end
    -- a corrupt byte in the entropy-coded data
    local pos = #jpeg - 200
    local bad = jpeg:sub(1, pos - 1) .. "\255\217" .. jpeg:sub(pos + 2)
    fails("dataio.decode_jpeg:", function() return dataio.decode_jpeg(bad) end, "corrupt JPEG")
  end)

  it("refuse a JPEG header claiming 65500 x 65500 pixels before decoding", function()
    local jpeg = dataio.encode_jpeg(image(3, 16, 16), 90)
    local sof = jpeg:find("\255\192", 1, true)
    assert.truthy(sof, "no SOF0 marker")
    local huge = jpeg:sub(1, sof + 4) .. string.pack(">I2>I2", 65500, 65500) .. jpeg:sub(sof + 9)
    local t0 = dataio.wallclock()
    fails("dataio.decode_jpeg:", function() return dataio.decode_jpeg(huge) end, "65500 x 65500",
      "more than the")
    assert.is_true(dataio.wallclock() - t0 < 1, "refusing took too long")
    write(dir .. "/huge.jpg", huge)
    local ok, err = dataio.check_jpeg(dir .. "/huge.jpg")
    assert.is_nil(ok)
    assert.truthy(err:find(dir .. "/huge.jpg", 1, true) and err:find("65500 x 65500", 1, true), err)
  end)

  it("refuse a JPEG header claiming more pixels than the file's bytes can encode", function()
    -- the fuzzer's find: a 340-byte file claiming 35080 x 2080 pixels cost a 219 MB buffer
    local jpeg = dataio.encode_jpeg(image(1, 16, 16), 90)
    local sof = jpeg:find("\255\192", 1, true)
    local function claiming(h, w)
      return jpeg:sub(1, sof + 4) .. string.pack(">I2>I2", h, w) .. jpeg:sub(sof + 9)
    end
    local limit = #jpeg * 512   -- pixels: one Huffman bit per 8 x 8 block at least
    fails("dataio.decode_jpeg:", function() return dataio.decode_jpeg(claiming(2080, 35080)) end,
      "JPEG header claims 35080 x 2080 pixels, more than a file of " .. #jpeg .. " bytes can hold")
    local h = limit // 512
    fails("dataio.decode_jpeg:", function() return dataio.decode_jpeg(claiming(h + 1, 512)) end,
      "bytes can hold")
    -- at the bound the header passes, and the decoder finds the data missing
    fails("dataio.decode_jpeg:", function() return dataio.decode_jpeg(claiming(h, 512)) end, "corrupt JPEG data")
    -- the bound is far above what real files need: a uniform image, the most compressible
    local flat = distill.full({ 1, 1024, 1024 }, 128):to("uint8")
    local flat_jpeg = dataio.encode_jpeg(flat, 50)
    assert.is_true(#flat_jpeg * 512 > 1024 * 1024 * 4, #flat_jpeg)
    assert.same({ 3, 1024, 1024 }, dataio.decode_jpeg(flat_jpeg):shape())   -- always RGB
  end)

  it("make the loader skip damaged, oversized and unreadable files in skip mode", function()
    local good = dataio.encode_jpeg(image(3, 20, 20), 90)
    write(dir .. "/1.jpg", good)
    write(dir .. "/2.jpg", good:sub(1, math.floor(#good * 0.6)))
    local sof = good:find("\255\192", 1, true)
    write(dir .. "/3.jpg", good:sub(1, sof + 4) .. string.pack(">I2>I2", 65500, 65500) .. good:sub(sof + 9))
    assert(os.execute("mkfifo '" .. dir .. "/4.jpg'"))
    write(dir .. "/5.jpg", good)
    local paths = {}
    for k = 1, 5 do paths[k] = dir .. "/" .. k .. ".jpg" end
    local tf = { { op = "center_crop", size = 16 } }
    local l = dataio.loader_new { paths = paths, transform = tf, batch_size = 5, on_error = "skip" }
    l:start(1)
    local input = l:next()
    assert.same({ 5, 3, 16, 16 }, input:shape())
    assert.equal(3, l:skipped())
    assert.equal(0, input[2]:sum():item())
    assert.is_true(input[1]:sum():item() > 0 and input[5]:sum():item() > 0)
    l:close()
    local strict = dataio.loader_new { paths = paths, transform = tf, batch_size = 5 }
    strict:start(1)
    fails("Loader:next:", function() return strict:next() end, dir .. "/2.jpg", "corrupt JPEG")
    strict:close()
  end)

  it("decode a good file after a damaged one with the same decoder", function()
    local good = dataio.encode_jpeg(image(3, 20, 20), 90)
    local paths = {}
    for k = 1, 6 do
      paths[k] = dir .. "/" .. k .. ".jpg"
      write(paths[k], k % 2 == 1 and good:sub(1, math.floor(#good * (k == 1 and 0.5 or 0.9))) or good)
    end
    local l = dataio.loader_new { paths = paths, transform = { { op = "center_crop", size = 16 } },
      batch_size = 6, on_error = "skip" }
    l:start(1)
    local input = l:next()
    assert.equal(3, l:skipped())
    for k = 2, 6, 2 do assert.is_true(input[k]:sum():item() > 0, "good file " .. k .. " was lost") end
    l:close()
  end)

  it("refuse IDX labels outside the class count, naming the file and item", function()
    local images = be32(0x803) .. be32(3) .. be32(2) .. be32(2) .. string.rep("\7", 12)
    write(dir .. "/img", images)
    write(dir .. "/lab", be32(0x801) .. be32(3) .. "\1\255\3")
    fails("dataio.read_idx_pair:", function() return dataio.read_idx_pair(dir .. "/img", dir .. "/lab", 10) end,
      dir .. "/lab", "label 255 of item 2", "10 classes")
    fails("dataio.read_idx_pair:", function() return dataio.read_idx_pair(dir .. "/img", dir .. "/lab", 0) end,
      "num_classes must be 1..256")
    -- without a class count every byte is a label (the generic reader)
    local _, labels = dataio.read_idx_pair(dir .. "/img", dir .. "/lab")
    assert.same({ 2, 256, 4 }, labels:totable())
    write(dir .. "/lab", be32(0x801) .. be32(3) .. "\1\9\3")
    local _, ok_labels = dataio.read_idx_pair(dir .. "/img", dir .. "/lab", 10)
    assert.same({ 2, 10, 4 }, ok_labels:totable())
  end)

  it("do not trust IDX dims before the data arrives (plain and gzip)", function()
    local claim = be32(0x803) .. be32(0xFFFF) .. be32(0xFFFF) .. be32(3) .. "abc"
    write(dir .. "/big", claim)
    fails("dataio.read_idx:", function() return dataio.read_idx(dir .. "/big") end, dir .. "/big",
      "truncated", "has 3")
    assert(os.execute("gzip '" .. dir .. "/big'"))
    local t0 = dataio.wallclock()
    fails("dataio.read_idx:", function() return dataio.read_idx(dir .. "/big.gz") end, "truncated",
      "after gunzip")
    assert.is_true(dataio.wallclock() - t0 < 1)
    write(dir .. "/huge", be32(0x804) .. be32(0xFFFFFFFF) .. be32(0xFFFFFFFF) .. be32(0xFFFFFFFF)
      .. be32(0xFFFFFFFF))
    fails("dataio.read_idx:", function() return dataio.read_idx(dir .. "/huge") end,
      "implausibly large", "[4294967295, 4294967295, 4294967295, 4294967295]")
  end)
end)

describe("CIFAR python batches", function()
  local dir
  before_each(function() dir = h.tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function pix(k, i) return (k * 13 + i * 3) % 256 end

  local function batch10(n, labels)
    return cifar_pickle.batch { n = n, pixel = pix, labels = { labels = labels }, label_order = { "labels" } }
  end

  it("reads CIFAR-10 batches as published (uint8 N x 3072, labels 1-based), several files in order", function()
    local l1, l2 = {}, {}
    for k = 1, 1200 do l1[k] = (k * 3) % 10 end   -- more than one APPENDS batch of 1000
    for k = 1, 7 do l2[k] = 9 - k % 10 end
    write(dir .. "/data_batch_1", batch10(1200, l1))
    write(dir .. "/data_batch_2", batch10(7, l2))
    local images, labels = dataio.read_cifar_python({ dir .. "/data_batch_1", dir .. "/data_batch_2" }, "labels")
    assert.same({ 1207, 3, 32, 32 }, images:shape())
    assert.same({ 1207 }, labels:shape())
    assert.equal(l1[1] + 1, labels[1])
    assert.equal(l1[1200] + 1, labels[1200])
    assert.equal(l2[1] + 1, labels[1201])
    -- image k of a batch holds pix(k, i) at byte i: R, G, B planes of 32 x 32
    assert.equal(pix(4, 0), images[5][1][1][1])
    assert.equal(pix(4, 1024 + 33), images[5][2][2][2])
    assert.equal(pix(6, 3071), images[1207][3][32][32])
  end)

  it("reads CIFAR-100 fine and coarse labels", function()
    local fine, coarse = { 0, 99, 42 }, { 0, 19, 7 }
    write(dir .. "/train", cifar_pickle.batch { n = 3, pixel = pix,
      labels = { fine_labels = fine, coarse_labels = coarse }, label_order = { "fine_labels", "coarse_labels" } })
    local _, f = dataio.read_cifar_python({ dir .. "/train" }, "fine_labels")
    local _, c = dataio.read_cifar_python({ dir .. "/train" }, "coarse_labels")
    assert.same({ 1, 100, 43 }, f:totable())
    assert.same({ 1, 20, 8 }, c:totable())
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ dir .. "/train" }, "labels") end,
      dir .. "/train", "no 'labels' entry", "CIFAR-100")
  end)

  it("refuses malformed batches with errors naming the file, at every truncation", function()
    local bytes = batch10(3, { 1, 2, 3 })
    local path = dir .. "/b"
    for cut = 0, #bytes - 1, 97 do
      write(path, bytes:sub(1, cut))
      local ok, err = pcall(dataio.read_cifar_python, { path }, "labels")
      assert.is_false(ok, "truncated at " .. cut .. " was accepted")
      assert.truthy(tostring(err):find("dataio.read_cifar_python: " .. path .. ":", 1, true), err)
    end
    write(path, bytes:sub(1, -2))
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "labels") end,
      path, "truncated")
  end)

  it("refuses wrong structure: labels out of range or miscounted, other arrays, foreign globals", function()
    local path = dir .. "/b"
    write(path, batch10(2, { 1, 10 }))
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "labels") end,
      "label 2 is out of range", "0..9")
    write(path, batch10(2, { 1 }))
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "labels") end,
      "not a list of 2 labels")
    -- the array claims 3 images but holds 2
    local b = batch10(2, { 1, 2 }):gsub("K\003M\000\012", "K\003M\000\012", 1)
    b = b:gsub("K\002M\000\012", "K\003M\000\012", 1)
    write(path, b)
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "labels") end,
      "data size does not match its shape")
    -- a pickle that would call os.system is refused, not run
    write(path, "\128\002cos\nsystem\nq\000U\004trueq\001\133R.")
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "labels") end,
      "a global other than NumPy's array and dtype")
    write(path, "not a pickle")
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "labels") end,
      "not a pickle file")
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python({ path }, "fine") end,
      "label key must be")
    fails("dataio.read_cifar_python:", function() return dataio.read_cifar_python(path, "labels") end,
      "expected a list of file names")
  end)

  it("reads batches pickled by Python 3 with NumPy (protocols 3 and 4), when available", function()
    local ok = os.execute("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1")
    if not ok then
      pending("python3 with numpy is not installed")
      return
    end
    local path = dir .. "/py"
    assert(os.execute(([[/usr/bin/python3 - <<'EOF'
import pickle, numpy as np
d = np.arange(4 * 3072, dtype=np.uint8).reshape(4, 3072) * 7
for proto in (3, 4):
    with open("%s%%d" %% proto, "wb") as f:
        pickle.dump({b"batch_label": b"x", b"labels": [3, 1, 4, 1], b"data": d,
                     b"filenames": [b"a", b"b", b"c", b"d"]}, f, protocol=proto)
EOF]]):format(path)))
    for _, proto in ipairs { 3, 4 } do
      local images, labels = dataio.read_cifar_python({ path .. proto }, "labels")
      assert.same({ 4, 2, 5, 2 }, labels:totable())
      assert.same({ 4, 3, 32, 32 }, images:shape())
      assert.equal((3072 * 2 + 5) * 7 % 256, images[3][1][1][6])
    end
  end)
end)

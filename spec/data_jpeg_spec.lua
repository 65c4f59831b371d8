local distill = require "distill"
local core = require "distill.core"
local lfs = require "lfs"
local T = require "distill.data.transforms"
local image_folder = require "distill.data.image_folder"
local h = require "support.helpers"

local tmpdir, write = h.tmpdir, h.write

-- a smooth colour image 3 x h x w (smooth content survives JPEG well)
local function smooth(height, width, phase)
  phase = phase or 0
  return h.uint8_image(3, height, width, function(c, y, x)
    return math.floor(127.5 + 100 * math.sin((x + phase) / 9 + c) * math.cos(y / 13 - c))
  end)
end

local function mean_abs_diff(a, b)
  local ta, tb = a:view { -1 }:totable(), b:view { -1 }:totable()
  local s = 0
  for i = 1, #ta do s = s + math.abs(ta[i] - tb[i]) end
  return s / #ta
end

describe("data.jpeg", function()
  it("round-trips through libjpeg-turbo within JPEG error", function()
    local img = smooth(48, 64)
    local bytes = core.dataio.encode_jpeg(img, 95)
    assert.equal("\255\216\255", bytes:sub(1, 3))
    local back = core.dataio.decode_jpeg(bytes)
    assert.same({ 3, 48, 64 }, back:shape())
    assert.equal("uint8", back:dtype())
    assert.is_true(mean_abs_diff(img, back) < 3)
  end)

  it("decodes with DCT scaling when a smaller image is enough", function()
    local img = smooth(64, 96)
    local bytes = core.dataio.encode_jpeg(img, 95)
    local quarter = core.dataio.decode_jpeg(bytes, { min_h = 16, min_w = 20 })
    assert.same({ 3, 16, 24 }, quarter:shape())
    local half = core.dataio.decode_jpeg(bytes, { min_h = 17, min_w = 20 })
    assert.same({ 3, 24, 36 }, half:shape())   -- 3/8 is the next factor up
  end)

  it("decodes grayscale JPEGs to three equal channels", function()
    local gray = distill.tensor({ smooth(16, 16):totable()[1] }, "uint8")
    local back = core.dataio.decode_jpeg(core.dataio.encode_jpeg(gray, 90))
    assert.same({ 3, 16, 16 }, back:shape())
    assert.is_true(back[1] == back[2] and back[2] == back[3])
  end)

  it("rejects data that is not a JPEG or is cut short", function()
    local ok, err = pcall(core.dataio.decode_jpeg, "GIF89a not a jpeg")
    assert.is_false(ok)
    assert.matches("not a JPEG file", err)
    local bytes = core.dataio.encode_jpeg(smooth(16, 16), 90)
    ok, err = pcall(core.dataio.decode_jpeg, bytes:sub(1, 30))
    assert.is_false(ok)
    assert.matches("corrupt JPEG", err)
    ok, err = pcall(core.dataio.encode_jpeg, distill.zeros { 2, 4, 4 })
    assert.is_false(ok)
    assert.matches("uint8", err)
  end)

  describe("image_folder", function()
    local root
    before_each(function() root = tmpdir() end)
    after_each(function() os.execute("rm -rf '" .. root .. "'") end)

    local function make(classes)
      for cls, files in pairs(classes) do
        assert(lfs.mkdir(root .. "/" .. cls))
        for i, name in ipairs(files) do
          write(root .. "/" .. cls .. "/" .. name, core.dataio.encode_jpeg(smooth(20 + i, 30, i), 90))
        end
      end
    end

    it("walks root/<class>/<image> with classes sorted by bytes", function()
      make { b_cls = { "2.jpg", "1.JPEG" }, a_cls = { "x.jpeg" }, B_upper = { "z.jpg" } }
      write(root .. "/a_cls/notes.txt", "not an image")
      write(root .. "/stray.jpg", "files in root are not classes")
      local ds = image_folder { root = root }
      assert.same({ "B_upper", "a_cls", "b_cls" }, ds.classes)
      assert.equal(4, #ds)
      assert.same({ 1, 2, 3, 3 }, ds.labels:totable())
      assert.equal(root .. "/b_cls/1.JPEG", ds.paths[3])   -- "1.JPEG" < "2.jpg"
      local s = ds:get(3)
      assert.equal(3, s.target)
      assert.equal(3, s.index)
      assert.same({ 3, 22, 30 }, s.input:shape())   -- file 2 of b_cls in the table: 20 + 2 rows
      assert.equal(0, ds.skipped)
    end)

    it("follows directory links once and never out of the root: no loop, no duplicates", function()
      make { a = { "1.jpg" }, b = { "2.jpg" } }
      assert(lfs.mkdir(root .. "/a/sub"))
      write(root .. "/a/sub/3.jpg", core.dataio.encode_jpeg(smooth(20, 30, 1), 90))
      local outside = tmpdir()
      write(outside .. "/far.jpg", core.dataio.encode_jpeg(smooth(20, 30, 2), 90))
      -- a link to its own folder, to its parent, to the root, to a sibling class,
      -- twice to one folder, and one out of the dataset
      os.execute(("ln -s . '%s/a/self' && ln -s .. '%s/a/sub/up' && ln -s '%s' '%s/a/root' && "
        .. "ln -s ../b '%s/a/sibling' && ln -s sub '%s/a/sub_again' && ln -s '%s' '%s/a/away'")
        :format(root, root, root, root, root, root, outside, root))
      local ds = image_folder { root = root }
      local count = {}
      for _, p in ipairs(ds.paths) do
        local name = p:match("[^/]+$")
        count[name] = (count[name] or 0) + 1
      end
      -- every image once, under its own class (a link into another class's
      -- folder is not followed: that folder is listed already)
      assert.same({ ["1.jpg"] = 1, ["2.jpg"] = 1, ["3.jpg"] = 1 }, count)
      assert.same({ 1, 1, 2 }, ds.labels:totable())
      os.execute("rm -rf '" .. outside .. "'")
    end)

    it("errors on a corrupt file naming it, or skips it with a count", function()
      make { cats = { "a.jpg", "b.jpg" }, dogs = { "c.jpg" } }
      write(root .. "/cats/broken.jpg", "this is not a JPEG at all")
      local err = h.err(image_folder, { root = root })
      assert.matches(root .. "/cats/broken.jpg: not a JPEG file", err, 1, true)
      local ds = image_folder { root = root, on_error = "skip" }
      assert.equal(3, #ds)
      assert.equal(1, ds.skipped)
    end)

    it("reports an empty class folder and a missing root", function()
      make { cats = { "a.jpg" } }
      assert(lfs.mkdir(root .. "/empty"))
      local ok, err = pcall(image_folder, { root = root })
      assert.is_false(ok)
      assert.matches("class folder " .. root .. "/empty is empty", err, 1, true)
      ok, err = pcall(image_folder, { root = root .. "/missing" })
      assert.is_false(ok)
      assert.matches("root directory " .. root .. "/missing not found", err, 1, true)
      os.execute("rm -rf '" .. root .. "'/*")
      ok, err = pcall(image_folder, { root = root })
      assert.is_false(ok)
      assert.matches("no class folders", err)
    end)

    it("loads batches through the loader, identically for any number of workers", function()
      make { a = { "1.jpg", "2.jpg", "3.jpg" }, b = { "4.jpg", "5.jpg" } }
      local ds = image_folder { root = root }
      local tf = T.compose { T.random_resized_crop { size = 16 }, T.horizontal_flip {},
        T.normalize { mean = { 0.5, 0.5, 0.5 }, std = { 0.25, 0.25, 0.25 } } }
      local function run(workers)
        local loader = distill.data.loader(ds, { batch_size = 2, shuffle = true, seed = 3,
          workers = workers, transform = tf })
        local out = {}
        for batch in loader:epoch(1) do out[#out + 1] = batch end
        return out
      end
      local a, b = run(0), run(2)
      assert.equal(3, #a)
      assert.same({ 2, 3, 16, 16 }, a[1].input:shape())
      assert.equal("float32", a[1].input:dtype())
      for k = 1, 3 do
        assert.is_true(a[k].input == b[k].input)
        assert.same(a[k].index:totable(), b[k].index:totable())
        for j = 1, #a[k].index do assert.equal(ds.labels[a[k].index[j]], a[k].target[j]) end
      end
      -- a fixed size is required for folders of varying images
      local err = h.err(distill.data.loader, ds, { transform = T.resize { size = 8 } })
      assert.matches("fixed size", err)
    end)

    it("handles files that fail while loading: error names the file, skip counts it", function()
      make { a = { "1.jpg", "2.jpg" }, b = { "3.jpg" } }
      local bad = root .. "/b/4.jpg"
      write(bad, "\255\216\255 truncated")
      local ds = image_folder { root = root, verify = false }
      local tf = T.center_crop { size = 8 }
      local loader = distill.data.loader(ds, { batch_size = 4, workers = 1, transform = tf })
      local err = h.err(function() for _ in loader:epoch(1) do end end)
      assert.matches(bad .. ": corrupt JPEG", err, 1, true)
      local skip = image_folder { root = root, verify = false, on_error = "skip" }
      local l2 = distill.data.loader(skip, { batch_size = 4, workers = 2, transform = tf })
      local n = 0
      for batch in l2:epoch(1) do n = n + #batch.index end
      assert.equal(4, n)
      assert.equal(1, l2:skipped())
    end)
  end)
end)

-- Checkpoints: safetensors round trips, Python-written files, corrupt files
-- and atomic saves.
local distill = require "distill"
local checkpoint = require "distill.checkpoint"
local cjson = require("cjson").new()
local h = require "support.helpers"

local dir = h.tmpdir()
local function tmp(name) return dir .. "/" .. name end

local read_file, write_file = h.read, h.write

local function listdir(d)
  local p = io.popen("ls -A '" .. (d or dir) .. "'")
  local names = {}
  for line in p:lines() do names[#names + 1] = line end
  p:close()
  table.sort(names)
  return names
end

-- A safetensors file as Python's safetensors writes it: entries = list of
-- {name, dtype, shape, bytes}; the header is padded with spaces to 8 bytes.
local function st_file(entries, meta)
  local parts, data, off = {}, {}, 0
  if meta then
    local m = {}
    for k, v in pairs(meta) do m[#m + 1] = string.format("%q:%q", k, v) end
    parts[#parts + 1] = '"__metadata__":{' .. table.concat(m, ",") .. "}"
  end
  for _, e in ipairs(entries) do
    parts[#parts + 1] = string.format('"%s":{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}',
      e[1], e[2], table.concat(e[3], ","), off, off + #e[4])
    data[#data + 1] = e[4]
    off = off + #e[4]
  end
  local header = "{" .. table.concat(parts, ",") .. "}"
  header = header .. string.rep(" ", (8 - #header % 8) % 8)
  return string.pack("<I8", #header) .. header .. table.concat(data)
end

local function raw_file(header, data)
  return string.pack("<I8", #header) .. header .. (data or "")
end

-- name -> raw data bytes of a safetensors file (parsed independently of the engine).
local function raw_tensors(path)
  local d = read_file(path)
  local n = string.unpack("<I8", d)
  local h = cjson.decode(d:sub(9, 8 + n))
  local out = {}
  for name, e in pairs(h) do
    if name ~= "__metadata__" then
      out[name] = d:sub(9 + n + e.data_offsets[1], 8 + n + e.data_offsets[2])
    end
  end
  return out, h
end

local function u32s(...) local t = {} for i, v in ipairs{...} do t[i] = string.pack("<I4", v) end return table.concat(t) end
local function f16s(...) local t = {} for i, v in ipairs{...} do t[i] = string.pack("<I2", v) end return table.concat(t) end

describe("checkpoint", function()
  teardown(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("round trips float32 bit patterns exactly (-0, NaN payloads, inf, subnormals)", function()
    local bits = u32s(0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7fc00001,
      0xffa12345, 0x7f800001, 0x00000001, 0x807fffff, 0x3f800000, 0x7f7fffff)
    write_file(tmp("bits.safetensors"), st_file({{"x", "F32", {3, 4}, bits}}))
    local t = checkpoint.load_tensors(tmp("bits.safetensors"))
    assert.are.same({3, 4}, t.x:shape())
    local v = t.x:totable()
    assert.are.equal(-math.huge, 1 / v[1][2])
    assert.are.equal(math.huge, v[1][3])
    assert.is_true(v[2][1] ~= v[2][1])
    checkpoint.save_tensors(tmp("bits2.safetensors"), t)
    assert.are.equal(bits, raw_tensors(tmp("bits2.safetensors")).x)
    -- and through the nested format
    checkpoint.save(tmp("bits3.safetensors"), {model = {w = t.x}})
    local back = checkpoint.load(tmp("bits3.safetensors"))
    checkpoint.save_tensors(tmp("bits4.safetensors"), {x = back.model.w})
    assert.are.equal(bits, raw_tensors(tmp("bits4.safetensors")).x)
  end)

  it("round trips int64 extremes, uint8, 0-d, empty and non-contiguous tensors", function()
    local i64 = distill.tensor({math.mininteger, -1, 0, 1, math.maxinteger}, "int64")
    local u8 = distill.tensor({0, 1, 127, 128, 255}, "uint8")
    local scalar = distill.tensor(2.5, "float32")
    local empty = distill.zeros({0, 3})
    local empty_i = distill.zeros({2, 0}, "int64")
    local nc = distill.tensor({{1, 2, 3}, {4, 5, 6}}, "float32"):t()
    local path = tmp("dtypes.safetensors")
    checkpoint.save_tensors(path, {i64 = i64, u8 = u8, scalar = scalar, empty = empty,
                                   empty_i = empty_i, nc = nc}, {note = "hello \"world\"\n"})
    local t, meta = checkpoint.load_tensors(path)
    assert.are.same({math.mininteger, -1, 0, 1, math.maxinteger}, t.i64:totable())
    assert.are.equal("int64", t.i64:dtype())
    assert.are.same({0, 1, 127, 128, 255}, t.u8:totable())
    assert.are.equal("uint8", t.u8:dtype())
    assert.are.equal(0, t.scalar:dim())
    assert.are.equal(2.5, t.scalar:item())
    assert.are.same({0, 3}, t.empty:shape())
    assert.are.same({2, 0}, t.empty_i:shape())
    assert.are.equal("int64", t.empty_i:dtype())
    assert.are.same({{1, 4}, {2, 5}, {3, 6}}, t.nc:totable())
    assert.is_true(t.nc:is_contiguous())
    assert.are.equal("hello \"world\"\n", meta.note)
    -- header is padded to 8 bytes; data aligned (8-byte dtypes first)
    local d = read_file(path)
    assert.are.equal(0, string.unpack("<I8", d) % 8)
    local _, h = raw_tensors(path)
    assert.are.same({0, 40}, h.i64.data_offsets)
  end)

  it("round trips nested tables with exact metadata", function()
    local w = distill.randn{3, 2}
    local obj = {
      model = {["layer1.0.conv1.weight"] = w, ["bn.num_batches_tracked"] = distill.tensor(7, "int64")},
      optimizer = {state = {[1] = {momentum_buffer = distill.ones{3, 2}}, [3] = {step = 12}},
                   param_groups = {{lr = 0.05, momentum = 0.9, nesterov = false, params = {1, 2, 3}}}},
      meta = {epoch = 3, big = math.maxinteger, small = math.mininteger, float_one = 1.0,
              third = 1 / 3, neg0 = -0.0, inf = math.huge, ninf = -math.huge, nan = 0 / 0,
              config = {name = "resnet8x4", milestones = {150, 180, 210}, [1.5] = "x", empty = {},
                        ["a/b#c%d"] = {[-2] = true, [0] = false}, [""] = "empty key",
                        ["unicode é ✓"] = "line\nbreak\0nul"}},
    }
    local path = tmp("nested.safetensors")
    checkpoint.save(path, obj)
    local r = checkpoint.load(path)
    assert.are.same(w:totable(), r.model["layer1.0.conv1.weight"]:totable())
    assert.are.equal(7, r.model["bn.num_batches_tracked"]:item())
    assert.are.same({{1, 1}, {1, 1}, {1, 1}}, r.optimizer.state[1].momentum_buffer:totable())
    assert.are.equal(12, r.optimizer.state[3].step)
    assert.is_nil(r.optimizer.state[2])
    assert.are.same({1, 2, 3}, r.optimizer.param_groups[1].params)
    assert.are.equal(0.05, r.optimizer.param_groups[1].lr)
    assert.is_false(r.optimizer.param_groups[1].nesterov)
    local m = r.meta
    assert.are.equal("integer", math.type(m.epoch))
    assert.are.equal(math.maxinteger, m.big)
    assert.are.equal(math.mininteger, m.small)
    assert.are.equal("float", math.type(m.float_one))
    assert.are.equal(1 / 3, m.third)
    assert.are.equal(-math.huge, 1 / m.neg0)
    assert.are.equal(math.huge, m.inf)
    assert.are.equal(-math.huge, m.ninf)
    assert.is_true(m.nan ~= m.nan)
    assert.are.same(obj.meta.config, m.config)
    -- the tensor names are readable dotted paths under their top-level key
    local names = raw_tensors(path)
    assert.is_truthy(names["model/layer1.0.conv1.weight"])
    assert.is_truthy(names["optimizer/state/#1/momentum_buffer"])
  end)

  it("escapes awkward keys in tensor names", function()
    local path = tmp("keys.safetensors")
    local obj = {["a/b"] = {["#1"] = distill.ones{1}, [1] = distill.zeros{1}}, ["%"] = {[""] = distill.ones{2}}}
    checkpoint.save(path, obj)
    local names = raw_tensors(path)
    assert.is_truthy(names["a%2Fb/%231"])
    assert.is_truthy(names["a%2Fb/#1"])
    assert.is_truthy(names["%25/%"])
    local r = checkpoint.load(path)
    assert.are.same({1}, r["a/b"]["#1"]:totable())
    assert.are.same({0}, r["a/b"][1]:totable())
    assert.are.same({1, 1}, r["%"][""]:totable())
  end)

  it("round trips the RNG state and an optimizer", function()
    distill.manual_seed(1234)
    distill.rand{7}
    local state = distill.get_rng_state()
    local expected = distill.rand{5}:totable()
    local optim = require "distill.optim"
    local p = distill.tensor({1, 2}, "float32")
    local opt = optim.Adam({p}, {lr = 0.1, amsgrad = true})
    p.grad = distill.tensor({0.5, -0.5}, "float32")
    opt:step()
    checkpoint.save(tmp("rng.safetensors"), {optimizer = opt:state_dict(), meta = {rng = state}})
    distill.manual_seed(99)
    local r = checkpoint.load(tmp("rng.safetensors"))
    distill.set_rng_state(r.meta.rng)
    assert.are.same(expected, distill.rand{5}:totable())
    local p2 = p:clone()
    local opt2 = optim.Adam({p2}, {lr = 0.1})
    opt2:load_state_dict(r.optimizer)
    p.grad = distill.tensor({0.25, 1}, "float32")
    p2.grad = distill.tensor({0.25, 1}, "float32")
    opt:step()
    opt2:step()
    assert.are.same(p:totable(), p2:totable())
  end)

  it("loads files written by Python's safetensors, converting F64/F16/BF16/I32", function()
    local path = tmp("python.safetensors")
    write_file(path, st_file({
      {"fc.weight", "F32", {2, 2}, string.pack("<ffff", 1, -2, 0.5, 3)},
      {"f64", "F64", {2}, string.pack("<dd", 0.1, -1e300)},
      {"f16", "F16", {6}, f16s(0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x7C00)},
      {"bf16", "BF16", {2}, f16s(0x3F80, 0xC040)},
      {"i32", "I32", {3}, string.pack("<i4i4i4", -5, 2147483647, -2147483648)},
      {"bn.num_batches_tracked", "I64", {}, string.pack("<i8", 42)},
      {"mask", "BOOL", {2}, "\1\0"},
    }, {format = "pt"}))
    local t = checkpoint.load(path)   -- no distill marker: a flat table
    assert.are.same({{1, -2}, {0.5, 3}}, t["fc.weight"]:totable())
    assert.are.equal("float32", t.f64:dtype())
    local f = t.f64:totable()
    assert.are.equal(string.unpack("<f", string.pack("<f", 0.1)), f[1])
    assert.are.equal(-math.huge, f[2])   -- out of float32 range
    assert.are.same({1, -2, 0.5, 65504, 2 ^ -24, math.huge}, t.f16:totable())
    assert.are.same({1, -3}, t.bf16:totable())
    assert.are.equal("int64", t.i32:dtype())
    assert.are.same({-5, 2147483647, -2147483648}, t.i32:totable())
    assert.are.equal(42, t["bn.num_batches_tracked"]:item())
    assert.are.equal(0, t["bn.num_batches_tracked"]:dim())
    assert.are.same({1, 0}, t.mask:totable())
    local _, meta = checkpoint.load_tensors(path)
    assert.are.equal("pt", meta.format)
  end)

  describe("rejects corrupt files with a clear error", function()
    local good = st_file({{"a", "F32", {2}, string.pack("<ff", 1, 2)}, {"b", "U8", {3}, "abc"}})
    local cases = {
      {"truncated data", good:sub(1, #good - 2), "truncated: tensor 'b' ends at byte 11 of the data but the file has 9 data bytes"},
      {"header length larger than the file", string.pack("<I8", 1000) .. "{}", "truncated: header says 1000 bytes but the file has 10"},
      {"empty file", "", "truncated: the file has 0 bytes, fewer than the 8 of the header length %(empty file%)"},
      {"short file", "abc", "truncated: the file has 3 bytes"},
      {"absurd header length", string.pack("<I8", 0) .. "", "header length 0 is not plausible"},
      {"bad JSON", raw_file('{"a":{"dtype":"F32",}}'), "malformed JSON header: expected a string key at byte 20 of the header"},
      {"trailing garbage", raw_file('{} x'), "malformed JSON header: unexpected data after the JSON value"},
      {"unterminated string", raw_file('{"a'), "malformed JSON header: unterminated string"},
      {"not an object", raw_file('[1, 2]'), "the header must be a JSON object"},
      {"unknown dtype", raw_file('{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', ("\0"):rep(8)),
        "tensor 'a': unsupported dtype \"C64\""},
      {"missing field", raw_file('{"a":{"dtype":"F32","shape":[1]}}', ("\0"):rep(4)), "tensor 'a': missing 'data_offsets'"},
      {"negative shape", raw_file('{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', ("\0"):rep(4)),
        "shape entries must be non%-negative integers"},
      {"float offsets", raw_file('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}}', ("\0"):rep(4)),
        "data_offsets must be two non%-negative integers"},
      {"offsets out of range", raw_file('{"a":{"dtype":"U8","shape":[4],"data_offsets":[100,104]}}', ("\0"):rep(4)),
        "truncated: tensor 'a' ends at byte 104 of the data but the file has 4 data bytes"},
      {"overlapping ranges", raw_file('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
        .. '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', ("\0"):rep(12)),
        "tensors 'a' %[0, 8%] and 'b' %[4, 12%] overlap in the data region"},
      {"shape/bytes mismatch", raw_file('{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}', ("\0"):rep(12)),
        "tensor 'a': shape %[2, 2%] of F32 needs 16 bytes but data_offsets %[0, 12%] hold 12"},
      {"reversed offsets", raw_file('{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}', ("\0"):rep(4)),
        "end before they begin"},
      {"duplicate names", raw_file('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
        "the header names 'a' twice"},
      {"bad metadata", raw_file('{"__metadata__":{"k":1}}'), "__metadata__ entry 'k' must be a string"},
      {"bad escape", raw_file('{"a\\x":1}'), "malformed JSON header: bad escape in a string"},
      {"huge integer", raw_file('{"a":{"dtype":"U8","shape":[99999999999999999999],"data_offsets":[0,0]}}'),
        "integer out of the 64%-bit range"},
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local path = tmp("corrupt.safetensors")
        write_file(path, c[2])
        local ok, err = pcall(checkpoint.load, path)
        assert.is_false(ok)
        assert.matches("checkpoint.load: " .. path:gsub("%p", "%%%0") .. ": .*" .. c[3], err)
      end)
    end

    it("a missing file", function()
      local ok, err = pcall(checkpoint.load, tmp("nope.safetensors"))
      assert.is_false(ok)
      assert.matches("checkpoint.load: .*nope.safetensors: cannot open: No such file or directory", err)
    end)

    it("a distill checkpoint whose metadata tree is damaged", function()
      local path = tmp("tree.safetensors")
      write_file(path, st_file({}, {format = "distill-checkpoint-1", distill = '{"s:x":"t:missing"}'}))
      local ok, err = pcall(checkpoint.load, path)
      assert.is_false(ok)
      assert.matches("refers to tensor 'missing', which the file does not hold", err)
      write_file(path, st_file({}, {format = "distill-checkpoint-1", distill = '{"s:x":'}))
      ok, err = pcall(checkpoint.load, path)
      assert.matches("corrupt metadata tree", err)
      write_file(path, st_file({}, {format = "distill-checkpoint-9", distill = '{}'}))
      ok, err = pcall(checkpoint.load, path)
      assert.matches("unsupported checkpoint format 'distill%-checkpoint%-9'", err)
    end)
  end)

  describe("saving", function()
    -- a directory of its own, to check that failed saves leave nothing behind
    local sdir = tmp("save")
    assert(os.execute("mkdir -p '" .. sdir .. "'"))
    local function tmp(name) return sdir .. "/" .. name end
    local outer_listdir = listdir
    local function listdir() return outer_listdir(sdir) end
    it("rejects values it cannot store, naming them", function()
      local ok, err = pcall(checkpoint.save, tmp("x.safetensors"), {meta = {f = print}})
      assert.is_false(ok)
      assert.matches("checkpoint.save: 'meta.f' is a function", err)
      local cyc = {}
      cyc.self = cyc
      ok, err = pcall(checkpoint.save, tmp("x.safetensors"), {c = cyc})
      assert.matches("contains itself", err)
      ok, err = pcall(checkpoint.save, tmp("x.safetensors"), distill.ones{1})
      assert.matches("expected a table", err)
      ok, err = pcall(checkpoint.save_tensors, tmp("x.safetensors"), {a = 1})
      assert.matches("checkpoint.save_tensors: tensor 'a' must be a tensor, got number", err)
      ok, err = pcall(checkpoint.save_tensors, tmp("x.safetensors"), {[1] = distill.ones{1}})
      assert.matches("keys must be strings", err)
      ok, err = pcall(checkpoint.save_tensors, tmp("x.safetensors"), {__metadata__ = distill.ones{1}})
      assert.matches("'__metadata__' cannot name a tensor", err)
      ok, err = pcall(checkpoint.save_tensors, tmp("x.safetensors"), {a = distill.ones{1}}, {k = 1})
      assert.matches("metadata 'k' must be a string", err)
      assert.are.same({}, listdir())
    end)

    it("into a missing directory fails cleanly, leaving nothing", function()
      local ok, err = pcall(checkpoint.save, tmp("no/such/dir/ck.safetensors"), {a = distill.ones{1}})
      assert.is_false(ok)
      assert.matches("checkpoint.save: .*no/such/dir/ck.safetensors: cannot create a temporary file "
        .. "next to it: No such file or directory", err)
      assert.are.same({}, listdir())
    end)

    it("over an existing file is atomic: a failed save keeps the old content", function()
      local path = tmp("keep.safetensors")
      checkpoint.save(path, {v = distill.tensor({1, 2, 3}, "float32")})
      local before = read_file(path)
      -- a failure before writing
      assert.has_error(function() checkpoint.save(path, {v = distill.ones{2}, bad = print}) end)
      assert.are.equal(before, read_file(path))
      -- a failing rename (the target is a directory)
      local d = tmp("adir")
      assert(os.execute("mkdir '" .. d .. "' && touch '" .. d .. "/inside'"))
      local ok, err = pcall(checkpoint.save, d, {v = distill.ones{2}})
      assert.is_false(ok)
      assert.matches("cannot rename the temporary file over it", err)
      assert.are.same({"adir", "keep.safetensors"}, listdir())
      os.execute("rm -rf '" .. d .. "'")
      -- a write error mid-file (file size limit; SIGXFSZ ignored so write() fails with EFBIG)
      local script = tmp("big.lua")
      write_file(script, string.format([[
        package.path = %q
        package.cpath = %q
        local distill = require "distill"
        local ok, err = pcall(require("distill.checkpoint").save, %q, {v = distill.zeros{300000}})
        io.stderr:write(tostring(err), "\n")
        os.exit(ok and 0 or 3)
      ]], package.path, package.cpath, path))
      local okx, how, code = os.execute("sh -c \"trap '' XFSZ; ulimit -f 64; exec lua5.4 '" .. script
        .. "'\" 2>" .. tmp("err.txt"))
      assert.are.equal(3, code)
      assert.matches("checkpoint.save: .*keep.safetensors: write failed: File too large", read_file(tmp("err.txt")))
      os.remove(script)
      os.remove(tmp("err.txt"))
      assert.are.same({"keep.safetensors"}, listdir())
      assert.are.equal(before, read_file(path))
      assert.are.same({1, 2, 3}, checkpoint.load(path).v:totable())
      -- and a successful save replaces it
      checkpoint.save(path, {v = distill.tensor({4}, "float32")})
      assert.are.same({4}, checkpoint.load(path).v:totable())
      assert.are.same({"keep.safetensors"}, listdir())
      os.remove(path)
    end)
  end)
end)

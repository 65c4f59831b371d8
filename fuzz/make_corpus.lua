-- Writes the seed corpus of the harnesses (fuzz/corpus/<harness>/), small
-- valid inputs of every layout each harness reads, with the mode bytes the
-- harnesses expect. Run from the repository root after a build:
--   lua5.4 fuzz/make_corpus.lua
package.path = "./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("DISTILL_BUILD") or "./build") .. "/?.so;" .. package.cpath
local distill = require "distill"
local core = require "distill.core"
local files = require "distill.files"
local cifar_pickle = require "support.cifar_pickle"

local write = files.write

local function read(path)
  return assert(files.read(path))
end

local function gzip(bytes)
  local tmp = os.tmpname()
  write(tmp, bytes)
  assert(os.execute("gzip -9 -n -c '" .. tmp .. "' > '" .. tmp .. ".gz'"))
  local gz = read(tmp .. ".gz")
  os.remove(tmp)
  os.remove(tmp .. ".gz")
  return gz
end

local root = "fuzz/corpus"
for _, d in ipairs { "safetensors", "idx", "cifar", "jpeg" } do
  os.execute("mkdir -p '" .. root .. "/" .. d .. "'")
end

-- safetensors: through the engine's own writer
local tmp = os.tmpname()
core.save_safetensors(tmp, { w = distill.arange(6):float():view { 2, 3 }, step = distill.tensor { 1, 2 },
  mask = distill.tensor({ 1, 0, 1 }, "uint8") }, { epoch = "3", note = "seed" })
write(root .. "/safetensors/three_tensors", read(tmp))
core.save_safetensors(tmp, { empty = distill.zeros { 0, 4 }, scalar = distill.tensor(2.5) })
write(root .. "/safetensors/empty_and_scalar", read(tmp))
os.remove(tmp)
local hdr = '{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},'
  .. '"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"__metadata__":{"k":"v"}}'
write(root .. "/safetensors/f16_bf16", string.pack("<I8", #hdr) .. hdr .. "\0\60\0\188\128\63")

-- IDX: mode byte, then the file(s); bit 0 gzips, bit 1 reads a pair split at the next 2 bytes
local function be32(v) return string.pack(">I4", v) end
local images = be32(0x803) .. be32(2) .. be32(3) .. be32(3) .. string.rep("\1\2\3", 6)
local labels = be32(0x801) .. be32(2) .. "\3\9"
write(root .. "/idx/images", "\0" .. images)
write(root .. "/idx/labels", "\0" .. labels)
write(root .. "/idx/images_gz", "\1" .. images)
write(root .. "/idx/raw_gzip_stream", "\0" .. gzip(images))
write(root .. "/idx/pair", "\2" .. string.pack(">I2", #images) .. images .. labels)
write(root .. "/idx/pair_gz", "\3" .. string.pack(">I2", #images) .. images .. labels)

-- CIFAR: mode byte; even = binary records (bit 1: 2 label bytes), odd = python batch
local function record(labels_bytes, seed)
  local px = {}
  for i = 0, 3071 do px[i + 1] = string.char((i * 7 + seed) % 256) end
  return labels_bytes .. table.concat(px)
end
write(root .. "/cifar/binary10", "\0" .. record("\3", 1) .. record("\9", 2))
write(root .. "/cifar/binary100", "\2" .. record("\4\77", 3) .. record("\19\99", 4))
local function batch(keys, values)
  local labels_t = {}
  for i, k in ipairs(keys) do labels_t[k] = values[i] end
  return cifar_pickle.batch { n = 2, pixel = function(k, i) return (k * 5 + i) % 256 end,
    labels = labels_t, label_order = keys }
end
write(root .. "/cifar/python10", "\1" .. batch({ "labels" }, { { 6, 9 } }))
write(root .. "/cifar/python100_fine", "\3" .. batch({ "fine_labels", "coarse_labels" }, { { 19, 29 }, { 11, 15 } }))
write(root .. "/cifar/python100_coarse", "\5" .. batch({ "fine_labels", "coarse_labels" }, { { 0, 99 }, { 0, 19 } }))

-- JPEG: two bytes (minimum decode side, crop size), then the file
local function image(c, h, w)
  local t = distill.zeros({ c, h, w }, "uint8")
  for k = 1, c do for y = 1, h do for x = 1, w do t[k][y][x] = (k * 50 + y * 9 + x * 5) % 256 end end end
  return t
end
write(root .. "/jpeg/rgb_16x12", "\8\6" .. core.dataio.encode_jpeg(image(3, 12, 16), 90))
write(root .. "/jpeg/gray_8x8", "\0\4" .. core.dataio.encode_jpeg(image(1, 8, 8), 75))
write(root .. "/jpeg/rgb_40x33_q30", "\20\17" .. core.dataio.encode_jpeg(image(3, 33, 40), 30))
print("seed corpus written to " .. root)

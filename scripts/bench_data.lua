-- bench_data.lua: throughput of the data pipeline.
--   lua5.4 scripts/bench_data.lua [jpeg_images]
-- 1. CIFAR-style augmentation (random crop 32 pad 4 + flip + normalise) at
--    batch 64 over a synthetic 50000 x 3 x 32 x 32 uint8 tensor.
-- 2. JPEG folder: decode + RandomResizedCrop(224) + flip + normalise on
--    ~500 x 375 JPEGs written to a temporary directory.
-- Targets: >= 50,000 images/s (CIFAR, one worker); >= 400 images/s per
-- worker (JPEG).
local distill = require "distill"
local lfs = require "lfs"
local data = require "distill.data"
local T = data.transforms
local clock = distill.core.dataio.wallclock

local njpeg = tonumber(arg and arg[1]) or 320

-- images/s of wall time, and images per CPU-second of the whole process
-- (os.clock sums all threads; a fair figure when the machine is shared)
local function run(loader, epochs)
  local n = 0
  local t0, c0 = clock(), os.clock()
  for e = 1, epochs do
    for batch in loader:epoch(e) do n = n + #batch.index end
  end
  return n / (clock() - t0), n, n / (os.clock() - c0)
end

local rows = {}
local function report(name, workers, rate, n, cpu_rate)
  rows[#rows + 1] = ("%-44s %7d %9d %12.0f %14.0f %12.0f"):format(name, workers, n, rate,
    rate / math.max(workers, 1), cpu_rate)
  io.stderr:write(rows[#rows], "\n")
end

-- 1. CIFAR ------------------------------------------------------------------
local images = distill.randint(0, 256, { 50000, 3, 32, 32 }, "uint8")
local cifar = require("distill.data.dataset").in_memory("synthetic-cifar", images,
  distill.zeros({ 50000 }, "int64"))
local cifar_tf = T.compose { T.random_crop { size = 32, padding = 4 }, T.horizontal_flip {},
  T.normalize { mean = { 0.4914, 0.4822, 0.4465 }, std = { 0.2470, 0.2435, 0.2616 } } }
for _, workers in ipairs { 1, 2 } do
  local loader = data.loader(cifar, { batch_size = 64, shuffle = true, seed = 1, workers = workers,
    transform = cifar_tf, drop_last = true })
  run(loader, 1)   -- warm-up
  local rate, n, cpu = run(loader, 2)
  report("CIFAR crop+flip+normalise, batch 64", workers, rate, n, cpu)
end

-- 2. JPEG folder --------------------------------------------------------------
local dir = os.tmpname()
os.remove(dir)
assert(lfs.mkdir(dir))
local variants = {}
for v = 1, 8 do
  -- a smooth scene with some texture (noise), 375 x 500
  local planes = {}
  local seed = v * 7919
  for c = 0, 2 do
    local plane = {}
    for y = 0, 374 do
      local row = {}
      for x = 0, 499 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        local noise = (seed >> 16) % 24 - 12
        local val = 128 + 80 * math.sin(x / (17 + v) + c) * math.cos(y / (23 + 2 * v) - c) + noise
        row[x + 1] = math.max(0, math.min(255, math.floor(val)))
      end
      plane[y + 1] = row
    end
    planes[c + 1] = plane
  end
  variants[v] = distill.core.dataio.encode_jpeg(distill.tensor(planes, "uint8"), 90)
end
for _, cls in ipairs { "class_a", "class_b" } do assert(lfs.mkdir(dir .. "/" .. cls)) end
for i = 1, njpeg do
  local f = assert(io.open(("%s/%s/%05d.jpg"):format(dir, i % 2 == 0 and "class_a" or "class_b", i), "wb"))
  f:write(variants[i % #variants + 1])
  f:close()
end
local folder = data.image_folder { root = dir }
local jpeg_tf = T.compose { T.random_resized_crop { size = 224 }, T.horizontal_flip {},
  T.normalize { mean = { 0.485, 0.456, 0.406 }, std = { 0.229, 0.224, 0.225 } } }
for _, workers in ipairs { 1, 2 } do
  local loader = data.loader(folder, { batch_size = 32, shuffle = true, seed = 1, workers = workers,
    transform = jpeg_tf })
  run(loader, 1)
  local rate, n, cpu = run(loader, 2)
  report(("JPEG %dx%d decode+RRC(224)+flip+normalise"):format(500, 375), workers, rate, n, cpu)
end
os.execute("rm -rf '" .. dir .. "'")

print(("%-44s %7s %9s %12s %14s %12s"):format("pipeline", "workers", "images", "images/s",
  "per worker", "per CPU-s"))
for _, r in ipairs(rows) do print(r) end
local load = io.open("/proc/loadavg")
print(("(JPEG files: %d of about %d KB each; %d cores, load average %s)"):format(njpeg,
  #variants[1] // 1024, tonumber(io.popen("nproc"):read("l")) or 0,
  load and load:read("l"):match("^(%S+)") or "?"))

-- distill.data.loader: batches from a dataset.
--   local loader = require("distill.data.loader")(ds, {batch_size = 64, shuffle = true,
--     drop_last = false, workers = 2, seed = 1, transform = tf})
--   for batch in loader:epoch(e) do  -- batch.input, batch.target, batch.index
--   #loader                          -- batches per epoch
-- Datasets with a C source (CIFAR, IDX, image folders) are loaded by C
-- worker threads that prefetch whole batches; the epoch iterator's closing
-- value stops them when the loop ends or breaks. Results depend only on
-- (seed, epoch), never on `workers`. Any other dataset (#ds and
-- ds:get(i) -> {input = uint8 C x H x W, target = integer}) is loaded
-- synchronously with the same order and per-sample randomness.
-- batch.input is float32 N x C x H x W when the transform has to_float or
-- normalize, else uint8; target and index are int64 and 1-based.
--
-- Data parallel (distill.dist): {shard = r, shards = n} gives this process
-- share r (1-based) of every batch, split n ways as evenly as possible
-- (the first size % n shares one sample longer); batch_size stays the
-- global batch, and the shares of all processes are exactly the unsharded
-- batches with the same augmentation. A last batch with fewer than n
-- samples is dropped so that every process takes the same steps, unless
-- keep_short = true (evaluation: a process whose share of it is empty then
-- has one batch less).
local core = require "distill.core"
local T = require "distill.data.transforms"

local Loader = {}
Loader.__index = Loader

local valid = { batch_size = true, shuffle = true, drop_last = true, workers = true,
  seed = true, transform = true, prefetch = true, shard = true, shards = true, keep_short = true }

-- Positions [first, last] of share r (1-based) of n samples split k ways.
local function share_of(first, last, r, k)
  local size = last - first + 1
  local base, extra = size // k, size % k
  local start = first + (r - 1) * base + math.min(r - 1, extra)
  return start, start + base + (r <= extra and 1 or 0) - 1
end

local function new(ds, opts)
  opts = opts or {}
  if type(ds) ~= "table" and type(ds) ~= "userdata" then
    error("loader: expected a dataset, got " .. type(ds), 2)
  end
  if core.is_tensor(ds) then
    error("loader: argument #1: expected a dataset (a table with :get(i) and #), got a tensor", 2)
  end
  if type(opts) ~= "table" then error("loader: options must be a table", 2) end
  for k in pairs(opts) do
    if not valid[k] then error(("loader: unknown option '%s'"):format(tostring(k)), 2) end
  end
  local self = setmetatable({
    dataset = ds,
    batch_size = opts.batch_size or 1,
    shuffle = opts.shuffle or false,
    drop_last = opts.drop_last or false,
    workers = opts.workers or 0,
    seed = opts.seed or core.initial_seed(),
    ops = T.ops(opts.transform),
    shard = opts.shard or 1,
    shards = opts.shards or 1,
    keep_short = opts.keep_short or false,
  }, Loader)
  if math.type(self.batch_size) ~= "integer" or self.batch_size < 1 then
    error("loader: batch_size must be a positive integer", 2)
  end
  if math.type(self.shards) ~= "integer" or math.type(self.shard) ~= "integer"
      or self.shards < 1 or self.shard < 1 or self.shard > self.shards then
    error(("loader: shard %s of %s: expected integers 1 <= shard <= shards")
      :format(tostring(opts.shard), tostring(opts.shards)), 2)
  end
  if self.shards > 1 and self.batch_size < self.shards then
    error(("loader: a batch of %d cannot be shared by %d processes (the batch size is the "
      .. "global one: make it at least the number of ranks)"):format(self.batch_size, self.shards), 2)
  end
  local src = rawget(ds, "source")
  if src then
    local ok, c = pcall(core.dataio.loader_new, {
      images = src.images, paths = src.paths, labels = src.labels, on_error = src.on_error,
      transform = self.ops, batch_size = self.batch_size, shuffle = self.shuffle,
      drop_last = self.drop_last, workers = self.workers, seed = self.seed,
      prefetch = opts.prefetch, shard = self.shard, shards = self.shards,
      keep_short = self.keep_short,
    })
    if not ok then error(tostring(c):gsub("^dataio%.loader: ", "loader: "), 2) end
    self.c = c
    self.nbatches = #c
  else
    local n = #ds
    self.nbatches = self.drop_last and n // self.batch_size or (n + self.batch_size - 1) // self.batch_size
    local short = n - (self.nbatches - 1) * self.batch_size
    if self.shards > 1 and self.nbatches > 0 and short < self.shards
        and not (self.keep_short and self.shard <= short) then
      self.nbatches = self.nbatches - 1
    end
  end
  return self
end

function Loader:__len() return self.nbatches end

--- Files skipped while loading (image folders with on_error = "skip").
function Loader:skipped() return self.c and self.c:skipped() or 0 end

--- Stop and release the worker threads (also done by the collector).
function Loader:close()
  if self.c then self.c:close() end
end

local function lua_epoch(self, e)
  local ds, bs = self.dataset, self.batch_size
  local n = #ds
  local order = self.shuffle and core.dataio.epoch_order(n, self.seed, e) or nil
  local b = 0
  return function()
    if b >= self.nbatches then return nil end
    local first = b * bs + 1
    local last = math.min(first + bs - 1, n)
    if self.shards > 1 then
      first, last = share_of(first, last, self.shard, self.shards)
    end
    b = b + 1
    local inputs, targets, index = {}, {}, {}
    for p = first, last do
      local i = order and order[p] or p
      local s = ds:get(i)
      inputs[#inputs + 1] = s.input
      targets[#targets + 1] = s.target
      index[#index + 1] = i
    end
    return {
      input = core.dataio.transform_batch(self.ops, inputs, self.seed, e, first),
      target = core.tensor(targets, "int64"),
      index = core.tensor(index, "int64"),
    }
  end
end

--- Iterate over the batches of epoch e (default 1):
--   for batch in loader:epoch(e) do ... end
-- Leaving the loop early (break, an error) is safe: the workers stop
-- prefetching once their few slots are full, and are stopped by the next
-- epoch(), by close(), or when the abandoned iterator is collected. There
-- is deliberately no to-be-closed value: Lua 5.4.4 (Debian 12's) breaks
-- its VM when a generic for with one is left by break while a closure
-- holds a loop variable.
function Loader:epoch(e)
  e = e or 1
  if math.type(e) ~= "integer" then error("loader:epoch: epoch must be an integer", 2) end
  local c = self.c
  if not c then return lua_epoch(self, e) end
  c:start(e)
  self.epochs_started = (self.epochs_started or 0) + 1
  local this_epoch = self.epochs_started
  local guard = setmetatable({}, { __gc = function()
    if self.epochs_started == this_epoch and self.c then
      pcall(self.c.stop, self.c)   -- a closed loader has nothing left to stop
    end
  end })
  return function()
    local input, target, index = c:next()
    if input == nil then
      guard = nil
      return nil
    end
    return { input = input, target = target, index = index }
  end
end

return setmetatable({ new = new, Loader = Loader }, {
  __call = function(_, ds, opts) return new(ds, opts) end,
})

local distill = require "distill"
local dataset = require "distill.data.dataset"
local T = require "distill.data.transforms"
local Loader = require "distill.data.loader"

-- n samples of 1 x 4 x 4 whose pixels all equal the (1-based) sample number
local function numbered(n)
  local images = distill.zeros({ n, 1, 4, 4 }, "uint8")
  local labels = {}
  for i = 1, n do
    images[i] = i
    labels[i] = (i - 1) % 3 + 1
  end
  return dataset.in_memory("numbered", images, distill.tensor(labels, "int64"), { "a", "b", "c" })
end

-- the same samples from a dataset written purely in Lua
local function lua_numbered(n)
  local inner = numbered(n)
  return setmetatable({}, {
    __len = function() return n end,
    __index = { get = function(_, i) return inner:get(i) end },
  })
end

local function collect(loader, epoch)
  local out = {}
  for batch in loader:epoch(epoch) do out[#out + 1] = batch end
  return out
end

local function order_of(batches)
  local order = {}
  for _, b in ipairs(batches) do
    for _, i in ipairs(b.index:totable()) do order[#order + 1] = i end
  end
  return order
end

describe("data.loader", function()
  it("batches in order with correct input, target and index fields", function()
    local ds = numbered(10)
    local loader = Loader(ds, { batch_size = 3 })
    assert.equal(4, #loader)
    local batches = collect(loader, 1)
    assert.equal(4, #batches)
    assert.same({ 3, 1, 4, 4 }, batches[1].input:shape())
    assert.same({ 1, 1, 4, 4 }, batches[4].input:shape())
    assert.equal("uint8", batches[1].input:dtype())
    assert.equal("int64", batches[1].target:dtype())
    assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, order_of(batches))
    for _, b in ipairs(batches) do
      for k = 1, #b.index do
        local i = b.index[k]
        assert.equal(i, b.input[k][1][2][3])
        assert.equal(ds.labels[i], b.target[k])
      end
    end
  end)

  it("drop_last drops the short batch", function()
    local loader = Loader(numbered(10), { batch_size = 3, drop_last = true })
    assert.equal(3, #loader)
    assert.equal(3, #collect(loader, 1))
    assert.equal(0, #Loader(numbered(2), { batch_size = 3, drop_last = true }))
  end)

  it("shuffles from seed and epoch: a permutation, new each epoch, repeatable", function()
    local ds = numbered(50)
    local loader = Loader(ds, { batch_size = 8, shuffle = true, seed = 5, workers = 2 })
    local e1, e2 = order_of(collect(loader, 1)), order_of(collect(loader, 2))
    local sorted = { table.unpack(e1) }
    table.sort(sorted)
    for i = 1, 50 do assert.equal(i, sorted[i]) end
    assert.are_not.same(e1, e2)
    assert.same(e1, order_of(collect(loader, 1)))
    local other = Loader(ds, { batch_size = 8, shuffle = true, seed = 6 })
    assert.are_not.same(e1, order_of(collect(other, 1)))
  end)

  it("gives identical batches for workers = 0, 1 and 2 (and for a Lua dataset)", function()
    local tf = T.compose { T.random_crop { size = 4, padding = 2 }, T.horizontal_flip {},
      T.normalize { mean = 0.1, std = 0.3 } }
    local ds = numbered(37)
    local function run(d, workers)
      return collect(Loader(d, { batch_size = 5, shuffle = true, seed = 11, workers = workers,
        transform = tf, prefetch = 3 }), 4)
    end
    local ref = run(ds, 0)
    assert.equal(8, #ref)
    assert.equal("float32", ref[1].input:dtype())
    for _, candidate in ipairs { run(ds, 1), run(ds, 2), run(lua_numbered(37), 0) } do
      assert.equal(#ref, #candidate)
      for k = 1, #ref do
        assert.is_true(ref[k].input == candidate[k].input)
        assert.same(ref[k].target:totable(), candidate[k].target:totable())
        assert.same(ref[k].index:totable(), candidate[k].index:totable())
      end
    end
  end)

  it("keeps handed-out batches intact while later batches are produced", function()
    local loader = Loader(numbered(40), { batch_size = 4, workers = 2, prefetch = 2 })
    local kept = collect(loader, 1)
    for _, b in ipairs(kept) do
      for k = 1, #b.index do assert.equal(b.index[k], b.input[k][1][1][1]) end
    end
  end)

  it("stops cleanly on break and starts the next epoch", function()
    local loader = Loader(numbered(100), { batch_size = 2, workers = 2, shuffle = true, seed = 1 })
    for batch in loader:epoch(1) do
      assert.equal(2, #batch.index)
      break
    end
    local n = 0
    for _ in loader:epoch(2) do n = n + 1 end
    assert.equal(50, n)
    -- an error inside the loop closes the epoch as well
    local ok = pcall(function()
      for _ in loader:epoch(3) do error("boom") end
    end)
    assert.is_false(ok)
    assert.equal(50, #collect(loader, 3))
    loader:close()
  end)

  it("survives README's pattern: break out of a loop whose closure holds the batch", function()
    -- Lua 5.4.4 corrupts its VM when a generic for with a to-be-closed value
    -- is left by break while a closure holds a loop variable; the loader
    -- has none, so the lines after the loop run
    local loader = Loader(numbered(40), { batch_size = 4, workers = 2 })
    local seen
    for batch in loader:epoch(1) do
      local total = distill.no_grad(function() return batch.input:float():sum():item() end)
      seen = total
      break
    end
    local after = { 1, 2, 3 }
    assert.are.equal(3, #after)
    assert.is_number(seen)
    for step = 1, 3 do
      for batch in loader:epoch(step) do
        local f = function() return batch.index[1] end
        assert.is_number(f())
        if step > 0 then break end
      end
      assert.are.equal(step, step + 0)
    end
    -- the abandoned epoch's workers stop when its iterator is collected
    loader:epoch(4)
    collectgarbage()
    collectgarbage()
    assert.are.equal(10, #collect(loader, 5))
    loader:close()
    collectgarbage()
  end)

  it("lets the process exit after a break (no hang)", function()
    local script = [[
      package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
      package.cpath = (os.getenv("DISTILL_BUILD") or "./build") .. "/?.so;" .. package.cpath
      local distill = require "distill"
      local ds = require("distill.data.dataset").in_memory("x", distill.zeros({1000, 3, 8, 8}, "uint8"),
        distill.zeros({1000}, "int64"))
      local loader = distill.data.loader(ds, {batch_size = 4, workers = 2})
      for b in loader:epoch(1) do break end
      for b in loader:epoch(2) do if #b.index > 0 then break end end
      print("done")
    ]]
    local f = io.popen("timeout 30 lua5.4 -e '" .. script:gsub("'", "'\\''") .. "'; echo rc=$?")
    local out = f:read("a")
    f:close()
    assert.matches("done", out)
    assert.matches("rc=0", out)
  end)

  it("validates its arguments", function()
    local ds = numbered(4)
    local ok, err = pcall(Loader, ds, { batch_size = 0 })
    assert.is_false(ok)
    assert.matches("batch_size", err)
    ok, err = pcall(Loader, ds, { batchsize = 4 })
    assert.is_false(ok)
    assert.matches("unknown option 'batchsize'", err)
    ok, err = pcall(Loader, ds, { workers = -1 })
    assert.is_false(ok)
    assert.matches("workers", err)
    ok, err = pcall(Loader, ds, { transform = T.random_crop { size = 9 } })
    assert.is_false(ok)
    assert.matches("larger than the padded image", err)
  end)

  it("is reachable as distill.data.loader with lazily loaded datasets", function()
    local data = require "distill.data"
    assert.equal(data.loader, distill.data.loader)
    assert.is_function(data.cifar10)
    assert.is_not_nil(data.transforms.compose)
    assert.is_number(distill.core.dataio.wallclock())
  end)
end)

-- The caching allocator under tensors (engine/storage.c).
local distill = require "distill"
local h = require "support.helpers"

describe("allocator", function()
  it("zeros() is zero-filled even when it reuses a dirty block", function()
    for _ = 1, 20 do
      local a = distill.full({ 1000 }, 7)
      a = nil
      collectgarbage()
      local z = distill.zeros { 1000 }
      assert.are.equal(0, z:abs():sum():item())
    end
  end)

  it("keeps live_bytes to live tensors (cached blocks not counted)", function()
    local base = h.settled_live_bytes()
    local t = distill.randn { 1000, 1000 }
    assert.are.equal(base + 4000000, distill.core.live_bytes())
    t = nil
    assert.are.equal(base, h.settled_live_bytes())
  end)

  it("a repeated training step keeps RSS flat", function()
    local conv = distill.nn.Conv2d(3, 16, 3, { padding = 1 })
    local bn = distill.nn.BatchNorm2d(16)
    local x = distill.randn { 16, 3, 32, 32 }
    local function step()
      local y = distill.F.relu(bn(conv(x)))
      y:sum():backward()
    end
    for _ = 1, 20 do step() end
    local r0 = h.rss_bytes() / 2 ^ 20
    for _ = 1, 200 do step() end
    local r1 = h.rss_bytes() / 2 ^ 20
    assert.is_true(r1 < r0 * 1.05 + 8, ("RSS %.1f MB -> %.1f MB"):format(r0, r1))
  end)

  it("bounds the cache by the peak of live bytes, at least 512 MB", function()
    local limit = distill.core.cache_stats().limit
    assert.is_true(limit >= 512 * 2 ^ 20)
    distill.core.cache_trim()
    -- 600 MB live at once: the bound follows (freed at once, so the
    -- collector's pacing never sees it live)
    local big = distill.empty { 150 * 2 ^ 20 }
    assert.is_true(distill.core.cache_stats().limit >= 600 * 2 ^ 20)
    big:free()
    -- and the freed block is kept for the next request of its size
    assert.is_true(distill.core.cache_stats().cached >= 600 * 2 ^ 20)
  end)

  it("cache_trim frees every cached block", function()
    local t = distill.empty { 262144 }
    t = nil
    h.full_gc()
    assert.is_true(distill.core.cache_stats().cached >= 2 ^ 20)
    distill.core.cache_trim()
    assert.are.equal(0, distill.core.cache_stats().cached)
  end)

  it("serves a request from a cached block up to twice its size", function()
    h.full_gc()
    distill.core.cache_trim()
    -- then one cached block of 3 MB
    local big = distill.empty { 3 * 262144 + 17 }
    big = nil
    h.full_gc()
    local before = distill.core.cache_stats()
    local half = distill.empty { 2 * 262144 }        -- 2 MB: takes the 3 MB block
    local mid = distill.core.cache_stats()
    assert.are.equal(before.hits + 1, mid.hits)
    assert.are.equal(before.misses, mid.misses)
    assert.is_true(mid.cached <= before.cached - 3 * 2 ^ 20)
    local small = distill.empty { 262144 }           -- 1 MB: nothing within 2x is cached
    local after = distill.core.cache_stats()
    assert.are.equal(mid.misses + 1, after.misses)
    -- the big block goes back to its own class
    half = nil
    h.full_gc()
    assert.is_true(distill.core.cache_stats().cached >= after.cached + 3 * 2 ^ 20)
    assert.are.equal(2 * 262144, small:numel() * 2)
  end)

  it("results do not depend on what the reused blocks held", function()
    local x = distill.randn { 4, 3, 9, 9 }
    local w = distill.randn { 5, 3, 3, 3 }
    local a = distill.F.conv2d(x, w, nil, { padding = 1 }):totable()
    for _ = 1, 5 do
      local junk = distill.full({ 4, 5, 9, 9 }, 1e30)
      junk = nil
      collectgarbage()
      local b = distill.F.conv2d(x, w, nil, { padding = 1 }):totable()
      assert.are.same(a, b)
    end
  end)
  it("frees cached blocks that stay unused while eight times the bound is handed out", function()
    collectgarbage()
    -- ~200 MB of blocks in sizes the loop below never asks for
    do
      local odd = {}
      for i = 1, 40 do
        odd[i] = distill.empty { 1024 * 1024 + i * 4096 }
      end
    end
    h.full_gc()
    local before = distill.core.cache_stats().cached
    assert.is_true(before >= 160 * 1024 * 1024, "cached " .. before)
    -- 11x the bound handed out in one size, 1 MB at a time (stale blocks are
    -- looked for every 2x the bound)
    local limit = distill.core.cache_stats().limit
    assert.is_true(limit >= 512 * 2 ^ 20, "the bound is at least 512 MB")
    for _ = 1, 11 * limit // 2 ^ 20 do
      local x = distill.empty { 256 * 1024 }
      x = nil
    end
    local after = distill.core.cache_stats().cached
    assert.is_true(after < 64 * 1024 * 1024,
      ("cached %.0f MB before, %.0f MB after"):format(before / 2 ^ 20, after / 2 ^ 20))
  end)
end)

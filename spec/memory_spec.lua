-- Memory: the binding tells Lua's collector what tensors hold, so loops that
-- drop big tensors keep a flat footprint without manual collectgarbage().
local distill = require "distill"
local h = require "support.helpers"

local MB = 1024 * 1024

describe("memory", function()
  -- the growth is what counts: in a whole-suite run the process already holds
  -- what earlier specs left (the allocator's cache, the Lua heap)
  it("20,000 tensors of 4 MB grow RSS by less than 768 MB without collectgarbage", function()
    local start_rss = h.rss_bytes()
    local peak_rss, peak_live = start_rss, 0
    local started = os.time()
    for i = 1, 20000 do
      local x = distill.zeros { 1024 * 1024 }   -- 4 MB of float32
      if i % 50 == 0 then
        peak_rss = math.max(peak_rss, h.rss_bytes())
        peak_live = math.max(peak_live, distill.core.live_bytes())
        assert(peak_rss - start_rss < 768 * MB, string.format("RSS reached %.0f MB at tensor %d (at start "
          .. "%.0f MB; live tensor bytes %.0f MB, allocator cache %.0f MB, Lua heap %.0f MB)",
          peak_rss / MB, i, start_rss / MB, distill.core.live_bytes() / MB,
          distill.core.cache_stats().cached / MB, collectgarbage("count") / 1024))
      end
      x[1] = i   -- touch it, so it is used
    end
    local seconds = os.time() - started
    print(string.format("\n  memory: 20000 x 4 MB: RSS %.0f MB at start, peak %.0f MB; peak live tensor bytes %.0f MB; %d s",
      start_rss / MB, peak_rss / MB, peak_live / MB, seconds))
    assert.is_true(peak_rss - start_rss < 768 * MB)
  end)

  it("live_bytes returns to the baseline after a collection", function()
    local baseline = h.settled_live_bytes()
    local keep = {}
    for i = 1, 50 do
      keep[i] = distill.randn { 256, 256 }
    end
    assert.is_true(distill.core.live_bytes() >= baseline + 50 * 256 * 256 * 4)
    for i = 1, 200 do
      local y = distill.ones { 128, 128 }:view(-1):narrow(1, 1, 10)
      local z = y:clone()
      z[1] = i
    end
    keep = nil
    local after = h.settled_live_bytes()
    assert.is_true(after <= baseline + 64 * 1024,
      string.format("live bytes %d after, %d before", after, baseline))
  end)

  it("views keep their storage alive and release it with the last view", function()
    local baseline = h.settled_live_bytes()
    local v
    do
      local x = distill.zeros { 1000 }
      v = x:view { 10, 100 }:narrow(1, 2, 3):t()
    end
    assert.are.equal(baseline + 4000, h.settled_live_bytes())
    assert.are.same({ 100, 3 }, v:shape())
    v = nil
    assert.are.equal(baseline, h.settled_live_bytes())
  end)

  it("<close> and free release memory immediately", function()
    local baseline = h.settled_live_bytes()
    for _ = 1, 100 do
      local x <close> = distill.zeros { 1024, 256 }
      assert.are.equal(baseline + MB, distill.core.live_bytes())
    end
    assert.are.equal(baseline, distill.core.live_bytes())
    local y = distill.zeros { 1024, 1024 }
    y:free()
    assert.are.equal(baseline, distill.core.live_bytes())
  end)
  describe("GC pacing", function()
    local function allocate(n, keep)
      for i = 1, n do
        local x = distill.empty { 1024 * 1024 }   -- 4 MB, fresh storage
        if keep then
          keep[#keep + 1] = x
        end
      end
    end

    it("runs the collector in generational mode", function()
      assert.are.equal("generational", collectgarbage("generational"))
    end)

    it("runs one minor collection per 16 MB of fresh tensors", function()
      local before = distill.core.gc_stats()
      allocate(100)
      local after = distill.core.gc_stats()
      local minors = after.minor - before.minor
      assert.is_true(minors >= 24 and minors <= 26, "minor collections: " .. minors)
      assert.is_true(distill.core.live_bytes() < 128 * MB,
        ("live tensor bytes %.0f MB"):format(distill.core.live_bytes() / MB))
    end)

    it("frees tensors that died old with a major collection", function()
      collectgarbage()
      local baseline = distill.core.live_bytes()
      local keep = {}
      allocate(40, keep)            -- 160 MB kept through several minor collections
      local held = distill.core.live_bytes()
      assert.is_true(held >= baseline + 160 * MB)
      keep = nil
      -- no collectgarbage(): the pacing must free them within 8 margins of
      -- fresh bytes, although the live bytes never reach their peak again
      local majors, count = distill.core.gc_stats().major, 0
      while distill.core.gc_stats().major == majors and count < 1000 do
        allocate(1)
        count = count + 1
      end
      assert.is_true(count < 1000, "no major collection ran")
      local live = distill.core.live_bytes()
      assert.is_true(live < held - 100 * MB,
        ("live %.0f MB after dropping 160 MB (held %.0f MB)"):format(live / MB, held / MB))
    end)

    it("spaces major collections by the live bytes and the Lua heap", function()
      local junk = {}
      for i = 1, 200000 do
        junk[i] = { i }             -- ~16 MB of Lua heap
      end
      local keep = {}
      local majors = distill.core.gc_stats().major
      while distill.core.gc_stats().major == majors do
        allocate(4, keep)
      end
      local stats, heap = distill.core.gc_stats(), collectgarbage("count") * 1024
      local margin = stats.major_at - distill.core.live_bytes()
      assert.is_true(margin >= 32 * MB, "margin " .. margin)
      assert.is_true(margin >= 3.5 * heap, ("margin %.0f MB, heap %.0f MB"):format(margin / MB, heap / MB))
      assert.is_true(margin >= distill.core.live_bytes() / 2 - MB)
      junk, keep = nil, nil
      collectgarbage()
    end)

    it("respects collectgarbage('stop')", function()
      collectgarbage("stop")
      local before = distill.core.gc_stats()
      local ok, err = pcall(allocate, 10)
      local after = distill.core.gc_stats()
      collectgarbage("restart")
      assert.is_true(ok, err)
      assert.are.equal(before.minor, after.minor)
      assert.are.equal(before.major, after.major)
    end)

    it("keeps a flat footprint in incremental mode too", function()
      collectgarbage("incremental")
      local ok, err = pcall(function()
        collectgarbage()
        local baseline = distill.core.live_bytes()
        -- the pacing lets live bytes grow by up to 4x the Lua heap before a
        -- full collection (engine/bind/core.c); in a whole-suite run the
        -- heap holds every loaded spec
        local bound = baseline + 128 * MB + 4 * collectgarbage("count") * 1024
        for _ = 1, 10 do
          allocate(20)
          assert.is_true(distill.core.live_bytes() < bound,
            ("live %.0f MB, bound %.0f MB"):format(distill.core.live_bytes() / MB, bound / MB))
        end
      end)
      collectgarbage("generational")
      assert.is_true(ok, err)
    end)

    it("reports its state", function()
      local stats = distill.core.gc_stats()
      for _, key in ipairs { "minor", "major", "pending", "major_at" } do
        assert.are.equal("integer", math.type(stats[key]), key)
      end
      assert.are.equal("number", type(stats.seconds))
      assert.is_true(stats.pending < 16 * MB)
    end)
  end)
end)

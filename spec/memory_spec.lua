-- Memory: the binding tells Lua's collector what tensors hold, so loops that
-- drop big tensors keep a flat footprint without manual collectgarbage().
local distill = require "distill"

local function rss_bytes()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)%s*kB")
    if kb then return tonumber(kb) * 1024 end
  end
  error("no VmRSS in /proc/self/status")
end

local MB = 1024 * 1024

describe("memory", function()
  it("20,000 tensors of 4 MB stay under 1 GiB of RSS without collectgarbage", function()
    local start_rss = rss_bytes()
    local peak_rss, peak_live = start_rss, 0
    local started = os.time()
    for i = 1, 20000 do
      local x = distill.zeros { 1024 * 1024 }   -- 4 MB of float32
      if i % 50 == 0 then
        peak_rss = math.max(peak_rss, rss_bytes())
        peak_live = math.max(peak_live, distill.core.live_bytes())
        assert(peak_rss < 1024 * MB, string.format("RSS reached %.0f MB at tensor %d", peak_rss / MB, i))
      end
      x[1] = i   -- touch it, so it is used
    end
    local seconds = os.time() - started
    print(string.format("\n  memory: 20000 x 4 MB: RSS %.0f MB at start, peak %.0f MB; peak live tensor bytes %.0f MB; %d s",
      start_rss / MB, peak_rss / MB, peak_live / MB, seconds))
    assert.is_true(peak_rss < 1024 * MB)
  end)

  it("live_bytes returns to the baseline after a collection", function()
    collectgarbage()
    collectgarbage()
    local baseline = distill.core.live_bytes()
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
    collectgarbage()
    collectgarbage()
    local after = distill.core.live_bytes()
    assert.is_true(after <= baseline + 64 * 1024,
      string.format("live bytes %d after, %d before", after, baseline))
  end)

  it("views keep their storage alive and release it with the last view", function()
    collectgarbage()
    collectgarbage()
    local baseline = distill.core.live_bytes()
    local v
    do
      local x = distill.zeros { 1000 }
      v = x:view { 10, 100 }:narrow(1, 2, 3):t()
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(baseline + 4000, distill.core.live_bytes())
    assert.are.same({ 100, 3 }, v:shape())
    v = nil
    collectgarbage()
    collectgarbage()
    assert.are.equal(baseline, distill.core.live_bytes())
  end)

  it("<close> and free release memory immediately", function()
    collectgarbage()
    collectgarbage()
    local baseline = distill.core.live_bytes()
    for _ = 1, 100 do
      local x <close> = distill.zeros { 1024, 256 }
      assert.are.equal(baseline + MB, distill.core.live_bytes())
    end
    assert.are.equal(baseline, distill.core.live_bytes())
    local y = distill.zeros { 1024, 1024 }
    y:free()
    assert.are.equal(baseline, distill.core.live_bytes())
  end)
end)

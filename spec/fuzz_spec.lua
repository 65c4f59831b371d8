-- A short libFuzzer run of every harness in fuzz/ (built with AddressSanitizer
-- and UBSan into build-san/fuzz/ by scripts/hardening.sh, which the test
-- command runs), starting from the committed seed corpus: a crash, a hang,
-- a leak, an out-of-memory or a sanitizer report fails the spec, with the
-- input libFuzzer saved. fuzz/README.md says how to run longer campaigns.
local lfs = require "lfs"
local h = require "support.helpers"

local HARNESSES = { "safetensors", "idx", "cifar", "jpeg" }
local SECONDS = tonumber(os.getenv("DISTILL_FUZZ_SECONDS") or "") or 4

describe("fuzzing", function()
  for _, name in ipairs(HARNESSES) do
    it(name .. " runs " .. SECONDS .. " s from the seed corpus without a finding", function()
      local bin = "build-san/fuzz/fuzz_" .. name
      if not lfs.attributes(bin, "mode") then
        pending("no " .. bin .. ": run scripts/hardening.sh (the test command does)")
        return
      end
      local work = h.tmpdir()
      local cmd = ("%s -max_total_time=%d -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "
        .. "-artifact_prefix=%s/ %s fuzz/corpus/%s > %s/log 2>&1")
        :format(bin, SECONDS, work, work, name, work)
      local ok = os.execute(cmd)
      local f = assert(io.open(work .. "/log", "rb"))
      local log = f:read "a"
      f:close()
      local finding = log:match("[^\n]*ERROR: [^\n]*") or log:match("[^\n]*runtime error:[^\n]*")
      local where = " (input and log kept in " .. work .. ")\n"
      assert.is_nil(finding, name .. ": " .. tostring(finding) .. where .. log:sub(-2000))
      assert.is_true(ok == true, name .. ": the fuzzer exited with an error" .. where .. log:sub(-2000))
      local runs = log:match("stat::number_of_executed_units: (%d+)")
      assert.truthy(runs and tonumber(runs) > 100, name .. ": too few runs" .. where .. log:sub(-2000))
      os.execute("rm -rf '" .. work .. "'")
    end)
  end
end)

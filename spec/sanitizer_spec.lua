-- The engine-facing specs again, on the AddressSanitizer + UBSan build of
-- the engine (build-san/, made by scripts/hardening.sh, which the test
-- command runs): every spec must pass and the sanitizers must report
-- nothing (a report stops the process, so it also shows as a failure).
-- The specs that mostly drive Lua code (trainer, CLI, REPL), compare with
-- PyTorch in subprocesses or emulate other CPUs are left out; they exercise
-- the same engine paths as the ones here.
local lfs = require "lfs"

-- The default suite runs the specs of the surfaces the hardening is about
-- (sizes, views and indexing, in-place overlap, readers, the loader,
-- checkpoints, misuse) under the sanitizers; DISTILL_SANITIZE_ALL=1 adds the
-- numeric kernels' specs (convolutions, GEMM, Winograd, ...), which take
-- several times longer under the sanitizers.
local SPECS = {
  "tensor", "views", "index", "hardening", "misuse", "fsecd", "crd", "loss", "random", "format",
  "allocator", "checkpoint", "data_cifar", "data_idx", "data_jpeg", "data_loader",
  "data_transforms", "data_hardening",
}
if os.getenv("DISTILL_SANITIZE_ALL") == "1" then
  for _, name in ipairs { "math", "grad_ops", "autograd", "linalg", "gemm", "conv", "conv_transpose",
      "winograd", "pool", "batchnorm", "activation", "dropout", "distance", "optim", "fuse",
      "profile", "cpu" } do
    SPECS[#SPECS + 1] = name
  end
end

local function runtime()
  local p = io.popen("clang-14 -print-file-name=libclang_rt.asan-x86_64.so 2>/dev/null")
  local path = p and p:read "l"
  if p then p:close() end
  return path and lfs.attributes(path, "mode") == "file" and path or nil
end

describe("the sanitizer build", function()
  it("passes the engine-facing specs with no AddressSanitizer or UBSan report", function()
    local rt = runtime()
    if not lfs.attributes("build-san/distill/core.so", "mode") or not rt then
      pending("no build-san/distill/core.so or ASan runtime: run scripts/hardening.sh (the test command does)")
      return
    end
    local files = {}
    for i, name in ipairs(SPECS) do files[i] = "spec/" .. name .. "_spec.lua" end
    local log = os.tmpname()
    local t0 = os.time()
    -- Leak checking is off: Lua and the engine's caches keep memory until exit by design.
    local cmd = ("DISTILL_BUILD=build-san LD_PRELOAD=%s ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 "
      .. "UBSAN_OPTIONS=print_stacktrace=1 OMP_WAIT_POLICY=passive lua5.4 /usr/bin/busted %s > %s 2>&1")
      :format(rt, table.concat(files, " "), log)
    os.execute(cmd)
    local f = assert(io.open(log, "rb"))
    local out = f:read "a"
    f:close()
    os.remove(log)
    local passed, failed, skipped = out:match("(%d+) passed, (%d+) failed, (%d+) skipped%s*$")
    local report = out:match("[^\n]*runtime error:[^\n]*") or out:match("[^\n]*ERROR: AddressSanitizer[^\n]*")
      or out:match("[^\n]*SUMMARY: %a+Sanitizer[^\n]*")
    assert.is_nil(report, "sanitizer report: " .. tostring(report))
    assert.truthy(passed, "the sanitized run did not finish:\n" .. out:sub(-3000))
    assert.equal("0", failed, "failures in the sanitized run:\n" .. out:sub(-3000))
    assert.is_true(tonumber(passed) > 200, "too few specs ran: " .. passed)
    print(("\n  sanitizer build: %s passed, %s failed, %s skipped, no report; %d s")
      :format(passed, failed, skipped, os.time() - t0))
  end)
end)

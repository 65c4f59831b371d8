-- The default build on CPUs other than this one. qemu-x86_64 (Debian's
-- qemu-user, which scripts/test.sh installs) emulates an AMD EPYC Milan
-- (Zen 3: AVX2 and FMA, no AVX-512) and an Intel Nehalem (SSE4.2, no AVX);
-- under each the library must choose the kernels that CPU runs, refuse by
-- name the ones it lacks (never die of an illegal instruction), and
-- compute right with the ones it has: cpu_spec.lua runs whole under each
-- emulated CPU, and so does a short training run with every layer kind of
-- the CIFAR ResNets (Winograd and im2col convolutions, batch norm, pooling,
-- elementwise ops, the optimizer and the data loader).
local h = require "support.helpers"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a"):gsub("qemu%-x86_64: warning: [^\n]*\n", "")
  local ok = p:close()
  return out, ok == true
end

local arch = sh("uname -m"):gsub("%s+$", "")
local have_qemu = select(2, sh("command -v qemu-x86_64"))

-- OpenBLAS's own CPU detection takes qemu's emulated CPUs for Haswells
-- (and then runs AVX2 code on the emulated Nehalem), so its kernels are
-- named for it (OPENBLAS_CORETYPE); on real CPUs it detects them itself.
local CPUS = {
  { model = "EPYC-Milan", blas = "Zen", isa = "avx2", runs = "generic, avx2", lacks = "avx512" },
  { model = "Nehalem", blas = "Nehalem", isa = "generic", runs = "generic", lacks = "avx2" },
}

local function emulated(cpu, cmd)
  return sh(("OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive OPENBLAS_CORETYPE=%s DISTILL_SPEC_CPU=%s "
    .. "qemu-x86_64 -cpu %s $(command -v lua5.4) %s"):format(cpu.blas, cpu.model, cpu.model, cmd))
end

describe("the default build on other CPUs (emulated)", function()
  local tmp

  setup(function()
    tmp = h.tmpdir()
    h.write(tmp .. "/tiny.lua", ([[
return {
  name = "emulated",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 16, 16, 32, 32 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 96, synthetic_test_size = 32,
           synthetic_shape = { 1, 16, 16 } },
  epochs = 1, batch_size = 32, seed = 2, workers = 1, run_dir = "%s/run",
}
]]):format(tmp))
  end)

  for _, cpu in ipairs(CPUS) do
    describe(cpu.model, function()
      before_each(function()
        if arch ~= "x86_64" or not have_qemu then
          pending(("needs an x86-64 host with qemu-x86_64 (this host: %s%s)"):format(arch,
            have_qemu and "" or ", no qemu-x86_64"))
        end
      end)

      it("uses the " .. cpu.isa .. " kernels and refuses " .. cpu.lacks .. " by name", function()
        if arch ~= "x86_64" or not have_qemu then return end
        local out, ok = emulated(cpu, "scripts/distill --version")
        assert.is_true(ok, out)
        assert.truthy(out:find("kernels: " .. cpu.isa .. " (this CPU and build run " .. cpu.runs
          .. ";", 1, true), out)
        out, ok = sh(("DISTILL_ISA=%s qemu-x86_64 -cpu %s $(command -v lua5.4) scripts/distill "
          .. "--version"):format(cpu.lacks, cpu.model))
        assert.is_false(ok)
        assert.truthy(out:find("DISTILL_ISA=" .. cpu.lacks .. ": this CPU (", 1, true), out)
        assert.truthy(out:find(") does not support " .. cpu.lacks .. "; it supports " .. cpu.runs,
          1, true), out)
      end)

      it("passes the CPU layer's specs", function()
        if arch ~= "x86_64" or not have_qemu then return end
        local out = emulated(cpu, "/usr/bin/busted spec/cpu_spec.lua")
        local passed, failed = out:match("(%d+) passed, (%d+) failed")
        assert.truthy(passed, out)
        assert.are.equal("0", failed, out)
        assert.is_true(tonumber(passed) >= 20, out)
      end)

      it("trains a small ResNet", function()
        if arch ~= "x86_64" or not have_qemu then return end
        local out, ok = emulated(cpu, "scripts/distill train " .. tmp .. "/tiny.lua --overwrite")
        assert.is_true(ok, out)
        assert.truthy(out:find("done: best test top-1", 1, true), out)
        local run_info = h.read(tmp .. "/run/run.json")
        assert.truthy(run_info:find('"isa":"' .. cpu.isa .. '"', 1, true), run_info)
      end)
    end)
  end
end)

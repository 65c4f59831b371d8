-- The CPU layer (engine/cpu/): choosing the kernel set (distill.isa,
-- set_isa, cpu_info, DISTILL_ISA), and every dispatched kernel at every set
-- this CPU runs against the generic one: convolution through both
-- algorithms (GEMM tiles, transposes, stride-2 rows, Winograd transforms),
-- forward and both gradients; batch norm; elementwise runs. The avx2 and
-- avx512 kernels use the same summation orders and fused multiply-adds, so
-- their results agree bitwise; the generic kernels multiply and add
-- separately, so theirs differ by rounding only (checked to a tight
-- tolerance). Kernels that do not multiply-add agree bitwise everywhere.
local distill = require "distill"
local h = require "support.helpers"

local flat = h.flat
local ISAS = h.isas()

local function contains(list, value)
  for _, v in ipairs(list) do
    if v == value then return true end
  end
  return false
end

-- Runs a one-line Lua program in a fresh lua5.4 with the given environment
-- prefix; returns its output (stdout and stderr) and whether it succeeded.
-- DISTILL_SPEC_CPU (set by cpu_emulated_spec.lua) names a CPU model for
-- qemu-x86_64 to emulate, so these runs see the same CPU as this one (its
-- warnings about CPU features it does not emulate are dropped).
local function run_lua(env, code)
  local cpu = os.getenv("DISTILL_SPEC_CPU")
  local lua = cpu and ("qemu-x86_64 -cpu " .. cpu .. " $(command -v lua5.4)") or "lua5.4"
  local cmd = ("%s %s -e 'package.path = \"./lua/?.lua;./lua/?/init.lua;\" .. package.path; "
    .. "package.cpath = \"%s/?.so;\" .. package.cpath; %s' 2>&1"):format(env, lua,
    os.getenv("DISTILL_BUILD") or "./build", code)
  local p = assert(io.popen(cmd))
  local out = p:read("a"):gsub("qemu%-x86_64: warning: [^\n]*\n", "")
  local ok = p:close()
  return out, ok
end

-- Lists of every output of fn() (a table of tensors) computed with each
-- kernel set, keyed by set name.
local function outputs_per_isa(fn)
  local per = {}
  for _, isa in ipairs(ISAS) do
    per[isa] = h.with_isa(isa, function()
      local out = {}
      for name, t in pairs(fn()) do out[name] = flat(t) end
      return out
    end)
  end
  return per
end

-- max |a - b| / max |b| over two lists
local function rel_error(a, b)
  local diff, scale = 0, 0
  for i = 1, #b do
    local d = math.abs(a[i] - b[i])
    if d ~= d then return math.huge end
    diff = math.max(diff, d)
    scale = math.max(scale, math.abs(b[i]))
  end
  return diff / math.max(scale, 1e-30)
end

local function assert_bitwise(want, got, what)
  assert.are.equal(#want, #got)
  for i = 1, #want do
    if not (want[i] == got[i] or (want[i] ~= want[i] and got[i] ~= got[i])) then
      error(("%s: element %d differs: %.9g vs %.9g"):format(what, i, want[i], got[i]), 2)
    end
  end
end

-- Every set's outputs against generic's (within rel_tol, or bitwise when
-- rel_tol is nil), and the vector sets against each other bitwise.
local function assert_kernels_agree(fn, rel_tol, label)
  local per = outputs_per_isa(fn)
  local ref = per.generic
  for _, isa in ipairs(ISAS) do
    for name, values in pairs(per[isa]) do
      local what = ("%s, %s on %s"):format(label, name, isa)
      if rel_tol then
        local e = rel_error(values, ref[name])
        assert(e <= rel_tol, ("%s: relative error %.3g against generic (bound %.1g)"):format(
          what, e, rel_tol))
      else
        assert_bitwise(ref[name], values, what .. " against generic")
      end
    end
  end
  if per.avx2 and per.avx512 then
    for name, values in pairs(per.avx512) do
      assert_bitwise(per.avx2[name], values, label .. ", " .. name .. ": avx512 against avx2")
    end
  end
end

describe("the CPU layer", function()
  describe("choosing the kernels", function()
    it("names the set in use, one this CPU runs", function()
      local info = distill.cpu_info()
      assert.are.equal("string", type(info.model))
      assert.truthy(#info.model > 0)
      assert.are.equal(distill.isa(), info.isa)
      assert.are.equal("generic", info.isas[1])
      assert.truthy(contains(info.isas, distill.isa()))
      -- the best the CPU runs is the default
      assert.are.equal(info.isas[#info.isas], h.with_isa("auto", distill.isa))
    end)

    it("switches with set_isa, which returns the previous set", function()
      for _, isa in ipairs(ISAS) do
        local before = distill.set_isa(isa)
        assert.are.equal(isa, distill.isa())
        assert.are.equal(isa, distill.set_isa(before))
        assert.are.equal(before, distill.isa())
      end
    end)

    it("refuses names it does not know, keeping the set in use", function()
      local before = distill.isa()
      h.fails("distill.set_isa: sse9: unknown instruction set", distill.set_isa, "sse9")
      h.fails("distill.set_isa: argument #1: expected an ISA name", distill.set_isa, 3)
      assert.are.equal(before, distill.isa())
    end)

    it("takes DISTILL_ISA at load", function()
      local out, ok = run_lua("DISTILL_ISA=generic", 'io.write(require("distill").isa())')
      assert.is_true(ok, out)
      assert.are.equal("generic", out)
      out, ok = run_lua("DISTILL_ISA=auto", 'io.write(require("distill").isa())')
      assert.is_true(ok, out)
      assert.are.equal(ISAS[#ISAS], out)
    end)

    it("fails to load with a clear message for an unknown DISTILL_ISA", function()
      local out, ok = run_lua("DISTILL_ISA=avx1024", 'require("distill")')
      assert.is_falsy(ok)
      assert.truthy(out:find("DISTILL_ISA=avx1024: unknown instruction set", 1, true), out)
    end)

    it("names the ISA and the CPU when asked for a set the CPU lacks", function()
      local lacking
      for _, isa in ipairs{ "avx2", "avx512" } do
        if not contains(ISAS, isa) then lacking = lacking or isa end
      end
      if not lacking then
        pending("this CPU runs every kernel set (" .. table.concat(ISAS, ", ") .. ")")
        return
      end
      local model = distill.cpu_info().model
      local out, ok = run_lua("DISTILL_ISA=" .. lacking, 'require("distill")')
      assert.is_falsy(ok)
      assert.truthy(out:find("DISTILL_ISA=" .. lacking .. ": this CPU (" .. model
        .. ") does not support " .. lacking, 1, true), out)
      h.fails("does not support " .. lacking, distill.set_isa, lacking)
    end)

    it("says which sets this host skips", function()
      for _, isa in ipairs{ "avx2", "avx512" } do
        if not contains(ISAS, isa) then
          pending(("this CPU (%s) lacks %s: its kernels are built but not run here"):format(
            distill.cpu_info().model, isa))
        end
      end
    end)
  end)

  describe("kernels against the generic ones", function()
    before_each(function() distill.manual_seed(11) end)

    -- x, w, b, dy of a conv; `relu` makes x non-negative like activations
    local function conv_case(N, C, O, H, W, k, o)
      local x = distill.randn{ N, C, H, W }
      local w = distill.randn{ O, C // (o.groups or 1), k, k } * (1 / math.sqrt(C * k * k))
      local b = distill.randn{ O }
      local y = distill.conv2d(x, w, b, o)
      return x, w, b, distill.randn(y:shape())
    end

    local function conv_outputs(x, w, b, dy, o, algo)
      return function()
        local before = distill.conv_algorithm(algo)
        local xx, ww, bb = h.leaf_clone(x), h.leaf_clone(w), h.leaf_clone(b)
        local y = distill.conv2d(xx, ww, bb, o)
        y:backward(dy)
        distill.conv_algorithm(before)
        return { y = y:detach(), dx = xx.grad, dw = ww.grad, db = bb.grad }
      end
    end

    local conv_cases = {
      -- N, C, O, H, W, k, options
      { 3, 16, 16, 12, 12, 3, { padding = 1 } },     -- Winograd under "auto"
      { 2, 17, 33, 9, 11, 3, { padding = 1 } },      -- ragged channel blocks and tiles
      { 2, 32, 48, 8, 8, 3, { padding = 2 } },
      { 4, 3, 16, 10, 10, 3, { padding = 1 } },      -- a first layer: im2col + GEMM
      { 2, 16, 32, 15, 15, 3, { stride = 2, padding = 1 } },   -- stride-2 rows
      { 2, 24, 40, 9, 9, 1, { stride = 2 } },
      { 2, 24, 40, 7, 7, 1, {} },                    -- 1x1: the input is the patch matrix
      { 2, 8, 12, 7, 9, 5, { padding = 2, dilation = 1 } },
      { 2, 8, 12, 6, 6, 3, { padding = 1, groups = 4 } },
      { 1, 70, 20, 5, 5, 3, { padding = 1 } },       -- one image: products split over threads
    }

    for i, c in ipairs(conv_cases) do
      for _, algo in ipairs{ "gemm", "winograd" } do
        local o = c[7]
        local fits = c[6] == 3 and (o.stride or 1) == 1 and (o.groups or 1) == 1
        if algo == "gemm" or fits then
          it(("conv2d case %d through %s: forward, input and weight gradients"):format(i, algo),
            function()
              local x, w, b, dy = conv_case(c[1], c[2], c[3], c[4], c[5], c[6], o)
              assert_kernels_agree(conv_outputs(x, w, b, dy, o, algo), 2e-6,
                ("conv2d case %d (%s)"):format(i, algo))
            end)
        end
      end
    end

    it("conv_transpose2d: forward and both gradients", function()
      local x = distill.randn{ 2, 12, 7, 7 }
      local w = distill.randn{ 12, 20, 3, 3 } * 0.1
      local o = { stride = 2, padding = 1, output_padding = 1 }
      local dy = distill.randn(distill.conv_transpose2d(x, w, nil, o):shape())
      assert_kernels_agree(function()
        local xx, ww = h.leaf_clone(x), h.leaf_clone(w)
        local y = distill.conv_transpose2d(xx, ww, nil, o)
        y:backward(dy)
        return { y = y:detach(), dx = xx.grad, dw = ww.grad }
      end, 2e-6, "conv_transpose2d")
    end)

    it("batch_norm: training forward and backward, eval forward", function()
      for _, shape in ipairs{ { 8, 5, 9, 9 }, { 3, 70, 4, 4 }, { 16, 33 }, { 4, 6, 100 } } do
        local x = distill.randn(shape) * 3 + 1
        local C = shape[2]
        local w, b = distill.randn{ C }, distill.randn{ C }
        local dy = distill.randn(shape)
        assert_kernels_agree(function()
          local xx, ww, bb = h.leaf_clone(x), h.leaf_clone(w), h.leaf_clone(b)
          local rm, rv = distill.zeros{ C }, distill.ones{ C }
          local y = distill.batch_norm(xx, rm, rv, ww, bb, { training = true })
          y:backward(dy)
          local ye = distill.batch_norm(x, rm, rv, w, b, { training = false })
          return { y = y:detach(), dx = xx.grad, dw = ww.grad, db = bb.grad, rm = rm, rv = rv,
                   eval = ye }
        end, 1e-6, "batch_norm " .. table.concat(shape, "x"))
      end
    end)

    it("a few training steps of a ResNet: the same parameters on avx2 and avx512", function()
      -- everything a step runs: convolutions (Winograd and im2col), batch
      -- norm, ReLU, pooling, the loss and SGD with momentum
      local fmnist = require "distill.models.fmnist"
      local x = distill.randn{ 16, 1, 20, 20 }
      local y = distill.randint(1, 11, { 16 })
      assert_kernels_agree(function()
        distill.manual_seed(3)
        local model = fmnist.fmnist_resnet_t{ num_classes = 10 }
        local opt = distill.optim.SGD(model:parameters(), { lr = 0.1, momentum = 0.9,
          weight_decay = 5e-4 })
        local out = {}
        for step = 1, 3 do
          opt:zero_grad()
          local loss = distill.F.cross_entropy(model(x), y)
          loss:backward()
          opt:step()
          out["loss" .. step] = loss:detach()
        end
        for name, p in pairs(model:state_dict()) do out[name] = p end
        return out
      end, 1e-3, "training steps")
    end)

    it("elementwise runs: bitwise the same on every set", function()
      local a = distill.randn{ 37, 129 }
      local b = distill.randn{ 37, 129 }
      local row = distill.randn{ 1, 129 }
      local ia = distill.randint(-50, 50, { 300 })
      local ib = distill.randint(1, 7, { 300 })
      assert_kernels_agree(function()
        local out = {
          add = a + b, sub = a - row, mul = a * 2.5, div = a / b, pow = a:abs() ^ 1.7,
          max = distill.maximum(a, b), min = distill.minimum(a, row), lt = a:lt(b):float(),
          neg = -a, exp = a:exp(), log = a:abs():log(), sqrt = a:abs():sqrt(),
          relu = distill.relu(a), sigmoid = a:sigmoid(), tanh = a:tanh(),
          clamp = a:clamp(-0.5, 0.7), where = distill.where(a:gt(0), a, b),
          strided = a:t() + b:t(), iadd = (ia + ib):float(), imul = (ia * ib):float(),
          ipow = (ib ^ ib):float(), iclamp = ia:clamp(-3, 20):float(),
        }
        local y = h.leaf_clone(a)
        distill.relu(y):backward(b)
        out.relu_grad = y.grad
        return out
      end, nil, "elementwise")
    end)
  end)
end)

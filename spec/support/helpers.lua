-- Helpers shared by the spec files: tensor construction, flattening,
-- approximate comparison, gradchecks, error capture and scratch files.
-- Spec files load it with `local h = require "support.helpers"` (.busted
-- puts ./spec/?.lua on the path).
local distill = require "distill"
local gradcheck = require "distill.gradcheck"
-- the spec files' `assert` is busted's luassert, not the global function
local assert = require "luassert"

local h = {}

--- A float32 tensor from a (nested) Lua list.
function h.f32(values)
  return distill.tensor(values, "float32")
end

--- A C x H x W uint8 image whose value at (c, y, x) (0-based) is
-- value(c, y, x).
function h.uint8_image(channels, height, width, value)
  local planes = {}
  for c = 0, channels - 1 do
    local plane = {}
    for y = 0, height - 1 do
      local row = {}
      for x = 0, width - 1 do row[x + 1] = value(c, y, x) end
      plane[y + 1] = row
    end
    planes[c + 1] = plane
  end
  return distill.tensor(planes, "uint8")
end

--- An int64 tensor from a (nested) Lua list.
function h.long(values)
  return distill.tensor(values, "int64")
end

--- The values of t in row-major order as a Lua list.
function h.flat(t)
  return t:contiguous():view{ -1 }:totable()
end

--- A randn leaf of the given shape that requires grad.
function h.leaf(shape)
  local t = distill.randn(shape)
  t.requires_grad = true
  return t
end

--- A copy of tensor t that is a leaf requiring grad.
function h.leaf_clone(t)
  local c = t:clone()
  c.requires_grad = true
  return c
end

--- Runs gradcheck.gradcheck and fails with its report unless it passes.
function h.check(fn, inputs, opts)
  local ok, report = gradcheck.gradcheck(fn, inputs, opts)
  assert(ok, report)
end

--- Runs f(...), asserts that it raises, and returns the error.
function h.err(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok)
  return e
end

--- Asserts |expected - actual| <= tol * max(1, |expected|) (tol 1e-5).
function h.close(expected, actual, tol)
  tol = tol or 1e-5
  assert.is_true(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    ("expected %.8g, got %.8g"):format(expected, actual))
end

--- The distiller specs' small pair of FashionResNets after manual_seed(seed):
-- a student (widths {4, 4, 8, 8} unless given) and an eval-mode teacher
-- ({4, 8, 8, 16}); on 12x12 inputs feats = {stem, 12x12, 6x6, 3x3, pooled}.
function h.fashion_pair(seed, student_widths, teacher_widths)
  local fmnist = require "distill.models.fmnist"
  distill.manual_seed(seed)
  local student = fmnist.FashionResNet{ widths = student_widths or { 4, 4, 8, 8 } }
  local teacher = fmnist.FashionResNet{ widths = teacher_widths or { 4, 8, 8, 16 } }
  teacher:eval()
  return student, teacher
end

-- ------------------------------------------------ Fashion-MNIST integration

--- True when the Fashion-MNIST dataset (dataset-fashion-mnist) is installed.
function h.fmnist_installed()
  local f = io.open("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", "rb")
  if f then
    f:close()
  end
  return f ~= nil
end

--- In a describe block: true when Fashion-MNIST is installed; else false,
-- after adding a pending entry that says what is missing.
function h.with_fmnist()
  if h.fmnist_installed() then
    return true
  end
  require("busted").pending("needs dataset-fashion-mnist: it is not installed")
  return false
end

--- The shipped Fashion-MNIST teacher (scripts/assets), in eval mode.
function h.fmnist_teacher()
  local checkpoint = require "distill.checkpoint"
  local teacher = require("distill.models.fmnist").fmnist_resnet_t{ num_classes = 10 }
  teacher:load_state_dict(checkpoint.load("scripts/assets/fmnist_teacher.safetensors").model)
  teacher:eval()
  return teacher
end

--- The first n images of a Fashion-MNIST split, normalised as the presets
-- do, and their labels.
function h.fmnist_images(split, n)
  local set = require("distill.data.fashion_mnist"){ split = split }
  return (set.images:narrow(1, 1, n):float() / 255 - 0.286) / 0.353, set.labels:narrow(1, 1, n)
end

--- Asserts that fn(...) raises an error containing `pattern` (plain text).
function h.fails(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error matching: " .. pattern)
  assert.truthy(tostring(err):find(pattern, 1, true),
    "error '" .. tostring(err) .. "' does not contain '" .. pattern .. "'")
end

--- Asserts that fn(...) refuses the Lua way, returning nil and a message
-- that contains `pattern` (plain text).
function h.refuses(pattern, fn, ...)
  local ok, err = fn(...)
  assert.is_nil(ok, "expected nil and a message matching: " .. pattern)
  assert.truthy(tostring(err):find(pattern, 1, true),
    "message '" .. tostring(err) .. "' does not contain '" .. pattern .. "'")
end

--- log(sum(exp(v))) over a Lua list, in double precision (shifted by the
-- maximum so that no exp overflows): the reference for softmax and losses.
function h.logsumexp(list)
  local m = -math.huge
  for _, v in ipairs(list) do m = math.max(m, v) end
  local s = 0
  for _, v in ipairs(list) do s = s + math.exp(v - m) end
  return m + math.log(s)
end

--- Builds an assert_close(expected, actual, tol) for Lua lists.
-- opts.tol: the default tolerance; opts.format: the number format of the
-- failure message ("%.7g" by default); opts.relative: compare against
-- tol * (1 + |expected|) instead of tol; opts.strict: NaN differences fail
-- (the test is `not (diff <= bound)` rather than `diff > bound`);
-- opts.convert: numbers become one-element lists and a non-table `actual`
-- (a tensor) is flattened.
function h.assert_close_with(opts)
  local default_tol, relative, strict, convert = opts.tol, opts.relative, opts.strict, opts.convert
  local fmt = opts.format or "%.7g"
  local message = "element %d: expected " .. fmt .. ", got " .. fmt
  return function(expected, actual, tol)
    tol = tol or default_tol
    if convert then
      if type(expected) == "number" then expected = { expected } end
      if type(actual) == "number" then
        actual = { actual }
      elseif type(actual) ~= "table" then
        actual = h.flat(actual)
      end
    end
    assert.are.equal(#expected, #actual)
    for i = 1, #expected do
      local bound = relative and tol * (1 + math.abs(expected[i])) or tol
      local diff = math.abs(expected[i] - actual[i])
      local bad
      if strict then
        bad = not (diff <= bound)
      else
        bad = diff > bound
      end
      if bad then
        error(message:format(i, expected[i], actual[i]), 2)
      end
    end
  end
end

--- The keys of t, sorted.
function h.sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

--- max |a - b| over two tensors of the same size (math.huge if any is NaN).
function h.max_abs_diff(a, b)
  local x, y = h.flat(a), h.flat(b)
  assert(#x == #y, "sizes differ")
  local worst = 0
  for i = 1, #x do
    local d = math.abs(x[i] - y[i])
    if d ~= d then
      return math.huge
    end
    if d > worst then
      worst = d
    end
  end
  return worst
end

--- The tensors of group `group` ("in", "out", "grad") of oracle case
-- `name`, keyed by role: "<name>.<group>.<role>" -> role.
function h.gather(tensors, name, group)
  local prefix = name .. "." .. group .. "."
  local out = {}
  for key, t in pairs(tensors) do
    if key:sub(1, #prefix) == prefix then
      out[key:sub(#prefix + 1)] = t
    end
  end
  return out
end

--- Runs body(inputs, outputs, grads, opts, label, case) for each oracle
-- case of `cases` whose op is `op` (every case when op is nil): inputs,
-- outputs and grads are the case's "in", "out" and "grad" tensors (gather),
-- opts its options through parity.options(case.opts, drop), label its name
-- and JSON options. An error in body is recorded in rec.bad under the label
-- instead of raised. Returns the number of cases run.
function h.each_oracle_case(rec, tensors, cases, op, drop, body)
  local parity = require "oracle.parity"
  local cjson = require "cjson"
  local n = 0
  for _, case in ipairs(cases) do
    if op == nil or case.op == op then
      n = n + 1
      local inputs = h.gather(tensors, case.name, "in")
      local outputs = h.gather(tensors, case.name, "out")
      local grads = h.gather(tensors, case.name, "grad")
      local opts = parity.options(case.opts, drop)
      local label = ("%s %s"):format(case.name, cjson.encode(case.opts))
      local ok, err = pcall(body, inputs, outputs, grads, opts, label, case)
      if not ok then
        rec.bad[#rec.bad + 1] = label .. ": " .. tostring(err)
      end
    end
  end
  return n
end

--- Checks a distiller's oracle cases (op `name`): runner(inputs, opts)
-- returns the loss and the tensors whose gradients the case holds, by role;
-- the loss is compared within parity.FORWARD_TOL and each gradient within
-- parity.GRAD_TOL (a leaf the loss does not read has none, and the
-- oracle's must then be 0). Prints the worst errors and fails on any
-- case beyond them.
function h.check_distiller_parity(tensors, meta, name, runner)
  local parity = require "oracle.parity"
  local distill = require "distill"
  local rec = parity.recorder()
  local n = h.each_oracle_case(rec, tensors, meta.cases, name, nil, function(inputs, outputs, grads, opts, label)
    local loss, leaves = runner(inputs, opts)
    rec:check("loss", label .. " loss", loss:detach():view{ 1 }, outputs.loss, parity.FORWARD_TOL)
    loss:backward()
    for role, want in pairs(grads) do
      local t = leaves[role]
      if not t then
        error("no leaf for " .. role)
      end
      if not t.grad and want:abs():max():item() > 0 then
        error("no gradient reached " .. role)
      end
      local got = t.grad or distill.zeros(t:shape())
      rec:check("grad", label .. " grad " .. role, got:reshape(want:shape()), want, parity.GRAD_TOL)
    end
  end)
  assert.is_true(n > 0, "no oracle cases for " .. name)
  print(("\n  parity %-6s %2d cases, worst: %s"):format(name, n, rec:summary({ "loss", "grad" })))
  rec:assert_ok()
end

--- One training step's end for a single distiller d: loss:backward(),
-- d:after_backward() when d has one (CRD's bank update), opt:step().
function h.distiller_step(d, opt, loss)
  loss:backward()
  if d.after_backward then
    d:after_backward()
  end
  opt:step()
end

-- ------------------------------------------------------------ memory

--- Two full collections: the first runs the tensors' finalizers, the
-- second frees what those finalizers released.
function h.full_gc()
  collectgarbage()
  collectgarbage()
end

--- This process's resident set size in bytes (VmRSS of /proc/self/status).
function h.rss_bytes()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s*(%d+)%s*kB")
    if kb then return tonumber(kb) * 1024 end
  end
  error("no VmRSS in /proc/self/status")
end

--- The engine's live tensor bytes once garbage is collected (h.full_gc).
function h.settled_live_bytes()
  h.full_gc()
  return distill.core.live_bytes()
end

-- ------------------------------------------------------------ scratch files

--- A fresh empty directory under the system temp directory.
function h.tmpdir()
  local lfs = require "lfs"
  local path = os.tmpname()
  os.remove(path)
  assert(lfs.mkdir(path))
  return path
end

--- Metrics records without their timings (time, epoch_time,
-- images_per_s), for comparing runs; changes and returns the list.
function h.without_times(records)
  for _, r in ipairs(records) do
    r.time, r.epoch_time, r.images_per_s = nil, nil, nil
  end
  return records
end

--- Writes bytes to path (binary).
function h.write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

--- The whole content of path (binary).
function h.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- A file handle that keeps what is written in its `text` field (a
-- logger's `out`).
function h.capture()
  local out = { text = "" }
  function out:write(...)
    for _, s in ipairs({ ... }) do
      self.text = self.text .. tostring(s)
    end
    return self
  end
  function out.flush() end
  return out
end

-- ------------------------------------------------------------ subprocesses

--- s quoted for the shell.
function h.sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Starts `lua5.4 scripts/distill ARGS` (a list of words) as a child
-- process, idle OpenMP threads sleeping, its output going to `out`;
-- returns its process id.
function h.start_distill(args, out)
  local argv = { "lua5.4", "scripts/distill" }
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  return distill.core.process.spawn(argv, { output = out, env = { OMP_WAIT_POLICY = "passive" } })
end

--- Runs `distill ARGS` to its end; returns its exit code (nil when it was
-- killed or outlasted `seconds`, default 300) and its output.
function h.run_distill(args, seconds)
  local out = os.tmpname()
  local pid = h.start_distill(args, out)
  local _, how, code = distill.core.process.wait({ pid }, seconds or 300)
  local text = h.read(out)
  os.remove(out)
  return how == "exit" and code or nil, text
end

--- Runs a shell command; returns its output (stdout and stderr) and
-- whether it exited with 0.
function h.sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

--- The two values of a size given as a number or {h, w}; nil gives `default` twice.
function h.pair(v, default)
  if type(v) == "table" then
    return v[1], v[2]
  end
  if v == nil then
    return default, default
  end
  return v, v
end

--- Naive reference conv2d in double precision over flat Lua tables (PyTorch
-- semantics): returns the output values in row-major order and its shape.
function h.ref_conv2d(x, w, b, o)
  o = o or {}
  local N, C, H, W = table.unpack(x:shape())
  local O, Cg, kh, kw = table.unpack(w:shape())
  local sh, sw = h.pair(o.stride, 1)
  local ph, pw = h.pair(o.padding, 0)
  local dh, dw = h.pair(o.dilation, 1)
  local groups = o.groups or 1
  local Og = O // groups
  local OH = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
  local OW = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
  local xv, wv, bv = h.flat(x), h.flat(w), b and h.flat(b)
  local out = {}
  for n = 0, N - 1 do
    for oc = 0, O - 1 do
      local g = oc // Og
      for oh = 0, OH - 1 do
        for ow = 0, OW - 1 do
          local s = bv and bv[oc + 1] or 0
          for c = 0, Cg - 1 do
            local ic = g * Cg + c
            for i = 0, kh - 1 do
              local ih = oh * sh - ph + i * dh
              if ih >= 0 and ih < H then
                for j = 0, kw - 1 do
                  local iw = ow * sw - pw + j * dw
                  if iw >= 0 and iw < W then
                    s = s + xv[((n * C + ic) * H + ih) * W + iw + 1]
                      * wv[((oc * Cg + c) * kh + i) * kw + j + 1]
                  end
                end
              end
            end
          end
          out[#out + 1] = s
        end
      end
    end
  end
  return out, { N, O, OH, OW }
end

--- The kernel sets (distill.isa names) this CPU and build run, generic
-- first.
function h.isas()
  return distill.cpu_info().isas
end

--- Runs fn() with the kernel set `isa` in use and restores the one before,
-- also when fn raises; returns fn's results.
function h.with_isa(isa, fn)
  local before = distill.set_isa(isa)
  local results = table.pack(pcall(fn))
  distill.set_isa(before)
  if not results[1] then
    error(results[2], 0)
  end
  return table.unpack(results, 2, results.n)
end

-- What every thread-count script starts with: the checkout's modules and
-- build, and fingerprint(t), a string of t's values (a weighted sum of every
-- 7th element, printed exactly) for comparing bits across runs.
local THREAD_PRELUDE = [[
package.path = "./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("DISTILL_BUILD") or "./build") .. "/?.so;" .. package.cpath
local function fingerprint(t)
  local v = t:contiguous():view{ -1 }
  local sum = 0
  for i = 1, v:numel(), 7 do sum = sum + v[i] * i end
  return string.format("%a", sum)
end
]]

--- Runs a Lua script (after THREAD_PRELUDE) in a fresh lua5.4 with
-- OMP_NUM_THREADS=threads and returns what it printed (thread-count
-- determinism checks).
function h.run_lua_with_threads(script, threads)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(THREAD_PRELUDE, script)
  f:close()
  local p = assert(io.popen("OMP_NUM_THREADS=" .. threads .. " lua5.4 " .. path))
  local result = p:read("a")
  p:close()
  os.remove(path)
  return result
end

--- A describe block "determinism across thread counts" with one test,
-- `title`: h.assert_same_across_threads(script, counts).
function h.describe_thread_determinism(title, counts, script)
  local busted = require "busted"
  busted.describe("determinism across thread counts", function()
    busted.it(title, function()
      h.assert_same_across_threads(script, counts)
    end)
  end)
end

--- Asserts that `script` prints the same non-empty text with each thread
-- count in `counts` (the first is the reference).
function h.assert_same_across_threads(script, counts)
  local first = h.run_lua_with_threads(script, counts[1])
  assert(first:match("%x"), "subprocess printed nothing: " .. first)
  for i = 2, #counts do
    assert(h.run_lua_with_threads(script, counts[i]) == first,
      ("output with %d threads differs from %d threads"):format(counts[i], counts[1]))
  end
end

return h

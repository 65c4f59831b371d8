-- Shared helpers of the PyTorch parity specs (spec/parity_*_spec.lua).
--
-- The oracle (spec/oracle/oracle.py) runs under Debian's python3-torch
-- (/usr/bin/python3) and writes safetensors files into a temporary
-- directory; the specs load them and compare with
--   rel(a, b) = max|a - b| / max(max|b|, 1e-12)      (b = PyTorch's tensor)
-- per tensor: 1e-4 for forward values, 1e-3 for gradients.
local distill = require "distill"
local checkpoint = require "distill.checkpoint"
local cjson = require("cjson").new()
-- describe/pending are globals of the spec files only, not of modules they load
local busted = require "busted"

local parity = {}

parity.PYTHON = os.getenv("DISTILL_PYTHON") or "/usr/bin/python3"
parity.FORWARD_TOL = 1e-4
parity.GRAD_TOL = 1e-3
-- Forward values through the default convolution algorithm (Winograd for
-- 3x3 stride-1 layers): its per-layer error (~3e-6) adds up with depth;
-- ResNet110's last-stage features reach 1.1e-4.
parity.WINOGRAD_FORWARD_TOL = 3e-4
parity.SKIP_MESSAGE = "python3-torch not installed: parity specs skipped"

local available
--- true when `/usr/bin/python3 -c "import torch"` works
function parity.torch_available()
  if available == nil then
    available = os.execute(parity.PYTHON .. ' -c "import torch" >/dev/null 2>&1') == true
  end
  return available
end

--- When PyTorch is missing, registers the suite `title` as pending and
-- returns true: the spec file then returns before defining its tests.
function parity.skip_without_torch(title)
  if parity.torch_available() then
    return false
  end
  busted.describe(title, function()
    busted.pending(parity.SKIP_MESSAGE)
  end)
  return true
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
parity.quote = quote

--- Runs a command; raises an error with its output when it fails.
-- Returns the output.
function parity.run(cmd)
  local pipe = io.popen(cmd .. " 2>&1", "r")
  local out = pipe:read("a")
  local ok, _, code = pipe:close()
  if not ok then
    error(("command failed (%s): %s\n%s"):format(tostring(code), cmd, out), 2)
  end
  return out
end

--- Runs the Python script at `script` with the given arguments (quoted).
function parity.python(script, ...)
  local args = {}
  for i, a in ipairs({ ... }) do
    args[i] = quote(a)
  end
  return parity.run(parity.PYTHON .. " " .. quote(script) .. " " .. table.concat(args, " "))
end

--- Runs spec/oracle/oracle.py with the given arguments.
function parity.oracle(...)
  return parity.python("spec/oracle/oracle.py", ...)
end

local dirs = {}
--- A fresh temporary directory (removed by parity.cleanup()).
function parity.tmpdir()
  local path = os.tmpname()
  os.remove(path)
  parity.run("mkdir -p " .. quote(path))
  dirs[#dirs + 1] = path
  return path
end

function parity.cleanup()
  for _, d in ipairs(dirs) do
    os.execute("rm -rf " .. quote(d))
  end
  dirs = {}
end

--- tensors, metadata (with "cases" decoded when present)
function parity.load(path)
  local tensors, meta = checkpoint.load_tensors(path)
  meta = meta or {}
  if meta.cases then
    meta.cases = cjson.decode(meta.cases)
  end
  return tensors, meta
end

--- Runs oracle.py's `subcommand` into a fresh directory (parity.tmpdir)
-- and loads the <subcommand>.safetensors it writes: tensors, metadata, the
-- directory.
function parity.oracle_tensors(subcommand)
  local dir = parity.tmpdir()
  parity.oracle(subcommand, dir)
  local tensors, meta = parity.load(dir .. "/" .. subcommand .. ".safetensors")
  return tensors, meta, dir
end

--- JSON numbers come back as floats: make whole numbers integers.
function parity.options(opts, drop)
  local out = {}
  for k, v in pairs(opts) do
    if not (drop and drop[k]) then
      if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 2 ^ 53 then
        v = math.tointeger(v)
      end
      if type(v) == "table" then
        v = parity.options(v)
      end
      out[k] = v
    end
  end
  return out
end

local function shape_string(t)
  return "{" .. table.concat(t:shape(), ", ") .. "}"
end

--- rel(a, b) as above; a, b tensors of the same shape (else an error)
function parity.rel(a, b, what)
  if table.concat(a:shape(), ",") ~= table.concat(b:shape(), ",") then
    error(("%s: shape %s, PyTorch %s"):format(what or "tensor", shape_string(a), shape_string(b)), 2)
  end
  return distill.no_grad(function()
    a, b = a:float(), b:float()
    local diff = (a - b):abs():max():item()
    local scale = b:abs():max():item()
    if diff ~= diff then
      return math.huge
    end
    return diff / math.max(scale, 1e-12)
  end)
end

--- A collector of errors: rec:check(name, ours, theirs, tol) records the
-- error, and rec:failures() lists those above tolerance.
function parity.recorder()
  local rec = { worst = {}, bad = {}, count = 0 }
  function rec:check(kind, name, ours, theirs, tol)
    local ok, err = pcall(parity.rel, ours, theirs, name)
    self.count = self.count + 1
    if not ok then
      self.bad[#self.bad + 1] = tostring(err)
      return
    end
    local w = self.worst[kind]
    if not w or err > w.err then
      self.worst[kind] = { err = err, name = name }
    end
    if not (err <= tol) then
      self.bad[#self.bad + 1] = ("%s: rel error %.3g > %g"):format(name, err, tol)
    end
  end
  --- checks the gradient of every role in `grads` (PyTorch's) against
  -- leaves[role].grad; a role no gradient reached is an error
  function rec:check_grads(label, grads, leaves)
    for role, want in pairs(grads) do
      local t = leaves[role]
      if not (t and t.grad) then
        error(label .. ": no gradient reached " .. role, 2)
      end
      self:check("grad", label .. " grad " .. role, t.grad, want, parity.GRAD_TOL)
    end
  end
  --- records a value for the worst-case summary without checking it
  function rec:note(kind, name, err)
    local w = self.worst[kind]
    if not w or err > w.err then
      self.worst[kind] = { err = err, name = name }
    end
  end
  function rec:summary(kinds)
    local parts = {}
    for _, kind in ipairs(kinds) do
      local w = self.worst[kind]
      parts[#parts + 1] = w and ("%s %.2e (%s)"):format(kind, w.err, w.name) or (kind .. " -")
    end
    return table.concat(parts, "; ")
  end
  function rec:assert_ok()
    if #self.bad > 0 then
      error(("%d of %d comparisons failed:\n  %s"):format(#self.bad, self.count,
        table.concat(self.bad, "\n  ", 1, math.min(#self.bad, 40))), 2)
    end
  end
  return rec
end

return parity

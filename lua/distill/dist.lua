-- distill.dist: data-parallel training over MPI (Open MPI), in the manner of
-- PyTorch's DistributedDataParallel and Horovod.
--
--   mpirun -np 4 distill distill CONFIG          -- or srun -n 4 distill ...
--
--   local dist = require "distill.dist"
--   dist.init()                       -- starts MPI when an MPI launcher started us
--   dist.rank(), dist.size()          -- 1..size; 1 and 1 without a launcher
--   dist.all_reduce(t, {op = "mean"}) -- in place, over every rank
--   dist.broadcast(t)                 -- rank 1's values everywhere
--   dist.all_gather(t)                -- every rank's rows, on the tape
--   local ddp = dist.DistributedDataParallel(params, {bucket_mb = 25})
--   ddp:backward(loss)                -- backward, gradients averaged over ranks,
--                                     -- buckets summed while backward goes on
--
-- Every collective must be called by every rank, in the same order. A build
-- without MPI, or a process not started by a launcher, is rank 1 of 1 and
-- every collective is the identity.
local core = require "distill.core"

local dist = {}

local function fail(fn, fmt, ...)
  error(("distill.dist.%s: " .. fmt):format(fn, ...), 3)
end

--- Whether this build has MPI: true, or false and the reason.
function dist.available()
  return core.dist_available()
end

--- Whether an MPI launcher (mpirun, srun) started this process.
function dist.launched()
  return core.dist_launched()
end

--- Starts MPI when an MPI launcher started this process (or when forced with
-- {force = true}); does nothing otherwise, and nothing the second time.
-- Returns whether the process now runs distributed.
function dist.init(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    fail("init", "expected an options table, got %s", type(opts))
  end
  if not (opts.force or core.dist_launched()) then
    return false
  end
  local ok, why = core.dist_available()
  if not ok then
    error("distill.dist.init: started by an MPI launcher, but " .. why, 0)
  end
  core.dist_init()
  return true
end

function dist.rank() return core.dist_rank() end
function dist.size() return core.dist_size() end
--- Whether this rank is the one that prints, logs and writes files (rank 1).
function dist.is_main() return core.dist_rank() == 1 end
function dist.barrier() core.dist_barrier() end

--- Kills every rank with the exit status (default 1): the way out of an
-- error on one rank, so the others do not wait for it in a collective.
function dist.abort(code)
  core.dist_abort(code or 1)
end

--- t <- the sum (op = "sum", the default) or mean (op = "mean") of t over
-- the ranks, in place; returns t.
function dist.all_reduce(t, opts)
  local op = opts and opts.op or "sum"
  if op ~= "sum" and op ~= "mean" then
    fail("all_reduce", "op must be \"sum\" or \"mean\", got %s", tostring(op))
  end
  core.dist_all_reduce_(t)
  if op == "mean" and core.dist_size() > 1 then
    t:div_(core.dist_size())
  end
  return t
end

--- t <- rank root's t (default 1), in place; returns t.
function dist.broadcast(t, root)
  return core.dist_broadcast_(t, root or 1)
end

--- Every rank's t concatenated along dim 1, in rank order; differentiable
-- (the gradient of the result is summed over the ranks and each rank gets
-- back its own rows).
function dist.all_gather(t)
  return core.dist_all_gather(t)
end

--- A list of numbers summed over the ranks (in double).
function dist.sum_numbers(list)
  return core.dist_sum_numbers(list)
end

-- The tensors of a state (a state_dict, or nested tables of them, such as
-- an objective's), in an order every rank agrees on: sorted key paths.
local function state_tensors(state, prefix, out)
  local keys = {}
  for key in pairs(state) do
    keys[#keys + 1] = key
  end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, key in ipairs(keys) do
    local value, path = state[key], prefix .. tostring(key)
    if type(value) == "table" then
      state_tensors(value, path .. ".", out)
    elseif core.is_tensor(value) then
      out[#out + 1] = value
    end
  end
  return out
end

--- Rank 1's values of the parameters and buffers of a module (anything with
-- a state_dict(): a model, a distiller objective) on every rank, as
-- DistributedDataParallel does at start and after a resume.
function dist.broadcast_module(module)
  if type(module) ~= "table" or type(module.state_dict) ~= "function" then
    fail("broadcast_module", "expected a module (with state_dict), got %s", type(module))
  end
  if core.dist_size() == 1 then return end
  for _, t in ipairs(state_tensors(module:state_dict(), "", {})) do
    core.dist_broadcast_(t, 1)
  end
end

--- Refuses to go on unless every rank passes the same string (a config, a
-- hash of the code): an error on every rank naming the ranks that differ.
function dist.check_same(text, what)
  if type(text) ~= "string" then
    fail("check_same", "expected a string, got %s", type(text))
  end
  if core.dist_size() == 1 then return end
  local distill = require "distill"
  local hashes = core.dist_all_gather(distill.tensor({ core.dist_hash(text) }, "int64"))
  local first = hashes[1]
  for r = 2, core.dist_size() do
    if hashes[r] ~= first then
      error(("distill.dist: rank %d was started with another %s than rank 1 (every rank must "
        .. "run the same %s)"):format(r, what or "value", what or "value"), 0)
    end
  end
end

--- A fingerprint of the code this process runs: the version and the text
-- of every loaded distill Lua module (by module name, so that checkouts in
-- different folders agree), for check_same(fingerprint, "code").
function dist.code_fingerprint()
  local names = {}
  for name in pairs(package.loaded) do
    if type(name) == "string" and name:match("^distill") then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  local parts = { require("distill").version }
  for _, name in ipairs(names) do
    -- every Lua file a module's functions come from (sorted: table order
    -- differs from process to process)
    local sources, list = {}, {}
    local module = package.loaded[name]
    for _, value in pairs(type(module) == "table" and module or {}) do
      local s = type(value) == "function" and debug.getinfo(value, "S").source or ""
      if s:sub(1, 1) == "@" and not sources[s] then
        sources[s] = true
        list[#list + 1] = s:sub(2)
      end
    end
    table.sort(list)
    for _, path in ipairs(list) do
      local f = io.open(path, "rb")
      if f then
        parts[#parts + 1] = name .. "=" .. tostring(core.dist_hash(f:read("a")))
        f:close()
      end
    end
  end
  return table.concat(parts, "\n")
end

--- Ends a distributed run from one rank's error: prints "distill: rank R
-- of N: message" and ends every rank with exit status `code` (default 1;
-- 130 for a Ctrl-C), so that no rank waits for this one in a collective.
-- Alone (one rank) it raises the error instead.
function dist.fail_all(message, code)
  message = tostring(message):gsub("^distill: ", "")
  code = math.tointeger(code) or 1
  if core.dist_size() == 1 then
    error(message, 0)
  end
  io.stdout:flush()
  io.stderr:write(("distill: rank %d of %d: %s\n"):format(core.dist_rank(), core.dist_size(), message))
  io.stderr:flush()
  core.dist_abort(code)
end

--- Runs fn(...) and returns its results; in a distributed run an error
-- ends every rank (dist.fail_all) instead of leaving them waiting.
function dist.run_or_abort(fn, ...)
  if core.dist_size() == 1 then
    return fn(...)
  end
  local results = table.pack(xpcall(fn, function(e) return e end, ...))
  if not results[1] then
    local stopped = require("distill.interrupt").is_stopped(results[2])
    dist.fail_all(tostring(results[2]), stopped and 130 or 1)
  end
  return table.unpack(results, 2, results.n)
end

--- Gradient averaging over the ranks for `params` (a list of leaf tensors):
-- obj:backward(loss) runs backward and leaves in each .grad the mean over
-- the ranks; buckets of about bucket_mb MB (default 25, as PyTorch) start
-- their sum as soon as their gradients are final.
function dist.DistributedDataParallel(params, opts)
  if type(params) ~= "table" then
    fail("DistributedDataParallel", "expected a list of parameters, got %s", type(params))
  end
  return core.dist_ddp(params, opts)
end

--- The positions [first, last] (1-based, inclusive) of this rank's share of
-- a batch of n samples: n split as evenly as possible, the first n % size
-- ranks taking one more. first > last when the share is empty.
function dist.share(n, rank, size)
  rank, size = rank or core.dist_rank(), size or core.dist_size()
  local base, extra = n // size, n % size
  local first = (rank - 1) * base + math.min(rank - 1, extra) + 1
  local count = base + (rank <= extra and 1 or 0)
  return first, first + count - 1
end

return dist

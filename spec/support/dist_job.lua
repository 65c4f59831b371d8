-- Jobs that spec/dist_spec.lua runs on several ranks:
--   mpirun -np 2 scripts/distill spec/support/dist_job.lua JOB OUT [ARGS]
-- Each rank writes what it saw to OUT.<rank> as Lua source (a table), for
-- the spec to compare; `distill` has started MPI (dist.init) before this runs.
local distill = require "distill"
local dist = require "distill.dist"

local job, out = arg[1], arg[2]
local rank, size = dist.rank(), dist.size()
local value = rank + 0.0   -- float tensors from it

local function list(t)
  return t:contiguous():view{ -1 }:totable()
end

local function write(result)
  local parts = {}
  local function dump(v)
    if type(v) == "table" then
      local items = {}
      for k, x in pairs(v) do
        items[#items + 1] = ("[%s] = %s"):format(type(k) == "string" and ("%q"):format(k) or k, dump(x))
      end
      return "{" .. table.concat(items, ", ") .. "}"
    elseif type(v) == "number" then
      return ("%.17g"):format(v)
    end
    return ("%q"):format(v)
  end
  parts[1] = "return " .. dump(result)
  local f = assert(io.open(("%s.%d"):format(out, rank), "w"))
  f:write(parts[1], "\n")
  f:close()
end

local jobs = {}

-- The collectives and DDP on known values.
function jobs.collectives()
  local r = {}
  r.rank, r.size = rank, size
  r.sum = list(dist.all_reduce(distill.tensor{ value, 10 * value }))
  r.mean = list(dist.all_reduce(distill.tensor{ value, 10 * value }, { op = "mean" }))
  r.broadcast = list(dist.broadcast(distill.tensor{ value, value }))
  r.broadcast_2 = list(dist.broadcast(distill.tensor{ value }, 2))
  r.sum_numbers = dist.sum_numbers{ value, 0.5 }
  -- rank r contributes r rows of value r; the gathered rows are in rank order
  local x = distill.full({ rank, 2 }, value)
  x.requires_grad = true
  local gathered = dist.all_gather(x)
  r.gathered = list(gathered)
  -- every rank's loss weighs the gathered rows by their position: each rank
  -- gets the sum over the ranks of its rows' weights
  local weights = distill.arange(1, gathered:size(1) + 1):float():view{ -1, 1 }:expand{ gathered:size(1), 2 }
  ;(gathered * weights):sum():backward()
  r.gather_grad = list(x.grad)
  -- DDP: the gradient of w is the mean over the ranks of each rank's
  -- gradient; rank r's gradient of sum(w * x_r) is x_r = r
  local w = distill.zeros{ 3, 5 }
  w.requires_grad = true
  local v = distill.zeros{ 7 }
  v.requires_grad = true
  local ddp = dist.DistributedDataParallel({ w, v }, { bucket_mb = 0.00001 })
  ddp:backward((w * value):sum() + (v * (2 * value)):sum())
  r.ddp_w, r.ddp_v = list(w.grad), list(v.grad)
  local stats = ddp:stats()
  r.buckets, r.floats, r.calls = stats.buckets, stats.floats, stats.calls
  r.timed = stats.backward_seconds >= stats.wait_seconds and stats.wait_seconds >= 0
  r.code = dist.code_fingerprint()
  write(r)
end

-- A distillation run on every rank (trainer.run), then the CRD banks of
-- each rank, for the spec to check they are the same everywhere.
function jobs.crd_banks()
  local trainer = require "distill.trainer"
  local _, run = trainer.run{ mode = "distill", config_path = arg[3], overrides = { table.unpack(arg, 4) },
    progress = "none", overwrite = true }
  local crd
  for _, term in ipairs(run.objective.terms) do
    if term.name == "crd" then
      crd = term.distiller
    end
  end
  write{ memory_student = list(crd.memory_student), memory_teacher = list(crd.memory_teacher),
         embed_s = list(crd.embed_s.weight) }
end

-- Waits in collectives until killed (the spec kills one rank).
function jobs.wait_forever()
  local f = assert(io.open(("%s.%d.pid"):format(out, rank), "w"))
  local stat = assert(io.open("/proc/self/stat"))
  f:write(tostring(stat:read("n")), "\n")
  stat:close()
  f:close()
  local t = distill.ones{ 4 }
  while true do
    dist.all_reduce(t)
    t:fill_(1)
    os.execute("sleep 0.05")
  end
end

-- Rank 2 raises an error in the middle of the work; rank 1 goes on to a
-- collective that rank 2 never reaches.
function jobs.fail_on_rank_2()
  dist.barrier()
  if rank == 2 then
    error("dist_job: a deliberate failure on rank 2")
  end
  dist.all_reduce(distill.ones{ 4 })
  dist.barrier()
  write{ finished = true }
end

local fn = jobs[job]
if not fn then
  error(("dist_job: unknown job '%s'"):format(tostring(job)))
end
fn()

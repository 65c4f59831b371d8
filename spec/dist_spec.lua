-- Data-parallel training over MPI (distill.dist, docs/distributed.md): the
-- single-process side here, and real 2-rank runs with mpirun (as CI runs
-- as root on 2 cores: --allow-run-as-root --oversubscribe). A 2-rank run
-- with SyncBN must repeat the 1-process run of the same global batch.
local distill = require "distill"
local dist = require "distill.dist"
local nn = require "distill.nn"
local checkpoint = require "distill.checkpoint"
local log = require "distill.log"
local h = require "support.helpers"

local sh_quote = h.sh_quote
local DISTILL = "scripts/distill"
local JOB = "spec/support/dist_job.lua"

local function mpirun_found()
  local _, ok = h.sh("command -v mpirun")
  return ok
end

-- `mpirun -np ranks` of a distill command line; one thread per rank.
local function mpirun(ranks, args, timeout)
  return h.sh(("OMP_NUM_THREADS=1 timeout %d mpirun --allow-run-as-root --oversubscribe -np %d %s")
    :format(timeout or 120, ranks, args))
end

local function read_result(path)
  return assert(loadfile(path))()
end

-- max |a - b| / max(max |b|, 1e-12) over every float tensor of two states
local function max_rel_diff(a, b, name, worst)
  worst = worst or { value = 0, name = "" }
  for k, v in pairs(a) do
    local path = name .. "." .. tostring(k)
    if type(v) == "table" then
      max_rel_diff(v, b[k], path, worst)
    elseif distill.is_tensor(v) and v:dtype() == "float32" then
      assert(b[k], "missing " .. path)
      local scale = math.max(b[k]:abs():max():item(), 1e-12)
      local d = (v - b[k]):abs():max():item() / scale
      if d > worst.value then
        worst.value, worst.name = d, path
      end
    end
  end
  return worst
end

describe("distill.dist alone (no launcher)", function()
  it("is rank 1 of 1 and every collective is the identity", function()
    assert.is_false(dist.init())
    assert.are.equal(1, dist.rank())
    assert.are.equal(1, dist.size())
    assert.is_true(dist.is_main())
    local t = h.f32{ 1, 2, 3 }
    assert.are.equal(t, dist.all_reduce(t, { op = "mean" }))
    assert.are.same({ 1, 2, 3 }, h.flat(dist.broadcast(t)))
    assert.are.same({ 1, 2, 3 }, h.flat(dist.all_gather(t)))
    assert.are.same({ 2.5, 1 }, dist.sum_numbers{ 2.5, 1 })
    dist.check_same("anything", "config")
    dist.broadcast_module(nn.Linear(2, 2))
    dist.barrier()
    -- gradient averaging alone is plain backward, timed
    local w = h.leaf{ 3 }
    local ddp = dist.DistributedDataParallel({ w })
    ddp:backward((w * 2):sum())
    assert.are.same({ 2, 2, 2 }, h.flat(w.grad))
    local stats = ddp:stats()
    assert.are.equal(1, stats.calls)
    assert.are.equal(3, stats.floats)
    assert.is_true(stats.backward_seconds >= 0 and stats.wait_seconds == 0)
  end)

  it("says whether this build has MPI, and why not", function()
    local available, why = dist.available()
    assert.is_boolean(available)
    if not available then
      assert.is_string(why)
    end
  end)

  it("splits a batch as the loader does", function()
    assert.are.same({ 1, 4 }, { dist.share(7, 1, 2) })
    assert.are.same({ 5, 7 }, { dist.share(7, 2, 2) })
    assert.are.same({ 2, 1 }, { dist.share(1, 3, 3) })   -- an empty share: first > last
  end)

  it("checks its arguments", function()
    h.fails("distill.dist.all_reduce: op must be", function() dist.all_reduce(h.f32{ 1 }, { op = "max" }) end)
    h.fails("distill.dist.check_same: expected a string", function() dist.check_same(3) end)
    h.fails("distill.dist.broadcast_module: expected a module", function() dist.broadcast_module(3) end)
    h.fails("distill.dist.init: expected an options table", function() dist.init(3) end)
    h.fails("distill.dist.DistributedDataParallel: expected a list", function()
      dist.DistributedDataParallel(3)
    end)
  end)

  it("fingerprints the loaded distill code by module", function()
    local a = dist.code_fingerprint()
    assert.are.equal(a, dist.code_fingerprint())
    assert.truthy(a:find("distill.dist=", 1, true), a)
  end)

  it("runs a function, and alone lets its error through", function()
    assert.are.same({ 1, 2 }, { dist.run_or_abort(function(x) return x, 2 end, 1) })
    h.fails("boom", function() dist.run_or_abort(function() error("boom", 0) end) end)
    local ok, message = pcall(dist.fail_all, "distill: boom")
    assert.is_false(ok)
    assert.are.equal("boom", message)
  end)
end)

describe("nn.convert_sync_batchnorm", function()
  it("marks every batch norm, and alone computes what a plain one does", function()
    distill.manual_seed(3)
    local model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
      nn.Linear(4 * 4 * 4, 3), nn.BatchNorm1d(3))
    local x = distill.randn{ 5, 2, 6, 6 }
    local plain = model(x)
    local plain_mean = model[2].running_mean:clone()
    assert.are.equal(model, nn.convert_sync_batchnorm(model))
    assert.is_true(model[2].sync and model[6].sync)
    assert.truthy(tostring(model):find("sync=true", 1, true))
    local synced = model(x)
    assert.are.same(h.flat(plain), h.flat(synced))
    -- the running statistics moved once more, by the same batch
    assert.is_true(h.max_abs_diff(model[2].running_mean, plain_mean) > 0)
    nn.convert_sync_batchnorm(model, false)
    assert.is_false(model[2].sync)
    h.fails("nn.convert_sync_batchnorm: expected a module", function() nn.convert_sync_batchnorm(3) end)
    h.fails("nn.convert_sync_batchnorm: sync must be true or false", function()
      nn.convert_sync_batchnorm(model, 1)
    end)
  end)
end)

describe("loader shares", function()
  local data_loader = require "distill.data.loader"
  local dataset = require "distill.data.dataset"

  -- 11 samples whose pixel values are their position
  local function numbered()
    local images = distill.arange(0, 11):view{ 11, 1, 1, 1 }:expand{ 11, 1, 2, 2 }:contiguous():to("uint8")
    return dataset.in_memory("numbered", images, distill.arange(1, 12), nil)
  end
  local T = require "distill.data.transforms"
  local tf = T.compose{ T.to_float }

  local function batches(loader, e)
    local list = {}
    for batch in loader:epoch(e) do
      list[#list + 1] = { index = h.flat(batch.index), first = h.flat(batch.input:select(2, 1):select(2, 1):select(2, 1)) }
    end
    return list
  end

  local function lua_dataset(ds)
    return setmetatable({}, { __len = function() return #ds end, __index = { get = function(_, i) return ds:get(i) end } })
  end

  for _, kind in ipairs { "C", "Lua" } do
    it(kind .. " datasets: the ranks' shares are exactly the whole batches", function()
      local ds = numbered()
      if kind == "Lua" then
        ds = lua_dataset(ds)
      end
      local opts = { batch_size = 4, shuffle = true, seed = 7, transform = tf }
      local whole = batches(data_loader(ds, opts), 2)
      local shares = {}
      for r = 1, 3 do
        local o = { shard = r, shards = 3 }
        for k, v in pairs(opts) do o[k] = v end
        local loader = data_loader(ds, o)
        -- the last batch (3 samples) still gives every rank one
        assert.are.equal(3, #loader)
        shares[r] = batches(loader, 2)
      end
      for b = 1, #whole do
        local joined, pixels = {}, {}
        for r = 1, 3 do
          for i, v in ipairs(shares[r][b].index) do
            joined[#joined + 1] = v
            pixels[#pixels + 1] = shares[r][b].first[i]
          end
        end
        assert.are.same(whole[b].index, joined)
        assert.are.same(whole[b].first, pixels)
      end
    end)

    it(kind .. " datasets: a last batch too small for every rank is dropped, or kept for evaluation", function()
      local ds = numbered()
      if kind == "Lua" then
        ds = lua_dataset(ds)
      end
      -- 11 = 2 x 5 + 1: the last batch has one sample for 2 ranks
      local function count(shard, keep)
        return #data_loader(ds, { batch_size = 5, shard = shard, shards = 2, keep_short = keep, transform = tf })
      end
      assert.are.equal(2, count(1, false))
      assert.are.equal(2, count(2, false))
      assert.are.equal(3, count(1, true))
      assert.are.equal(2, count(2, true))
      local seen = {}
      for r = 1, 2 do
        for _, b in ipairs(batches(data_loader(ds, { batch_size = 5, shard = r, shards = 2, keep_short = true,
          transform = tf }), 1)) do
          for _, i in ipairs(b.index) do seen[#seen + 1] = i end
        end
      end
      table.sort(seen)
      assert.are.equal(11, #seen)
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 }, seen)
    end)
  end

  it("refuses a share that cannot be", function()
    h.fails("loader: a batch of 2 cannot be shared by 3 processes", function()
      data_loader(numbered(), { batch_size = 2, shard = 1, shards = 3 })
    end)
    h.fails("loader: shard 4 of 3", function() data_loader(numbered(), { batch_size = 4, shard = 4, shards = 3 }) end)
  end)
end)

describe("data parallel over mpirun", function()
  local available = dist.available()
  if not available or not mpirun_found() then
    it("needs MPI (libopenmpi-dev, openmpi-bin)", function()
      pending("this build has no MPI or mpirun is missing")
    end)
    return
  end

  local tmp, config_path, teacher_path
  setup(function()
    tmp = h.tmpdir()
    -- tiny synthetic runs: 320 samples, batch 32: 10 steps per epoch, 2 epochs
    local source = [[
local config = require "distill.config"
return {
  name = "tiny",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  teacher = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 8, 8, 16 } },
              checkpoint = %q },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 320, synthetic_test_size = 100,
           synthetic_shape = { 1, 12, 12 } },
  methods = config.paper_methods(),
  method = "ce",
  optimizer = { lr = 0.05 },
  schedule = { milestones = { 2 } },
  epochs = 2, batch_size = 32, seed = 5, workers = 1, plot = false, progress = "none",
}
]]
    teacher_path = tmp .. "/teacher/last.safetensors"
    config_path = tmp .. "/tiny.lua"
    h.write(config_path, source:format(teacher_path))
    local out, ok = h.sh(("%s train %s --set run_dir=%s --set student.model.widths.2=8 "
      .. "--set student.model.widths.4=16 --set epochs=1"):format(DISTILL, config_path, tmp .. "/teacher"))
    assert(ok, out)
  end)
  teardown(function()
    os.execute("rm -rf " .. sh_quote(tmp))
  end)

  it("collectives and gradient buckets give every rank the right values", function()
    local out, ok = mpirun(2, ("%s %s collectives %s"):format(DISTILL, JOB, tmp .. "/coll"))
    assert.is_true(ok, out)
    local r1, r2 = read_result(tmp .. "/coll.1"), read_result(tmp .. "/coll.2")
    for _, r in ipairs { r1, r2 } do
      assert.are.equal(2, r.size)
      assert.are.same({ 3, 30 }, r.sum)
      assert.are.same({ 1.5, 15 }, r.mean)
      assert.are.same({ 1, 1 }, r.broadcast)
      assert.are.same({ 2 }, r.broadcast_2)
      assert.are.same({ 3, 1 }, r.sum_numbers)
      -- rank 1 gave one row of 1s, rank 2 two rows of 2s
      assert.are.same({ 1, 1, 2, 2, 2, 2 }, r.gathered)
      for _, g in ipairs(r.ddp_w) do assert.are.equal(1.5, g) end
      for _, g in ipairs(r.ddp_v) do assert.are.equal(3, g) end
      assert.is_true(r.buckets >= 2)
      assert.are.equal(22, r.floats)
      assert.are.equal(1, r.calls)
      assert.is_true(r.timed)
    end
    assert.are.same({ 1, 2 }, { r1.rank, r2.rank })
    -- the gathered rows' weights 1..3, summed over the 2 ranks, back to their owners
    assert.are.same({ 2, 2 }, r1.gather_grad)
    assert.are.same({ 4, 4, 6, 6 }, r2.gather_grad)
    assert.are.equal(r1.code, r2.code)
  end)

  for _, method in ipairs { "ce", "kd", "fsecd" } do
    it(method .. ": 2 ranks with SyncBN repeat the 1-process run of the same global batch", function()
      local one, two = tmp .. "/" .. method .. "-1", tmp .. "/" .. method .. "-2"
      local args = ("distill %s --set method=%s --set sync_bn=true --set run_dir=%%s"):format(config_path, method)
      local out, ok = h.sh(DISTILL .. " " .. args:format(one))
      assert.is_true(ok, out)
      out, ok = mpirun(2, DISTILL .. " " .. args:format(two))
      assert.is_true(ok, out)
      local a, b = checkpoint.load(one .. "/last.safetensors"), checkpoint.load(two .. "/last.safetensors")
      local worst = max_rel_diff(b.model, a.model, "model")
      max_rel_diff(b.objective, a.objective, "objective", worst)
      assert.is_true(worst.value < 1e-5, ("%s differs by %.3g"):format(worst.name, worst.value))
      assert.are.equal(2, b.meta.ranks)
      local ma, mb = log.read_metrics(one .. "/metrics.jsonl"), log.read_metrics(two .. "/metrics.jsonl")
      assert.are.equal(2, #mb)
      for e = 1, 2 do
        for _, key in ipairs { "train_loss", "train_" .. method, "test_loss" } do
          local rel = math.abs(ma[e][key] - mb[e][key]) / math.max(math.abs(ma[e][key]), 1e-12)
          assert.is_true(rel < 1e-5, ("epoch %d %s: %.9g vs %.9g"):format(e, key, ma[e][key], mb[e][key]))
        end
        assert.are.equal(ma[e].train_top1, mb[e].train_top1)
        assert.are.equal(ma[e].test_top1, mb[e].test_top1)
      end
      -- rank 1 alone wrote the one run directory
      assert.is_true(h.read(two .. "/run.json"):find('"ranks":2', 1, true) ~= nil)
    end)
  end

  it("crd: the memory banks stay identical on every rank", function()
    local out, ok = mpirun(2, ("%s %s crd_banks %s %s method=crd run_dir=%s"):format(DISTILL, JOB,
      tmp .. "/crd", config_path, tmp .. "/crd-run"))
    assert.is_true(ok, out)
    local r1, r2 = read_result(tmp .. "/crd.1"), read_result(tmp .. "/crd.2")
    assert.are.same(r1.memory_student, r2.memory_student)
    assert.are.same(r1.memory_teacher, r2.memory_teacher)
    assert.are.same(r1.embed_s, r2.embed_s)
  end)

  it("resumes on the same ranks as if never stopped", function()
    local whole, parts = tmp .. "/whole", tmp .. "/parts"
    local out, ok = mpirun(2, ("%s distill %s --set method=kd --set run_dir=%s"):format(DISTILL, config_path, whole))
    assert.is_true(ok, out)
    out, ok = mpirun(2, ("%s distill %s --set method=kd --set run_dir=%s --set epochs=1"):format(DISTILL,
      config_path, parts))
    assert.is_true(ok, out)
    out, ok = mpirun(2, ("%s distill --resume %s --set epochs=2 --progress lines"):format(DISTILL, parts))
    assert.is_true(ok, out)
    assert.truthy(out:find("resuming", 1, true), out)
    local worst = max_rel_diff(checkpoint.load(parts .. "/last.safetensors").model,
      checkpoint.load(whole .. "/last.safetensors").model, "model")
    assert.are.equal(0, worst.value, worst.name)
    -- on another number of ranks it goes on, and says what changes
    out, ok = h.sh(("%s distill --resume %s --set epochs=3 --progress lines"):format(DISTILL, parts))
    assert.is_true(ok, out)
    assert.truthy(out:find("this run ran on 2 rank(s) and now runs on 1", 1, true), out)
  end)

  it("evaluates a checkpoint with the work shared out", function()
    local ck = tmp .. "/teacher/last.safetensors"
    local cmd = ("%s eval %s --data synthetic --batch-size 7"):format(DISTILL, ck)
    local alone, ok = h.sh(cmd)
    assert.is_true(ok, alone)
    local shared
    shared, ok = mpirun(2, cmd)
    assert.is_true(ok, shared)
    local function figures(text)
      return text:match("%((%d+) images%): top%-1 ([%d.]+)%%  top%-5 ([%d.]+)%%  loss ([%d.]+)")
    end
    assert.are.same({ figures(alone) }, { figures(shared) })
    assert.are.equal(1, select(2, shared:gsub("top%-1", "")), "rank 1 alone prints")
  end)

  it("a rank that fails ends the run with its rank and message, not a hang", function()
    local t0 = distill.wallclock()
    local out, ok = mpirun(2, ("%s %s fail_on_rank_2 %s"):format(DISTILL, JOB, tmp .. "/fail"), 60)
    assert.is_false(ok)
    assert.is_true(distill.wallclock() - t0 < 30)
    assert.truthy(out:find("distill: rank 2 of 2: ", 1, true), out)
    assert.truthy(out:find("a deliberate failure on rank 2", 1, true), out)
  end)

  it("a rank that is killed ends the run within seconds", function()
    local prefix = tmp .. "/wait"
    local done = tmp .. "/wait.status"
    local t0 = distill.wallclock()
    os.execute(("(%s; echo $? > %s) > %s 2>&1 &"):format(
      ("OMP_NUM_THREADS=1 timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 %s %s wait_forever %s")
        :format(DISTILL, JOB, prefix), done, tmp .. "/wait.log"))
    local pid
    while not pid and distill.wallclock() - t0 < 60 do
      local f = io.open(prefix .. ".2.pid")
      pid = f and f:read("n")
      if f then f:close() end
      os.execute("sleep 0.1")
    end
    assert.is_number(pid)
    os.execute("kill -9 " .. pid)
    local killed_at = distill.wallclock()
    local status
    while not status and distill.wallclock() - killed_at < 60 do
      local f = io.open(done)
      status = f and f:read("n")
      if f then f:close() end
      os.execute("sleep 0.1")
    end
    assert.is_number(status, "mpirun still running a minute after a rank was killed")
    assert.are_not.equal(0, status)
    assert.are_not.equal(124, status, "ended by the spec's timeout, not by mpirun")
    assert.is_true(distill.wallclock() - killed_at < 20)
  end)

  it("ranks started with different configs are refused", function()
    local skew = tmp .. "/skew.lua"
    h.write(skew, ("local cfg = dofile(%q)\ncfg.optimizer.lr = os.getenv('OMPI_COMM_WORLD_RANK') == '1' and 0.1 "
      .. "or 0.05\nreturn cfg\n"):format(config_path))
    local out, ok = mpirun(2, ("%s train %s --set run_dir=%s"):format(DISTILL, skew, tmp .. "/skew"), 60)
    assert.is_false(ok)
    assert.truthy(out:find("rank 2 was started with another config than rank 1", 1, true), out)
    assert.is_nil(io.open(tmp .. "/skew/metrics.jsonl"))
  end)

  it("a global batch smaller than the ranks is refused with the reason", function()
    local out, ok = mpirun(2, ("%s train %s --set batch_size=1 --set run_dir=%s"):format(DISTILL, config_path,
      tmp .. "/small"), 60)
    assert.is_false(ok)
    assert.truthy(out:find("batch_size 1 is the global batch", 1, true), out)
  end)
end)

-- Resume: a run killed with kill -9 in the middle of its third epoch and
-- resumed with `distill train --resume RUN_DIR` gives the same per-epoch
-- losses and accuracies as the same run left alone.
local log = require "distill.log"
local json = require "distill.json"

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

local CONFIG = tmp .. "/resume_config.lua"
local f = assert(io.open(CONFIG, "w"))
f:write([[
return {
  name = "resume",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 640, synthetic_test_size = 64,
           synthetic_shape = { 1, 20, 20 } },   -- batches long enough to kill one mid-epoch
  optimizer = { lr = 0.05 },
  schedule = { milestones = { 2 } },          -- the lr changes across the interruption
  epochs = 3, batch_size = 16, seed = 11, workers = 2,
  plot = false, log_every = 40,                -- a progress line per batch
}
]])
f:close()

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function command(args)
  local build = os.getenv("DISTILL_BUILD")
  local env = "OMP_WAIT_POLICY=passive " .. (build and ("DISTILL_BUILD=" .. quote(build) .. " ") or "")
  return env .. "lua5.4 scripts/distill " .. args
end

local function read(path)
  local h = io.open(path, "r")
  if not h then
    return ""
  end
  local text = h:read("a")
  h:close()
  return text
end

local function comparable(records)
  for _, r in ipairs(records) do
    r.time, r.epoch_time, r.images_per_s = nil, nil, nil
  end
  return records
end

describe("resume", function()
  it("continues a run killed by kill -9 mid-epoch with identical metrics", function()
    local full, killed = tmp .. "/full", tmp .. "/killed"
    -- the uninterrupted run
    assert.is_true(os.execute(command("train " .. quote(CONFIG) .. " --quiet --set run_dir=" .. quote(full))))

    -- the same run, killed in the middle of epoch 3: its output is read as it comes
    -- (a pipe, not a polled file), so the kill lands within the epoch even on a busy machine
    local pipe = io.popen("sh -c 'echo $$; exec env \"$@\"' sh " .. command("train " .. quote(CONFIG)
      .. " --progress lines --set run_dir=" .. quote(killed)) .. " 2>&1")
    local pid = pipe:read("l")
    assert.truthy(pid and pid:match("^%d+$"), pid)
    local output = {}
    for line in pipe:lines() do
      output[#output + 1] = line
      if line:find("epoch 3/3 batch 5/", 1, true) then
        os.execute("kill -9 " .. pid)
        break
      end
    end
    output[#output + 1] = pipe:read("a")
    pipe:close()
    local out_text = table.concat(output, "\n")
    local partial = log.read_metrics(killed .. "/metrics.jsonl")
    assert.are.equal(2, #partial, "killed after epoch 2 and before the end of epoch 3")
    assert.falsy(out_text:find("done:", 1, true), out_text)

    -- resume and compare
    assert.is_true(os.execute(command("train --resume " .. quote(killed) .. " --quiet")))
    local a = comparable(log.read_metrics(full .. "/metrics.jsonl"))
    local b = comparable(log.read_metrics(killed .. "/metrics.jsonl"))
    assert.are.equal(3, #a)
    assert.are.same(a, b)
    local sa = json.decode(read(full .. "/summary.json"))
    local sb = json.decode(read(killed .. "/summary.json"))
    assert.are.equal(sa.best_top1, sb.best_top1)
    assert.are.equal(sa.last_top1, sb.last_top1)
    -- the csv was rewritten without the lost partial epoch
    local lines = 0
    for _ in read(killed .. "/metrics.csv"):gmatch("\n") do
      lines = lines + 1
    end
    assert.are.equal(4, lines)
  end)

  it("resumes a finished run as a no-op and rejects a non-run directory", function()
    local ok = os.execute(command("train --resume " .. quote(tmp .. "/full") .. " --quiet"))
    assert.is_true(ok)
    local _, _, code = os.execute(command("train --resume " .. quote(tmp) .. " --quiet 2>/dev/null"))
    assert.are.equal(1, code)
  end)
end)

-- Resume: a run killed with kill -9 in the middle of its third epoch and
-- resumed with `distill train --resume RUN_DIR` gives the same per-epoch
-- losses and accuracies as the same run left alone.
local log = require "distill.log"
local json = require "distill.json"
local h = require "support.helpers"

local tmp = h.tmpdir()
local quote = h.sh_quote

local CONFIG = tmp .. "/resume_config.lua"
h.write(CONFIG, [[
return {
  name = "resume",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 640, synthetic_test_size = 64,
           synthetic_shape = { 1, 20, 20 } },   -- batches long enough to kill one mid-epoch
  optimizer = { lr = 0.05 },
  schedule = { milestones = { 2 } },          -- the lr changes across the interruption
  epochs = 3, batch_size = 16, seed = 11, workers = 2,
  plot = false, log_every = 40,                -- a progress line per batch
  log_steps = 7,                               -- step records on both sides of the kill
}
]])

local function command(args)
  local build = os.getenv("DISTILL_BUILD")
  local env = "OMP_WAIT_POLICY=passive " .. (build and ("DISTILL_BUILD=" .. quote(build) .. " ") or "")
  return env .. "lua5.4 scripts/distill " .. args
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
    local a = h.without_times(log.read_metrics(full .. "/metrics.jsonl"))
    local b = h.without_times(log.read_metrics(killed .. "/metrics.jsonl"))
    assert.are.equal(3, #a)
    assert.are.same(a, b)
    -- the step records of the killed epoch are dropped and written again, once
    local steps_a = h.without_times(log.read_metrics(full .. "/steps.jsonl"))
    assert.are.equal(3 * 40 // 7, #steps_a)
    assert.are.same(steps_a, h.without_times(log.read_metrics(killed .. "/steps.jsonl")))
    -- log.txt holds the killed session's lines, then the resumed one's
    local text = h.read(killed .. "/log.txt")
    assert.truthy(text:find("epoch 3/3 batch 5/40", 1, true), text)
    assert.truthy(text:find("resuming " .. killed .. " at epoch 3 of 3", 1, true), text)
    local sa = json.decode(h.read(full .. "/summary.json"))
    local sb = json.decode(h.read(killed .. "/summary.json"))
    assert.are.equal(sa.best_top1, sb.best_top1)
    assert.are.equal(sa.last_top1, sb.last_top1)
    -- the csv was rewritten without the lost partial epoch
    local lines = 0
    for _ in h.read(killed .. "/metrics.csv"):gmatch("\n") do
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

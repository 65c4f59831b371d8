-- Ctrl-C: the binding (distill.core.interrupt, through distill.interrupt)
-- raises "interrupted" at every SIGINT, not only the first; holds defer it;
-- `distill train` stopped by SIGINT ends with one line saying where it
-- stopped and how to resume, exit status 130, and --resume continues.
local distill = require "distill"
local interrupt = require "distill.interrupt"
local h = require "support.helpers"
local process = distill.core.process

-- Sends SIGINT to this process from a child (os.execute's system() would
-- ignore SIGINT while it waits) and waits for the child.
local function sigint_self()
  local pid = process.spawn({ "kill", "-INT", tostring(process.getpid()) }, { output = "/dev/null" })
  process.wait({ pid }, 10)
end

local function busy(seconds)
  local t0 = distill.wallclock()
  local x = 0
  while distill.wallclock() - t0 < seconds do
    x = x + 1
  end
  return x
end

describe("distill.interrupt", function()
  local was_on
  before_each(function()
    was_on = interrupt.enable()
    interrupt.clear()
  end)
  after_each(function()
    interrupt.clear()
    if not was_on then
      interrupt.disable()
    end
  end)

  it("raises 'interrupted' at each SIGINT, the handler staying installed", function()
    for round = 1, 3 do
      local ok, err = pcall(function()
        sigint_self()
        busy(5)
      end)
      assert.is_false(ok, "round " .. round .. ": no interrupt")
      assert.are.equal(interrupt.MESSAGE, err)
      assert.is_true(interrupt.is_interrupt(err))
      assert.are.equal(1, interrupt.clear())
      assert.is_true(interrupt.enabled())
    end
    assert.are.equal(0, interrupt.pending())
  end)

  it("holds a SIGINT until the held function returns, then raises it", function()
    local finished = false
    local ok, err = pcall(interrupt.held, function()
      sigint_self()
      busy(0.2)
      finished = true
    end)
    assert.is_true(finished)
    assert.is_false(ok)
    assert.are.equal(interrupt.MESSAGE, err)
    assert.are.equal(1, interrupt.pending())
  end)

  it("clear() drops a SIGINT not raised yet", function()
    local ok = pcall(interrupt.held, function()
      sigint_self()
      assert.are.equal(1, interrupt.clear())
    end)
    assert.is_true(ok)
    assert.are.equal(0, interrupt.pending())
  end)

  it("Stopped errors carry their message and exit status", function()
    local ok, err = pcall(interrupt.stop, "stopped here")
    assert.is_false(ok)
    assert.is_true(interrupt.is_stopped(err))
    assert.is_true(interrupt.is_interrupt(err))
    assert.are.equal("stopped here", tostring(err))
    assert.are.equal(130, err.code)
    assert.is_false(interrupt.is_interrupt("some other error"))
  end)

  it("names the function on bad arguments", function()
    h.fails("interrupt.held: argument #1: expected a function, got number", interrupt.held, 3)
    h.fails("interrupt.stop: argument #1: expected a message string, got nil", interrupt.stop)
    h.fails("interrupt.hold: argument #1: expected true or false", distill.core.interrupt.hold, 1)
  end)
end)

describe("distill train stopped by SIGINT", function()
  local tmp = os.tmpname()
  os.remove(tmp)
  os.execute("mkdir -p " .. tmp)
  local config = tmp .. "/config.lua"
  h.write(config, [[
return {
  name = "sigint",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 1280, synthetic_test_size = 64,
           synthetic_shape = { 1, 12, 12 } },
  optimizer = { lr = 0.05 },
  epochs = 200, batch_size = 16, seed = 11, workers = 2, plot = false,
}
]])
  local dir = tmp .. "/run"

  it("ends with exit status 130, one line with the checkpoint and the --resume command", function()
    local out = tmp .. "/out.txt"
    local pid = h.start_distill({ "train", config, "--set", "run_dir=" .. dir, "--progress", "bar" }, out)
    for _ = 1, 600 do
      local f = io.open(dir .. "/last.safetensors", "rb")
      if f then
        f:close()
        break
      end
      os.execute("sleep 0.05")
    end
    os.execute("sleep 0.1")
    process.signal(pid, "INT")
    local _, how, code = process.wait({ pid }, 60)
    local text = h.read(out)
    assert.are.equal("exit", how, text)
    assert.are.equal(130, code, text)
    local line = text:match("\n(distill: interrupted[^\n]*)\n$")
    assert.truthy(line, "the last line, on a line of its own: " .. text)
    local epoch = tonumber(line:match("last checkpoint [^ ]+/last%.safetensors %(epoch (%d+)%)"))
    assert.truthy(epoch, line)
    assert.truthy(line:find("resume with: distill train --resume " .. dir, 1, true), line)
    assert.is_nil(text:find("traceback", 1, true), text)
    assert.is_nil(text:find("%.lua:%d+:"), text)
    -- the finished epochs' metrics are on disk, a whole line each
    local records = require("distill.log").read_metrics(dir .. "/metrics.jsonl")
    assert.is_true(#records >= epoch)

    -- --resume continues after the checkpoint's epoch
    local out2 = tmp .. "/out2.txt"
    pid = h.start_distill({ "train", "--resume", dir, "--set", "epochs=" .. (epoch + 1) }, out2)
    _, how, code = process.wait({ pid }, 120)
    text = h.read(out2)
    assert.are.equal(0, code, text)
    assert.truthy(text:find(("resuming %s at epoch %d of %d"):format(dir, epoch + 1, epoch + 1), 1, true), text)
    local summary = require("distill.json").decode(h.read(dir .. "/summary.json"))
    assert.are.equal(epoch + 1, summary.epochs_done)
  end)
end)

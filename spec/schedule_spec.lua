-- Learning-rate schedules: lr sequences over epochs (torch semantics: the lr
-- of epoch e is set after e calls to step()).
local distill = require "distill"
local optim = require "distill.optim"
local schedule = require "distill.schedule"

local function make_opt(lr, lr2)
  local groups = {{params = {distill.tensor({1}, "float32")}}}
  if lr2 then
    groups[2] = {params = {distill.tensor({1}, "float32")}, lr = lr2}
  end
  return optim.SGD(groups, {lr = lr, momentum = 0.9})
end

local function near(a, b)
  return math.abs(a - b) <= 1e-12 * math.max(1, math.abs(a))
end

-- lrs[e + 1] = lr at epoch e, for epochs 0..n
local function sequence(opt, sched, n, group)
  local out = {opt.param_groups[group or 1].lr}
  for _ = 1, n do
    sched:step()
    out[#out + 1] = opt.param_groups[group or 1].lr
  end
  return out
end

local function assert_seq(expected, got)
  for e, v in pairs(expected) do
    if not near(v, got[e + 1]) then
      error(string.format("epoch %d: expected %.17g, got %.17g", e, v, got[e + 1]), 2)
    end
  end
end

describe("schedule", function()
  it("MultiStepLR 150/180/210 from 0.05", function()
    local opt = make_opt(0.05)
    local s = optim.MultiStepLR(opt, {milestones = {150, 180, 210}, gamma = 0.1})
    local seq = sequence(opt, s, 240)
    assert_seq({[0] = 0.05, [149] = 0.05, [150] = 0.005, [179] = 0.005, [180] = 0.0005,
                [209] = 0.0005, [210] = 0.00005, [240] = 0.00005}, seq)
    assert.are.equal(240, s.last_epoch)
    assert.is_true(near(0.00005, s:get_lr()[1]))
  end)

  it("StepLR", function()
    local opt = make_opt(1.0)
    local seq = sequence(opt, schedule.StepLR(opt, {step_size = 2, gamma = 0.5}), 5)
    assert_seq({[0] = 1, [1] = 1, [2] = 0.5, [3] = 0.5, [4] = 0.25, [5] = 0.25}, seq)
  end)

  it("CosineAnnealingLR", function()
    local opt = make_opt(0.1)
    local seq = sequence(opt, optim.CosineAnnealingLR(opt, {T_max = 4, eta_min = 0.01}), 4)
    local half = 0.045
    assert_seq({[0] = 0.1, [1] = 0.01 + half * (1 + math.sqrt(0.5)), [2] = 0.055,
                [3] = 0.01 + half * (1 - math.sqrt(0.5)), [4] = 0.01}, seq)
  end)

  it("LinearWarmup (torch's LinearLR)", function()
    local opt = make_opt(0.1)
    local seq = sequence(opt, optim.LinearWarmup(opt, {warmup_epochs = 4, start_factor = 0.2}), 6)
    assert_seq({[0] = 0.02, [1] = 0.04, [2] = 0.06, [3] = 0.08, [4] = 0.1, [5] = 0.1, [6] = 0.1}, seq)
  end)

  it("LambdaLR with a function of the epoch, per group", function()
    local opt = make_opt(0.1, 1.0)
    local s = optim.LambdaLR(opt, function(e) return 1 / (e + 1) end)
    assert_seq({[0] = 0.1, [1] = 0.05, [3] = 0.025}, sequence(opt, s, 3))
    assert.is_true(near(0.25, opt.param_groups[2].lr))
    local opt2 = make_opt(0.1, 1.0)
    local s2 = schedule.LambdaLR(opt2, {function() return 1 end, function(e) return e end})
    s2:step()
    assert.are.same({0.1, 1.0}, s2:get_lr())
  end)

  it("SequentialLR chains a warm-up with another schedule", function()
    local opt = make_opt(0.1)
    local w = optim.LinearWarmup(opt, {warmup_epochs = 2, start_factor = 0.5})
    local m = optim.MultiStepLR(opt, {milestones = {2}, gamma = 0.1})
    local s = optim.SequentialLR(opt, {schedulers = {w, m}, milestones = {3}})
    assert_seq({[0] = 0.05, [1] = 0.075, [2] = 0.1, [3] = 0.1, [4] = 0.1, [5] = 0.01, [6] = 0.01},
      sequence(opt, s, 6))
  end)

  it("the warmup= shorthand", function()
    local opt = make_opt(0.1)
    local s = optim.CosineAnnealingLR(opt, {T_max = 2, warmup = {epochs = 2, start_factor = 0.5}})
    assert_seq({[0] = 0.05, [1] = 0.075, [2] = 0.1, [3] = 0.05, [4] = 0}, sequence(opt, s, 4))
  end)

  it("schedules apply to every group from its own initial lr", function()
    local opt = make_opt(0.1, 0.02)
    local s = optim.MultiStepLR(opt, {milestones = {1}, gamma = 0.5})
    s:step()
    assert.is_true(near(0.05, opt.param_groups[1].lr))
    assert.is_true(near(0.01, opt.param_groups[2].lr))
    assert.are.equal(0.02, opt.param_groups[2].initial_lr)
  end)

  it("state_dict / load_state_dict resume the sequence", function()
    local opt = make_opt(0.05)
    local s = optim.MultiStepLR(opt, {milestones = {3, 5}, gamma = 0.1})
    for _ = 1, 4 do s:step() end
    local sd = s:state_dict()
    assert.are.equal(4, sd.last_epoch)
    local opt2 = make_opt(0.05)
    local s2 = optim.MultiStepLR(opt2, {milestones = {3, 5}, gamma = 0.1})
    s2:load_state_dict(sd)
    s:step()
    s2:step()
    assert.is_true(near(opt.param_groups[1].lr, opt2.param_groups[1].lr))
    assert.is_true(near(0.0005, opt2.param_groups[1].lr))
    -- sequential: sub-scheduler states travel along
    local opt3 = make_opt(0.1)
    local q = optim.CosineAnnealingLR(opt3, {T_max = 10, warmup = {epochs = 3, start_factor = 0.1}})
    for _ = 1, 5 do q:step() end
    local opt4 = make_opt(0.1)
    local q2 = optim.CosineAnnealingLR(opt4, {T_max = 10, warmup = {epochs = 3, start_factor = 0.1}})
    q2:load_state_dict(q:state_dict())
    q:step()
    q2:step()
    assert.is_true(near(opt3.param_groups[1].lr, opt4.param_groups[1].lr))
    assert.has_error(function() q2:load_state_dict({}) end)
  end)

  it("step(epoch) jumps", function()
    local opt = make_opt(0.05)
    local s = optim.MultiStepLR(opt, {milestones = {150, 180, 210}})
    s:step(200)
    assert.is_true(near(0.0005, opt.param_groups[1].lr))
  end)

  it("rejects bad options", function()
    local opt = make_opt(0.1)
    local ok, err = pcall(optim.MultiStepLR, opt, {milestone = {1}})
    assert.is_false(ok)
    assert.matches("unknown option 'milestone' %(valid: gamma, milestones, warmup%)", err)
    ok, err = pcall(optim.CosineAnnealingLR, opt, {})
    assert.matches("T_max", err)
    ok, err = pcall(optim.LambdaLR, opt, 3)
    assert.matches("must be a function", err)
    ok, err = pcall(optim.MultiStepLR, {}, {milestones = {1}})
    assert.matches("must be an optimizer", err)
    ok, err = pcall(optim.LambdaLR, opt, function() return "x" end)
    assert.matches("LambdaLR: the function returned string for epoch 0, expected a number", err)
  end)
end)

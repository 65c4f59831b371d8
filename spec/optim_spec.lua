-- Optimizers: hand-computed updates (torch.optim formulas) on tiny tensors.
local distill = require "distill"
local optim = require "distill.optim"

local function f32(t) return distill.tensor(t, "float32") end

local function assert_near(expected, got, tol)
  tol = tol or 2e-6
  assert.are.equal(#expected, #got)
  for i = 1, #expected do
    local scale = math.max(1, math.abs(expected[i]))
    if not (math.abs(expected[i] - got[i]) <= tol * scale) then
      error(string.format("element %d: expected %.9g, got %.9g", i, expected[i], got[i]), 2)
    end
  end
end

local G = {{0.5, -1.0}, {0.25, 2.0}, {-1.0, 0.5}}

-- Run 3 steps with the grads G and check every intermediate value.
local function run(make, expected, tol)
  local p = f32{1.0, -2.0}
  local opt = make({p})
  for i, g in ipairs(G) do
    p.grad = f32(g)
    opt:step()
    assert_near(expected[i], p:totable(), tol)
  end
  return p, opt
end

describe("optim.SGD", function()
  it("plain steps: p -= lr * g", function()
    run(function(ps) return optim.SGD(ps, {lr = 0.1}) end,
      {{0.95, -1.9}, {0.925, -2.1}, {1.025, -2.15}})
  end)

  it("momentum: first buffer is the gradient, then m*buf + g", function()
    -- step 2: buf = 0.9*0.5 + 0.25 = 0.7 -> 0.95 - 0.07 = 0.88
    run(function(ps) return optim.SGD(ps, {lr = 0.1, momentum = 0.9}) end,
      {{0.95, -1.9}, {0.88, -2.01}, {0.917, -2.159}})
  end)

  it("dampening and weight decay", function()
    -- step 1: g = 0.5 + 0.1*1 = 0.6 (no dampening on the first buffer) -> 0.94
    run(function(ps) return optim.SGD(ps, {lr = 0.1, momentum = 0.9, dampening = 0.5, weight_decay = 0.1}) end,
      {{0.94, -1.88}, {0.8688, -1.8626}, {0.850376, -1.862627}})
  end)

  it("nesterov", function()
    -- step 1: g = 0.5 + 0.01 = 0.51, buf = 0.51, g' = 0.51 + 0.9*0.51 = 0.969 -> 0.9031
    run(function(ps) return optim.SGD(ps, {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 0.01}) end,
      {{0.9031, -1.8062}, {0.81257411, -2.10014822}, {0.942869708191, -2.277336916382}})
  end)

  it("maximize ascends", function()
    local p = f32{1.0}
    local opt = optim.SGD({p}, {lr = 0.5, maximize = true})
    p.grad = f32{2.0}
    opt:step()
    assert_near({2.0}, p:totable())
  end)

  it("works on non-contiguous parameters (updates the viewed storage)", function()
    local base = f32{{1, 2}, {3, 4}}
    local p = base:t()
    local opt = optim.SGD({p}, {lr = 1, momentum = 0.5})
    p.grad = f32{{1, 1}, {1, 1}}
    opt:step()
    p.grad = f32{{1, 0}, {0, 0}}
    opt:step()
    -- p = base^T = {{1, 3}, {2, 4}} -> {{0, 2}, {1, 3}}; step 2 buffers 0.5*1 + {{1, 0}, {0, 0}}
    assert.are.same({{-1.5, 0.5}, {1.5, 2.5}}, base:totable())
  end)

  it("large tensors (threaded path) match the small one elementwise", function()
    local n = 200003
    local big = distill.full({n}, 0.75)
    local small = f32{0.75}
    local ob = optim.SGD({big}, {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-3})
    local os_ = optim.SGD({small}, {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-3})
    for _, g in ipairs{0.3, -0.2, 0.1} do
      big.grad = distill.full({n}, g)
      small.grad = f32{g}
      ob:step()
      os_:step()
    end
    local v = small:totable()[1]
    local t = big:totable()
    for _, i in ipairs{1, 2, 1000, 65536, n} do
      assert.are.equal(v, t[i])
    end
  end)
end)

describe("optim.Adam / AdamW", function()
  it("Adam with bias corrections", function()
    -- step 1: m = 0.05, v = 0.00025, update = lr * 1 (m_hat/sqrt(v_hat) = 1)
    run(function(ps) return optim.Adam(ps, {lr = 0.1}) end,
      {{0.900000002, -1.900000001}, {0.8067820404774624, -1.9366103534720749},
       {0.8274177428854115, -1.9781754731467738}}, 1e-5)
  end)

  it("Adam with L2 weight decay added to the gradient", function()
    run(function(ps) return optim.Adam(ps, {lr = 0.1, weight_decay = 0.1}) end,
      {{0.9000000016666666, -1.9000000008333333}, {0.8050097658613199, -1.9250178784643248},
       {0.8120982607786772, -1.953127270691488}}, 1e-5)
  end)

  it("AdamW decays the weights directly: p *= 1 - lr*wd", function()
    run(function(ps) return optim.AdamW(ps, {lr = 0.1, weight_decay = 0.1}) end,
      {{0.890000002, -1.880000001}, {0.7878820404574624, -1.897810353462075},
       {0.8006389224608368, -1.920397369602153}}, 1e-5)
  end)

  it("AdamW's default weight_decay is 1e-2, Adam's 0", function()
    assert.are.equal(1e-2, optim.AdamW({f32{1}}).param_groups[1].weight_decay)
    assert.are.equal(0, optim.Adam({f32{1}}).param_groups[1].weight_decay)
    assert.are.same({0.9, 0.999}, optim.Adam({f32{1}}).param_groups[1].betas)
  end)

  it("amsgrad keeps the maximum second moment", function()
    local G2 = {{2.0, -1.0}, {0.1, 0.1}, {0.1, -3.0}}
    local function go(ams)
      local p = f32{1.0, -2.0}
      local opt = optim.Adam({p}, {lr = 0.1, betas = {0.5, 0.9}, amsgrad = ams})
      local out = {}
      for i, g in ipairs(G2) do
        p.grad = f32(g)
        opt:step()
        out[i] = p:totable()
      end
      return out, opt, p
    end
    local a, opt, p = go(true)
    assert_near({0.9000000005, -1.900000001}, a[1], 1e-5)
    assert_near({0.8494584887573358, -1.8632425381677593}, a[2], 1e-5)
    assert_near({0.8188860591188348, -1.7671780346041337}, a[3], 1e-5)
    local b = go(false)
    assert_near({0.8467984092112306, -1.8614677101022383}, b[2], 1e-5)
    assert.is_truthy(opt.state[p].max_exp_avg_sq)
    assert.are.equal(3, opt.state[p].step)
  end)
end)

describe("optimizer mechanics", function()
  it("parameter groups with their own options override the defaults", function()
    local a, b = f32{1.0}, f32{1.0}
    local opt = optim.SGD({{params = {a}, lr = 0.5}, {params = {b}}}, {lr = 0.1, momentum = 0})
    assert.are.equal(0.5, opt.param_groups[1].lr)
    assert.are.equal(0.1, opt.param_groups[2].lr)
    a.grad, b.grad = f32{1.0}, f32{1.0}
    opt:step()
    assert_near({0.5}, a:totable())
    assert_near({0.9}, b:totable())
    opt.param_groups[2].lr = 1.0   -- as a scheduler does
    opt:step()
    assert_near({-0.1}, b:totable())
  end)

  it("skips parameters without a gradient and makes no state for them", function()
    local a, b = f32{1.0}, f32{2.0}
    local opt = optim.Adam({a, b}, {lr = 0.1})
    a.grad = f32{1.0}
    opt:step()
    assert.are.same({2.0}, b:totable())
    assert.is_nil(opt.state[b])
    assert.is_truthy(opt.state[a])
  end)

  it("zero_grad sets grads to nil (or zeros with false)", function()
    local a = f32{1.0, 2.0}
    local opt = optim.SGD({a}, {lr = 0.1})
    a.grad = f32{1.0, 1.0}
    opt:zero_grad(false)
    assert.are.same({0, 0}, a.grad:totable())
    opt:zero_grad()
    assert.is_nil(a.grad)
  end)

  it("step(closure) returns the closure's value", function()
    local a = f32{1.0}
    local opt = optim.SGD({a}, {lr = 0.1})
    assert.are.equal(42, opt:step(function() a.grad = f32{1.0}; return 42 end))
    assert_near({0.9}, a:totable())
  end)

  it("state_dict has torch's layout with 1-based parameter ids", function()
    local a, b = f32{1.0}, f32{1.0, 2.0}
    local opt = optim.SGD({{params = {a}}, {params = {b}, lr = 0.2}}, {lr = 0.1, momentum = 0.9})
    b.grad = f32{1.0, 1.0}
    opt:step()
    local sd = opt:state_dict()
    assert.are.same({1}, sd.param_groups[1].params)
    assert.are.same({2}, sd.param_groups[2].params)
    assert.are.equal(0.2, sd.param_groups[2].lr)
    assert.is_nil(sd.state[1])
    assert.are.same({1.0, 1.0}, sd.state[2].momentum_buffer:totable())
  end)

  for _, name in ipairs{"SGD", "Adam", "AdamW"} do
    it(name .. " state_dict round trip continues identically", function()
      local opts = name == "SGD" and {lr = 0.1, momentum = 0.9, weight_decay = 0.01}
        or {lr = 0.1, weight_decay = 0.01, amsgrad = true}
      local p1 = f32{1.0, -2.0}
      local o1 = optim[name]({p1}, opts)
      for i = 1, 2 do
        p1.grad = f32(G[i])
        o1:step()
      end
      local sd = o1:state_dict()
      local p2 = p1:clone()
      local o2 = optim[name]({p2}, {lr = 0.5})   -- options come from the state dict
      o2:load_state_dict(sd)
      assert.are.equal(0.1, o2.param_groups[1].lr)
      for _ = 1, 2 do
        p1.grad, p2.grad = f32(G[3]), f32(G[3])
        o1:step()
        o2:step()
        assert.are.same(p1:totable(), p2:totable())
      end
      -- the loaded state is a copy, not shared with o1
      local k = name == "SGD" and "momentum_buffer" or "exp_avg"
      assert.is_false(o1.state[p1][k]:shares_storage(o2.state[p2][k]))
    end)
  end

  it("load_state_dict checks groups, counts and shapes", function()
    local a = f32{1.0, 2.0}
    local opt = optim.SGD({a}, {lr = 0.1, momentum = 0.9})
    a.grad = f32{1, 1}
    opt:step()
    local sd = opt:state_dict()
    local two = optim.SGD({{params = {f32{1}}}, {params = {f32{1}}}}, {lr = 0.1})
    assert.has_error(function() two:load_state_dict(sd) end,
      "optim.SGD:load_state_dict: the saved state has 1 parameter group(s) but the optimizer has 2")
    local more = optim.SGD({f32{1}, f32{2}}, {lr = 0.1})
    assert.has_error(function() more:load_state_dict(sd) end,
      "optim.SGD:load_state_dict: group 1 has 2 parameter(s) but the saved group has 1")
    local other = optim.SGD({f32{1, 2, 3}}, {lr = 0.1, momentum = 0.9})
    local ok, err = pcall(other.load_state_dict, other, sd)
    assert.is_false(ok)
    assert.matches("momentum_buffer' has shape %[2%] but the parameter has shape %[3%]", err)
    assert.has_error(function() other:load_state_dict(42) end)
    local adam = optim.Adam({f32{1, 2}})
    ok, err = pcall(adam.load_state_dict, adam, sd)
    assert.is_false(ok)
    assert.matches("unknown option", err)
  end)

  it("rejects bad options with clear errors", function()
    local p = f32{1}
    local ok, err = pcall(optim.SGD, {p}, {lr = 0.1, momentun = 0.9})
    assert.is_false(ok)
    assert.matches("unknown option 'momentun' %(valid: dampening, lr, maximize, momentum, nesterov, weight_decay%)", err)
    ok, err = pcall(optim.SGD, {p}, {lr = 0.1, nesterov = true})
    assert.matches("nesterov momentum requires a momentum and zero dampening", err)
    ok, err = pcall(optim.SGD, {p}, {})
    assert.matches("option 'lr' is required", err)
    ok, err = pcall(optim.SGD, {p}, {lr = -1})
    assert.matches("invalid lr %-1", err)
    ok, err = pcall(optim.Adam, {p}, {betas = {0.9, 1.0}})
    assert.matches("invalid beta parameter at index 2", err)
    ok, err = pcall(optim.Adam, {}, {})
    assert.matches("empty parameter list", err)
    ok, err = pcall(optim.Adam, {p, "x"})
    assert.matches("parameter 2 is a string, not a tensor", err)
    ok, err = pcall(optim.Adam, {p, p})
    assert.matches("more than one parameter group", err)
    ok, err = pcall(optim.Adam, {{params = {p}, foo = 1}})
    assert.matches("unknown option 'foo'", err)
    ok, err = pcall(optim.Adam, {distill.tensor{1, 2}})
    assert.matches("parameters must be float32", err)
  end)

  it("kernels validate their arguments", function()
    local k = distill.optim_kernels
    local ok, err = pcall(k.sgd_step_, f32{1, 2}, f32{1, 2, 3}, nil, {lr = 0.1})
    assert.is_false(ok)
    assert.matches("optim_kernels.sgd_step_: grad has shape %[3%] but the parameter has shape %[2%]", err)
    ok, err = pcall(k.sgd_step_, f32{1}, f32{1}, nil, {lr = 0.1, momentum = 0.9})
    assert.matches("momentum_buffer is missing", err)
    ok, err = pcall(k.adam_step_, f32{1}, distill.tensor{1}, f32{0}, f32{0}, nil, 1, {})
    assert.matches("grad must be float32, got int64", err)
    ok, err = pcall(k.adam_step_, f32{1}, f32{1}, f32{0}, f32{0}, nil, 0, {})
    assert.matches("step counts from 1", err)
    ok, err = pcall(k.sgd_step_, f32{1}:expand{3}, f32{1, 1, 1}, nil, {lr = 0.1})
    assert.matches("expanded view", err)
    ok, err = pcall(k.sgd_step_, f32{1}, f32{1}, nil, {lr = 0.1, bogus = 1})
    assert.matches("unknown option 'bogus'", err)
  end)

  it("bumps the parameter's version (autograd sees the write)", function()
    local p = f32{1.0}
    p.requires_grad = true
    local opt = optim.SGD({p}, {lr = 0.1})
    p.grad = f32{1.0}
    opt:step()
    assert_near({0.9}, p:totable())
    assert.is_true(p.requires_grad)
  end)
end)

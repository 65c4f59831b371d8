-- The distillers of issue 18 from the CRD code base's zoo: SP, CC, PKT,
-- NST, FSP and VID. Options are checked with errors naming the distiller,
-- features that do not pair up are refused, and the losses equal
-- hand-computed values on small tensors. (PyTorch parity:
-- parity_zoo_spec.lua; training on Fashion-MNIST: distill_zoo_fmnist_spec.lua.)
local distill = require "distill"
local distillers = require "distill.distillers"
local h = require "support.helpers"

local close = h.close

-- feats = {stem, blocks..., pooled} around the given block features
local function out_of(blocks, pooled, stem)
  local feats = { stem or distill.zeros{ 1 } }
  for _, f in ipairs(blocks) do
    feats[#feats + 1] = f
  end
  pooled = pooled or distill.zeros{ blocks[1] and blocks[1]:size(1) or 2, 2 }
  feats[#feats + 1] = pooled
  return { feats = feats, pooled = pooled }
end

-- a small student and teacher, and a probe of them (12x12 inputs)
local function models()
  return h.fashion_pair(5)
end

local function probed()
  local s, t = models()
  return s, t, distillers.probe(s, t, { 2, 1, 12, 12 })
end

local function forward(student, teacher, x)
  local s_out = student:forward(x, { features = true })
  local t_out = distill.no_grad(function() return teacher:forward(x, { features = true }) end)
  return s_out, t_out
end

-- builds a distiller from the models as a config would and checks one
-- training step reaches the student (and the distiller's own parameters)
local function trains(name, opts)
  local s, t = models()
  local d = distillers.build(name, opts or {}, { student = s, teacher = t, input_shape = { 1, 12, 12 } })
  local s_out, t_out = forward(s, t, distill.randn{ 4, 1, 12, 12 })
  local loss = d:loss(s_out, t_out)
  assert.are.equal(0, loss:dim())
  local value = loss:item()
  assert.is_true(value == value and value > 0, name .. " loss " .. tostring(value))
  loss:backward()
  assert.is_not_nil(s.layer3[1].conv1.weight.grad, name .. ": no gradient reached the student")
  for _, p in ipairs(d:parameters()) do
    assert.is_not_nil(p.grad, name .. ": no gradient reached its own parameters")
  end
  return d
end

-- the row-normalised Gram matrix of a few rows, in plain Lua
local function normalized_gram(rows)
  local g = {}
  for i = 1, #rows do
    g[i] = {}
    local norm = 0
    for j = 1, #rows do
      local dot = 0
      for k = 1, #rows[i] do
        dot = dot + rows[i][k] * rows[j][k]
      end
      g[i][j] = dot
      norm = norm + dot * dot
    end
    for j = 1, #rows do
      g[i][j] = g[i][j] / math.sqrt(norm)
    end
  end
  return g
end

describe("SP (similarity-preserving)", function()
  it("checks its options and features, naming itself", function()
    h.fails("distillers.sp: unknown option 'block' (valid: blocks)", distillers.sp, { block = "last" })
    h.fails('distillers.sp: blocks must be "last" or "all", got first', distillers.sp, { blocks = "first" })
    h.fails("distillers.sp: options must be a table, got string", distillers.sp, "last")
    local d = distillers.sp()
    local a, b = distill.randn{ 2, 3, 2, 2 }, distill.randn{ 2, 3, 2, 2 }
    h.fails("distillers.sp: the student has 2 block features and the teacher 1",
      function() return d:loss(out_of({ a, a }), out_of({ b })) end)
    h.fails("distillers.sp: the student's block feature 1 {3, 3, 2, 2} and the teacher's {2, 3, 2, 2} "
      .. "differ in batch size", function() return d:loss(out_of({ distill.randn{ 3, 3, 2, 2 } }), out_of({ b })) end)
    h.fails("distillers.sp: the models have no block features",
      function() return d:loss(out_of({}), out_of({})) end)
  end)

  it("is the squared difference of row-normalised batch Gram matrices over B^2", function()
    local s_rows = { { 1, 2, 0, 1 }, { -1, 0, 3, 1 }, { 2, 2, 1, 0 } }
    local t_rows = { { 0, 1, 1, 2, 1, 0 }, { 3, -1, 0, 0, 1, 1 }, { 1, 1, 1, 1, 1, 1 } }
    -- other widths and resolutions: only the 3 x 3 matrices meet
    local s = h.f32(s_rows):view{ 3, 1, 2, 2 }
    local t = h.f32(t_rows):view{ 3, 6, 1, 1 }
    local gs, gt = normalized_gram(s_rows), normalized_gram(t_rows)
    local expected = 0
    for i = 1, 3 do
      for j = 1, 3 do
        expected = expected + (gs[i][j] - gt[i][j]) ^ 2
      end
    end
    expected = expected / 9
    assert.is_true(expected > 0)
    local other = distill.randn{ 3, 2, 2, 2 }
    close(expected, distillers.sp():loss(out_of({ other, s }), out_of({ other * 2, t })):item())
    close(expected, distillers.sp{ blocks = "all" }:loss(out_of({ other, s }), out_of({ other * 2, t })):item(),
      1e-4)
    close(0, distillers.sp():loss(out_of({ s }), out_of({ s * 3 })):item(), 1e-6)
  end)

  it("trains the student from the models' last block", function()
    trains("sp")
  end)
end)

describe("PKT (probabilistic knowledge transfer)", function()
  it("checks its options and features, naming itself", function()
    h.fails("distillers.pkt: unknown option 'epsilon' (valid: eps)", distillers.pkt, { epsilon = 1 })
    for _, bad in ipairs { 0, -1, "1", 0 / 0 } do
      h.fails("distillers.pkt: eps must be a positive number, got " .. tostring(bad), distillers.pkt, { eps = bad })
    end
    h.fails("distillers.pkt: the student's pooled feature must be a tensor, got nil",
      function() return distillers.pkt():loss({}, { pooled = distill.randn{ 2, 3 } }) end)
    h.fails("distillers.pkt: the student's pooled feature {3, 4} and the teacher's {2, 4} differ in batch size",
      function() return distillers.pkt():loss({ pooled = distill.randn{ 3, 4 } }, { pooled = distill.randn{ 2, 4 } }) end)
  end)

  it("is the KL divergence of the cosine-similarity distributions, mean over B x B", function()
    -- two samples: the cosine similarities give p(i|i) = 1 / (1 + (1 + c) / 2) per row
    local s = h.f32{ { 1, 0 }, { 0, 1 } }            -- cos 0
    local t = h.f32{ { 1, 0, 0 }, { 0.6, 0.8, 0 } }  -- cos 0.6
    local function rows(c)
      local off = (1 + c) / 2
      return 1 / (1 + off), off / (1 + off)
    end
    local ts, to = rows(0.6)
    local ss, so = rows(0)
    local eps = 1e-7
    local expected = (2 * ts * math.log((ts + eps) / (ss + eps)) + 2 * to * math.log((to + eps) / (so + eps))) / 4
    assert.is_true(expected > 0)
    close(expected, distillers.pkt():loss({ pooled = s }, { pooled = t }):item(), 1e-4)
    -- the distributions see directions only
    close(0, distillers.pkt():loss({ pooled = t * 5 }, { pooled = t }):item(), 1e-6)
  end)

  it("trains the student from the pooled features", function()
    trains("pkt")
  end)
end)

describe("CC (correlation congruence)", function()
  it("checks its options, probe and features, naming itself", function()
    local s, t, probe = probed()
    h.fails("distillers.cc: unknown option 'dim' (valid: feat_dim, form, gamma, order)", distillers.cc,
      { probe = probe, dim = 3 })
    h.fails('distillers.cc: form must be "residual" or "gaussian", got rbf', distillers.cc,
      { probe = probe, form = "rbf" })
    h.fails("distillers.cc: feat_dim must be a positive integer, got 0", distillers.cc, { probe = probe, feat_dim = 0 })
    h.fails("distillers.cc: gamma must be a positive number, got -1", distillers.cc,
      { probe = probe, form = "gaussian", gamma = -1 })
    h.fails("distillers.cc: order must be a positive integer, got 1.5", distillers.cc,
      { form = "gaussian", order = 1.5 })
    h.fails("distillers.cc: needs opts.probe = {student = out, teacher = out}", distillers.cc, {})
    local d = distillers.cc{ probe = probe, feat_dim = 4 }
    assert.are.same({ 4, 8 }, d.embed_s.weight:shape())
    assert.are.same({ 4, 16 }, d.embed_t.weight:shape())
    h.fails("distillers.cc: pooled features of widths 5 (student) and 16 (teacher); the embeddings were "
      .. "built for 8 and 16 (from the probe)",
      function() return d:loss({ pooled = distill.randn{ 3, 5 } }, { pooled = distill.randn{ 3, 16 } }) end)
  end)

  it("residual form: mean over consecutive samples of the products of |embedded differences|", function()
    local probe = { student = { pooled = distill.zeros{ 2, 2 } }, teacher = { pooled = distill.zeros{ 2, 3 } } }
    local d = distillers.cc{ probe = probe, feat_dim = 2 }
    -- embeddings: the student's identity, the teacher's first two coordinates, plus biases
    d:load_state_dict{
      ["embed_s.weight"] = h.f32{ { 1, 0 }, { 0, 1 } }, ["embed_s.bias"] = h.f32{ 0, 0 },
      ["embed_t.weight"] = h.f32{ { 1, 0, 0 }, { 0, 1, 0 } }, ["embed_t.bias"] = h.f32{ 1, 0 },
    }
    local s = h.f32{ { 1, 2 }, { 0, -1 }, { 3, 3 } }
    local t = h.f32{ { 0, 0, 9 }, { 2, 1, 9 }, { 1, 1, 9 } }
    -- |e_s - e_t| rows: {0, 2}, {3, 2}, {1, 2}; consecutive products summed: 4, 7
    close(5.5, d:loss({ pooled = s }, { pooled = t }):item())
    close(0, d:loss({ pooled = s:narrow(1, 1, 1) }, { pooled = t:narrow(1, 1, 1) }):item())
  end)

  it("gaussian form: MSE of the Taylor-expanded RBF correlations of unit features", function()
    local d = distillers.cc{ form = "gaussian", gamma = 0.5, order = 2 }
    local s = h.f32{ { 1, 0 }, { 0, 1 } }
    local t = h.f32{ { 1, 0, 0 }, { 0.6, 0.8, 0 } }
    local function k(c)
      return math.exp(-1) * (1 + c + c * c / 2)
    end
    -- diagonals agree (cos 1), off-diagonals have cos 0 and 0.6
    local expected = 2 * (k(0) - k(0.6)) ^ 2 / 4
    close(expected, d:loss({ pooled = s }, { pooled = t }):item())
  end)

  it("trains the student and both embeddings from the pooled features", function()
    local d = trains("cc", { feat_dim = 6 })
    assert.are.equal(4, #d:parameters())
    trains("cc", { form = "gaussian" })
  end)
end)

describe("NST (neuron selectivity transfer)", function()
  it("checks its options and features, naming itself", function()
    h.fails("distillers.nst: unknown option 'kernel' (valid: c, degree)", distillers.nst, { kernel = "poly" })
    h.fails("distillers.nst: degree must be a positive integer, got 0", distillers.nst, { degree = 0 })
    h.fails("distillers.nst: c must be a number, got x", distillers.nst, { c = "x" })
    local d = distillers.nst()
    local a = distill.randn{ 2, 3, 4, 4 }
    h.fails("distillers.nst: the student has 1 block features and the teacher 2",
      function() return d:loss(out_of({ a }), out_of({ a, a })) end)
    h.fails("distillers.nst: the teacher's block feature 1 must be 4-d, got {2, 3}",
      function() return d:loss(out_of({ a }), out_of({ distill.randn{ 2, 3 } })) end)
    h.fails("distillers.nst: the models have no block features",
      function() return d:loss(out_of({}), out_of({})) end)
  end)

  it("is the polynomial-kernel MMD between the channels' spatial distributions", function()
    -- one sample, 2 positions; student channels (1, 0) and (0, 1), teacher (0.6, 0.8)
    local s = h.f32{ { 1, 0 }, { 0, 1 } }:view{ 1, 2, 1, 2 }
    local t = h.f32{ { 3, 4 } }:view{ 1, 1, 1, 2 }
    -- degree 2, c = 0: mean k(s, s') = (1 + 0 + 0 + 1) / 4, k(t, t) = 1, mean k(s, t) = (0.36 + 0.64) / 2
    close(0.5 + 1 - 2 * 0.5, distillers.nst():loss(out_of({ s }), out_of({ t })):item())
    -- degree 1, c = 1: mean k(s, s') = (2 + 1 + 1 + 2) / 4, k(t, t) = 2, mean k(s, t) = (1.6 + 1.8) / 2
    close(1.5 + 2 - 2 * 1.7, distillers.nst{ degree = 1, c = 1 }:loss(out_of({ s }), out_of({ t })):item())
    -- the finer map is pooled to the coarser one's resolution
    local fine = distill.randn{ 2, 3, 4, 4 }
    local coarse = distill.F.adaptive_avg_pool2d(fine, { 2, 2 })
    close(0, distillers.nst():loss(out_of({ fine }), out_of({ coarse })):item(), 1e-5)
  end)

  it("takes deep blocks' squared kernels from the positions' Gram matrices, with the same value", function()
    -- 4 positions, 8 and 12 channels: the B x HW x HW path
    local s, t = h.leaf{ 3, 8, 2, 2 }, distill.randn{ 3, 12, 2, 2 }
    local function unit(x)
      return distill.F.normalize(x:reshape{ x:size(1), x:size(2), -1 }, { dim = 3 })
    end
    local function mean_squared_kernel(a, b)
      return distill.bmm(a, b:transpose(2, 3)):pow(2):mean()
    end
    local us, ut = unit(s), unit(t)
    local expected = mean_squared_kernel(us, us) + mean_squared_kernel(ut, ut) - mean_squared_kernel(us, ut) * 2
    expected:backward()
    local want = s.grad:clone()
    s.grad = nil
    local loss = distillers.nst():loss(out_of({ s }), out_of({ t }))
    close(expected:item(), loss:item(), 1e-5)
    loss:backward()
    assert.is_true(h.max_abs_diff(want, s.grad) < 1e-6)
  end)

  it("trains the student from every block", function()
    trains("nst")
  end)
end)

describe("FSP (flow of solution procedure)", function()
  it("checks its options and probe, naming itself", function()
    local s, t, probe = probed()
    h.fails("distillers.fsp: unknown option 'connector' (valid: connectors)", distillers.fsp,
      { probe = probe, connector = "auto" })
    h.fails('distillers.fsp: connectors must be "auto" or "none", got yes', distillers.fsp,
      { probe = probe, connectors = "yes" })
    h.fails("distillers.fsp: needs opts.probe", distillers.fsp, {})
    h.fails("distillers.fsp: feature 2 has 4 channels in the student and 8 in the teacher; FSP matrices "
      .. "need equal widths", distillers.fsp, { probe = probe, connectors = "none" })
    local a = distill.zeros{ 2, 3, 4, 4 }
    h.fails("distillers.fsp: the student has 3 stem and block features and the teacher 2", distillers.fsp,
      { probe = { student = out_of({ a, a }, nil, a), teacher = out_of({ a }, nil, a) } })
    h.fails("distillers.fsp: needs at least two features", distillers.fsp,
      { probe = { student = out_of({}, nil, a), teacher = out_of({}, nil, a) } })
    h.fails("distillers.fsp: feature 2 must be a 4-d map in both models, got {2, 3} and {2, 3, 4, 4}",
      distillers.fsp, { probe = { student = out_of({ distill.zeros{ 2, 3 } }, nil, a),
                                  teacher = out_of({ a }, nil, a) } })
  end)

  it("maps only the features whose widths differ, and refuses features it was not built for", function()
    local s, t = models()
    local d = distillers.fsp{ probe = distillers.probe(s, t, { 2, 1, 12, 12 }) }
    -- flow features: stem 4 | 4, blocks 4 | 8, 8 | 8, 8 | 16
    assert.is_nil(d.connector1)
    assert.are.same({ 8, 4 }, d.connector2.weight:shape())
    assert.is_nil(d.connector3)
    assert.are.same({ 16, 8 }, d.connector4.weight:shape())
    local s_out, t_out = forward(s, t, distill.randn{ 2, 1, 12, 12 })
    s_out.feats[3] = distill.randn{ 2, 5, 6, 6 }
    h.fails("distillers.fsp: the student's feature 3 {2, 5, 6, 6} has 5 channels; the distiller was built "
      .. "for 8 (from its probe)", function() return d:loss(s_out, t_out) end)
    table.remove(s_out.feats, 3)
    table.remove(t_out.feats, 3)
    h.fails("distillers.fsp: the models have 3 stem and block features; the distiller was built for 4",
      function() return d:loss(s_out, t_out) end)
  end)

  it("is the MSE of the flow matrices top . bot^T / HW, summed over consecutive pairs", function()
    -- one sample, one channel each: G = mean over positions of top * bot
    local a = h.f32{ 1, 2, 3, 4 }:view{ 1, 1, 2, 2 }
    local b = h.f32{ 1, 0, 0, 1 }:view{ 1, 1, 2, 2 }
    local c = h.f32{ 2, 2, 2, 2 }:view{ 1, 1, 2, 2 }
    local probe = { student = out_of({ a, a }, nil, a), teacher = out_of({ a, a }, nil, a) }
    local d = distillers.fsp{ probe = probe }
    -- student flows: G(a, b) = 5/4, G(b, c) = 1; teacher flows: G(a, c) = 5, G(c, a) = 5
    local expected = (5 / 4 - 5) ^ 2 + (1 - 5) ^ 2
    close(expected, d:loss(out_of({ b, c }, nil, a), out_of({ c, a }, nil, a)):item())
    -- a coarser next feature: the finer one is pooled first (mean of a = 2.5)
    local coarse = h.f32{ 4 }:view{ 1, 1, 1, 1 }
    local two = h.f32{ 2 }:view{ 1, 1, 1, 1 }
    local pooled = distillers.fsp{ probe = { student = out_of({ coarse }, nil, a), teacher = out_of({ two }, nil, a) } }
    close((2.5 * 4 - 2.5 * 2) ^ 2, pooled:loss(out_of({ coarse }, nil, a), out_of({ two }, nil, a)):item())
  end)

  it("trains the student and its channel maps", function()
    local d = trains("fsp")
    assert.are.equal(2, #d:parameters())
  end)
end)

describe("VID (variational information distillation)", function()
  it("checks its options and probe, naming itself", function()
    local s, t, probe = probed()
    h.fails("distillers.vid: unknown option 'var' (valid: eps, init_pred_var, mid_channels)", distillers.vid,
      { probe = probe, var = 1 })
    h.fails("distillers.vid: eps must be a non-negative number, got -1", distillers.vid, { probe = probe, eps = -1 })
    h.fails("distillers.vid: init_pred_var must be a number above eps (1e-05), got 0", distillers.vid,
      { probe = probe, init_pred_var = 0 })
    h.fails("distillers.vid: mid_channels must be a positive integer (or false: the teacher's channels), got 0",
      distillers.vid, { probe = probe, mid_channels = 0 })
    h.fails("distillers.vid: needs opts.probe", distillers.vid, {})
    local a = distill.zeros{ 2, 3, 4, 4 }
    h.fails("distillers.vid: needs block features in both models, one teacher block per student block; got 2 and 1",
      distillers.vid, { probe = { student = out_of({ a, a }), teacher = out_of({ a }) } })
    local d = distillers.vid{ probe = probe }
    local s_out, t_out = forward(s, t, distill.randn{ 2, 1, 12, 12 })
    t_out.feats[3] = distill.randn{ 2, 3, 6, 6 }
    h.fails("distillers.vid: the teacher's block feature 2 {2, 3, 6, 6} has 3 channels; the distiller was "
      .. "built for 8 (from its probe)", function() return d:loss(s_out, t_out) end)
  end)

  it("sizes a regressor per block and starts at the given variance", function()
    local s, t = models()
    local d = distillers.vid{ probe = distillers.probe(s, t, { 2, 1, 12, 12 }), init_pred_var = 3 }
    assert.are.equal(3, #d.layers)
    assert.are.same({ 8, 4, 1, 1 }, d.layers[1].regressor[1].weight:shape(), "mid = the teacher's channels")
    assert.are.same({ 16, 16, 1, 1 }, d.layers[3].regressor[5].weight:shape())
    local log_scale = d.layers[2].log_scale[1]
    close(3, math.log(1 + math.exp(log_scale)) + 1e-5)
    local narrow = distillers.vid{ probe = distillers.probe(s, t, { 2, 1, 12, 12 }), mid_channels = 5 }
    assert.are.same({ 5, 4, 1, 1 }, narrow.layers[1].regressor[1].weight:shape())
  end)

  it("is the Gaussian negative log-likelihood of the teacher's feature under the regressor", function()
    local sf, tf = distill.randn{ 2, 2, 2, 2 }, h.f32{ 1, -2, 0, 3, 1, 1, 2, 0 }:view{ 1, 2, 2, 2 }
    local probe = { student = out_of({ sf:narrow(1, 1, 1) }), teacher = out_of({ tf }) }
    local d = distillers.vid{ probe = probe, init_pred_var = 2, eps = 0 }
    -- zero regressor: the predicted mean is 0
    distill.no_grad(function()
      for _, p in ipairs(d.layers[1].regressor:parameters()) do
        p:zero_()
      end
    end)
    local sum_sq = 1 + 4 + 0 + 9 + 1 + 1 + 4 + 0
    local expected = 0.5 * (sum_sq / 8 / 2 + math.log(2))
    close(expected, d:loss(out_of({ sf:narrow(1, 1, 1) }), out_of({ tf })):item())
  end)

  it("trains the student, its regressors and variances", function()
    local d = trains("vid")
    assert.are.equal(3 * 4, #d:parameters())
  end)
end)

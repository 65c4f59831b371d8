-- The distillers of issue 18's staged methods and ReviewKD: AB, FT and
-- ReviewKD. Options are checked with errors naming the distiller, shapes
-- that do not pair up are refused, and the losses equal hand-computed
-- values on small tensors. (PyTorch parity: parity_zoo_staged_spec.lua.)
local distill = require "distill"
local nn = require "distill.nn"
local F = distill.F
local distillers = require "distill.distillers"
local h = require "support.helpers"

local close = h.close

-- Small FashionResNets on 12x12 inputs: feats = {stem, 12x12, 6x6, 3x3, pooled}.
local function models(student_widths, teacher_widths)
  return h.fashion_pair(3, student_widths, teacher_widths)
end

local function probe_of(student, teacher, preact)
  return distillers.probe(student, teacher, { 2, 1, 12, 12 }, { preact = preact })
end

local function forward(student, teacher, x, opts)
  local s_out = student:forward(x, { features = true, preact = opts.preact })
  local t_out = distill.no_grad(function()
    return teacher:forward(x, { features = true, preact = opts.preact or opts.teacher_preact })
  end)
  return s_out, t_out
end

-- feats = {stem, blocks..., pooled} around the given block features
local function out_of(blocks, batch)
  local feats = { distill.zeros{ 1 } }
  for _, f in ipairs(blocks) do
    feats[#feats + 1] = f
  end
  local pooled = distill.zeros{ batch, 2 }
  feats[#feats + 1] = pooled
  return { feats = feats, pooled = pooled, logits = distill.zeros{ batch, 3 } }
end

describe("AB (activation boundaries)", function()
  it("checks its options and its probe", function()
    local s, t = models()
    local probe = probe_of(s, t, true)
    h.fails("distillers.ab: unknown option 'margn' (valid: margin)", distillers.ab, { probe = probe, margn = 1 })
    for _, bad in ipairs { -1, "1", 0 / 0, math.huge } do
      h.fails("distillers.ab: option margin must be a finite number >= 0, got "
        .. (type(bad) == "string" and ("%q"):format(bad) or tostring(bad)), distillers.ab,
        { probe = probe, margin = bad })
    end
    h.fails("distillers.ab: needs opts.probe = {student = out, teacher = out}", distillers.ab, {})
    local short = { student = out_of({ distill.zeros{ 2, 4, 6, 6 } }, 2), teacher = probe.teacher }
    h.fails("distillers.ab: the student has 1 block features and the teacher 3 (they must pair up)",
      distillers.ab, { probe = short })
    local flat = { student = out_of({ distill.zeros{ 2, 4 } }, 2), teacher = out_of({ distill.zeros{ 2, 4 } }, 2) }
    h.fails("distillers.ab: block feature 1 must be 4-d in both models", distillers.ab, { probe = flat })
  end)

  it("connects each block as the CRD code base does", function()
    local probe = {
      student = out_of({ distill.zeros{ 2, 4, 8, 8 }, distill.zeros{ 2, 4, 8, 8 }, distill.zeros{ 2, 4, 8, 8 },
        distill.zeros{ 2, 4, 8, 8 } }, 2),
      teacher = out_of({ distill.zeros{ 2, 4, 8, 8 }, distill.zeros{ 2, 6, 8, 8 }, distill.zeros{ 2, 6, 4, 4 },
        distill.zeros{ 2, 6, 16, 16 } }, 2),
    }
    local d = distillers.ab{ probe = probe }
    assert.are.equal("Identity", d.connectors[1].__name, "equal shapes: no connector")
    assert.are.same({ 6, 4, 1, 1 }, d.connectors[2][1].weight:shape(), "1x1 conv")
    assert.are.equal("BatchNorm2d", d.connectors[2][2].__name)
    assert.are.same({ 2, 6, 4, 4 }, d.connectors[3](distill.zeros{ 2, 4, 8, 8 }):shape(), "stride 2")
    assert.are.equal("ConvTranspose2d", d.connectors[4][1].__name, "half resolution")
    assert.are.same({ 2, 6, 16, 16 }, d.connectors[4](distill.zeros{ 2, 4, 8, 8 }):shape())
    local small = { student = out_of({ distill.zeros{ 2, 4, 3, 3 } }, 2),
                    teacher = out_of({ distill.zeros{ 2, 4, 8, 8 } }, 2) }
    h.fails("distillers.ab: student block feature 1 {2, 4, 3, 3} is smaller than the teacher's {2, 4, 8, 8}",
      distillers.ab, { probe = small })
  end)

  it("is the weighted squared hinge on the activation boundary", function()
    -- two blocks of identical shapes (identity connectors), batch 2
    local s1 = h.f32{ { { { 0.5, -2 } } }, { { { 1.5, -0.5 } } } }
    local t1 = h.f32{ { { { 1, 1 } } }, { { { -1, 0 } } } }
    local s2 = h.f32{ { { { -0.2, 3 } } }, { { { 0, 0 } } } }
    local t2 = h.f32{ { { { -3, 2 } } }, { { { 0.1, -0.1 } } } }
    local probe = { student = out_of({ s1, s2 }, 2), teacher = out_of({ t1, t2 }, 2) }
    -- the reference's form: (s + m)^2 where s > -m and t <= 0, (s - m)^2 where s <= m and t > 0
    local function hinge(s, t, m)
      local total = 0
      for i = 1, #s do
        if t[i] > 0 and s[i] <= m then
          total = total + (s[i] - m) ^ 2
        elseif t[i] <= 0 and s[i] > -m then
          total = total + (s[i] + m) ^ 2
        end
      end
      return total
    end
    for _, m in ipairs { 1, 0.25, 0 } do
      local d = distillers.ab{ probe = probe, margin = m }
      local expected = (hinge(h.flat(s1), h.flat(t1), m) / 2 + hinge(h.flat(s2), h.flat(t2), m)) / 2 * 3 / 1000
      assert.is_true(expected > 0)
      close(expected, d:loss(out_of({ s1, s2 }, 2), out_of({ t1, t2 }, 2)):item())
    end
  end)

  it("refuses features that do not match its connectors", function()
    local s, t = models()
    local d = distillers.ab{ probe = probe_of(s, t, true) }
    local x = distill.randn{ 2, 1, 16, 16 }
    local s_out, t_out = forward(s, t, x, { preact = true })
    t_out.feats[2] = t_out.feats[2]:narrow(3, 1, 8)
    h.fails("distillers.ab: block 1: the connector gives {2, 8, 16, 16} but the teacher's feature is "
      .. "{2, 8, 8, 16}", function() return d:loss(s_out, t_out) end)
    table.remove(s_out.feats, 2)
    h.fails("distillers.ab: built for 3 block features, got 2 (student) and 3 (teacher)",
      function() return d:loss(s_out, t_out) end)
  end)

  it("trains the student and its connectors from pre-ReLU features", function()
    local s, t = models()
    local d = distillers.build("ab", {}, { student = s, teacher = t, input_shape = { 1, 12, 12 } })
    assert.are.equal(3, #d.connectors)
    local x = distill.randn{ 4, 1, 12, 12 }
    local s_out, t_out = forward(s, t, x, { preact = true })
    d:loss(s_out, t_out):backward()
    assert.is_not_nil(d.connectors[1][1].weight.grad)
    assert.is_not_nil(s.layer1[1].conv1.weight.grad)
  end)
end)

describe("FT (factor transfer)", function()
  it("checks its options and the features it needs", function()
    local s, t = models()
    local probe = probe_of(s, t)
    h.fails("distillers.ft: unknown option 'k' (valid: p1, p2, paraphraser_bn, rate, translator_bn)",
      distillers.ft, { probe = probe, k = 0.5 })
    for _, key in ipairs { "rate", "p1", "p2" } do
      h.fails("distillers.ft: option " .. key .. " must be a finite number > 0, got 0", distillers.ft,
        { probe = probe, [key] = 0 })
    end
    h.fails("distillers.ft: rate 0.05 leaves no factor channels of the teacher's 16", distillers.ft,
      { probe = probe, rate = 0.05 })
    local flat = { student = out_of({ distill.zeros{ 2, 4 } }, 2), teacher = probe.teacher }
    h.fails("distillers.ft: the student's last block feature (feats[#feats - 1]) must be a 4-d tensor",
      distillers.ft, { probe = flat })
    local d = distillers.ft{ probe = probe }
    assert.are.equal(8, d.factor_channels)
    assert.are.same({ 8, 16, 3, 3 }, d.paraphraser.encoder[4].weight:shape())
    assert.are.same({ 8, 8, 3, 3 }, d.translator[7].weight:shape())
    assert.are.equal("Identity", d.paraphraser.encoder[2].__name, "no BN in the paraphraser by default")
    assert.are.equal("BatchNorm2d", d.translator[2].__name)
  end)

  it("pre-trains the paraphraser by reconstruction and keeps it frozen in its loss", function()
    local s, t = models()
    local d = distillers.ft{ probe = probe_of(s, t), paraphraser_bn = true }
    local x = distill.randn{ 4, 1, 12, 12 }
    local s_out, t_out = forward(s, t, x, {})
    local target = t_out.feats[4]
    local p = d.paraphraser
    local expected = F.mse_loss(p.decoder(p.encoder(target)), target):item()
    close(expected, d:stage_loss(s_out, t_out):item())
    local running = d.paraphraser.encoder[2].running_mean:clone()
    local loss = d:loss(s_out, t_out)
    loss:backward()
    assert.is_nil(d.paraphraser.encoder[1].weight.grad, "no gradient reaches the paraphraser")
    assert.is_not_nil(d.translator[1].weight.grad)
    assert.is_not_nil(s.layer3[1].conv1.weight.grad)
    assert.are.equal(0, h.max_abs_diff(running, d.paraphraser.encoder[2].running_mean),
      "the paraphraser runs in eval mode")
    assert.is_true(d.paraphraser.encoder.training, "and its mode is restored")
  end)

  it("compares normalised factor maps, pooled to the smaller resolution", function()
    local s, t = models()
    local d = distillers.ft{ probe = probe_of(s, t), p2 = 2 }
    -- identity-like stand-ins for the two networks show the arithmetic
    local fs = distill.randn{ 2, 8, 4, 4 }
    local ft = distill.randn{ 2, 8, 2, 2 }
    d.translator = nn.Identity()
    d.paraphraser.encoder = nn.Identity()
    local function map(f)
      return F.normalize(f:pow(2):mean(2):view{ 2, -1 }, { dim = 2 })
    end
    local expected = (map(F.adaptive_avg_pool2d(fs, { 2, 2 })) - map(ft)):pow(2):mean():item()
    close(expected, d:loss(out_of({ fs }, 2), out_of({ ft }, 2)):item())
    d.translator = nn.Conv2d(8, 4, 1)
    h.fails("distillers.ft: the translator gives 4 factor channels and the paraphraser 8",
      function() return d:loss(out_of({ fs }, 2), out_of({ ft }, 2)) end)
  end)
end)

describe("ReviewKD", function()
  local ReviewKD = distillers.class("reviewkd")

  it("checks its options and that the models' levels pair up", function()
    local s, t = models()
    local probe = probe_of(s, t)
    h.fails("distillers.reviewkd: unknown option 'weight_hcl' (valid: max_mid_channel, warmup)",
      distillers.reviewkd, { probe = probe, weight_hcl = 1 })
    h.fails("distillers.reviewkd: option warmup must be a finite number >= 0, got -1",
      distillers.reviewkd, { probe = probe, warmup = -1 })
    h.fails("distillers.reviewkd: option max_mid_channel must be an integer > 0, got 0",
      distillers.reviewkd, { probe = probe, max_mid_channel = 0 })
    local short = { student = out_of({ distill.zeros{ 2, 4, 6, 6 } }, 2), teacher = probe.teacher }
    h.fails("distillers.reviewkd: the student has 1 block features and the teacher 3", distillers.reviewkd,
      { probe = short })
    local flat = { student = out_of({ distill.zeros{ 2, 4 } }, 2), teacher = probe.teacher }
    h.fails("distillers.reviewkd: the student's feature 1 is 2-d, expected {N, C, H, W}",
      distillers.reviewkd, { probe = flat })
  end)

  it("builds one ABF per level, deepest first, with mid = min(512, pooled channels)", function()
    local s, t = models()
    local d = distillers.reviewkd{ probe = probe_of(s, t) }
    assert.are.equal(4, #d.abfs)
    assert.are.same({ 8, 8, 1, 1 }, d.abfs[1].conv1[1].weight:shape(), "the pooled level: 8 -> mid 8")
    assert.are.same({ 16, 8, 3, 3 }, d.abfs[1].conv2[1].weight:shape(), "mid -> the teacher's 16")
    assert.is_nil(d.abfs[1].att_conv, "the deepest level has nothing to fuse")
    assert.are.same({ 2, 16, 1, 1 }, d.abfs[4].att_conv[1].weight:shape())
    assert.are.same({ { 1, 1 }, { 3, 3 }, { 6, 6 }, { 12, 12 } }, d.out_sizes)
    local capped = distillers.reviewkd{ probe = probe_of(s, t), max_mid_channel = 3 }
    assert.are.same({ 3, 4, 1, 1 }, capped.abfs[4].conv1[1].weight:shape())
  end)

  it("resizes by nearest neighbours as PyTorch's interpolate does", function()
    local x = distill.arange(1, 7):float():view{ 1, 1, 2, 3 }
    assert.are.same({ 1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6 },
      h.flat(ReviewKD.nearest(x, 4, 6)))
    -- 3 -> 7: source floor(i * 3 / 7)
    assert.are.same({ 1, 1, 1, 2, 2, 3, 3 }, h.flat(ReviewKD.nearest(distill.arange(1, 4):float():view{ 1, 1, 1, 3 }, 1, 7)))
    assert.are.same({ 1, 2 }, h.flat(ReviewKD.nearest(x:narrow(3, 1, 1), 1, 2)), "and down: floor(i * 3 / 2)")
  end)

  it("weights the pooled levels of the hierarchical context loss 1, 1/2, 1/4", function()
    local fs, ft = distill.randn{ 2, 3, 4, 4 }, distill.randn{ 2, 3, 4, 4 }
    local function mse(a, b)
      return (a - b):pow(2):mean():item()
    end
    local expected = (mse(fs, ft) + mse(F.adaptive_avg_pool2d(fs, { 2, 2 }), F.adaptive_avg_pool2d(ft, { 2, 2 })) / 2
      + mse(fs:mean(4):mean(3), ft:mean(4):mean(3)) / 4) / 1.75
    local one = distill.randn{ 2, 3, 1, 1 }
    close(expected + mse(one, one * 0), ReviewKD.hcl({ fs, one }, { ft, one * 0 }):item())
  end)

  it("ramps up over its warm-up and refuses features of another size", function()
    local s, t = models()
    local d = distillers.reviewkd{ probe = probe_of(s, t), warmup = 20 }
    d:eval()
    local x = distill.randn{ 2, 1, 12, 12 }
    local s_out, t_out = forward(s, t, x, { teacher_preact = true })
    local full = d:loss(s_out, t_out, nil, nil, 20):item()
    close(full / 4, d:loss(s_out, t_out, nil, nil, 5):item())
    close(full, d:loss(s_out, t_out, nil, nil, 40):item())
    local flat = distillers.reviewkd{ probe = probe_of(s, t), warmup = 0 }
    flat:eval()
    close(flat:loss(s_out, t_out, nil, nil, 20):item(), flat:loss(s_out, t_out, nil, nil, 1):item())
    local big_s, big_t = forward(s, t, distill.randn{ 2, 1, 16, 16 }, { teacher_preact = true })
    h.fails("distillers.reviewkd: level 3 gives {2, 16, 3, 3} but the teacher's feature is {2, 16, 4, 4}",
      function() return d:loss(big_s, big_t, nil, nil, 20) end)
    table.remove(s_out.feats, 2)
    h.fails("distillers.reviewkd: built for 4 levels, got 3 (student) and 4 (teacher)",
      function() return d:loss(s_out, t_out, nil, nil, 20) end)
  end)

  it("trains its fusion modules and the student", function()
    local s, t = models()
    local d = distillers.build("reviewkd", {}, { student = s, teacher = t, input_shape = { 1, 12, 12 } })
    local s_out, t_out = forward(s, t, distill.randn{ 4, 1, 12, 12 }, { teacher_preact = true })
    d:loss(s_out, t_out, nil, nil, 20):backward()
    for _, p in ipairs(d:parameters()) do
      assert.is_not_nil(p.grad)
    end
    assert.is_not_nil(s.layer1[1].conv1.weight.grad)
  end)
end)

describe("F.abf_fuse (ReviewKD's fusion, engine/contrast/abf.c)", function()
  local ReviewKD = distillers.class("reviewkd")

  -- The composed ops it replaces.
  local function composed(x, res, att)
    local n, h_, w = x:size(1), x:size(3), x:size(4)
    local y = ReviewKD.nearest(res, h_, w)
    return x * att:narrow(2, 1, 1):view{ n, 1, h_, w } + y * att:narrow(2, 2, 1):view{ n, 1, h_, w }
  end

  -- x {2, 3, H, W}, res {2, 3, h, w}: up, same size, from 1x1, uneven and down
  local SIZES = { { 4, 6, 2, 3 }, { 3, 3, 3, 3 }, { 5, 4, 1, 1 }, { 7, 5, 3, 2 }, { 2, 3, 4, 5 } }

  it("equals x * att[:, 1] + nearest(res) * att[:, 2], values and gradients", function()
    distill.manual_seed(5)
    for _, size in ipairs(SIZES) do
      local x, res = h.leaf{ 2, 3, size[1], size[2] }, h.leaf{ 2, 3, size[3], size[4] }
      local att = distill.rand{ 2, 2, size[1], size[2] }
      att.requires_grad = true
      local out = F.abf_fuse(x, res, att)
      local expected = composed(x, res, att)
      assert.are.same(expected:shape(), out:shape())
      assert.is_true(h.max_abs_diff(expected, out) <= 1e-6)
      local g = distill.randn(out:shape())
      out:backward(g)
      local fused_grads = { x.grad:clone(), res.grad:clone(), att.grad:clone() }
      x.grad, res.grad, att.grad = nil, nil, nil
      expected:backward(g)
      for i, leaf in ipairs { x, res, att } do
        assert.is_true(h.max_abs_diff(leaf.grad, fused_grads[i]) <= 1e-5,
          ("input %d of size %s"):format(i, table.concat(size, ",")))
      end
    end
  end)

  it("passes gradcheck on every input, also from non-contiguous ones", function()
    distill.manual_seed(6)
    for _, size in ipairs(SIZES) do
      local att = distill.rand{ 2, 2, size[1], size[2] }
      att.requires_grad = true
      h.check(F.abf_fuse, { h.leaf{ 2, 3, size[1], size[2] }, h.leaf{ 2, 3, size[3], size[4] }, att })
    end
    local x, res, att = h.leaf{ 2, 3, 5, 4 }, h.leaf{ 2, 3, 2, 3 }, h.leaf{ 2, 2, 5, 4 }
    h.check(function(a, r, z)
      return F.abf_fuse(a:transpose(3, 4), r:transpose(3, 4), z:transpose(3, 4))
    end, { x, res, att })
    assert.are.same(h.flat(composed(x:transpose(3, 4), res:transpose(3, 4), att:transpose(3, 4))),
      h.flat(F.abf_fuse(x:transpose(3, 4):contiguous(), res:transpose(3, 4):contiguous(),
        att:transpose(3, 4):contiguous())))
  end)

  it("records nothing without grad and gives the same bits with 1 or 2 threads", function()
    local out = distill.no_grad(function()
      return F.abf_fuse(h.leaf{ 1, 2, 2, 2 }, h.leaf{ 1, 2, 1, 1 }, h.leaf{ 1, 2, 2, 2 })
    end)
    assert.is_false(out.requires_grad)
    -- above the op's threshold for a parallel region
    h.assert_same_across_threads([[
local distill = require "distill"
distill.manual_seed(7)
local x, res, att = distill.randn{ 2, 64, 32, 32 }, distill.randn{ 2, 64, 16, 16 }, distill.rand{ 2, 2, 32, 32 }
for _, t in ipairs { x, res, att } do t.requires_grad = true end
local out = distill.F.abf_fuse(x, res, att)
out:backward(distill.randn(out:shape()))
print(fingerprint(out), fingerprint(x.grad), fingerprint(res.grad), fingerprint(att.grad))
]], { 1, 2 })
  end)

  it("refuses inputs that do not pair up, naming the op and the shapes", function()
    local x, res = distill.randn{ 2, 3, 4, 4 }, distill.randn{ 2, 3, 2, 2 }
    h.fails("distill.abf_fuse: expected x N x C x H x W, res N x C x h x w and att N x 2 x H x W; "
      .. "got [2, 3, 4, 4], [2, 3, 2, 2], [2, 3, 4, 4]", F.abf_fuse, x, res, distill.rand{ 2, 3, 4, 4 })
    h.fails("distill.abf_fuse: expected", F.abf_fuse, x, distill.randn{ 2, 4, 2, 2 }, distill.rand{ 2, 2, 4, 4 })
    h.fails("distill.abf_fuse: expected", F.abf_fuse, x, distill.randn{ 1, 3, 2, 2 }, distill.rand{ 2, 2, 4, 4 })
    h.fails("distill.abf_fuse: expected", F.abf_fuse, x, res, distill.rand{ 2, 2, 4, 3 })
    h.fails("distill.abf_fuse: expected", F.abf_fuse, x:view{ 2, 3, 16 }, res, distill.rand{ 2, 2, 4, 4 })
    h.fails("distill.abf_fuse: expected", F.abf_fuse, x, distill.randn{ 2, 3, 0, 2 }, distill.rand{ 2, 2, 4, 4 })
    h.fails("distill.abf_fuse: x, res and att must be float32", F.abf_fuse, x:long(), res,
      distill.rand{ 2, 2, 4, 4 })
    h.fails("distill.abf_fuse", F.abf_fuse, x, "res", distill.rand{ 2, 2, 4, 4 })
  end)

  it("computes ReviewKD's attention as att_conv over the concatenation, without it", function()
    distill.manual_seed(8)
    local abf = ReviewKD.ABF(3, 4, 5, true)
    local x, residual = distill.randn{ 2, 4, 6, 6 }, distill.randn{ 2, 4, 3, 3 }
    local expected = abf.att_conv(distill.cat({ x, ReviewKD.nearest(residual, 6, 6) }, 2))
    assert.is_true(h.max_abs_diff(expected, abf:attention(x, residual)) <= 1e-6)
  end)
end)

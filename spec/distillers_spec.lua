local distill = require "distill"
local nn = require "distill.nn"
local F = distill.F
local optim = require "distill.optim"
local distillers = require "distill.distillers"
local h = require "support.helpers"

-- ------------------------------------------------------------- helpers

local function softmax(row, T)
  local m = -math.huge
  for _, v in ipairs(row) do
    m = math.max(m, v / T)
  end
  local sum, out = 0, {}
  for i, v in ipairs(row) do
    out[i] = math.exp(v / T - m)
    sum = sum + out[i]
  end
  for i = 1, #out do
    out[i] = out[i] / sum
  end
  return out
end

local function close(expected, actual, tol)
  tol = tol or 1e-4
  assert.is_true(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    ("expected %.8g, got %.8g"):format(expected, actual))
end

local function smooth_l1(a, b)
  local total = 0
  for i = 1, #a do
    local d = math.abs(a[i] - b[i])
    total = total + (d < 1 and 0.5 * d * d or d - 0.5)
  end
  return total / #a
end

-- A small CNN with the zoo's output contract: feats = {stem, block1, block2,
-- pooled}; preact gives the blocks before their ReLU.
local Tiny = nn.class("Tiny")
function Tiny:init(width, classes)
  self.conv1 = nn.Conv2d(1, width, 3, { padding = 1, bias = false })
  self.bn1 = nn.BatchNorm2d(width)
  self.conv2 = nn.Conv2d(width, width, 3, { stride = 2, padding = 1, bias = false })
  self.bn2 = nn.BatchNorm2d(width)
  self.conv3 = nn.Conv2d(width, 2 * width, 3, { stride = 2, padding = 1, bias = false })
  self.bn3 = nn.BatchNorm2d(2 * width)
  self.fc = nn.Linear(2 * width, classes)
end
function Tiny:forward(x, opts)
  local f0 = F.relu(self.bn1(self.conv1(x)))
  local pre1 = self.bn2(self.conv2(f0))
  local f1 = F.relu(pre1)
  local pre2 = self.bn3(self.conv3(f1))
  local f2 = F.relu(pre2)
  local pooled = F.adaptive_avg_pool2d(f2, 1):flatten(2)
  local logits = self.fc(pooled)
  if opts and opts.features then
    local preact = opts.preact
    return { feats = { f0, preact and pre1 or f1, preact and pre2 or f2, pooled },
             pooled = pooled, logits = logits }
  end
  return logits
end
function Tiny:get_bn_before_relu()
  return { self.bn2, self.bn3 }
end

local function outputs(logits, pooled, feats)
  return { logits = logits, pooled = pooled, feats = feats or { pooled, pooled } }
end

-- ------------------------------------------------------------- values

describe("distillers", function()
  before_each(function()
    distill.manual_seed(21)
  end)

  it("lists and creates every method, and rejects unknown ones", function()
    assert.are.same({ "ab", "at", "cc", "ce", "crd", "dkd", "fitnet", "fsecd", "fsp", "ft", "kd", "nst", "ofd",
      "pkt", "reviewkd", "rkd", "sp", "vid" }, distillers.names())
    local ok, err = pcall(distillers.create, "hint")
    assert.is_false(ok)
    assert.truthy(err:find("unknown distiller 'hint' (known: ab, at, cc, ce, crd", 1, true))
    ok, err = pcall(distillers.create, "kd", { temperature = 4 })
    assert.is_false(ok)
    assert.truthy(err:find("distillers.kd: unknown option 'temperature' (valid: T)", 1, true))
  end)

  it("checks every hyperparameter's range, naming the distiller and the option", function()
    local probe = distillers.probe(Tiny(4, 5), Tiny(8, 5), { 2, 1, 16, 16 })
    local NAN = 0 / 0
    -- {distiller, option, bad value, what the message says it must be}
    local cases = {
      { "ce", "label_smoothing", 1.5, "a number in [0, 1]" },
      { "ce", "label_smoothing", -0.1, "a number in [0, 1]" },
      { "kd", "T", 0, "a finite number > 0" },
      { "kd", "T", -4, "a finite number > 0" },
      { "kd", "T", NAN, "a finite number > 0" },
      { "kd", "T", "4", "a finite number > 0" },
      { "dkd", "alpha", -1, "a finite number >= 0" },
      { "dkd", "beta", math.huge, "a finite number >= 0" },
      { "dkd", "T", 0, "a finite number > 0" },
      { "dkd", "warmup", -5, "a finite number >= 0" },
      { "rkd", "distance_weight", -25, "a finite number >= 0" },
      { "rkd", "angle_weight", NAN, "a finite number >= 0" },
      { "at", "p", 0, "a finite number > 0" },
      { "fitnet", "hint_layer", 2.5, "an integer > 0" },
      { "fitnet", "hint_layer", 0, "an integer > 0" },
      { "crd", "nce_k", 0, "an integer > 0" },
      { "crd", "nce_k", 16.5, "an integer > 0" },
      { "crd", "nce_t", 0, "a finite number > 0" },
      { "crd", "nce_m", 1.5, "a number in [0, 1]" },
      { "crd", "feat_dim", -128, "an integer > 0" },
      { "fsecd", "tau", 0, "a finite number > 0" },
      { "fsecd", "tau", -0.1, "a finite number > 0" },
      { "fsecd", "eps", 0, "a finite number > 0" },
      { "fsecd", "symmetric", "yes", "true or false" },
      { "fsecd", "gather", 1, "true or false" },
      { "fsecd", "policy", "batch", 'one of "instance", "class"' },
      { "fsecd", "feature", "feats", 'one of "pooled", "logits"' },
      { "fsecd", "embed", "mlp", 'one of false, "linear", "identity"' },
      { "ab", "margin", -1, "a finite number >= 0" },
      { "ft", "rate", 0, "a finite number > 0" },
      { "ft", "translator_bn", "no", "true or false" },
      { "reviewkd", "max_mid_channel", 0, "an integer > 0" },
    }
    for _, case in ipairs(cases) do
      local name, key, bad, must = table.unpack(case)
      local opts = { probe = probe, n_data = 16, [key] = bad }
      if name ~= "crd" then
        opts.n_data = nil
      end
      local shown = type(bad) == "string" and ("%q"):format(bad) or tostring(bad)
      h.fails(("distillers.%s: option %s must be %s, got %s"):format(name, key, must, shown),
        distillers.create, name, opts)
    end
    -- the same through a config's term
    h.fails("distillers.dkd: option T must be a finite number > 0, got 0", distillers.objective,
      { { distiller = "dkd", weight = 1, T = 0 } }, { teacher = Tiny(8, 5), student = Tiny(4, 5), input_shape = { 1, 16, 16 } })
    -- good values at the edges of the ranges are taken
    distillers.create("ce", { label_smoothing = 1 })
    distillers.create("dkd", { alpha = 0, beta = 0, warmup = 0 })
    distillers.create("crd", { probe = probe, n_data = 16, nce_k = 1, nce_m = 0 })
    distillers.create("fsecd", { probe = probe, embed = "linear", policy = "class" })
    -- F.kd_loss and the objective's weights
    local z = distill.randn{ 2, 5 }
    for _, T in ipairs { 0, -1, NAN, math.huge, "4" } do
      h.fails("F.kd_loss: temperature must be a finite number > 0, got " .. tostring(T), F.kd_loss, z, z, T)
    end
    for _, w in ipairs { NAN, math.huge, -math.huge } do
      h.fails("distillers.objective: term 1's weight must be a finite number or a function of epoch, got "
        .. tostring(w), distillers.objective, { { distillers.ce(), w } })
    end
  end)

  describe("hand-computed losses", function()
    local s_rows = { { 1, 2, 3 }, { 0, 0, 1 } }
    local t_rows = { { 3, 2, 1 }, { 1, 0, 0 } }
    local s_logits = distill.tensor(s_rows, "float32")
    local t_logits = distill.tensor(t_rows, "float32")

    it("ce is the cross-entropy of the student's logits", function()
      local loss = distillers.ce():loss(outputs(s_logits), nil, distill.tensor{3, 1})
      local p1, p2 = softmax(s_rows[1], 1), softmax(s_rows[2], 1)
      close(-(math.log(p1[3]) + math.log(p2[1])) / 2, loss:item())
    end)

    it("kd is T^2 KL(teacher || student) at temperature T, averaged over the batch", function()
      local T = 2
      local expected = 0
      for b = 1, 2 do
        local p, q = softmax(s_rows[b], T), softmax(t_rows[b], T)
        for c = 1, 3 do
          expected = expected + q[c] * math.log(q[c] / p[c])
        end
      end
      expected = expected / 2 * T * T
      close(expected, distillers.kd{ T = T }:loss(outputs(s_logits), outputs(t_logits)):item())
    end)

    it("dkd splits KD into target and non-target parts with a warm-up", function()
      local T, alpha, beta = 2, 1, 8
      local labels = { 1, 3 }
      local tckd, nckd = 0, 0
      for b = 1, 2 do
        local p, q = softmax(s_rows[b], T), softmax(t_rows[b], T)
        local y = labels[b]
        local pb, qb = { p[y], 1 - p[y] }, { q[y], 1 - q[y] }
        for k = 1, 2 do
          tckd = tckd + qb[k] * math.log(qb[k] / pb[k])
        end
        local ps, qs, s_sum, t_sum = {}, {}, 0, 0
        for c = 1, 3 do
          if c ~= y then
            ps[c], qs[c] = math.exp(s_rows[b][c] / T), math.exp(t_rows[b][c] / T)
            s_sum, t_sum = s_sum + ps[c], t_sum + qs[c]
          end
        end
        for c = 1, 3 do
          if c ~= y then
            local pc, qc = ps[c] / s_sum, qs[c] / t_sum
            nckd = nckd + qc * math.log(qc / pc)
          end
        end
      end
      local full = (alpha * tckd + beta * nckd) * T * T / 2
      local d = distillers.dkd{ T = T, alpha = alpha, beta = beta, warmup = 20 }
      local y = distill.tensor(labels)
      close(full, d:loss(outputs(s_logits), outputs(t_logits), y, nil, 20):item(), 1e-3)
      close(full / 2, d:loss(outputs(s_logits), outputs(t_logits), y, nil, 10):item(), 1e-3)
    end)

    it("at compares normalised spatial attention maps", function()
      -- one block feature of 1 x 2 channels x 1 x 2 positions each
      local fs = distill.tensor{ { { { 1, 2 } }, { { 3, 0 } } } }:float()
      local ft = distill.tensor{ { { { 0, 1 } }, { { 1, 1 } } } }:float()
      local function map(a, b)   -- mean over channels of squares, normalised
        local m = { (a[1] ^ 2 + b[1] ^ 2) / 2, (a[2] ^ 2 + b[2] ^ 2) / 2 }
        local n = math.sqrt(m[1] ^ 2 + m[2] ^ 2)
        return { m[1] / n, m[2] / n }
      end
      local ms, mt = map({ 1, 2 }, { 3, 0 }), map({ 0, 1 }, { 1, 1 })
      local expected = ((ms[1] - mt[1]) ^ 2 + (ms[2] - mt[2]) ^ 2) / 2
      local s_out = { feats = { fs, fs, fs:view{1, -1} }, logits = distill.zeros{1, 2} }
      local t_out = { feats = { ft, ft, ft:view{1, -1} }, logits = distill.zeros{1, 2} }
      close(expected, distillers.at():loss(s_out, t_out):item())
    end)

    it("rkd matches distances and angles of the pooled features", function()
      local s = { { 0, 0 }, { 1, 0 }, { 0, 2 } }
      local t = { { 0, 0 }, { 2, 0 }, { 0, 1 } }
      local function distances(e)
        local d, sum, count = {}, 0, 0
        for i = 1, 3 do
          for j = 1, 3 do
            local v = math.sqrt((e[i][1] - e[j][1]) ^ 2 + (e[i][2] - e[j][2]) ^ 2)
            d[#d + 1] = v
            if v > 0 then
              sum, count = sum + v, count + 1
            end
          end
        end
        for k = 1, #d do
          d[k] = d[k] / (sum / count)
        end
        return d
      end
      local function angles(e)
        local a = {}
        for i = 1, 3 do
          for j = 1, 3 do
            for k = 1, 3 do
              -- unit(e_j - e_i) . unit(e_k - e_i), 0 for zero vectors
              local u = { e[j][1] - e[i][1], e[j][2] - e[i][2] }
              local w = { e[k][1] - e[i][1], e[k][2] - e[i][2] }
              local nu, nw = math.sqrt(u[1] ^ 2 + u[2] ^ 2), math.sqrt(w[1] ^ 2 + w[2] ^ 2)
              nu, nw = math.max(nu, 1e-12), math.max(nw, 1e-12)
              a[#a + 1] = (u[1] * w[1] + u[2] * w[2]) / (nu * nw)
            end
          end
        end
        return a
      end
      local expected = 25 * smooth_l1(distances(s), distances(t)) + 50 * smooth_l1(angles(s), angles(t))
      local so = outputs(distill.zeros{3, 2}, distill.tensor(s, "float32"))
      local to = outputs(distill.zeros{3, 2}, distill.tensor(t, "float32"))
      close(expected, distillers.rkd():loss(so, to):item(), 1e-3)
    end)

    it("fsecd with equal widths is the fused loss on the pooled features", function()
      local s, t = distill.randn{4, 6}, distill.randn{4, 6}
      local labels = distill.tensor{1, 2, 1, 2}
      local probe = { student = outputs(distill.zeros{4, 2}, s), teacher = outputs(distill.zeros{4, 2}, t) }
      local d = distillers.fsecd{ probe = probe, policy = "class", tau = 0.2 }
      assert.are.equal(0, #d:parameters())
      close(distill.fsecd_loss(s, t, labels, { policy = "class", tau = 0.2 }):item(),
        d:loss(probe.student, probe.teacher, labels):item(), 1e-6)
      local wide = distillers.fsecd{ probe = { student = probe.student,
        teacher = outputs(distill.zeros{4, 2}, distill.randn{4, 9}) } }
      assert.are.equal(2, #wide:parameters())
      assert.are.same({ 9, 6 }, wide.embed.weight:shape())
    end)

    it("fitnet regresses the hint through conv + BN + ReLU", function()
      local fs = distill.randn{2, 3, 4, 4}
      local ft = distill.randn{2, 3, 4, 4}
      local probe = { student = { feats = { fs, fs, fs } }, teacher = { feats = { ft, ft, ft } } }
      local d = distillers.fitnet{ probe = probe, hint_layer = 3 }
      local conv = d.regressor[1]
      assert.are.same({ 3, 3, 1, 1 }, conv.weight:shape())
      distill.no_grad(function()
        conv.weight:copy_(distill.eye(3):view{3, 3, 1, 1})
        conv.bias:zero_()
      end)
      d:eval()   -- BN with its initial statistics: x / sqrt(1 + eps)
      local scaled = F.relu(fs / math.sqrt(1 + 1e-5))
      local expected = ((scaled - ft) ^ 2):mean():item()
      close(expected, d:loss({ feats = { fs, fs, fs } }, { feats = { ft, ft, ft } }):item())
      assert.has_error(function()
        distillers.fitnet{ probe = { student = { feats = { fs, fs, distill.randn{2, 3, 3, 3} } },
          teacher = probe.teacher } }
      end)
    end)

    it("ofd derives margins from the teacher's batch norm", function()
      local bn = nn.BatchNorm2d(2)
      distill.no_grad(function()
        bn.weight:copy_(distill.tensor{1.0, 2.0})
        bn.bias:copy_(distill.tensor{0.0, 10.0})
      end)
      local margins = distillers.class("ofd").margins_from_bn(bn)
      -- N(0, 1): E[x | x < 0] = -sqrt(2/pi); N(10, 4): P(x < 0) tiny -> -3 * 2
      close(-math.sqrt(2 / math.pi), margins[1][1][1][1], 1e-5)
      close(-6, margins[1][2][1][1])
    end)

    it("crd's scores and NCE loss match a plain computation", function()
      local n_data, k = 6, 3
      local s_pooled, t_pooled = distill.randn{2, 4}, distill.randn{2, 5}
      local probe = { student = outputs(distill.zeros{2, 2}, s_pooled),
                      teacher = outputs(distill.zeros{2, 2}, t_pooled) }
      local d = distillers.crd{ probe = probe, n_data = n_data, feat_dim = 3, nce_k = k }
      local bank_s, bank_t = d.memory_student:clone(), d.memory_teacher:clone()
      local index = distill.tensor{2, 5}
      local state = distill.get_rng_state()
      local loss = d:loss(probe.student, probe.teacher, nil, { index = index })
      distill.set_rng_state(state)
      local contrast = distill.randint(1, n_data + 1, { 2, k + 1 })
      contrast:select(2, 1):copy_(index)
      local v_s = F.normalize(d.embed_s(s_pooled), { dim = 2 })
      local v_t = F.normalize(d.embed_t(t_pooled), { dim = 2 })
      local function scores(bank, v)
        local out = {}
        for b = 1, 2 do
          out[b] = {}
          for j = 1, k + 1 do
            local row = bank[contrast[b][j]]
            local dot = 0
            for c = 1, 3 do
              dot = dot + row[c] * v[b][c]
            end
            out[b][j] = math.exp(dot / 0.07)
          end
        end
        return out
      end
      local function nce(out)
        local z, total = 0, 0
        for b = 1, 2 do
          for j = 1, k + 1 do
            z = z + out[b][j]
          end
        end
        z = z / (2 * (k + 1)) * n_data
        local noise = k / n_data
        for b = 1, 2 do
          local p = out[b][1] / z
          total = total + math.log(p / (p + noise + 1e-7))
          for j = 2, k + 1 do
            total = total + math.log(noise / (out[b][j] / z + noise + 1e-7))
          end
        end
        return -total / 2
      end
      -- each model's embeddings are scored against the other model's bank
      local expected = nce(scores(bank_t, v_s)) + nce(scores(bank_s, v_t))
      close(expected, loss:item(), 1e-3)
      -- banks change after backward, not before
      assert.is_true(bank_s == d.memory_student)
      d:after_backward()
      assert.is_false(bank_s == d.memory_student)
      local row = d.memory_student[2]
      close(1, (row * row):sum():item(), 1e-5)
    end)
  end)

  -- ---------------------------------------------------- with real models

  local function build(name, student, teacher, x, labels)
    local preact = name == "ofd"
    local probe = distillers.probe(student, teacher, { 4, 1, 16, 16 }, { preact = preact })
    local opts = ({
      fitnet = { probe = probe, hint_layer = 3 },
      ofd = { probe = probe, teacher_bns = teacher:get_bn_before_relu() },
      crd = { probe = probe, n_data = 32, nce_k = 8 },
      fsecd = { probe = probe },
    })[name]
    return distillers.create(name, opts), preact
  end

  local methods = { "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd" }

  for _, name in ipairs(methods) do
    describe(name .. " between two small models", function()
      local student, teacher, x, labels, index
      before_each(function()
        distill.manual_seed(5)
        student, teacher = Tiny(4, 5), Tiny(8, 5)
        teacher:eval()
        x = distill.randn{8, 1, 16, 16}
        labels = distill.randint(1, 6, { 8 })
        index = distill.arange(1, 9)
      end)

      it("sends gradients to the student and its own parameters, never the teacher", function()
        local d, preact = build(name, student, teacher, x, labels)
        local t_out = distill.no_grad(function()
          return teacher:forward(x, { features = true, preact = preact })
        end)
        local s_out = student:forward(x, { features = true, preact = preact })
        local loss = d:loss(s_out, t_out, labels, { index = index }, 1)
        loss:backward()
        assert.is_not_nil(student.conv1.weight.grad, "student got no gradient")
        for _, p in ipairs(d:parameters()) do
          assert.is_not_nil(p.grad, "a distiller parameter got no gradient")
        end
        for _, p in ipairs(teacher:parameters()) do
          assert.is_nil(p.grad, "the teacher got a gradient")
        end
      end)

      it("30 steps lower the distillation loss", function()
        local d, preact = build(name, student, teacher, x, labels)
        local params = student:parameters()
        for _, p in ipairs(d:parameters()) do
          params[#params + 1] = p
        end
        local opt = optim.SGD(params, { lr = name == "crd" and 0.5 or 0.05, momentum = 0.9 })
        local t_out = distill.no_grad(function()
          return teacher:forward(x, { features = true, preact = preact })
        end)
        local first, last
        for step = 1, 30 do
          opt:zero_grad()
          local s_out = student:forward(x, { features = true, preact = preact })
          local loss = d:loss(s_out, t_out, labels, { index = index }, 20)
          local value = loss:item()
          assert.is_true(value == value, "loss is NaN at step " .. step)
          first = first or value
          last = value
          h.distiller_step(d, opt, loss)
        end
        assert.is_true(last < first, ("%s: loss went from %.5g to %.5g"):format(name, first, last))
      end)
    end)
  end

  describe("objective", function()
    it("weighs terms, reports each one and accepts weights that depend on the epoch", function()
      local s = outputs(distill.tensor{{1, 2, 3}}:float())
      local t = outputs(distill.tensor{{3, 2, 1}}:float())
      local y = distill.tensor{2}
      local objective = distillers.objective{
        { distillers.ce(), 0.1 },
        { distillers.kd(), function(epoch) return epoch < 5 and 0 or 0.9 end },
        { name = "kd_t1", distiller = distillers.kd{ T = 1 }, weight = 2 },
      }
      local total, parts, weights = objective:loss(s, t, y, nil, 1)
      close(0.1 * parts.ce + 2 * parts.kd_t1, total:item())
      assert.are.equal(0, weights.kd)
      total, parts = objective:loss(s, t, y, nil, 10)
      close(0.1 * parts.ce + 0.9 * parts.kd + 2 * parts.kd_t1, total:item())
    end)

    it("names repeated terms apart and collects parameters", function()
      local probe = { student = outputs(distill.zeros{2, 2}, distill.zeros{2, 3}),
                      teacher = outputs(distill.zeros{2, 2}, distill.zeros{2, 5}) }
      local objective = distillers.objective{
        { distillers.kd(), 1 }, { distillers.kd(), 1 }, { distillers.fsecd{ probe = probe }, 1 },
      }
      assert.are.same({ "kd", "kd2", "fsecd" },
        { objective.terms[1].name, objective.terms[2].name, objective.terms[3].name })
      assert.are.equal(2, #objective:parameters())
      assert.has_error(function() distillers.objective{} end)
      assert.has_error(function() distillers.objective{ { distillers.kd(), "heavy" } } end)
    end)

    it("round-trips the state of every term", function()
      local probe = { student = outputs(distill.zeros{2, 2}, distill.zeros{2, 3}),
                      teacher = outputs(distill.zeros{2, 2}, distill.zeros{2, 4}) }
      local a = distillers.objective{ { distillers.crd{ probe = probe, n_data = 10, nce_k = 4 }, 1 } }
      local b = distillers.objective{ { distillers.crd{ probe = probe, n_data = 10, nce_k = 4 }, 1 } }
      b:load_state_dict(a:state_dict())
      assert.is_true(a.terms[1].distiller.memory_student == b.terms[1].distiller.memory_student)
    end)
  end)
end)

-- ------------------------------------------------- declarations, context

describe("distillers built from declarations and a build context", function()
  local base = require "distill.distillers.base"

  local function context()
    distill.manual_seed(4)
    return { student = Tiny(4, 5), teacher = Tiny(8, 5), input_shape = { 1, 8, 8 }, dataset_size = 40 }
  end

  it("has every class declare what it needs", function()
    local expected = {
      ce = {}, kd = { teacher = true }, at = { teacher = true }, rkd = { teacher = true },
      dkd = { teacher = true }, fitnet = { teacher = true, probe = true },
      fsecd = { teacher = true, probe = true },
      crd = { teacher = true, probe = true, dataset_size = true },
      ofd = { teacher = true, probe = true, preact = true, teacher_bns = true },
      ab = { teacher = true, probe = true, preact = true }, ft = { teacher = true, probe = true },
      reviewkd = { teacher = true, probe = true, teacher_preact = true },
      -- the zoo of issue 18 (distillers_zoo_spec.lua)
      sp = { teacher = true }, pkt = { teacher = true }, nst = { teacher = true },
      cc = { teacher = true, probe = true }, fsp = { teacher = true, probe = true },
      vid = { teacher = true, probe = true },
    }
    for _, name in ipairs(distillers.names()) do
      local needs = distillers.class(name).needs
      for key in pairs(base.NEEDS) do
        assert.are.equal(expected[name][key] == true, needs[key] == true, name .. "." .. key)
      end
    end
    local union = distillers.needs{ { distiller = "ce", weight = 1 }, { "ofd", 0.001 } }
    assert.is_true(union.teacher and union.preact and union.teacher_bns and union.probe)
    assert.is_false(union.dataset_size)
    assert.is_false(distillers.needs{ { distiller = "ce" } }.teacher)
    assert.is_true(distillers.needs{ { distillers.kd(), 1 } }.teacher, "built terms count too")
  end)

  it("builds config terms by name, each taking what it declared", function()
    local ctx = context()
    local objective = distillers.objective({
      { distiller = "ce", weight = 1 }, { "kd", 0.9, T = 2 }, { distiller = "crd", weight = 0.8, nce_k = 8 },
      { distiller = "ofd", weight = 0.001 }, { distiller = "fsecd", name = "contrast" },
    }, ctx)
    local names = {}
    for i, term in ipairs(objective.terms) do
      names[i] = term.name
    end
    assert.are.same({ "ce", "kd", "crd", "ofd", "contrast" }, names)
    assert.are.equal(2, objective.terms[2].distiller.options.T)
    assert.are.equal(0.9, objective.terms[2].weight)
    assert.are.equal(40, objective.terms[3].distiller.options.n_data, "CRD's n_data is the dataset size")
    assert.are.same({ 40, 128 }, objective.terms[3].distiller.memory_student:shape())
    assert.are.equal(2, objective.terms[4].distiller.layers, "OFD got the teacher's two batch norms")
    assert.is_true(objective:needs_preact())
    -- the objective trains like one built by hand
    local x = distill.randn{ 4, 1, 8, 8 }
    local s_out = ctx.student:forward(x, { features = true, preact = true })
    local t_out = distill.no_grad(function() return ctx.teacher:forward(x, { features = true, preact = true }) end)
    local total = objective:loss(s_out, t_out, distill.tensor{ 1, 2, 3, 4 }, { index = distill.tensor{ 1, 2, 3, 4 } }, 1)
    total:backward()
    objective:after_backward()
  end)

  it("draws one probe whenever there is a teacher, so the RNG does not depend on the method", function()
    local after = {}
    for _, terms in ipairs { { { "ce" } }, { { "ce" }, { "kd" } }, { { "ce" }, { "rkd" } } } do
      local ctx = context()
      distill.manual_seed(9)
      distillers.objective(terms, ctx)
      after[#after + 1] = distill.get_rng_state().offset
    end
    assert.are.equal(after[1], after[2])
    assert.are.equal(after[1], after[3])
  end)

  it("says what is missing", function()
    h.fails("distillers.objective: term 2: kd needs a teacher (context.teacher)", distillers.objective,
      { { "ce" }, { "kd" } }, { student = Tiny(4, 5) })
    local NoBNs = nn.class("NoBNs", Tiny)
    NoBNs.get_bn_before_relu = false
    local ctx = context()
    ctx.teacher = NoBNs(8, 5)
    h.fails("term 1: ofd needs the teacher's get_bn_before_relu()", distillers.objective, { { "ofd" } }, ctx)
    h.fails("distillers.build: kd needs a teacher", distillers.build, "kd", {}, {})
    h.fails("distillers: context.input_shape must be {C, H, W}", distillers.objective, { { "fitnet" } },
      { student = Tiny(4, 5), teacher = Tiny(8, 5) })
    h.fails("distillers.class: X: unknown need 'gpu' (valid: dataset_size, preact, probe, teacher, teacher_bns, "
      .. "teacher_preact)",
      base.class, "X", { gpu = true })
    h.fails("distillers.objective: term 1 must be a table, got string", distillers.objective, { "kd" })
  end)

  it("gives a class configured by its options alone an init from its defaults", function()
    local Scaled = base.class("Scaled", { teacher = false })
    Scaled.init = base.options_init("scaled", { factor = 2 })
    assert.are.same({ factor = 2 }, Scaled().options)
    assert.are.same({ factor = 5 }, Scaled{ factor = 5 }.options)
    h.fails("distillers.scaled: unknown option 'size' (valid: factor)", Scaled, { size = 1 })
    h.fails("distillers.options_init: expected a distiller name and a table of defaults, got string and nil",
      base.options_init, "scaled")
  end)

  it("builds one distiller from a context", function()
    local crd = distillers.build("crd", { nce_k = 8, feat_dim = 4 }, context())
    assert.are.equal(40, crd.options.n_data)
    assert.are.equal(7, distillers.build("crd", { nce_k = 8, n_data = 7 }, context()).options.n_data,
      "an explicit option wins")
    assert.are.equal("CE", distillers.build("ce").__name)
  end)
end)

-- PyTorch parity of the distiller losses (issue 8): KD, AT, RKD, DKD and
-- FSECD (instance and class policies, symmetric off and on, linear and
-- identity embeddings). The oracle (spec/oracle/oracle.py, distillers
-- subcommand) implements the definitions of docs/distillers.md in PyTorch,
-- in float64 on float32-exact inputs, and records the loss and its
-- gradients with respect to the student's tensors (and FSECD's embedding
-- W, b; the teacher feature too in one case). Here the distiller objects of
-- distill.distillers run on the same tensors. rel = max|ours - torch| /
-- max(max|torch|, 1e-12): loss <= 1e-4, gradients <= 1e-3.
local distill = require "distill"
local distillers = require "distill.distillers"
local parity = require "oracle.parity"
local h = require "support.helpers"

if parity.skip_without_torch("PyTorch parity: distillers") then return end

local leaf = h.leaf_clone

local function out_of(t)
  return { logits = t, pooled = t, feats = { t } }
end

-- name -> function(inputs, opts) returning loss, {role = leaf}
local runners = {
  kd = function(i, o)
    local s = leaf(i.s)
    return distillers.kd{ T = o.T }:loss(out_of(s), out_of(i.t)), { s = s }
  end,
  at = function(i, o)
    local sf, tf, leaves = {}, {}, {}
    -- feats = {stem, blocks..., pooled}: the first and last are not used by AT
    sf[1], tf[1] = distill.zeros{ 1 }, distill.zeros{ 1 }
    for k = 1, o.blocks do
      local s = leaf(i["s" .. k])
      leaves["s" .. k] = s
      sf[k + 1], tf[k + 1] = s, i["t" .. k]
    end
    sf[#sf + 1], tf[#tf + 1] = distill.zeros{ 1 }, distill.zeros{ 1 }
    return distillers.at{ p = o.p }:loss({ feats = sf }, { feats = tf }), leaves
  end,
  rkd = function(i, o)
    local s = leaf(i.s)
    local d = distillers.rkd{ distance_weight = o.distance_weight, angle_weight = o.angle_weight }
    return d:loss(out_of(s), out_of(i.t)), { s = s }
  end,
  dkd = function(i, o)
    local s = leaf(i.s)
    local d = distillers.dkd{ alpha = o.alpha, beta = o.beta, T = o.T, warmup = o.warmup }
    return d:loss(out_of(s), out_of(i.t), i.y1, nil, o.epoch), { s = s }
  end,
  fsecd = function(i, o)
    local fs = leaf(i.fs)
    local ft = o.ft_grad and leaf(i.ft) or i.ft
    local probe = { student = out_of(i.fs), teacher = out_of(i.ft) }
    local d = distillers.fsecd{ probe = probe, policy = o.policy, symmetric = o.symmetric, tau = o.tau,
      embed = o.embed }
    local leaves = { fs = fs, ft = ft }
    if o.embed == "linear" then
      d:load_state_dict({ ["embed.weight"] = i.W, ["embed.bias"] = i.b })
      leaves.W, leaves.b = d.embed.weight, d.embed.bias
    end
    return d:loss(out_of(fs), out_of(ft), i.y1), leaves
  end,
}

describe("PyTorch parity: distillers", function()
  local tensors, meta

  setup(function()
    tensors, meta = parity.oracle_tensors("distillers")
  end)

  teardown(function()
    parity.cleanup()
  end)

  for _, name in ipairs({ "kd", "at", "rkd", "dkd", "fsecd" }) do
    it(name .. " loss and gradients match a PyTorch implementation of the same definition", function()
      h.check_distiller_parity(tensors, meta, name, runners[name])
    end)
  end
end)

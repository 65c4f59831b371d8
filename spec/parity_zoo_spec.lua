-- PyTorch parity of SP, CC (both forms), PKT, NST, FSP (with and without
-- channel connectors) and VID. The oracle (spec/oracle/zoo.py, through
-- `oracle.py zoo`) writes each loss from the papers' and the CRD code
-- base's definitions in float64 on float32-exact inputs, with its
-- gradients to the student's features and to the distiller's own
-- parameters (CC's embeddings, FSP's connectors, VID's regressors and
-- log-scales), which the distillers here load. rel = max|ours - torch| /
-- max(max|torch|, 1e-12): loss <= 1e-4, gradients <= 1e-3.
local distill = require "distill"
local distillers = require "distill.distillers"
local parity = require "oracle.parity"
local h = require "support.helpers"

if parity.skip_without_torch("PyTorch parity: the distiller zoo") then return end

local leaf = h.leaf_clone
local STEM = distill.zeros{ 1 }

-- Model outputs {feats = {stem, blocks..., pooled}} with the case's blocks
-- s1..sn (student, as leaves) and t1..tn; with_stem: s1 and t1 are the
-- stems (FSP reads them).
local function outputs_of(i, count, with_stem)
  local s_feats, t_feats, leaves = {}, {}, {}
  if not with_stem then
    s_feats[1], t_feats[1] = STEM, STEM
  end
  for k = 1, count do
    local s = leaf(i["s" .. k])
    leaves["s" .. k] = s
    s_feats[#s_feats + 1], t_feats[#t_feats + 1] = s, i["t" .. k]
  end
  s_feats[#s_feats + 1], t_feats[#t_feats + 1] = STEM, STEM
  return { feats = s_feats }, { feats = t_feats }, leaves
end

local function pooled_out(x)
  return { pooled = x, feats = { x } }
end

-- A probe: detached copies of the outputs (what distillers.probe gives).
local function probe_of(s_out, t_out)
  local function copy(out)
    local feats = {}
    for k, f in ipairs(out.feats) do
      feats[k] = f:detach()
    end
    return { feats = feats, pooled = out.pooled and out.pooled:detach() }
  end
  return { student = copy(s_out), teacher = copy(t_out) }
end

-- Loads tensors into the distiller's parameters and returns those
-- parameters as leaves by role: map = {role = "state.dict.key"}, added to
-- the table `leaves` when given.
local function load_parameters(d, i, map, leaves)
  local state = {}
  leaves = leaves or {}
  for role, key in pairs(map) do
    state[key] = i[role]
  end
  d:load_state_dict(state)
  local named = {}
  for _, pair in ipairs(d:named_parameters()) do
    named[pair[1]] = pair[2]
  end
  for role, key in pairs(map) do
    leaves[role] = named[key] or error("the distiller has no parameter " .. key)
  end
  return leaves
end

-- name -> function(inputs, opts) returning loss, {role = leaf}
local runners = {
  sp = function(i, o)
    local s_out, t_out, leaves = outputs_of(i, o.count)
    return distillers.sp{ blocks = o.blocks }:loss(s_out, t_out), leaves
  end,
  pkt = function(i, o)
    local s = leaf(i.s)
    return distillers.pkt{ eps = o.eps }:loss(pooled_out(s), pooled_out(i.t)), { s = s }
  end,
  cc = function(i, o)
    local s = leaf(i.s)
    local s_out, t_out = pooled_out(s), pooled_out(i.t)
    if o.form == "gaussian" then
      local d = distillers.cc{ form = "gaussian", gamma = o.gamma, order = o.order }
      return d:loss(s_out, t_out), { s = s }
    end
    local d = distillers.cc{ probe = probe_of(s_out, t_out), feat_dim = o.feat_dim }
    local leaves = load_parameters(d, i, { Ws = "embed_s.weight", bs = "embed_s.bias",
      Wt = "embed_t.weight", bt = "embed_t.bias" })
    leaves.s = s
    return d:loss(s_out, t_out), leaves
  end,
  nst = function(i, o)
    local s_out, t_out, leaves = outputs_of(i, o.count)
    return distillers.nst{ degree = o.degree, c = o.c }:loss(s_out, t_out), leaves
  end,
  fsp = function(i, o)
    local s_out, t_out, leaves = outputs_of(i, o.count, true)
    local d = distillers.fsp{ probe = probe_of(s_out, t_out) }
    local map = {}
    for k = 1, o.count do
      if i["M" .. k] then
        map["M" .. k] = "connector" .. k .. ".weight"
      end
    end
    load_parameters(d, i, map, leaves)
    return d:loss(s_out, t_out), leaves
  end,
  vid = function(i, o)
    local s_out, t_out, leaves = outputs_of(i, o.count)
    local d = distillers.vid{ probe = probe_of(s_out, t_out), eps = o.eps, mid_channels = o.mid_channels }
    local map = {}
    for k = 1, o.count do
      local prefix = ("layers.%d."):format(k - 1)
      map["W1_" .. k] = prefix .. "regressor.0.weight"
      map["W2_" .. k] = prefix .. "regressor.2.weight"
      map["W3_" .. k] = prefix .. "regressor.4.weight"
      map["log_scale_" .. k] = prefix .. "log_scale"
    end
    -- PyTorch's 1x1 convolutions hold {out, in, 1, 1} weights; the oracle's are {out, in}
    local state = {}
    for role, key in pairs(map) do
      local t = i[role]
      state[role] = t:dim() == 2 and t:view{ t:size(1), t:size(2), 1, 1 } or t
    end
    load_parameters(d, state, map, leaves)
    return d:loss(s_out, t_out), leaves
  end,
}

describe("PyTorch parity: the distiller zoo", function()
  local tensors, meta

  setup(function()
    tensors, meta = parity.oracle_tensors("zoo")
  end)

  teardown(function()
    parity.cleanup()
  end)

  for _, name in ipairs { "sp", "cc", "pkt", "nst", "fsp", "vid" } do
    it(name .. " loss and gradients match a PyTorch implementation of the same definition", function()
      h.check_distiller_parity(tensors, meta, name, runners[name])
    end)
  end
end)

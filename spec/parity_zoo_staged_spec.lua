-- PyTorch parity of issue 18's AB, FT and ReviewKD. The oracle
-- (spec/oracle/zoo_staged.py, oracle.py's zoo_staged subcommand) writes the
-- reference code bases' definitions in PyTorch (CRD code base: ABLoss with
-- its masked form and ConvReg connectors, Paraphraser/Translator/
-- FactorTransfer; mdistiller: ABF and hcl_loss), runs them in float64 on
-- float32-exact features and weights, and records the loss and its
-- gradients with respect to the student's features and the distiller's own
-- parameters (connectors, translator or paraphraser, ABFs). Here our
-- distillers load the same weights and run on the same features, in
-- training mode (batch statistics). rel = max|ours - torch| /
-- max(max|torch|, 1e-12): loss <= 1e-4, gradients <= 1e-3.
local distill = require "distill"
local distillers = require "distill.distillers"
local parity = require "oracle.parity"
local h = require "support.helpers"

if parity.skip_without_torch("PyTorch parity: AB, FT, ReviewKD") then return end

-- Below ZERO a PyTorch gradient is float64 rounding of an exact zero; ours
-- must then be below ZERO_OURS (float32 rounding of the same sums).
local ZERO, ZERO_OURS = 1e-12, 1e-6

-- A model output around block features (and a pooled vector).
local function out_of(blocks, pooled)
  local feats = { distill.zeros{ 1 } }
  for _, f in ipairs(blocks) do
    feats[#feats + 1] = f
  end
  pooled = pooled or distill.zeros{ blocks[1]:size(1), 1 }
  feats[#feats + 1] = pooled
  return { feats = feats, pooled = pooled, logits = distill.zeros{ blocks[1]:size(1), 1 } }
end

local function list(inputs, prefix, n)
  local out = {}
  for i = 1, n do
    out[i] = inputs[prefix .. i]
  end
  return out
end

-- Leaf copies of the student's features, and the leaves by role "s<i>".
local function student_leaves(features)
  local copies, leaves = {}, {}
  for k, f in ipairs(features) do
    copies[k] = h.leaf_clone(f)
    leaves["s" .. k] = copies[k]
  end
  return copies, leaves
end

-- The distiller's state with the oracle's float entries ("w.<name>").
local function load_weights(d, inputs)
  local state = d:state_dict()
  for role, t in pairs(inputs) do
    local name = role:match("^w%.(.+)$")
    if name then
      assert(state[name], "the distiller has no entry " .. name)
      state[name] = t
    end
  end
  d:load_state_dict(state)
  d:train()
end

-- name -> function(inputs, opts): loss, {role = leaf}, distiller
local runners = {
  ab = function(i, o)
    local s, t = list(i, "s", o.blocks), list(i, "t", o.blocks)
    local d = distillers.ab{ probe = { student = out_of(s), teacher = out_of(t) }, margin = o.margin }
    load_weights(d, i)
    local leaves
    s, leaves = student_leaves(s)
    return d:loss(out_of(s), out_of(t)), leaves, d
  end,
  ft = function(i, o)
    local d = distillers.ft{ probe = { student = out_of({ i.s1 }), teacher = out_of({ i.t1 }) }, p2 = o.p2 }
    load_weights(d, i)
    local s = h.leaf_clone(i.s1)
    if o.stage then
      return d:stage_loss(out_of({ s }), out_of({ i.t1 })), { s1 = s }, d
    end
    return d:loss(out_of({ s }), out_of({ i.t1 })), { s1 = s }, d
  end,
  reviewkd = function(i, o)
    local n = o.blocks
    local s, t = list(i, "s", n), list(i, "t", n)
    local s_pooled, t_pooled = i["s" .. (n + 1)], i["t" .. (n + 1)]
    local d = distillers.reviewkd{ probe = { student = out_of(s, s_pooled), teacher = out_of(t, t_pooled) },
      warmup = o.warmup }
    load_weights(d, i)
    s[n + 1] = s_pooled
    local leaves
    s, leaves = student_leaves(s)
    s_pooled = table.remove(s)
    return d:loss(out_of(s, s_pooled), out_of(t, t_pooled), nil, nil, o.epoch), leaves, d
  end,
}

describe("PyTorch parity: AB, FT, ReviewKD", function()
  local tensors, meta

  setup(function()
    tensors, meta = parity.oracle_tensors("zoo_staged")
  end)

  teardown(function()
    parity.cleanup()
  end)

  for _, name in ipairs { "ab", "ft", "reviewkd" } do
    it(name .. ": loss and gradients (student features, own parameters) match PyTorch", function()
      local rec = parity.recorder()
      local n = h.each_oracle_case(rec, tensors, meta.cases, name, nil, function(inputs, outputs, grads, opts, label)
        local loss, leaves, d = runners[name](inputs, opts)
        rec:check("loss", label .. " loss", loss:detach():view{ 1 }, outputs.loss, parity.FORWARD_TOL)
        loss:backward()
        local params = {}
        for _, pair in ipairs(d:named_parameters()) do
          params["w." .. pair[1]] = pair[2]
        end
        local checked = 0
        for role, want in pairs(grads) do
          local t = leaves[role] or params[role]
          if not (t and t.grad) then
            error("no gradient reached " .. role)
          end
          local scale = want:abs():max():item()
          if scale < ZERO then
            -- a conv bias just before a training-mode BN: its gradient is
            -- zero, up to each side's rounding (float64 there, float32 here)
            local ours = t.grad:abs():max():item()
            rec:note("zero grad", label .. " grad " .. role, ours)
            if not (ours < ZERO_OURS) then
              rec.bad[#rec.bad + 1] = ("%s grad %s: %.3g, PyTorch %.3g (a zero gradient)")
                :format(label, role, ours, scale)
            end
          else
            rec:check(role:match("^w%.") and "param grad" or "feature grad", label .. " grad " .. role,
              t.grad, want, parity.GRAD_TOL)
          end
          checked = checked + 1
        end
        -- every trainable tensor PyTorch differentiated, and no other, got a gradient
        for role, p in pairs(params) do
          assert(grads[role] or not p.grad, label .. ": a gradient PyTorch does not have: " .. role)
        end
        assert(checked > 0, label .. ": no gradients compared")
      end)
      assert.is_true(n > 0, "no oracle cases for " .. name)
      print(("\n  parity %-8s %d cases, worst: %s"):format(name, n,
        rec:summary({ "loss", "feature grad", "param grad", "zero grad" })))
      rec:assert_ok()
    end)
  end
end)

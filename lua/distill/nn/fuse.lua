-- Inference-time folding of batch norm into the preceding convolution.
--
--   local fast = nn.fold_batchnorm(model, {example = x})   -- model in eval mode
--   local logits = fast(x)                                 -- same values, fewer passes
--
-- In eval mode a BatchNorm2d is a fixed per-channel affine map, so a
-- Conv2d whose output goes straight into it can absorb it:
--   s = gamma / sqrt(running_var + eps)
--   W' = W * s (per output channel),  b' = (b - running_mean) * s + beta
-- The folded model is a deep copy (the original is untouched) in which each
-- such Conv2d carries W', b' and its BatchNorm2d is an nn.Identity. It is
-- the counterpart of PyTorch's torch.fx.experimental.optimization.fuse
-- (whole model, eval only, returns a new module) built from the per-pair
-- torch.nn.utils.fusion.fuse_conv_bn_eval, which keeps its PyTorch name.
--
-- Pairs are found from the module tree (a Conv2d registered immediately
-- before a BatchNorm2d of as many channels, as siblings: convN/bnN fields
-- or Sequential neighbours) and, when an example input is given, confirmed
-- by running it: a pair is folded only if every call of that BatchNorm2d
-- received the very tensor its Conv2d returned and the conv ran exactly as
-- often. With the example, ReLU/ReLU6 modules whose every input is a
-- folded conv's fresh output are tried in place (one pass, no allocation)
-- and kept in place only if the outputs stay bit-identical; finally the
-- folded model's outputs (logits and, when the model accepts them,
-- {features = true} and {features = true, preact = true}) are compared with
-- the original's and a difference is an error. Without an example the
-- structural pairs are folded unchecked and no ReLU is made in-place.
local distill = require "distill"
local Module = require "distill.nn.module"
local layers = require "distill.nn.layers"

local fuse = {}

local FN = "nn.fold_batchnorm"

local function class_of(m)
  return getmetatable(m)
end

local function is_instance(value)
  return type(value) == "table" and rawget(value, "_parameters") ~= nil and Module.is_module(value)
end

-- -------------------------------------------------------------- deep copy

-- Copies module instances and plain tables (fields like kernel_size),
-- clones tensors (detached, not requiring grad) and shares everything
-- else: classes, functions, other objects. memo maps original -> copy, so
-- a module shared by two parents stays shared in the copy.
local function deep_copy(value, memo)
  if memo[value] ~= nil then
    return memo[value]
  end
  if distill.is_tensor(value) then
    local copy = distill.no_grad(function() return value:detach():clone() end)
    memo[value] = copy
    return copy
  end
  if type(value) ~= "table" then
    return value
  end
  local mt = getmetatable(value)
  if mt ~= nil and not is_instance(value) then
    return value
  end
  local copy = {}
  memo[value] = copy
  for k, v in next, value do
    rawset(copy, deep_copy(k, memo), deep_copy(v, memo))
  end
  return setmetatable(copy, mt)
end

-- A deep copy of a module tree; returns the copy and the original -> copy
-- map. `memo` may be seeded with replacements (original -> object to use),
-- which are then neither copied nor descended into.
local function clone(model, memo)
  memo = memo or {}
  return deep_copy(model, memo), memo
end

-- ------------------------------------------------------------ one pair

-- A module's class name, or the type of what is not a module.
local function kind_of(value)
  return type(value) == "table" and tostring(value.__name) or type(value)
end

local function check_pair(fn, conv, bn)
  if type(conv) ~= "table" or class_of(conv) ~= layers.Conv2d then
    error(("%s: argument #1: expected an nn.Conv2d, got %s"):format(fn, kind_of(conv)), 3)
  end
  if type(bn) ~= "table" or class_of(bn) ~= layers.BatchNorm2d then
    error(("%s: argument #2: expected an nn.BatchNorm2d, got %s"):format(fn, kind_of(bn)), 3)
  end
  if conv.training or bn.training then
    error(("%s: the convolution and the batch norm must be in eval mode (folding uses the "
      .. "running statistics); call :eval() first"):format(fn), 3)
  end
  if not bn.running_mean then
    error(("%s: the BatchNorm2d has no running statistics (track_running_stats = false), "
      .. "so it normalises with batch statistics even in eval mode and cannot be folded"):format(fn), 3)
  end
  if bn.num_features ~= conv.out_channels then
    error(("%s: the BatchNorm2d has %d features but the Conv2d %d output channels"):format(
      fn, bn.num_features, conv.out_channels), 3)
  end
end

-- The folded weight and bias (float32, as PyTorch's fuse_conv_bn_weights).
local function folded_weights(conv, bn)
  return distill.no_grad(function()
    local c = conv.out_channels
    local scale = (bn.running_var + bn.eps):rsqrt()
    if bn.weight then
      scale = scale * bn.weight
    end
    local weight = conv.weight * scale:view{ c, 1, 1, 1 }
    local bias = conv.bias and (conv.bias - bn.running_mean) or -bn.running_mean
    bias = bias * scale
    if bn.bias then
      bias = bias + bn.bias
    end
    return weight:contiguous(), bias:contiguous()
  end)
end

--- fuse_conv_bn_eval(conv, bn): a new Conv2d (a copy of conv, with a bias)
-- computing bn(conv(x)) of the eval-mode pair, as
-- torch.nn.utils.fusion.fuse_conv_bn_eval. Neither argument changes.
function fuse.fuse_conv_bn_eval(conv, bn)
  check_pair("nn.fuse_conv_bn_eval", conv, bn)
  local weight, bias = folded_weights(conv, bn)
  -- seeded so that the old weight and bias are not copied only to be replaced
  local seed = { [conv.weight] = weight }
  if conv.bias then
    seed[conv.bias] = bias
  end
  local folded = clone(conv, seed)
  folded:register_parameter("weight", weight)
  folded:register_parameter("bias", bias)
  weight.requires_grad, bias.requires_grad = false, false
  return folded
end

-- ------------------------------------------------------------ discovery

-- {parent =, path =, conv_name =, bn_name =, conv =, bn =} for every
-- Conv2d registered immediately before a foldable BatchNorm2d sibling.
local function structural_pairs(model)
  local pairs_found = {}
  for _, entry in ipairs(model:named_modules()) do
    local path, parent = entry[1], entry[2]
    local children = parent:named_children()
    for i = 1, #children - 1 do
      local conv, bn = children[i][2], children[i + 1][2]
      if class_of(conv) == layers.Conv2d and class_of(bn) == layers.BatchNorm2d
        and bn.running_mean and bn.num_features == conv.out_channels then
        local prefix = path == "" and "" or (path .. ".")
        pairs_found[#pairs_found + 1] = {
          parent = parent, conv_name = children[i][1], bn_name = children[i + 1][1],
          conv = conv, bn = bn,
          conv_path = prefix .. children[i][1], bn_path = prefix .. children[i + 1][1],
        }
      end
    end
  end
  return pairs_found
end

-- The forward modes to run: plain, and the zoo's feature modes if the
-- model accepts them (checked on the original model).
local FEATURE_MODES = { { features = true }, { features = true, preact = true } }

local function forward_modes(model, example)
  local modes = { false }
  for _, mode in ipairs(FEATURE_MODES) do
    local ok = pcall(distill.no_grad, function() return model:forward(example, mode) end)
    if ok then
      modes[#modes + 1] = mode
    end
  end
  return modes
end

local function run_mode(model, example, mode)
  return distill.no_grad(function()
    if mode then
      return model:forward(example, mode)
    end
    return model(example)
  end)
end

-- Replaces class methods for the duration of fn (restored on error too).
local function with_patched(patches, fn)
  local saved = {}
  for i, p in ipairs(patches) do
    saved[i] = rawget(p[1], p[2])
    rawset(p[1], p[2], p[3])
  end
  local ok, err = pcall(fn)
  for i, p in ipairs(patches) do
    rawset(p[1], p[2], saved[i])
  end
  if not ok then
    error(err, 0)
  end
end

-- Runs every mode with Conv2d and BatchNorm2d instrumented; keeps the pairs
-- whose BN saw only its conv's outputs, once per conv call.
local function confirmed_pairs(model, candidates, example, modes)
  local conv_forward, bn_forward = layers.Conv2d.forward, layers.BatchNorm2d.forward
  local produced = setmetatable({}, { __mode = "k" })   -- output tensor -> conv
  local conv_calls, bn_calls, bn_matched = {}, {}, {}
  local partner = {}
  for _, p in ipairs(candidates) do
    partner[p.bn] = p.conv
  end
  with_patched({
    { layers.Conv2d, "forward", function(self, x)
      local out = conv_forward(self, x)
      conv_calls[self] = (conv_calls[self] or 0) + 1
      produced[out] = self
      return out
    end },
    { layers.BatchNorm2d, "forward", function(self, x)
      bn_calls[self] = (bn_calls[self] or 0) + 1
      if partner[self] and produced[x] == partner[self] then
        bn_matched[self] = (bn_matched[self] or 0) + 1
      end
      return bn_forward(self, x)
    end },
  }, function()
    for _, mode in ipairs(modes) do
      run_mode(model, example, mode)
    end
  end)
  local kept, dropped = {}, {}
  for _, p in ipairs(candidates) do
    local calls = bn_calls[p.bn] or 0
    if calls > 0 and bn_matched[p.bn] == calls and conv_calls[p.conv] == calls then
      kept[#kept + 1] = p
    else
      dropped[#dropped + 1] = p
    end
  end
  return kept, dropped
end

-- -------------------------------------------------------------- outputs

-- Every tensor of a forward result in a fixed order (arrays first, then
-- string keys sorted), with its name for error messages.
local function flatten_outputs(value, name, list)
  list = list or {}
  if distill.is_tensor(value) then
    list[#list + 1] = { name, value }
  elseif type(value) == "table" then
    local n = #value
    for i = 1, n do
      flatten_outputs(value[i], ("%s[%d]"):format(name, i), list)
    end
    local keys = {}
    for k in pairs(value) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then
        keys[#keys + 1] = tostring(k)
      end
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      flatten_outputs(value[k], name .. "." .. k, list)
    end
  end
  return list
end

local function mode_name(mode)
  if not mode then
    return "forward(x)"
  end
  return mode.preact and "forward(x, {features = true, preact = true})"
    or "forward(x, {features = true})"
end

local function all_outputs(model, example, modes)
  local outs = {}
  for i, mode in ipairs(modes) do
    local list = flatten_outputs(run_mode(model, example, mode), "out")
    for _, entry in ipairs(list) do
      entry[2] = distill.no_grad(function() return entry[2]:detach():clone() end)
    end
    outs[i] = list
  end
  return outs
end

-- Largest |a - b| relative to max |b| over every output; nil, message when
-- the structures differ.
local function worst_difference(got, want, modes)
  local worst, where = 0, nil
  for i, mode in ipairs(modes) do
    local a, b = got[i], want[i]
    if #a ~= #b then
      return nil, ("%s returned %d tensors instead of %d"):format(mode_name(mode), #a, #b)
    end
    for j = 1, #b do
      local ta, tb = a[j][2], b[j][2]
      if table.concat(ta:shape(), ",") ~= table.concat(tb:shape(), ",") then
        return nil, ("%s: %s has shape {%s} instead of {%s}"):format(mode_name(mode), b[j][1],
          table.concat(ta:shape(), ", "), table.concat(tb:shape(), ", "))
      end
      local diff = (ta - tb):abs():max():item()
      local scale = math.max(tb:abs():max():item(), 1e-30)
      local rel = diff / scale
      if rel ~= rel or rel > worst then
        worst, where = rel ~= rel and math.huge or rel, ("%s %s"):format(mode_name(mode), b[j][1])
      end
    end
  end
  return worst, where
end

-- ---------------------------------------------------------------- ReLUs

local function is_relu(m)
  local c = class_of(m)
  return c == layers.ReLU or c == layers.ReLU6
end

-- ReLU modules of `model` whose every call (in every mode) received a
-- tensor that one of `convs` had just returned.
local function relu_candidates(model, convs, example, modes)
  local conv_forward = layers.Conv2d.forward
  local produced = setmetatable({}, { __mode = "k" })
  local calls, fresh = {}, {}
  local function relu_patch(class)
    local original = class.forward
    return { class, "forward", function(self, x)
      calls[self] = (calls[self] or 0) + 1
      if produced[x] then
        fresh[self] = (fresh[self] or 0) + 1
      end
      return original(self, x)
    end }
  end
  with_patched({
    { layers.Conv2d, "forward", function(self, x)
      local out = conv_forward(self, x)
      if convs[self] then
        produced[out] = true
      end
      return out
    end },
    relu_patch(layers.ReLU), relu_patch(layers.ReLU6),
  }, function()
    for _, mode in ipairs(modes) do
      run_mode(model, example, mode)
    end
  end)
  local list = {}
  for _, entry in ipairs(model:named_modules()) do
    local m = entry[2]
    if is_relu(m) and not m.inplace and calls[m] and fresh[m] == calls[m] then
      list[#list + 1] = { path = entry[1], module = m }
    end
  end
  return list
end

-- True when the outputs with the given ReLUs in place are bit-identical to
-- `reference` and the example is untouched.
local function inplace_is_exact(model, relus, example, modes, reference)
  local before = example:clone()
  for _, r in ipairs(relus) do
    rawset(r.module, "inplace", true)
  end
  local ok, got = pcall(all_outputs, model, example, modes)
  for _, r in ipairs(relus) do
    rawset(r.module, "inplace", false)
  end
  if not ok then
    return false
  end
  local worst = worst_difference(got, reference, modes)
  return worst == 0 and (example - before):abs():max():item() == 0
end

-- Turns on in-place for the candidates that keep the outputs exact: all at
-- once if that works, else each alone, then the survivors together.
local function choose_inplace(model, convs, example, modes)
  local candidates = relu_candidates(model, convs, example, modes)
  if #candidates == 0 then
    return {}
  end
  local reference = all_outputs(model, example, modes)
  local chosen = candidates
  if not inplace_is_exact(model, chosen, example, modes, reference) then
    chosen = {}
    for _, r in ipairs(candidates) do
      if inplace_is_exact(model, { r }, example, modes, reference) then
        chosen[#chosen + 1] = r
      end
    end
    if #chosen > 0 and not inplace_is_exact(model, chosen, example, modes, reference) then
      chosen = {}
    end
  end
  local paths = {}
  for _, r in ipairs(chosen) do
    rawset(r.module, "inplace", true)
    paths[#paths + 1] = r.path
  end
  return paths
end

-- ---------------------------------------------------------------- guards

local function eval_only_message(what)
  return ("%s: %s is eval-only (its BatchNorm2d layers are folded into the convolutions "
    .. "with the running statistics); train the original model and fold it again"):format(FN, what)
end

-- The folded model refuses train(true), and each folded conv refuses to run
-- in training mode (it may sit inside a parent whose train() flips it).
local function install_guards(folded, folded_convs)
  local root_class = class_of(folded)
  local name = "the folded " .. tostring(folded.__name)
  rawset(folded, "train", function(self, mode)
    if mode == nil or mode then
      error(eval_only_message(name), 2)
    end
    return root_class.train(self, false)
  end)
  for conv, path in pairs(folded_convs) do
    rawset(conv, "forward", function(self, x)
      if rawget(self, "training") then
        error(eval_only_message(("Conv2d '%s' of %s"):format(path, name)), 3)
      end
      return layers.Conv2d.forward(self, x)
    end)
  end
  rawset(folded, "folded_batchnorm", true)
end

-- ------------------------------------------------------------- the model

local function check_model(model, opts)
  if not Module.is_module(model) or not is_instance(model) then
    error(("%s: expected a module, got %s"):format(FN, type(model)), 3)
  end
  for _, entry in ipairs(model:named_modules()) do
    if entry[2].training then
      local where = entry[1] == "" and "" or (" (module '%s')"):format(entry[1])
      error(("%s: %s%s is in training mode; batch norm can only be folded in eval mode (it "
        .. "uses the running statistics): call model:eval() first"):format(
        FN, tostring(entry[2].__name), where), 3)
    end
  end
  if opts ~= nil and type(opts) ~= "table" then
    error(("%s: options must be a table, got %s"):format(FN, type(opts)), 3)
  end
  opts = opts or {}
  for key in pairs(opts) do
    if key ~= "example" and key ~= "inplace" and key ~= "tolerance" then
      error(("%s: unknown option '%s' (valid: example, inplace, tolerance)"):format(
        FN, tostring(key)), 3)
    end
  end
  if opts.example ~= nil and not distill.is_tensor(opts.example) then
    error(("%s: example must be an input tensor, got %s"):format(FN, type(opts.example)), 3)
  end
  return opts
end

--- fold_batchnorm(model, {example = x, inplace = true, tolerance = 1e-3})
-- -> folded model, report. model must be in eval mode. report = {pairs =
-- {{conv = path, bn = path}, ...}, skipped = {...} (structural pairs the
-- example run did not confirm), inplace = {relu paths}, max_rel_diff =
-- (with an example)}. An example (a small batch of real inputs) confirms
-- the pairs, enables in-place ReLUs and checks the result within tolerance
-- (relative to each output's largest magnitude); a mismatch is an error.
function fuse.fold_batchnorm(model, opts)
  opts = check_model(model, opts)
  local example = opts.example
  local candidates = structural_pairs(model)
  local modes, skipped = nil, {}
  if example then
    modes = forward_modes(model, example)
    candidates, skipped = confirmed_pairs(model, candidates, example, modes)
  end
  -- the copy takes the folded conv and an Identity in place of each pair
  -- (seeding the copy's memo, so the pair's own tensors are never copied)
  local report = { pairs = {}, skipped = {}, inplace = {} }
  local folded_convs, seed = {}, {}
  for _, p in ipairs(candidates) do
    local conv = fuse.fuse_conv_bn_eval(p.conv, p.bn)
    seed[p.conv], seed[p.bn] = conv, layers.Identity():eval()
    folded_convs[conv] = p.conv_path
    report.pairs[#report.pairs + 1] = { conv = p.conv_path, bn = p.bn_path }
  end
  local folded = clone(model, seed)
  for _, p in ipairs(skipped) do
    report.skipped[#report.skipped + 1] = { conv = p.conv_path, bn = p.bn_path }
  end
  for _, p in ipairs(folded:parameters()) do
    p.requires_grad = false
  end
  if example then
    if opts.inplace ~= false then
      report.inplace = choose_inplace(folded, folded_convs, example, modes)
    end
    local worst, where = worst_difference(all_outputs(folded, example, modes),
      all_outputs(model, example, modes), modes)
    local tolerance = opts.tolerance or 1e-3
    if worst == nil or worst > tolerance then
      error(("%s: the folded %s does not reproduce the original on the example: %s"):format(
        FN, tostring(model.__name), worst == nil and where
          or ("%s differs by %.3g of its largest magnitude (tolerance %g)"):format(
            where, worst, tolerance)), 2)
    end
    report.max_rel_diff = worst
  end
  install_guards(folded, folded_convs)
  return folded, report
end

return fuse

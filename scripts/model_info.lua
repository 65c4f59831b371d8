-- Model zoo facts: layer tree, trainable parameters, forward MACs per image
-- and feature shapes.
--   lua5.4 scripts/distill scripts/model_info.lua resnet8x4     one model, with its layer tree
--   lua5.4 scripts/distill scripts/model_info.lua --all         the summary table (markdown)
--   lua5.4 scripts/distill scripts/model_info.lua --list        the registry names
-- Options: --classes N (default: 100 for CIFAR, 1000 for ImageNet models),
--          --size S (input height/width; default 32 for CIFAR, 224 for ImageNet),
--          --no-tree (single model: skip the layer tree).
-- MACs are counted on one eval-mode forward of a 1x3xSxS input: per Conv2d,
-- output elements x in_channels/groups x kh x kw; per Linear, in x out
-- (models/common.lua count_macs). Feature shapes are per image (no batch dim).
local distill = require "distill"
local models = require "distill.models"
local common = require "distill.models.common"

local usage = [[
usage: model_info.lua NAME [--classes N] [--size S] [--no-tree]
       model_info.lua --all [--classes N] [--size S]
       model_info.lua --list]]

local function parse(args)
  local opts = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "--all" or a == "--list" or a == "--no-tree" or a == "--help" or a == "-h" then
      opts[a:gsub("^%-+", "")] = true
    elseif a == "--classes" or a == "--size" then
      local value = math.tointeger(tonumber(args[i + 1] or ""))
      if not value or value <= 0 then
        io.stderr:write("model_info: ", a, " needs a positive integer\n")
        os.exit(2)
      end
      opts[a:sub(3)] = value
      i = i + 1
    elseif a:sub(1, 1) == "-" then
      io.stderr:write("model_info: unknown option ", a, "\n", usage, "\n")
      os.exit(2)
    elseif opts.name then
      io.stderr:write("model_info: one model name at a time (or --all)\n")
      os.exit(2)
    else
      opts.name = a
    end
    i = i + 1
  end
  return opts
end

local function group_digits(n)
  local s = tostring(math.tointeger(n) or n)
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then
    return s
  end
  return sign .. digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

local function shape_string(t)
  local shape = t:shape()
  return table.concat(shape, "x", 2)
end

--- Facts about one model: params, macs, feature shapes (per image), logits.
local function measure(name, opts)
  local info = models.info(name)
  local size = opts.size or info.input_size[2]
  distill.manual_seed(0)
  local model = models.create(name, { num_classes = opts.classes or info.num_classes })
  local x = distill.randn{ 1, 3, size, size }
  local macs, counts = common.count_macs(model, x)
  model:eval()
  local out = distill.no_grad(function() return model:forward(x, { features = true }) end)
  local shapes = {}
  for i, f in ipairs(out.feats) do
    shapes[i] = shape_string(f)
  end
  -- the reference figures hold for the default classes and input size
  local default_classes = (opts.classes or info.num_classes) == info.num_classes
  local default_size = size == info.input_size[2]
  return {
    ref_params = default_classes and info.params or nil,
    ref_macs = default_classes and default_size and info.macs or nil,
    name = info.name, model = model, params = model:num_parameters(), macs = macs,
    counts = counts, feats = shapes, logits = shape_string(out.logits), size = size,
    dataset = info.dataset, description = info.description,
  }
end

-- "matches" / "DIFFERS (reference N)" / "" when there is no reference
local function check(value, reference)
  if not reference then
    return ""
  end
  if value == reference then
    return "matches reference"
  end
  return "DIFFERS from reference " .. group_digits(reference)
end

local function print_one(name, opts)
  local facts = measure(name, opts)
  if not opts["no-tree"] then
    print(tostring(facts.model))
    print()
  end
  print(("%s: %s"):format(facts.name, facts.description))
  print(("input                 3x%dx%d (%s)"):format(facts.size, facts.size, facts.dataset))
  print(("trainable parameters  %s  %s"):format(group_digits(facts.params),
    check(facts.params, facts.ref_params)))
  print(("forward MACs / image  %s (%.2f MMACs; conv %s in %d Conv2d, linear %s)  %s"):format(
    group_digits(facts.macs), facts.macs / 1e6, group_digits(facts.counts.conv),
    facts.counts.convs, group_digits(facts.counts.linear), check(facts.macs, facts.ref_macs)))
  print("features (per image)")
  for i, s in ipairs(facts.feats) do
    print(("  feats[%d]  %s%s"):format(i, s, i == #facts.feats and "  (pooled)" or ""))
  end
  print(("  logits    %s"):format(facts.logits))
end

local function print_all(opts)
  print("| model | input | trainable params | fwd MACs / image | MMACs | feature shapes (per image) | logits | reference |")
  print("|---|---|---:|---:|---:|---|---|---|")
  local mismatches = 0
  for _, name in ipairs(models.list({ grouped = true })) do
    local facts = measure(name, opts)
    local verdict = {}
    for _, c in ipairs({ { "params", facts.params, facts.ref_params }, { "MACs", facts.macs, facts.ref_macs } }) do
      if c[3] then
        verdict[#verdict + 1] = c[1] .. (c[2] == c[3] and " ok" or " DIFFER")
        mismatches = mismatches + (c[2] == c[3] and 0 or 1)
      end
    end
    print(("| %s | 3x%dx%d | %s | %s | %.2f | %s | %s | %s |"):format(facts.name, facts.size, facts.size,
      group_digits(facts.params), group_digits(facts.macs), facts.macs / 1e6,
      table.concat(facts.feats, " "), facts.logits, table.concat(verdict, ", ")))
    io.stdout:flush()
    facts.model = nil
    collectgarbage()
  end
  if mismatches > 0 then
    io.stderr:write(("model_info: %d figure(s) differ from the reference\n"):format(mismatches))
    os.exit(1)
  end
end

local opts = parse(arg or {})
if opts.help then
  print(usage)
elseif opts.list then
  print(table.concat(models.list(), "\n"))
elseif opts.all then
  print_all(opts)
elseif opts.name then
  local ok, err = pcall(models.info, opts.name)
  if not ok then
    io.stderr:write("model_info: ", tostring(err), "\n")
    os.exit(1)
  end
  print_one(opts.name, opts)
else
  io.stderr:write(usage, "\n")
  os.exit(2)
end

-- distill.results: run directories gathered into tables of mean +- std
-- over seeds (`distill table`), in the layout of the FSECD paper by default:
-- methods as rows (CE, KD, FitNet, AT, RKD, OFD, CRD, DKD, FSECD, then the
-- others), teacher -> student pairs as columns.
--
--   local results = require "distill.results"
--   local runs = results.load({"runs/fmnist_table3"}, {where = {"method=kd,ce"}})
--   local t = results.aggregate(runs, {rows = {"method"}, cols = {"pair"}, metric = "best_top1"})
--   print(results.markdown(t))   -- or results.csv(t)
--
-- A run directory is any directory with a config.lua (distill.run_dir);
-- its metrics come from summary.json, written when the run finished. Runs
-- without one (or stopped before their last epoch) are unfinished: counted
-- and marked, never averaged in. Keys are config keys (method, seed,
-- batch_size, optimizer.lr, methods.kd.2.T, ...) and three derived ones:
-- pair (teacher -> student), config (the config's name) and dir (the run
-- directory's name).
local files = require "distill.files"
local json = require "distill.json"
local sorted_keys = require("distill.registry").sorted_keys

local results = {}

-- The paper's order of methods (Table 3), with FSECD's class policy before
-- its instance policy as in Table 2.
results.METHOD_ORDER = { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd_class", "fsecd" }
results.METHOD_LABELS = { ce = "CE", kd = "KD", fitnet = "FitNet", at = "AT", rkd = "RKD", ofd = "OFD",
  crd = "CRD", dkd = "DKD", fsecd = "FSECD", fsecd_class = "FSECD-class" }
-- The paper's pairs, Table 3 then Table 4.
results.PAIR_ORDER = { "resnet56->resnet20", "resnet110->resnet32", "resnet32x4->resnet8x4",
  "wrn_40_2->wrn_16_2", "wrn_40_2->wrn_40_1", "vgg13->vgg8", "resnet32x4->ShuffleV1",
  "wrn_40_2->ShuffleV1", "vgg13->MobileNetV2", "ResNet50->MobileNetV2", "resnet32x4->ShuffleV2" }

local KEY_TITLES = { method = "Method", pair = "Teacher -> Student", batch_size = "B", seed = "seed",
  config = "Config" }
-- Keys that never make two runs different experiments.
local IGNORED = { run_dir = true, seed = true, workers = true, progress = true, log_every = true,
  log_steps = true, plot = true, eval_every = true, description = true, ["data.root"] = true }

-- ---------------------------------------------------------------- reading

local function is_dir(path)
  local lfs = require "lfs"
  return lfs.attributes(path, "mode") == "directory"
end

local function is_run_dir(path)
  return files.exists(path .. "/config.lua")
end

local function walk(path, out)
  if is_run_dir(path) then
    out[#out + 1] = path
    return
  end
  local lfs = require "lfs"
  local names = {}
  for name in lfs.dir(path) do
    if name ~= "." and name ~= ".." and is_dir(path .. "/" .. name) then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  for _, name in ipairs(names) do
    walk(path .. "/" .. name, out)
  end
end

--- The run directories under the given paths (each a run directory, or a
-- directory searched recursively), in path order then name order.
function results.find(paths)
  if type(paths) ~= "table" or #paths == 0 then
    error("results.find: expected a list of run or sweep directories", 2)
  end
  local dirs = {}
  for _, path in ipairs(paths) do
    path = tostring(path):gsub("/+$", "")
    if not is_dir(path) then
      error(("results: %s is not a directory"):format(path), 0)
    end
    walk(path, dirs)
  end
  return dirs
end

local function read_json(path)
  local value = json.read(path)
  if value ~= nil and type(value) ~= "table" then
    error(("results: %s is not a JSON object"):format(path), 0)
  end
  return value
end

--- One run: {dir =, config = resolved config, summary = table | nil,
-- finished = boolean}.
function results.read(dir)
  if type(dir) ~= "string" then
    error("results.read: expected a run directory", 2)
  end
  local source = files.read(dir .. "/config.lua")
  if not source then
    error(("results: %s is not a run directory (no config.lua)"):format(dir), 0)
  end
  local chunk, err = load(source, "=" .. dir .. "/config.lua", "t", { math = { huge = math.huge } })
  local ok, cfg = false, err
  if chunk then
    ok, cfg = pcall(chunk)
  end
  if not ok or type(cfg) ~= "table" then
    error(("results: %s/config.lua does not load: %s"):format(dir, tostring(cfg)), 0)
  end
  local summary = read_json(dir .. "/summary.json")
  local finished = summary ~= nil and (summary.epochs_done or 0) >= (summary.epochs or cfg.epochs or 0)
  return { dir = dir, config = cfg, summary = summary, finished = finished }
end

-- ------------------------------------------------------------------ keys

local function model_name(spec)
  if type(spec) == "table" then
    spec = spec.model ~= nil and spec.model or spec
    if type(spec) == "table" then
      return spec.name or spec.family or "?"
    end
  end
  return tostring(spec)
end

local function lookup(cfg, key)
  local node = cfg
  for part in key:gmatch("[^.]+") do
    if type(node) ~= "table" then
      return nil
    end
    local index = math.tointeger(tonumber(part))
    node = node[index or part]
  end
  return node
end

local function text_of(value)
  if type(value) == "table" then
    local parts = {}
    for i, v in ipairs(value) do
      parts[i] = text_of(v)
    end
    return table.concat(parts, ",")
  elseif math.type(value) == "float" then
    return ("%.10g"):format(value)
  end
  return tostring(value)
end

--- The value of key for a run (a number or a string), nil when the config
-- has no such key.
function results.value(run, key)
  if type(run) ~= "table" or type(run.config) ~= "table" or type(key) ~= "string" then
    error("results.value: expected (a run of results.read, a key)", 2)
  end
  local cfg = run.config
  if key == "pair" then
    local student = model_name(cfg.student)
    if type(cfg.teacher) == "table" and cfg.teacher.model then
      return model_name(cfg.teacher) .. "->" .. student
    end
    return student
  elseif key == "config" then
    return cfg.name
  elseif key == "dir" then
    return run.dir:match("([^/]+)$")
  end
  local value = lookup(cfg, key)
  if type(value) == "table" then
    return text_of(value)
  end
  return value
end

local function pretty_model(name)
  return (name:gsub("^resnet(%w+)$", "ResNet%1"):gsub("^wrn_(%d+)_(%d+)$", "WRN-%1-%2")
    :gsub("^vgg(%d+)$", "VGG%1"):gsub("^ShuffleV(%d)$", "ShuffleNetV%1")
    :gsub("^fmnist_resnet_([ts])$", { t = "FashionResNet-T", s = "FashionResNet-S" }))
end

--- How a value of key is shown in a table.
function results.label(key, value)
  if value == nil then
    return "-"
  elseif key == "method" then
    return results.METHOD_LABELS[value] or tostring(value)
  elseif key == "pair" then
    local t, s = tostring(value):match("^(.-)%->(.*)$")
    if t then
      return pretty_model(t) .. "->" .. pretty_model(s)
    end
    return pretty_model(tostring(value))
  end
  return text_of(value)
end

local function rank_table(list)
  local rank = {}
  for i, v in ipairs(list) do
    rank[v] = i
  end
  return rank
end

local METHOD_RANK, PAIR_RANK = rank_table(results.METHOD_ORDER), rank_table(results.PAIR_ORDER)

--- Does value a of key come before b in tables: the paper's order of
-- methods and pairs, numbers by value, then text.
function results.before(key, a, b)
  local rank = key == "method" and METHOD_RANK or key == "pair" and PAIR_RANK or nil
  if rank then
    local ra, rb = rank[a] or math.huge, rank[b] or math.huge
    if ra ~= rb then
      return ra < rb
    end
  end
  if type(a) == "number" and type(b) == "number" then
    return a < b
  elseif type(a) == "number" or type(b) == "number" then
    return type(a) == "number"
  end
  return tostring(a) < tostring(b)
end

-- ------------------------------------------------------------- selecting

local filters = require "distill.filters"

local function matches(run, filter)
  local value = results.value(run, filter.key)
  return filters.accepts(filter, value, value ~= nil and text_of(value) or nil,
    results.label(filter.key, value))
end

--- The runs under paths (results.find), read, and kept when they match
-- every opts.where "key=v1,v2".
function results.load(paths, opts)
  opts = opts or {}
  local wanted = filters.parse(opts.where, "results: --where")
  local all = {}
  for _, dir in ipairs(results.find(paths)) do
    all[#all + 1] = results.read(dir)
  end
  local runs = filters.select(all, wanted, matches)
  if #runs == 0 then
    error(("results: no run directories (with config.lua) under %s%s"):format(table.concat(paths, ", "),
      #wanted > 0 and " matching --where" or ""), 0)
  end
  return runs
end

-- ------------------------------------------------------------ aggregating

--- n, mean and sample standard deviation (n - 1; nil for n < 2) of a list.
function results.stats(values)
  if type(values) ~= "table" then
    error("results.stats: expected a list of numbers, got " .. type(values), 2)
  end
  local n = #values
  if n == 0 then
    return 0, nil, nil
  end
  local sum = 0
  for _, v in ipairs(values) do
    sum = sum + v
  end
  local mean = sum / n
  if n < 2 then
    return n, mean, nil
  end
  local ss = 0
  for _, v in ipairs(values) do
    ss = ss + (v - mean) ^ 2
  end
  return n, mean, math.sqrt(ss / (n - 1))
end

local function flatten(value, prefix, out)
  if type(value) == "table" then
    local list = #value > 0
    for k, v in pairs(value) do
      if list and type(v) ~= "table" then
        out[prefix:sub(1, -2)] = text_of(value)
        return out
      end
      flatten(v, prefix .. tostring(k) .. ".", out)
    end
  else
    out[prefix:sub(1, -2)] = value
  end
  return out
end

local function composite(run, keys)
  local values, parts = {}, {}
  for i, key in ipairs(keys) do
    values[i] = results.value(run, key)
    parts[i] = text_of(values[i])
  end
  return values, table.concat(parts, "\0")
end

-- A run's settings as flat keys. Of the config's catalogue of methods only
-- the run's own counts: the others do not take part in it (and a catalogue
-- grows as methods are added, without changing the runs made before).
local function settings(run)
  local flat = flatten(run.config, "", {})
  local own = "methods." .. tostring(run.config.method) .. "."
  for key in pairs(flat) do
    if key:sub(1, 8) == "methods." and key:sub(1, #own) ~= own then
      flat[key] = nil
    end
  end
  return flat
end

-- The config keys in which the runs of one cell differ (beyond the seed).
local function mixed_keys(runs, cells)
  local flat, all = {}, {}
  for i, run in ipairs(runs) do
    flat[i] = settings(run)
    for k in pairs(flat[i]) do
      all[k] = true
    end
  end
  local mixed = {}
  for _, members in pairs(cells) do
    for key in pairs(all) do
      if not IGNORED[key] and not mixed[key] then
        local first
        for j, i in ipairs(members) do
          local v = flat[i][key]
          local text = v == nil and "\0nil" or text_of(v)
          if j == 1 then
            first = text
          elseif text ~= first then
            mixed[key] = true
            break
          end
        end
      end
    end
  end
  return sorted_keys(mixed)
end

--- Groups runs into rows x cols (lists of keys) and aggregates opts.metric
-- (a summary.json field, default best_top1) over the runs of each cell.
-- Returns {rows = {{values =, labels =}}, cols = ..., cells = {[r] = {[c] =
-- {n =, mean =, std =, values =, unfinished =}}}, expected = the largest
-- cell's run count, mixed = config keys that differ inside a cell, ...}.
function results.aggregate(runs, opts)
  opts = opts or {}
  if type(runs) ~= "table" or #runs == 0 then
    error("results.aggregate: expected a non-empty list of runs (results.load)", 2)
  end
  local row_keys, col_keys = opts.rows or { "method" }, opts.cols or { "pair" }
  local metric = opts.metric or "best_top1"
  local available = {}
  for _, run in ipairs(runs) do
    for k, v in pairs(run.summary or {}) do
      if type(v) == "number" then
        available[k] = true
      end
    end
  end
  if next(available) and not available[metric] then
    error(("results: metric '%s' is not in summary.json (available: %s)"):format(metric,
      table.concat(sorted_keys(available), ", ")), 0)
  end
  local function axis(keys)
    local list, index = {}, {}
    for _, run in ipairs(runs) do
      local values, id = composite(run, keys)
      if not index[id] then
        list[#list + 1] = { values = values, id = id }
        index[id] = true
      end
    end
    table.sort(list, function(a, b)
      for i, key in ipairs(keys) do
        local x, y = a.values[i], b.values[i]
        if x ~= y then
          if x == nil or y == nil then
            return y == nil
          end
          return results.before(key, x, y)
        end
      end
      return false
    end)
    local position = {}
    for i, entry in ipairs(list) do
      entry.labels = {}
      for j, key in ipairs(keys) do
        entry.labels[j] = results.label(key, entry.values[j])
      end
      position[entry.id] = i
    end
    return list, position
  end
  local rows, row_pos = axis(row_keys)
  local cols, col_pos = axis(col_keys)
  local cells, members = {}, {}
  for r = 1, #rows do
    cells[r] = {}
    for c = 1, #cols do
      cells[r][c] = { values = {}, unfinished = 0, runs = 0 }
    end
  end
  for i, run in ipairs(runs) do
    local _, rid = composite(run, row_keys)
    local _, cid = composite(run, col_keys)
    local r, c = row_pos[rid], col_pos[cid]
    local cell = cells[r][c]
    cell.runs = cell.runs + 1
    local value = run.finished and run.summary[metric]
    if type(value) == "number" then
      cell.values[#cell.values + 1] = value
    else
      cell.unfinished = cell.unfinished + 1
    end
    local id = r .. ":" .. c
    members[id] = members[id] or {}
    table.insert(members[id], i)
  end
  local expected = 0
  for r = 1, #rows do
    for c = 1, #cols do
      local cell = cells[r][c]
      cell.n, cell.mean, cell.std = results.stats(cell.values)
      expected = math.max(expected, cell.runs)
    end
  end
  local mixed = mixed_keys(runs, members)
  local shown = {}
  for _, key in ipairs(mixed) do
    local covered = false
    for _, k in ipairs(row_keys) do covered = covered or k == key end
    for _, k in ipairs(col_keys) do covered = covered or k == key end
    if not covered then
      shown[#shown + 1] = key
    end
  end
  return { row_keys = row_keys, col_keys = col_keys, metric = metric, rows = rows, cols = cols,
    cells = cells, expected = expected, mixed = shown, runs = #runs }
end

-- ------------------------------------------------------------ formatting

local function cell_text(cell, expected, digits)
  local fmt = "%." .. digits .. "f"
  local text
  if cell.n == 0 then
    text = cell.runs == 0 and "" or "-"
  elseif cell.std then
    text = (fmt .. " ± " .. fmt):format(cell.mean, cell.std)
  else
    text = fmt:format(cell.mean)
  end
  local notes = {}
  if cell.n > 0 and cell.n < expected then
    notes[#notes + 1] = "n=" .. cell.n
  end
  if cell.unfinished > 0 then
    notes[#notes + 1] = cell.unfinished .. " unfinished"
  end
  if #notes > 0 then
    text = (text ~= "" and text ~= "-" and (text .. " ") or "") .. "(" .. table.concat(notes, ", ") .. ")"
  end
  return text
end

local function key_title(key)
  return KEY_TITLES[key] or key
end

local function col_title(t, col)
  local parts = {}
  for i, key in ipairs(t.col_keys) do
    if key == "pair" or key == "method" or key == "config" or key == "dir" then
      parts[i] = col.labels[i]
    else
      parts[i] = key_title(key) .. "=" .. col.labels[i]
    end
  end
  return table.concat(parts, " ")
end

local function check_table(fn, t)
  if type(t) ~= "table" or type(t.rows) ~= "table" or type(t.cells) ~= "table" then
    error(("results.%s: expected a table of results.aggregate"):format(fn), 3)
  end
end

--- The table as Markdown; opts.digits (default 2).
function results.markdown(t, opts)
  check_table("markdown", t)
  opts = opts or {}
  local digits = opts.digits or 2
  local header, rule = {}, {}
  for _, key in ipairs(t.row_keys) do
    header[#header + 1] = key_title(key)
    rule[#rule + 1] = "---"
  end
  for _, col in ipairs(t.cols) do
    header[#header + 1] = col_title(t, col)
    rule[#rule + 1] = "---"
  end
  local lines = { "| " .. table.concat(header, " | ") .. " |", "|" .. table.concat(rule, "|") .. "|" }
  for r, row in ipairs(t.rows) do
    local cells = {}
    for _, label in ipairs(row.labels) do
      cells[#cells + 1] = label
    end
    for c = 1, #t.cols do
      cells[#cells + 1] = cell_text(t.cells[r][c], t.expected, digits)
    end
    lines[#lines + 1] = "| " .. table.concat(cells, " | ") .. " |"
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = ("%s: mean ± sample std over the runs of each cell (%d runs; up to %d a cell)")
    :format(t.metric, t.runs, t.expected)
  return table.concat(lines, "\n") .. "\n"
end

local function csv_field(text)
  text = tostring(text)
  if text:find('[,"\n]') then
    return '"' .. text:gsub('"', '""') .. '"'
  end
  return text
end

local function number_field(value)
  if value == nil then
    return ""
  end
  return ("%.6g"):format(value)
end

--- The table as CSV: the row keys, then mean, std, n and unfinished per column.
function results.csv(t)
  check_table("csv", t)
  local header = {}
  for _, key in ipairs(t.row_keys) do
    header[#header + 1] = csv_field(key)
  end
  for _, col in ipairs(t.cols) do
    local title = col_title(t, col)
    for _, what in ipairs { "mean", "std", "n", "unfinished" } do
      header[#header + 1] = csv_field(title .. " " .. what)
    end
  end
  local lines = { table.concat(header, ",") }
  for r, row in ipairs(t.rows) do
    local fields = {}
    for _, label in ipairs(row.labels) do
      fields[#fields + 1] = csv_field(label)
    end
    for c = 1, #t.cols do
      local cell = t.cells[r][c]
      fields[#fields + 1] = number_field(cell.mean)
      fields[#fields + 1] = number_field(cell.std)
      fields[#fields + 1] = tostring(cell.n)
      fields[#fields + 1] = tostring(cell.unfinished)
    end
    lines[#lines + 1] = table.concat(fields, ",")
  end
  return table.concat(lines, "\n") .. "\n"
end

return results

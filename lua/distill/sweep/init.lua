-- distill.sweep: sweep files, a grid of runs over configs, methods, seeds
-- and any config key (docs/workflow.md, "Sweeps and tables").
--
--   local sweep = require "distill.sweep"
--   local spec = sweep.load("scripts/sweeps/fmnist_table2.lua")
--   local runs = sweep.expand(spec, {root = "runs", set = {"epochs=1"}})
--     --> {{index =, of = #runs, name =, dir =, config_path =, mode =, values = {method =, seed =, ...},
--          overrides = {"method=kd", "seed=2", ..., "run_dir=runs/x/kd-seed2"}, cfg =}, ...}
--   runs = sweep.select(runs, {"method=kd,ce", "seed=1"})
--
-- A run's name holds only the axes that vary across the sweep, in a fixed
-- order (config, method, the other axes, seed), so the same file always
-- gives the same directories, and a --only selection does not change them.
-- Runs come seed by seed: a sweep stopped half-way already has every cell of
-- its table for the first seeds.
local config = require "distill.config"
local filters = require "distill.filters"
local sorted_keys = require("distill.registry").sorted_keys

local sweep = {}

local SPEC_KEYS = {
  name = "the sweep's name: run directories go to <root>/<name>/ (default: the file's name)",
  description = "a line saying what the sweep is for",
  root = "where sweep directories go (default \"runs\")",
  configs = "the config files (a list of paths)",
  methods = "the methods (values of the config key `method`)",
  seeds = "the seeds (values of the config key `seed`)",
  axes = "further config keys and their values: {batch_size = {128, 512}} or {{key, values}, ...}",
  set = "config values of every run: {epochs = 10, [\"optimizer.lr\"] = function(run) ... end}",
  runs = "explicit runs besides the grid: {{config =, method =, seed =, set = {...}}, ...}",
  exclude = "function(run) -> true to leave a grid run out",
  mode = "\"train\" or \"distill\" (default: distill when the config has a teacher)",
  teachers = "the sweep (or command) that trains the teachers, named when a checkpoint is missing",
  run_dirs = "\"config\": keep each config's own run_dir (teacher sweeps) instead of <root>/<name>/<run>",
  labels = "short names of axes in run names: {[\"methods.kd.2.T\"] = \"T\"}",
}

-- Short names of common axes in run names; others use their last key part.
local DEFAULT_LABELS = {
  config = "", method = "", seed = "seed", batch_size = "bs", epochs = "ep",
  ["optimizer.lr"] = "lr", ["optimizer.weight_decay"] = "wd", ["data.train_limit"] = "n",
}

local function fail(path, message)
  error(("sweep: %s: %s"):format(path, message), 0)
end

local function is_list(value)
  if type(value) ~= "table" then
    return false
  end
  local n = 0
  for _ in pairs(value) do
    n = n + 1
  end
  return n == #value
end

-- The shortest decimal text that reads back as the same number.
local function number_text(value)
  if math.type(value) == "integer" then
    return tostring(value)
  end
  for digits = 1, 17 do
    local text = ("%." .. digits .. "g"):format(value)
    if tonumber(text) == value then
      return text
    end
  end
  return ("%.17g"):format(value)
end

--- The text of a value in a `--set key=value` override.
function sweep.value_text(value)
  local kind = type(value)
  if kind == "number" then
    return number_text(value)
  elseif kind == "string" or kind == "boolean" then
    return tostring(value)
  elseif kind == "table" and is_list(value) and #value > 0 then
    local parts = {}
    for i, v in ipairs(value) do
      if type(v) == "table" then
        error("sweep.value_text: a list value holds scalars only", 2)
      end
      parts[i] = sweep.value_text(v)
    end
    return table.concat(parts, ",")
  end
  error(("sweep.value_text: cannot pass a %s as a --set value"):format(kind), 2)
end

-- ------------------------------------------------------------ loading

local function check_values(path, key, values)
  if not is_list(values) or #values == 0 then
    fail(path, ("%s: expected a non-empty list of values, got %s"):format(key, type(values)))
  end
  for i, v in ipairs(values) do
    local ok = pcall(sweep.value_text, v)
    if not ok then
      fail(path, ("%s[%d]: expected a number, string, boolean or list of them, got %s")
        :format(key, i, type(v)))
    end
  end
  return values
end

local function string_list(path, key, value)
  if type(value) == "string" then
    value = { value }
  end
  check_values(path, key, value)
  for i, v in ipairs(value) do
    if type(v) ~= "string" then
      fail(path, ("%s[%d]: expected a string, got %s"):format(key, i, type(v)))
    end
  end
  return value
end

-- axes as a map (sorted by key) or a list of {key, values}: a list of {key =, values =}.
local function normalize_axes(path, axes)
  local list = {}
  if axes == nil then
    return list
  elseif type(axes) ~= "table" then
    fail(path, "axes: expected a table {key = {values}}, got " .. type(axes))
  end
  if is_list(axes) and #axes > 0 then
    for i, entry in ipairs(axes) do
      if type(entry) ~= "table" or type(entry[1]) ~= "string" then
        fail(path, ("axes[%d]: expected {\"key\", {values}}"):format(i))
      end
      list[i] = { key = entry[1], values = check_values(path, "axes." .. entry[1], entry[2]) }
    end
  else
    for _, key in ipairs(sorted_keys(axes)) do
      list[#list + 1] = { key = key, values = check_values(path, "axes." .. key, axes[key]) }
    end
  end
  for _, axis in ipairs(list) do
    if axis.key == "method" or axis.key == "seed" or axis.key == "config" or axis.key == "run_dir" then
      fail(path, ("axes: '%s' is not an axis key here (use methods =, seeds =, configs =)")
        :format(axis.key))
    end
  end
  return list
end

local function check_set(path, where, set)
  if set == nil then
    return {}
  elseif type(set) ~= "table" then
    fail(path, where .. ": expected a table {key = value}, got " .. type(set))
  end
  for key, value in pairs(set) do
    if type(key) ~= "string" then
      fail(path, where .. ": keys are config keys (strings), got " .. type(key))
    elseif key == "run_dir" then
      fail(path, where .. ": run_dir is the sweep's to choose (see run_dirs)")
    elseif type(value) ~= "function" and not pcall(sweep.value_text, value) then
      fail(path, ("%s.%s: expected a value or a function(run), got %s"):format(where, key, type(value)))
    end
  end
  return set
end

-- A config path as written, else relative to the sweep file's folder, else
-- a shipped config.
local function resolve_config(path, config_path)
  local f = io.open(config_path, "r")
  if f then
    f:close()
    return config_path
  end
  local base = path:match("^(.*)/[^/]*$")
  if base and config_path:sub(1, 1) ~= "/" then
    local alt = base .. "/" .. config_path
    f = io.open(alt, "r")
    if f then
      f:close()
      return alt
    end
  end
  -- A shipped sweep names shipped configs by their checkout path
  -- (scripts/configs/x.lua); the rock installs them elsewhere.
  local shipped = config_path:match("^scripts/configs/([^/]+)$")
  local found = shipped and require("distill.configs").find(shipped)
  if found then
    return found
  end
  fail(path, ("config file %s not found"):format(config_path))
end

--- Reads and checks a sweep file (a Lua file returning a table; SPEC_KEYS
-- lists its keys). Errors name the file and the problem.
function sweep.load(path)
  if type(path) ~= "string" or path == "" then
    error("sweep.load: expected the path of a sweep file", 2)
  end
  local chunk, err = loadfile(path, "t")
  if not chunk then
    error("sweep: " .. tostring(err), 0)
  end
  local ok, raw = pcall(chunk)
  if not ok then
    fail(path, tostring(raw))
  elseif type(raw) ~= "table" then
    fail(path, "a sweep file must return a table, got " .. type(raw))
  end
  for key in pairs(raw) do
    if SPEC_KEYS[key] == nil then
      fail(path, ("unknown key '%s' (valid: %s)"):format(tostring(key),
        table.concat(sorted_keys(SPEC_KEYS), ", ")))
    end
  end
  local spec = { path = path }
  spec.name = raw.name or path:match("([^/]+)%.lua$") or path:match("([^/]+)$")
  if type(spec.name) ~= "string" or not spec.name:match("^[%w._-]+$") then
    fail(path, "name: expected letters, digits, '.', '_' or '-', got " .. tostring(raw.name))
  end
  spec.description = raw.description or ""
  spec.root = raw.root or "runs"
  if type(spec.root) ~= "string" or spec.root == "" then
    fail(path, "root: expected a directory path")
  end
  if raw.configs == nil and raw.runs == nil then
    fail(path, "configs: expected the config files of the sweep (a list of paths)")
  end
  spec.configs = raw.configs and string_list(path, "configs", raw.configs) or {}
  for i, c in ipairs(spec.configs) do
    spec.configs[i] = resolve_config(path, c)
  end
  spec.methods = raw.methods and string_list(path, "methods", raw.methods)
  if raw.seeds ~= nil then
    spec.seeds = check_values(path, "seeds", raw.seeds)
    for i, s in ipairs(spec.seeds) do
      if math.type(s) ~= "integer" then
        fail(path, ("seeds[%d]: expected an integer, got %s"):format(i, tostring(s)))
      end
    end
  end
  spec.axes = normalize_axes(path, raw.axes)
  spec.set = check_set(path, "set", raw.set)
  if raw.exclude ~= nil and type(raw.exclude) ~= "function" then
    fail(path, "exclude: expected a function(run) returning true for runs to leave out")
  end
  spec.exclude = raw.exclude
  if raw.mode ~= nil and raw.mode ~= "train" and raw.mode ~= "distill" then
    fail(path, "mode: expected \"train\" or \"distill\", got " .. tostring(raw.mode))
  end
  spec.mode = raw.mode
  if raw.teachers ~= nil and type(raw.teachers) ~= "string" then
    fail(path, "teachers: expected the sweep file (or command) that trains the teachers")
  end
  spec.teachers = raw.teachers
  if raw.run_dirs ~= nil and raw.run_dirs ~= "config" then
    fail(path, "run_dirs: expected \"config\" (each config's own run_dir), got " .. tostring(raw.run_dirs))
  end
  spec.run_dirs = raw.run_dirs
  spec.labels = raw.labels or {}
  if type(spec.labels) ~= "table" then
    fail(path, "labels: expected a table {key = \"short name\"}")
  end
  spec.runs = {}
  if raw.runs ~= nil then
    if not is_list(raw.runs) then
      fail(path, "runs: expected a list of {config =, method =, seed =, set = {...}}")
    end
    for i, r in ipairs(raw.runs) do
      if type(r) ~= "table" then
        fail(path, ("runs[%d]: expected a table {config =, method =, seed =, set =}"):format(i))
      end
      for key in pairs(r) do
        if key ~= "config" and key ~= "method" and key ~= "seed" and key ~= "set" then
          fail(path, ("runs[%d]: unknown key '%s' (valid: config, method, seed, set)"):format(i,
            tostring(key)))
        end
      end
      local entry = { method = r.method, seed = r.seed,
                      set = check_set(path, ("runs[%d].set"):format(i), r.set) }
      local c = r.config or (#spec.configs == 1 and spec.configs[1])
      if type(c) ~= "string" then
        fail(path, ("runs[%d]: config: expected a config file"):format(i))
      end
      entry.config = resolve_config(path, c)
      if r.method ~= nil and type(r.method) ~= "string" then
        fail(path, ("runs[%d]: method: expected a string"):format(i))
      end
      if r.seed ~= nil and math.type(r.seed) ~= "integer" then
        fail(path, ("runs[%d]: seed: expected an integer"):format(i))
      end
      spec.runs[i] = entry
    end
  end
  return spec
end

-- ---------------------------------------------------------- expansion

local function config_label(config_path)
  return (config_path:match("([^/]+)%.lua$") or config_path:match("([^/]+)$"))
end

local function label_of(spec, key)
  return spec.labels[key] or DEFAULT_LABELS[key] or key:match("([^.]+)$")
end

local function name_part(label, value)
  local text
  if type(value) == "table" then
    local parts = {}
    for i, v in ipairs(value) do
      parts[i] = sweep.value_text(v)
    end
    text = table.concat(parts, "_")
  else
    text = sweep.value_text(value)
  end
  if type(value) == "string" and label ~= "" then
    text = label .. "_" .. text
  else
    text = label .. text
  end
  return (text:gsub("[^%w._]", "_"))
end

-- The grid: one table {values = {key -> value}, order = {keys}} per
-- combination, seeds outermost.
local function grid(spec)
  local axes = {}
  if spec.seeds then
    axes[#axes + 1] = { key = "seed", values = spec.seeds }
  end
  if #spec.configs > 0 then
    axes[#axes + 1] = { key = "config", values = spec.configs }
  end
  if spec.methods then
    axes[#axes + 1] = { key = "method", values = spec.methods }
  end
  for _, axis in ipairs(spec.axes) do
    axes[#axes + 1] = axis
  end
  local combos = {}
  if #spec.configs == 0 then
    return combos
  end
  local index = {}
  for i = 1, #axes do
    index[i] = 1
  end
  while true do
    local values = {}
    for i, axis in ipairs(axes) do
      values[axis.key] = axis.values[index[i]]
    end
    combos[#combos + 1] = { values = values, set = {} }
    local i = #axes
    while i >= 1 do
      index[i] = index[i] + 1
      if index[i] <= #axes[i].values then
        break
      end
      index[i] = 1
      i = i - 1
    end
    if i < 1 then
      break
    end
  end
  return combos
end

-- Overrides of the axis values (not the derived ones), in name order.
local function axis_overrides(values, keys)
  local list = {}
  for _, key in ipairs(keys) do
    if key ~= "config" and values[key] ~= nil then
      list[#list + 1] = key .. "=" .. sweep.value_text(values[key])
    end
  end
  return list
end

local function describe(values, keys)
  local parts = {}
  for _, key in ipairs(keys) do
    if values[key] ~= nil then
      parts[#parts + 1] = key .. "=" .. (key == "config" and config_label(values[key])
        or sweep.value_text(values[key]))
    end
  end
  return table.concat(parts, " ")
end

local function load_config(spec, run, overrides, what)
  local ok, cfg = pcall(config.load, run.config_path, overrides)
  if not ok then
    fail(spec.path, ("run %s: %s"):format(what, tostring(cfg)))
  end
  return cfg
end

-- The name keys in order: config, method, the spec's axes, explicit keys, seed.
local function name_keys(spec)
  local keys, seen = { "config", "method" }, { config = true, method = true, seed = true }
  for _, axis in ipairs(spec.axes) do
    keys[#keys + 1] = axis.key
    seen[axis.key] = true
  end
  local extra = {}
  for _, r in ipairs(spec.runs) do
    for key in pairs(r.set) do
      if not seen[key] then
        seen[key] = true
        extra[#extra + 1] = key
      end
    end
  end
  table.sort(extra)
  for _, key in ipairs(extra) do
    keys[#keys + 1] = key
  end
  keys[#keys + 1] = "seed"
  return keys
end

-- Settles a run: its derived values, overrides, resolved config and mode.
local function settle(spec, run, keys, opts)
  local what = describe(run.values, keys)
  local base = axis_overrides(run.values, keys)
  local view = {}
  for k, v in pairs(run.values) do
    view[k] = v
  end
  view.config, view.config_path = config_label(run.config_path), run.config_path
  view.cfg = load_config(spec, run, base, what)
  if spec.exclude and run.from_grid then
    local ok, out = pcall(spec.exclude, view)
    if not ok then
      fail(spec.path, ("exclude failed for run %s: %s"):format(what, tostring(out)))
    end
    if out then
      return nil
    end
  end
  local overrides = base
  for _, key in ipairs(sorted_keys(spec.set)) do
    if run.values[key] == nil then
      local value = spec.set[key]
      if type(value) == "function" then
        local ok, out = pcall(value, view)
        if not ok then
          fail(spec.path, ("set['%s'] failed for run %s: %s"):format(key, what, tostring(out)))
        end
        value = out
      end
      if value ~= nil then
        local ok, text = pcall(sweep.value_text, value)
        if not ok then
          fail(spec.path, ("set['%s'] for run %s: %s"):format(key, what, tostring(text)))
        end
        overrides[#overrides + 1] = key .. "=" .. text
      end
    end
  end
  for _, item in ipairs(opts.set or {}) do
    overrides[#overrides + 1] = item
  end
  run.what = what
  run.cfg = load_config(spec, run, overrides, what)
  run.mode = spec.mode or ((type(run.cfg.teacher) == "table" and run.cfg.teacher.model) and "distill"
    or "train")
  local ok, err = pcall(config.validate, run.cfg, run.mode)
  if not ok then
    fail(spec.path, ("run %s: %s"):format(what, tostring(err)))
  end
  run.overrides = overrides
  return run
end

-- Config labels without the words all of them start with
-- (cifar100_resnet56_resnet20 -> resnet56_resnet20 among cifar100_ pairs).
local function short_labels(labels)
  local names = sorted_keys(labels)
  local short = {}
  local prefix = names[1] or ""
  for _, name in ipairs(names) do
    while name:sub(1, #prefix) ~= prefix do
      prefix = prefix:sub(1, -2)
    end
  end
  prefix = #names > 1 and (prefix:match("^(.*_)") or "") or ""
  for _, name in ipairs(names) do
    local rest = name:sub(#prefix + 1)
    short[name] = rest ~= "" and rest or name
  end
  return short
end

-- Names from the keys whose values differ between runs.
local function assign_names(spec, runs, keys, root)
  local varying = {}
  for _, key in ipairs(keys) do
    local seen, n = {}, 0
    for _, run in ipairs(runs) do
      local v = run.values[key]
      local text = v == nil and "\0absent" or (key == "config" and v or sweep.value_text(v))
      if not seen[text] then
        seen[text] = true
        n = n + 1
      end
    end
    varying[key] = n > 1
  end
  local labels = {}
  for _, run in ipairs(runs) do
    local label = config_label(run.config_path)
    local other = labels[label]
    if other and other ~= run.config_path then
      fail(spec.path, ("two configs are both named %s (%s, %s): rename one"):format(label, other,
        run.config_path))
    end
    labels[label] = run.config_path
  end
  local short = short_labels(labels)
  local by_dir = {}
  for _, run in ipairs(runs) do
    run.config_short = short[config_label(run.config_path)]
    local parts = {}
    for _, key in ipairs(keys) do
      if varying[key] and run.values[key] ~= nil then
        local value = key == "config" and short[config_label(run.values[key])] or run.values[key]
        parts[#parts + 1] = name_part(label_of(spec, key), value)
      end
    end
    run.name = #parts > 0 and table.concat(parts, "-") or config_label(run.config_path)
    if spec.run_dirs == "config" then
      run.dir = run.cfg.run_dir ~= false and run.cfg.run_dir or require("distill.run_dir").default(run.cfg)
    else
      run.dir = root .. "/" .. spec.name .. "/" .. run.name
      run.overrides[#run.overrides + 1] = "run_dir=" .. run.dir
      run.cfg.run_dir = run.dir
    end
    local other = by_dir[run.dir]
    if other then
      fail(spec.path, ("runs %s and %s would share the run directory %s%s"):format(other.what,
        run.what, run.dir, spec.run_dirs == "config" and " (their configs' run_dir)" or ""))
    end
    by_dir[run.dir] = run
  end
end

--- Expands a loaded sweep into its runs (see the module comment). opts:
-- root = where sweep directories go (default spec.root); set = extra
-- {"key=value"} overrides for every run (after the sweep's own).
function sweep.expand(spec, opts)
  opts = opts or {}
  if type(spec) ~= "table" or type(spec.path) ~= "string" then
    error("sweep.expand: expected a sweep from sweep.load", 2)
  end
  local keys = name_keys(spec)
  local runs = {}
  for _, combo in ipairs(grid(spec)) do
    local values = combo.values
    local run = { config_path = values.config, values = values, from_grid = true }
    runs[#runs + 1] = settle(spec, run, keys, opts)
  end
  for _, r in ipairs(spec.runs) do
    local values = { config = r.config, method = r.method, seed = r.seed }
    for key, value in pairs(r.set) do
      if type(value) == "function" then
        fail(spec.path, ("runs: set.%s: an explicit run takes values, not functions"):format(key))
      end
      values[key] = value
    end
    runs[#runs + 1] = settle(spec, { config_path = r.config, values = values }, keys, opts)
  end
  if #runs == 0 then
    fail(spec.path, "the sweep has no runs (every grid run excluded?)")
  end
  assign_names(spec, runs, keys, opts.root or spec.root)
  for i, run in ipairs(runs) do
    run.index, run.of = i, #runs
  end
  return runs
end

-- ---------------------------------------------------------- selection

--- The runs matching every "key=v1,v2" of `only` (key: config, method,
-- seed, name or an axis key). Indices and names stay those of the whole
-- sweep.
function sweep.select(runs, only)
  if type(runs) ~= "table" then
    error("sweep.select: expected the runs of sweep.expand", 2)
  end
  if only == nil or #only == 0 then
    return runs
  end
  local list = filters.parse(only, "sweep: --only")
  local known = { config = true, name = true }
  for _, run in ipairs(runs) do
    for key in pairs(run.values) do
      known[key] = true
    end
  end
  local accepts = filters.accepts
  local function matches(run, f)
    if f.key == "name" then
      return accepts(f, run.name)
    elseif f.key == "config" then
      return accepts(f, config_label(run.config_path), run.config_short)
    end
    local value = run.values[f.key]
    return accepts(f, type(value) == "table" and sweep.value_text(value) or value)
  end
  for _, f in ipairs(list) do
    if not known[f.key] then
      error(("sweep: --only %s: unknown key (valid: %s)"):format(f.key,
        table.concat(sorted_keys(known), ", ")), 0)
    end
  end
  return filters.select(runs, list, matches)
end

return sweep

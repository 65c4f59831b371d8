-- distill.checkpoint: checkpoints as safetensors files.
--
--   checkpoint.save(path, {model = model:state_dict(), optimizer = opt:state_dict(),
--                          meta = {epoch = 3, config = cfg, rng = distill.get_rng_state()}})
--   local ck = checkpoint.load(path)        -- the same nested table back
--   checkpoint.save_tensors(path, {name = tensor, ...}, {key = "string", ...})
--   local tensors, metadata = checkpoint.load_tensors(path)
--
-- Files are written to a temporary name, fsync'd and renamed, so a failed or
-- interrupted save never leaves a partial file behind.
--
-- Storage scheme of save(): every tensor found anywhere in the nested table
-- is a safetensors entry named by its key path joined with "/", e.g.
--   model/layer1.0.conv1.weight     optimizer/state/#3/momentum_buffer
-- In a path component, integer keys are written "#<n>"; in string keys the
-- characters % / # and NUL are escaped as %XX (%25, %2F, %23, %00) and the
-- empty string is "%". Names are thus unique and PyTorch-like for ordinary
-- keys. Everything else goes to __metadata__:
--   "format":  "distill-checkpoint-1"
--   "distill": the whole tree as JSON, in which every Lua value is tagged:
--       "s:<string>"  "i:<integer>" (exact 64-bit)  "f:<float>" (%.17g, inf, -inf, nan, -0)
--       "t:<entry name>" (a tensor)  true/false  {<tagged key>: <value>, ...}
--     and table keys are "s:<string>", "i:<integer>" or "f:<float>".
-- so strings, integers, floats, booleans, integer- and string-keyed tables
-- round trip exactly. load() of a file without this marker (for instance a
-- PyTorch state dict saved by safetensors.torch.save_file) returns the flat
-- {name = tensor} table.
local core = require "distill.core"
local cjson = require("cjson").new()   -- a private instance: our settings stay ours

local checkpoint = {}

checkpoint.FORMAT = "distill-checkpoint-1"

local is_tensor = core.is_tensor

-- Re-raise an error of the core functions under our own name.
-- The error is raised at the caller of fn; `inner` counts the local
-- functions between fn and this one.
local function rethrow(fn, msg, inner)
  msg = tostring(msg):gsub("^distill%.save_safetensors: ", ""):gsub("^distill%.load_safetensors: ", "")
  error(fn .. ": " .. msg, 3 + (inner or 0))
end

-- ------------------------------------------------------------- encoding

local function escape_component(k)
  if type(k) ~= "string" and type(k) ~= "number" then
    error("checkpoint.escape_component: argument #1: expected a key (a string or a number), got "
      .. type(k), 2)
  end
  if math.type(k) == "integer" then
    return "#" .. k
  elseif type(k) == "number" then
    return "#" .. string.format("%.17g", k)
  end
  if k == "" then
    return "%"
  end
  return (k:gsub("[%%/#%z]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function format_float(x)
  if x ~= x then
    return "nan"
  elseif x == math.huge then
    return "inf"
  elseif x == -math.huge then
    return "-inf"
  elseif x == 0 and 1 / x < 0 then
    return "-0"
  end
  return string.format("%.17g", x)
end

local function parse_float(s)
  if s == "nan" then
    return 0 / 0
  elseif s == "inf" then
    return math.huge
  elseif s == "-inf" then
    return -math.huge
  elseif s == "-0" then
    return -0.0
  end
  local v = tonumber(s)
  if v == nil then
    return nil
  end
  return v + 0.0
end

local function describe_path(path)
  if #path == 0 then
    return "the checkpoint table"
  end
  local parts = {}
  for i, k in ipairs(path) do
    parts[i] = type(k) == "string" and k or "[" .. tostring(k) .. "]"
  end
  return "'" .. table.concat(parts, ".") .. "'"
end

local function encode_key(k, path)
  local tk = math.type(k)
  if tk == "integer" then
    return "i:" .. k
  elseif tk == "float" then
    return "f:" .. format_float(k)
  elseif type(k) == "string" then
    return "s:" .. k
  end
  error(string.format("checkpoint.save: a key of type %s in %s (keys must be strings or numbers)",
    type(k), describe_path(path)), 0)
end

local function encode_value(v, path, names, tensors, visiting)
  if is_tensor(v) then
    local comps = {}
    for i, k in ipairs(path) do
      comps[i] = escape_component(k)
    end
    local name = table.concat(comps, "/")
    tensors[name] = v
    return "t:" .. name
  end
  local tv = type(v)
  if tv == "string" then
    return "s:" .. v
  elseif tv == "boolean" then
    return v
  elseif tv == "number" then
    if math.type(v) == "integer" then
      return "i:" .. v
    end
    return "f:" .. format_float(v)
  elseif tv == "table" then
    if visiting[v] then
      error("checkpoint.save: " .. describe_path(path) .. " contains itself (a cycle)", 0)
    end
    visiting[v] = true
    local out = {}
    for k, x in pairs(v) do
      local ek = encode_key(k, path)
      path[#path + 1] = k
      out[ek] = encode_value(x, path, names, tensors, visiting)
      path[#path] = nil
    end
    visiting[v] = nil
    return out
  end
  error(string.format("checkpoint.save: %s is a %s, which a checkpoint cannot store (tensors, "
    .. "tables, strings, numbers and booleans can)", describe_path(path), tv), 0)
end

-- ------------------------------------------------------------- decoding

local function decode_scalar(s, tensors, used, where)
  local tag, body = s:sub(1, 2), s:sub(3)
  if tag == "s:" then
    return body
  elseif tag == "i:" then
    local n = math.tointeger(tonumber(body))
    if n ~= nil then
      return n
    end
  elseif tag == "f:" then
    local x = parse_float(body)
    if x ~= nil then
      return x
    end
  elseif tag == "t:" then
    local t = tensors[body]
    if t == nil then
      error(string.format("the metadata refers to tensor '%s', which the file does not hold", body), 0)
    end
    used[body] = true
    return t
  end
  error(string.format("bad value %q in the metadata tree at %s", s:sub(1, 60), where), 0)
end

local function decode_value(v, tensors, used, where)
  local tv = type(v)
  if tv == "string" then
    return decode_scalar(v, tensors, used, where)
  elseif tv == "boolean" then
    return v
  elseif tv == "table" and getmetatable(v) == nil then
    local out = {}
    for k, x in pairs(v) do
      if type(k) ~= "string" then
        error("bad key in the metadata tree at " .. where, 0)
      end
      local tag, body = k:sub(1, 2), k:sub(3)
      local key
      if tag == "s:" then
        key = body
      elseif tag == "i:" then
        key = math.tointeger(tonumber(body))
      elseif tag == "f:" then
        key = parse_float(body)
      end
      if key == nil or key ~= key then
        error(string.format("bad key %q in the metadata tree at %s", k:sub(1, 60), where), 0)
      end
      out[key] = decode_value(x, tensors, used, where .. "/" .. body)
    end
    return out
  end
  error("unexpected " .. tv .. " in the metadata tree at " .. where, 0)
end

-- -------------------------------------------------------------------- API

local function check_path(fn, path, inner)
  if type(path) ~= "string" or path == "" then
    error(fn .. ": argument #1: expected a file path, got " .. type(path), 3 + (inner or 0))
  end
end

-- The tensors and metadata of the safetensors file at path, read for the
-- public function fn (its caller gets the errors).
local function read_safetensors(fn, path)
  check_path(fn, path, 1)
  local ok, tensors, meta = pcall(core.load_safetensors, path)
  if not ok then
    rethrow(fn, tensors, 1)
  end
  return tensors, meta
end

-- Writes a safetensors file for the public function fn (its caller gets
-- the errors).
local function write_safetensors(fn, path, tensors, metadata)
  local ok, err = pcall(core.save_safetensors, path, tensors, metadata)
  if not ok then
    rethrow(fn, err, 1)
  end
end

function checkpoint.save(path, obj)
  check_path("checkpoint.save", path)
  if type(obj) ~= "table" or is_tensor(obj) then
    error("checkpoint.save: argument #2: expected a table (e.g. {model = model:state_dict(), meta = "
      .. "{...}}), got " .. (is_tensor(obj) and "a tensor" or type(obj)), 2)
  end
  local tensors = {}
  local ok, tree = pcall(encode_value, obj, {}, {}, tensors, {})
  if not ok then
    error(tree, 2)
  end
  local ok2, json = pcall(cjson.encode, tree)
  if not ok2 then
    error("checkpoint.save: cannot encode the metadata: " .. tostring(json), 2)
  end
  write_safetensors("checkpoint.save", path, tensors, {format = checkpoint.FORMAT, distill = json})
end

function checkpoint.load(path)
  local tensors, meta = read_safetensors("checkpoint.load", path)
  local format = meta.format
  if format == nil or meta.distill == nil then
    return tensors   -- a plain safetensors file: {name = tensor}
  end
  if format ~= checkpoint.FORMAT then
    if format:match("^distill%-checkpoint%-") then
      error(string.format("checkpoint.load: %s: unsupported checkpoint format '%s' (this version "
        .. "reads '%s')", path, format, checkpoint.FORMAT), 2)
    end
    return tensors
  end
  local okj, tree = pcall(cjson.decode, meta.distill)
  if not okj then
    error(string.format("checkpoint.load: %s: corrupt metadata tree: %s", path, tostring(tree)), 2)
  end
  local okd, obj = pcall(decode_value, tree, tensors, {}, "top")
  if not okd then
    error(string.format("checkpoint.load: %s: %s", path, tostring(obj)), 2)
  end
  if type(obj) ~= "table" then
    error(string.format("checkpoint.load: %s: the metadata tree is not a table", path), 2)
  end
  return obj
end

function checkpoint.save_tensors(path, tensors, metadata)
  check_path("checkpoint.save_tensors", path)
  if type(tensors) ~= "table" then
    error("checkpoint.save_tensors: argument #2: expected a table {name = tensor}, got "
      .. type(tensors), 2)
  end
  write_safetensors("checkpoint.save_tensors", path, tensors, metadata)
end

function checkpoint.load_tensors(path)
  -- not a tail call: read_safetensors' errors count this function's frame
  local tensors, meta = read_safetensors("checkpoint.load_tensors", path)
  return tensors, meta
end

checkpoint.escape_component = escape_component

return checkpoint

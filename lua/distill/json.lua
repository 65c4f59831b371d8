-- distill.json: the JSON of run directories (run.json, summary.json,
-- metrics.jsonl). Numbers keep 14 significant digits; a sparse array is
-- encoded as an object rather than refused. (Checkpoint headers have their own
-- encoder: distill.checkpoint tags every value to round-trip it exactly.)
--
--   local json = require "distill.json"
--   json.encode({epoch = 3, top1 = 71.25})   --> '{"epoch":3,"top1":71.25}'
--   json.decode('{"a":[1,2]}')                --> {a = {1, 2}}
--   json.read("runs/x/summary.json")          --> the decoded file, nil when absent
local cjson = require("cjson").new()   -- a private instance: our settings stay ours

cjson.encode_number_precision(14)
cjson.encode_sparse_array(true)

local json = {}

function json.encode(value)
  return cjson.encode(value)
end

function json.decode(text)
  if type(text) ~= "string" then
    error("json.decode: expected the JSON text (a string), got " .. type(text), 2)
  end
  return cjson.decode(text)
end

--- The decoded content of a JSON file, nil when the file does not exist;
-- a file that is not valid JSON is an error naming it.
function json.read(path)
  if type(path) ~= "string" then
    error("json.read: expected a file path, got " .. type(path), 2)
  end
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local text = f:read("a")
  f:close()
  local ok, value = pcall(cjson.decode, text)
  if not ok then
    error(("json.read: %s is not valid JSON (%s)"):format(path, tostring(value)), 2)
  end
  return value
end

return json

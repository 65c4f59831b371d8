-- The distiller base: an nn.Module (so its trainable parts, buffers and
-- state_dict behave like any layer's) with one extra method,
--   d:loss(student_out, teacher_out, labels, batch, epoch) -> scalar tensor
-- where *_out are model outputs {feats = {...}, pooled = p, logits = z},
-- labels are the 1-based targets and batch is the loader's batch (CRD needs
-- batch.index).
local Module = require "distill.nn.module"

local base = {}

function base.class(name)
  local class = Module.class(name)
  class.loss = function(self)
    error(("%s:loss is not implemented"):format(self.__name), 2)
  end
  return class
end

--- Checks an options table against {key = default} and returns the merged
-- options; unknown keys are an error naming the distiller.
function base.options(name, opts, defaults)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(("distillers.%s: options must be a table, got %s"):format(name, type(opts)), 3)
  end
  local merged = {}
  for key, value in pairs(defaults) do
    merged[key] = value
  end
  for key, value in pairs(opts) do
    if defaults[key] == nil and key ~= "probe" then
      local names = {}
      for k in pairs(defaults) do
        names[#names + 1] = k
      end
      table.sort(names)
      error(("distillers.%s: unknown option '%s' (valid: %s)"):format(
        name, tostring(key), table.concat(names, ", ")), 3)
    end
    merged[key] = value
  end
  return merged
end

--- The sample outputs a shape-dependent distiller is built from.
function base.probe(name, opts)
  local probe = opts and opts.probe
  if type(probe) ~= "table" or type(probe.student) ~= "table" or type(probe.teacher) ~= "table" then
    error(("distillers.%s: needs opts.probe = {student = out, teacher = out} (sample model outputs, "
      .. "see distillers.probe)"):format(name), 3)
  end
  return probe
end

--- The block features a feature distiller uses: feats without the stem
-- output (first) and the pooled vector (last), as the CRD code base does.
function base.block_features(out)
  local list = {}
  for i = 2, #out.feats - 1 do
    list[#list + 1] = out.feats[i]
  end
  return list
end

return base

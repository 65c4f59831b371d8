-- distill: tensors, autograd and distillation for Lua 5.4.
-- `require "distill"` gives the C core's functions (tensor creation, maths,
-- random numbers) plus the Lua libraries, loaded on first use:
-- distill.nn, distill.F, distill.optim, distill.models, distill.data, ...
require "distill.checkout"          -- from a source checkout: distill.models.*, distill.data.*
local core = require "distill.core"

local distill = {}
for name, value in pairs(core) do
  distill[name] = value
end
distill.core = core
distill.version = "scm-1"

local submodules = {
  nn = "distill.nn",
  F = "distill.functional",
  functional = "distill.functional",
  optim = "distill.optim",
  models = "distill.models",
  data = "distill.data",
  checkpoint = "distill.checkpoint",
  distillers = "distill.distillers",
}

return setmetatable(distill, {
  __index = function(self, key)
    local module_name = submodules[key]
    if module_name then
      local module = require(module_name)
      rawset(self, key, module)
      return module
    end
  end,
})

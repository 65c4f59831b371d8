-- distill.nn: modules in PyTorch's shape with Lua calls.
--   local nn = require "distill.nn"
--   local net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
--   local logits = net(x)
-- New modules: local MyNet = nn.class("MyNet"); function MyNet:init(...) end;
-- function MyNet:forward(x) end. See docs/nn.md.
local Module = require "distill.nn.module"
local containers = require "distill.nn.containers"
local layers = require "distill.nn.layers"

local nn = {
  Module = Module,
  class = Module.class,
  is_module = Module.is_module,
  init = require "distill.nn.initializers",
}

for name, class in pairs(containers) do
  nn[name] = class
end
for name, class in pairs(layers) do
  nn[name] = class
end
for name, fn in pairs(require "distill.nn.fuse") do nn[name] = fn end

return nn

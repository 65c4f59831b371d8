-- One ReviewKD training step at CIFAR shapes (ResNet32x4 -> ResNet8x4,
-- batch 64: CE + 5 ReviewKD, SGD), with ABF's fusion as the shipped fused
-- op or as the reference's separate ops (concatenation, 1x1 conv over it,
-- the resized residual, two products and a sum). Prints the median wall
-- and CPU seconds of the student's step (the teacher's outputs are computed
-- once: they do not depend on the variant) and the process's peak RSS, so
-- run each variant in its own process (docs/performance.md):
--   lua5.4 scripts/distill scripts/bench_reviewkd.lua composed|fused [steps]
local distill = require "distill"
local models = require "distill.models"
local distillers = require "distill.distillers"

local variant, steps = arg[1], tonumber(arg[2] or 4)
if variant ~= "composed" and variant ~= "fused" then
  io.stderr:write("bench_reviewkd: usage: bench_reviewkd.lua composed|fused [steps]\n")
  os.exit(2)
end
if not steps or steps < 1 then
  io.stderr:write("bench_reviewkd: steps must be a positive number, got " .. tostring(arg[2]) .. "\n")
  os.exit(2)
end

local ReviewKD = distillers.class("reviewkd")
if variant == "composed" then
  function ReviewKD.ABF:forward(x, residual, out_size)
    local n, h, w = x:size(1), x:size(3), x:size(4)
    x = self.conv1(x)
    if self.att_conv then
      local y = ReviewKD.nearest(residual, h, w)
      local z = self.att_conv(distill.cat({ x, y }, 2))
      x = x * z:narrow(2, 1, 1):view{ n, 1, h, w } + y * z:narrow(2, 2, 1):view{ n, 1, h, w }
    end
    x = ReviewKD.nearest(x, out_size[1], out_size[2])
    return self.conv2(x), x
  end
end

local function peak_rss_mb()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmHWM:%s+(%d+)")
    if kb then
      return tonumber(kb) / 1024
    end
  end
end

local function median(list)
  table.sort(list)
  return list[(#list + 1) // 2]
end

distill.manual_seed(1)
local student = models.create("resnet8x4", { num_classes = 100 })
local teacher = models.create("resnet32x4", { num_classes = 100 })
teacher:eval()
local objective = distillers.objective({ { distiller = "ce", weight = 1 },
  { distiller = "reviewkd", weight = 5, warmup = 0 } },
  { student = student, teacher = teacher, input_shape = { 3, 32, 32 } })
local params, own = student:parameters(), objective:parameters()
table.move(own, 1, #own, #params + 1, params)
local optimizer = distill.optim.SGD(params, { lr = 0.05, momentum = 0.9, weight_decay = 5e-4 })
local x, y = distill.randn{ 64, 3, 32, 32 }, distill.randint(1, 101, { 64 })
local t_out = distill.no_grad(function() return teacher:forward(x, { features = true, preact = true }) end)
student:train()
objective:train(true)

local walls, cpus = {}, {}
for step = 0, steps do   -- step 0 warms the allocator's cache up
  local c0, t0 = os.clock(), distill.wallclock()
  local total = objective:loss(student:forward(x, { features = true }), t_out, y, nil, 1)
  optimizer:zero_grad()
  total:backward()
  optimizer:step()
  if step > 0 then
    walls[step], cpus[step] = distill.wallclock() - t0, os.clock() - c0
  end
  total = nil
  collectgarbage()
end
local cpu = distill.cpu_info()
print(("%-8s %s, kernels %s: step median %.2f s wall, %.2f s CPU; peak RSS %.0f MB"):format(variant,
  cpu.model, cpu.isa, median(walls), median(cpus), peak_rss_mb()))

-- RSS flatness check for the GC pacing (engine/bind/core.c): runs the
-- distillation step of scripts/bench_train.lua (teacher eval forward under
-- no_grad, student forward/backward of 0.1 CE + 0.9 KD + FSECD, SGD) for
-- --steps steps and compares VmRSS after --early steps with VmRSS at the
-- end; exits non-zero when the end exceeds the early value by more than
-- --tolerance (a fraction, default 0.05).
--
--   lua5.4 scripts/distill scripts/check_rss_flat.lua --teacher resnet56 \
--       --student resnet20 --batch 64 --steps 500 --early 50 [--tolerance 0.05]
local distill = require "distill"
local F = distill.F
local distillers = distill.distillers

local opts = { teacher = "resnet56", student = "resnet20", batch = 64, steps = 500, early = 50,
  tolerance = 0.05, classes = 100, every = 50 }
for i = 1, #arg, 2 do
  local key = arg[i]:match("^%-%-([%w_]+)$")
  assert(key and opts[key] ~= nil and arg[i + 1], "check_rss_flat: bad argument " .. arg[i])
  opts[key] = tonumber(arg[i + 1]) or arg[i + 1]
end

local function status_mb(field)
  local f = assert(io.open("/proc/self/status", "r"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)")) / 1024
end

distill.manual_seed(0)
local models = distill.models
local B = opts.batch
local teacher = models.create(opts.teacher, { num_classes = opts.classes })
local student = models.create(opts.student, { num_classes = opts.classes })
teacher:eval()
student:train()
local x = distill.randn { B, 3, 32, 32 }
local y = distill.randint(1, opts.classes + 1, { B })
local probe = distillers.probe(student, teacher, { 2, 3, 32, 32 })
local kd = distillers.kd { T = 4 }
local fsecd = distillers.fsecd { probe = probe, policy = "instance", embed = "linear" }
local params = student:parameters()
for _, p in ipairs(fsecd:parameters()) do
  params[#params + 1] = p
end
local opt = distill.optim.SGD(params, { lr = 0.05, momentum = 0.9, weight_decay = 5e-4 })

local function step()
  opt:zero_grad()
  local t_out = distill.no_grad(function()
    return teacher:forward(x, { features = true })
  end)
  local s_out = student:forward(x, { features = true })
  local loss = F.cross_entropy(s_out.logits, y) * 0.1
    + kd:loss(s_out, t_out) * 0.9
    + fsecd:loss(s_out, t_out, y) * 1.0
  loss:backward()
  opt:step()
end

local early
local t0 = distill.profile.now()
for i = 1, opts.steps do
  step()
  if i % opts.every == 0 or i == opts.early then
    local rss = status_mb("VmRSS")
    if i == opts.early then
      early = rss
    end
    print(("step %4d  RSS %7.1f MB  peak %7.1f MB  live tensors %6.1f MB  Lua heap %6.1f MB  "
      .. "minor/major collections %s  %.1f s"):format(i, rss, status_mb("VmHWM"),
      distill.core.live_bytes() / 2 ^ 20, collectgarbage("count") / 1024,
      distill.core.gc_stats().minor .. "/" .. distill.core.gc_stats().major, distill.profile.now() - t0))
  end
end
local final = status_mb("VmRSS")
local growth = (final - early) / early
print(("RSS after %d steps %.1f MB, after %d steps %.1f MB: %+.1f%% (tolerance %.0f%%)")
  :format(opts.early, early, opts.steps, final, 100 * growth, 100 * opts.tolerance))
if growth > opts.tolerance then
  os.exit(1)
end

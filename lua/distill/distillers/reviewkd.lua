-- ReviewKD: Chen, Liu, Zhao and Jia, "Distilling Knowledge via Knowledge
-- Review" (CVPR 2021), as the mdistiller code base implements it for
-- CIFAR. The student's block features and its pooled vector (as a 1x1
-- map), deepest first, pass attention-based fusion (ABF) modules: each
-- maps its feature to `mid` channels (1x1 conv + BN), fuses it with the
-- previous (deeper) level's fused map upsampled to its size, under two
-- attention maps from a 1x1 conv + sigmoid over both, and outputs the
-- teacher's channels (3x3 conv + BN) at the teacher's resolution. Each
-- level's output is compared with the teacher's pre-ReLU feature by the
-- hierarchical context loss (HCL): the MSE at full resolution plus the MSE
-- of 4x4, 2x2 and 1x1 average-pooled maps (only sizes below the feature's),
-- weighted 1, 1/2, 1/4, 1/8 and divided by the weights' sum; the levels
-- add up. The term ramps up as min(epoch / warmup, 1). mdistiller's CIFAR
-- defaults: weight 5 (with CE 1), warmup 20 epochs, mid = min(512,
-- student's pooled channels), student features after their ReLU, the
-- teacher's before.
local distill = require "distill"
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local ReviewKD = base.class("ReviewKD", { teacher = true, probe = true, teacher_preact = true })

-- ------------------------------------------------------------ resizing

-- Index tensors of nearest-neighbour resizing (PyTorch's "nearest": source
-- floor(i * in / out)), 1-based, kept per (in, out) pair.
local nearest_index = {}

local function index_for(from, to)
  local key = from .. ">" .. to
  local index = nearest_index[key]
  if not index then
    local list = {}
    for i = 0, to - 1 do
      list[i + 1] = math.min(math.floor(i * from / to), from - 1) + 1
    end
    index = distill.tensor(list, "int64")
    nearest_index[key] = index
  end
  return index
end

--- x {N, C, h, w} resized to {N, C, height, width} by nearest neighbours.
function ReviewKD.nearest(x, height, width)
  if x:size(3) ~= height then
    x = x:index_select(3, index_for(x:size(3), height))
  end
  if x:size(4) ~= width then
    x = x:index_select(4, index_for(x:size(4), width))
  end
  return x
end

-- ------------------------------------------------------------ ABF

local ABF = nn.class("ABF")

-- in_channels -> mid (1x1 conv + BN); with fuse, attention over [x, y];
-- mid -> out_channels (3x3 conv + BN).
function ABF:init(in_channels, mid, out_channels, fuse)
  local conv1 = nn.Conv2d(in_channels, mid, 1, { bias = false })
  local conv2 = nn.Conv2d(mid, out_channels, 3, { padding = 1, bias = false })
  nn.init.kaiming_uniform_(conv1.weight, { a = 1 })
  nn.init.kaiming_uniform_(conv2.weight, { a = 1 })
  self.conv1 = nn.Sequential(conv1, nn.BatchNorm2d(mid))
  self.conv2 = nn.Sequential(conv2, nn.BatchNorm2d(out_channels))
  if fuse then
    self.att_conv = nn.Sequential(nn.Conv2d(2 * mid, 2, 1), nn.Sigmoid())
  end
end

-- The attention maps sigmoid(conv1x1(cat(x, nearest(residual)))), computed
-- without the concatenation or the resized residual, both as large as the
-- level's widest map: a 1x1 conv is linear per position and nearest resizing
-- only picks positions, so the residual's half of the conv runs at the
-- residual's own (smaller) size and only its 2-channel result is resized.
-- The weights are att_conv's, so state dicts match the reference's.
function ABF:attention(x, residual)
  local conv, mid = self.att_conv[1], x:size(2)
  local from_x = F.conv2d(x, conv.weight:narrow(2, 1, mid), conv.bias)
  local from_residual = F.conv2d(residual, conv.weight:narrow(2, mid + 1, mid))
  return F.sigmoid(from_x + ReviewKD.nearest(from_residual, x:size(3), x:size(4)))
end

-- x: this level's student feature; residual: the previous level's fused
-- map (nil at the deepest level); out_size {H, W}: the teacher's size.
-- Returns the level's output and its fused map.
function ABF:forward(x, residual, out_size)
  x = self.conv1(x)
  if self.att_conv then
    -- x * att[:, 1] + nearest(residual) * att[:, 2] in one op (engine/contrast/abf.c)
    x = F.abf_fuse(x, residual, self:attention(x, residual))
  end
  x = ReviewKD.nearest(x, out_size[1], out_size[2])
  return self.conv2(x), x
end

ReviewKD.ABF = ABF

-- ------------------------------------------------------------ distiller

-- The compared features of a model's output: its block features and the
-- pooled vector as a 1x1 map.
local function review_features(out, who)
  local list = base.block_features(out)
  local pooled = out.pooled
  if not distill.is_tensor(pooled) then
    error(("distillers.reviewkd: the %s's output has no pooled feature"):format(who), 3)
  end
  list[#list + 1] = pooled:view{ pooled:size(1), -1, 1, 1 }
  for i, f in ipairs(list) do
    if f:dim() ~= 4 then
      error(("distillers.reviewkd: the %s's feature %d is %d-d, expected {N, C, H, W}")
        :format(who, i, f:dim()), 3)
    end
  end
  return list
end

--- reviewkd{probe = {student =, teacher =}, warmup = 20, max_mid_channel = 512}
function ReviewKD:init(opts, given)
  local probe = base.probe("reviewkd", opts, given)
  self.options = base.options("reviewkd", opts, { warmup = 20, max_mid_channel = 512 },
    { warmup = "nonnegative", max_mid_channel = "positive_integer" })
  local o = self.options
  local s_feats = review_features(probe.student, "student")
  local t_feats = review_features(probe.teacher, "teacher")
  if #s_feats ~= #t_feats then
    error(("distillers.reviewkd: the student has %d block features and the teacher %d")
      :format(#s_feats - 1, #t_feats - 1), 2)
  end
  local levels = #s_feats
  self.levels = levels
  local mid = math.min(o.max_mid_channel, s_feats[levels]:size(2))
  -- deepest level first, as the reference's list (so parameter names match)
  self.abfs = nn.ModuleList()
  self.out_sizes = {}
  for k = 1, levels do
    local i = levels + 1 - k
    self.abfs:append(ABF(s_feats[i]:size(2), mid, t_feats[i]:size(2), i < levels))
    self.out_sizes[k] = { t_feats[i]:size(3), t_feats[i]:size(4) }
  end
end

--- The hierarchical context loss of lists of features of equal shapes.
function ReviewKD.hcl(student_feats, teacher_feats)
  local total
  for i, fs in ipairs(student_feats) do
    local ft = teacher_feats[i]
    local h = fs:size(3)
    local loss = F.mse_loss(fs, ft)
    local weight, weights = 1, 1
    for _, size in ipairs { 4, 2, 1 } do
      if size < h then
        weight = weight / 2
        local ps = F.adaptive_avg_pool2d(fs, { size, size })
        local pt = F.adaptive_avg_pool2d(ft, { size, size })
        loss = loss + F.mse_loss(ps, pt) * weight
        weights = weights + weight
      end
    end
    loss = loss / weights
    total = total and total + loss or loss
  end
  return total
end

local function shape_text(t)
  return "{" .. table.concat(t:shape(), ", ") .. "}"
end

function ReviewKD:loss(student_out, teacher_out, _, _, epoch)
  local s_feats = review_features(student_out, "student")
  local t_feats = review_features(teacher_out, "teacher")
  local levels = self.levels
  if #s_feats ~= levels or #t_feats ~= levels then
    error(("distillers.reviewkd: built for %d levels, got %d (student) and %d (teacher)")
      :format(levels, #s_feats, #t_feats), 2)
  end
  local results, residual = {}, nil
  for k = 1, levels do
    local i = levels + 1 - k
    results[i], residual = self.abfs[k](s_feats[i], residual, self.out_sizes[k])
    local target = t_feats[i]
    if table.concat(results[i]:shape(), ",") ~= table.concat(target:shape(), ",") then
      error(("distillers.reviewkd: level %d gives %s but the teacher's feature is %s")
        :format(i, shape_text(results[i]), shape_text(target)), 2)
    end
    t_feats[i] = target:detach()
  end
  local ramp = 1
  if self.options.warmup > 0 then
    ramp = math.min((epoch or self.options.warmup) / self.options.warmup, 1)
  end
  return ReviewKD.hcl(results, t_feats) * ramp
end

return ReviewKD

-- RKD: Park et al., "Relational Knowledge Distillation" (CVPR 2019), on the
-- pooled features: Huber loss between the students' and the teacher's
-- pairwise distances (each divided by its mean) and between their angles
-- (cosines of the triplet angles). Published: distance 25, angle 50.
local distill = require "distill"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local RKD = base.class("RKD", { teacher = true })

--- rkd{distance_weight = 25, angle_weight = 50}
RKD.init = base.options_init("rkd", { distance_weight = 25, angle_weight = 50 },
  { distance_weight = "nonnegative", angle_weight = "nonnegative" })

-- Euclidean distances between rows, zero on the diagonal.
local function pairwise_distances(e)
  local b = e:size(1)
  local sq = (e * e):sum(2)
  local d2 = (sq:view{b, 1} + sq:view{1, b} - e:mm(e:t()) * 2):clamp(1e-12)
  return d2:sqrt() * (1 - distill.eye(b))
end

local function normalised_distances(e)
  local d = pairwise_distances(e)
  local positive = d:gt(0):float():sum():item()
  return d / (d:sum() / math.max(positive, 1))
end

-- cos of the angle at j between i and k, for every (i, j, k)
local function angles(e)
  local b = e:size(1)
  local diff = e:unsqueeze(1) - e:unsqueeze(2)       -- {b, b, D}
  local unit = F.normalize(diff, { dim = 3 })
  return unit:bmm(unit:transpose(2, 3)):view{-1}
end

function RKD:loss(student_out, teacher_out)
  local s = student_out.pooled:view{student_out.pooled:size(1), -1}
  local t = teacher_out.pooled:view{teacher_out.pooled:size(1), -1}
  local t_dist, t_angle = distill.no_grad(function()
    return normalised_distances(t), angles(t)
  end)
  local loss_d = F.smooth_l1_loss(normalised_distances(s), t_dist)
  local loss_a = F.smooth_l1_loss(angles(s), t_angle)
  return loss_d * self.options.distance_weight + loss_a * self.options.angle_weight
end

return RKD

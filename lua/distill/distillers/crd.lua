-- CRD: Tian, Krishnan and Isola, "Contrastive Representation Distillation"
-- (ICLR 2020). Student and teacher pooled features are embedded to 128-d
-- unit vectors; each is scored against K negatives and its positive drawn
-- from a memory bank of the other model's embeddings over the whole
-- training set, and an NCE loss separates positives from noise. Banks are
-- updated with momentum after each step. The scores are computed by a fused
-- C op that reads bank rows in place. Published: weight 0.8, 128-d,
-- K = 16384, T = 0.07, momentum 0.5.
--
-- Needs batch.index (1-based dataset positions; the loader provides it)
-- and opts.n_data, the training-set size (built by name: the context's
-- dataset size).
--
-- In a data-parallel run the banks stay identical on every rank: the bank
-- updates are gathered from all ranks; the negatives are drawn for the
-- whole batch on every rank (same random numbers) and each rank takes its
-- share's rows, so the run draws what one process would.
local distill = require "distill"
local dist = require "distill.dist"
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local CRD = base.class("CRD", { teacher = true, probe = true, dataset_size = true })

local EPS = 1e-7

--- crd{probe = {student =, teacher =}, n_data = N, feat_dim = 128,
---     nce_k = 16384, nce_t = 0.07, nce_m = 0.5}
function CRD:init(opts, given)
  local probe = base.probe("crd", opts, given)
  self.options = base.options("crd", opts, {
    n_data = false, feat_dim = 128, nce_k = 16384, nce_t = 0.07, nce_m = 0.5,
  }, { feat_dim = "positive_integer", nce_k = "positive_integer", nce_t = "positive", nce_m = "unit" })
  local o = self.options
  o.n_data = o.n_data or (given and given.dataset_size) or false
  if math.type(o.n_data) ~= "integer" or o.n_data < 1 then
    error("distillers.crd: n_data (the number of training samples) must be a positive integer", 2)
  end
  local s_dim = probe.student.pooled:view{probe.student.pooled:size(1), -1}:size(2)
  local t_dim = probe.teacher.pooled:view{probe.teacher.pooled:size(1), -1}:size(2)
  self.embed_s = nn.Linear(s_dim, o.feat_dim)
  self.embed_t = nn.Linear(t_dim, o.feat_dim)
  -- banks start uniform in [-stdv, stdv], stdv = 1 / sqrt(feat_dim / 3)
  local stdv = 1 / math.sqrt(o.feat_dim / 3)
  self:register_buffer("memory_student", distill.rand{o.n_data, o.feat_dim} * (2 * stdv) - stdv)
  self:register_buffer("memory_teacher", distill.rand{o.n_data, o.feat_dim} * (2 * stdv) - stdv)
  -- normalisation constants, fixed from the first batch (-1: not yet)
  self:register_buffer("z_student", distill.tensor(-1.0))
  self:register_buffer("z_teacher", distill.tensor(-1.0))
end

local function embed(linear, x)
  return F.normalize(linear(x:view{x:size(1), -1}), { dim = 2 })
end

-- NCE with noise distribution 1/n_data: positives in column 1.
local function nce_loss(scores, k, n_data)
  local b = scores:size(1)
  local noise = k / n_data
  local positive = scores:narrow(2, 1, 1)
  local negative = scores:narrow(2, 2, k)
  local log_d1 = (positive / (positive + (noise + EPS))):log()
  local log_d0 = (noise / (negative + (noise + EPS))):log()
  return -(log_d1:sum() + log_d0:sum()) / b
end

-- The banks change only after backward has used them: the gradient reads
-- bank rows in place, so updating them earlier would alter it. Reference
-- implementations update at the end of their forward but differentiate
-- through a gathered copy; deferring the update gives the same numbers.
function CRD:apply_pending_update()
  local pending = self._pending
  if pending then
    self._pending = nil
    distill.no_grad(function()
      distill.crd_update_bank_(self.memory_student, pending.index, pending.student, self.options.nce_m)
      distill.crd_update_bank_(self.memory_teacher, pending.index, pending.teacher, self.options.nce_m)
    end)
  end
end

--- Called by the training loop after backward (objective:after_backward()).
function CRD:after_backward()
  self:apply_pending_update()
end

function CRD:loss(student_out, teacher_out, _, batch)
  local o = self.options
  self:apply_pending_update()
  if not batch or not batch.index then
    error("distillers.crd: needs batch.index (dataset positions) to address its memory banks", 2)
  end
  local index = batch.index
  local b = index:size(1)
  local v_s = embed(self.embed_s, student_out.pooled)
  local v_t = embed(self.embed_t, teacher_out.pooled)
  local ranks = dist.size()
  local all_index = ranks > 1 and dist.all_gather(index) or index
  local contrast = distill.randint(1, o.n_data + 1, { all_index:size(1), o.nce_k + 1 })
  if ranks > 1 then
    contrast = contrast:narrow(1, dist.share(all_index:size(1)), b):contiguous()
  end
  contrast:select(2, 1):copy_(index)
  -- the teacher's embeddings against the student bank, and the other way
  local out_t = distill.crd_scores(self.memory_student, contrast, v_t, o.nce_t)
  local out_s = distill.crd_scores(self.memory_teacher, contrast, v_s, o.nce_t)
  distill.no_grad(function()
    if self.z_student:item() < 0 then
      if ranks > 1 then   -- the whole batch's means
        local sums = dist.sum_numbers{ out_s:sum():item(), out_t:sum():item(), out_s:numel() }
        self.z_student:fill_(sums[1] / sums[3] * o.n_data)
        self.z_teacher:fill_(sums[2] / sums[3] * o.n_data)
      else
        self.z_student:fill_(out_s:mean():item() * o.n_data)
        self.z_teacher:fill_(out_t:mean():item() * o.n_data)
      end
    end
  end)
  if self.training then
    local student, teacher = v_s:detach(), v_t:detach()
    if ranks > 1 then
      student, teacher = dist.all_gather(student), dist.all_gather(teacher)
    end
    self._pending = { index = all_index:clone(), student = student:clone(), teacher = teacher:clone() }
  end
  out_s = out_s / self.z_student:item()
  out_t = out_t / self.z_teacher:item()
  return nce_loss(out_s, o.nce_k, o.n_data) + nce_loss(out_t, o.nce_k, o.n_data)
end

return CRD

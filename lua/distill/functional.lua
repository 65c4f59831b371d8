-- distill.F: the differentiable functions, torch.nn.functional style. This
-- file is their reference: every name F has is listed below, once, with its
-- arguments (docs/nn.md points here).
--
--   local F = require "distill.functional"      -- or distill.F
--   F.conv2d(x, w, b, {stride = 1, padding = 1, dilation = 1, groups = 1})
--   F.cross_entropy(logits, labels, {reduction = "mean", label_smoothing = 0.1})
--
-- Conventions: options go in a trailing table; dims, positions, indices and
-- class labels count from 1 (negative dims from the end); a size given as
-- "n or {h, w}" means n for both dims; `reduction` is "mean", "sum" or
-- "none". Everything that records on the autograd tape has its backward in
-- C. Most entries are the C engine's functions (distill.core), which are
-- also distill.<name> and, for tensor maths, methods x:<name>(...); kd_loss
-- and flatten are written here.
local core = require "distill.core"

local F = {}

-- ------------------------------------------------------------------ layers

--- linear(x, w[, b]): x w^T + b, x {..., in}, w {out, in}
F.linear = core.linear
--- conv2d(x, w[, b], {stride = 1, padding = 0, dilation = 1, groups = 1}): 2-d convolution, x {N, C, H, W}
F.conv2d = core.conv2d
--- conv_transpose2d(x, w[, b], {stride, padding, output_padding, dilation, groups}): w {C_in, C_out/groups, kH, kW}
F.conv_transpose2d = core.conv_transpose2d
--- batch_norm(x, running_mean, running_var, weight, bias, {training = false, momentum = 0.1, eps = 1e-5})
F.batch_norm = core.batch_norm
--- dropout(x, {p = 0.5, training = true}): zeroes with probability p, scales the rest by 1/(1-p)
F.dropout = core.dropout

-- ----------------------------------------------------------------- pooling

--- max_pool2d(x, {kernel_size =, stride = kernel_size, padding = 0, ceil_mode = false}) (or (x, kernel_size))
F.max_pool2d = core.max_pool2d
--- avg_pool2d(x, {kernel_size =, stride, padding, ceil_mode, count_include_pad = true})
F.avg_pool2d = core.avg_pool2d
--- adaptive_avg_pool2d(x, size): averages into size = n or {h, w} cells
F.adaptive_avg_pool2d = core.adaptive_avg_pool2d

-- ------------------------------------------------------------- activations

--- relu(x): max(x, 0)
F.relu = core.relu
--- relu_(x): relu in place (not while x requires grad)
F.relu_ = core.relu_
--- relu6(x): min(max(x, 0), 6)
F.relu6 = core.relu6
--- leaky_relu(x[, slope = 0.01]): x where x > 0, slope * x elsewhere
F.leaky_relu = core.leaky_relu
--- sigmoid(x): 1 / (1 + e^-x)
F.sigmoid = core.sigmoid
--- sigmoid_(x): sigmoid in place
F.sigmoid_ = core.sigmoid_
--- tanh(x)
F.tanh = core.tanh
--- tanh_(x): tanh in place
F.tanh_ = core.tanh_
--- softmax(x, dim)
F.softmax = core.softmax
--- log_softmax(x, dim): log(softmax(x, dim)), computed stably
F.log_softmax = core.log_softmax

-- ------------------------------------------------------------------ losses

--- cross_entropy(logits, target, {reduction, label_smoothing = 0, ignore_index = -100}): labels 1..C
F.cross_entropy = core.cross_entropy
--- nll_loss(log_probs, target, {reduction, ignore_index = -100})
F.nll_loss = core.nll_loss
--- kl_div(log_probs, target, {reduction = "mean", log_target = false}): KD wants "batchmean"
F.kl_div = core.kl_div
--- mse_loss(a, b, {reduction})
F.mse_loss = core.mse_loss
--- l1_loss(a, b, {reduction})
F.l1_loss = core.l1_loss
--- smooth_l1_loss(a, b, {reduction, beta = 1}): Huber loss, quadratic below beta
F.smooth_l1_loss = core.smooth_l1_loss

--- kd_loss(student_logits, teacher_logits[, T = 4]): Hinton et al.'s
-- KL(softmax(t/T) || softmax(s/T)) * T^2, averaged over the batch.
function F.kd_loss(student_logits, teacher_logits, temperature)
  local T = temperature or 4
  if type(T) ~= "number" or not (T > 0) or T == math.huge then
    error(("F.kd_loss: temperature must be a finite number > 0, got %s"):format(tostring(T)), 2)
  end
  local log_p = core.log_softmax(student_logits / T, 2)
  local q = core.softmax(teacher_logits / T, 2)
  return core.kl_div(log_p, q, { reduction = "batchmean" }) * (T * T)
end

-- --------------------------------------------------------------- distances

--- normalize(x, {p = 2, dim = 2, eps = 1e-12}): x divided by its p-norm along dim
F.normalize = core.normalize
--- cdist(x1, x2, {p = 2}): p-norm distances between the rows of x1 {.., P, M} and x2 {.., R, M}
F.cdist = core.cdist
--- pairwise_distance(x1, x2, {p = 2, eps = 1e-6}): ||x1 - x2 + eps||_p row by row
F.pairwise_distance = core.pairwise_distance
--- cosine_similarity(x1, x2, {dim = 2, eps = 1e-8})
F.cosine_similarity = core.cosine_similarity

-- ------------------------------ contrastive distillation (docs/distillers.md)

--- fsecd_loss(z, ft, labels, {tau = 0.1, policy = "instance"|"class", symmetric = false, eps, num_classes})
F.fsecd_loss = core.fsecd_loss
--- crd_scores(bank, indices, v, temperature): exp(bank[indices] . v / T), reading bank rows in place (CRD)
F.crd_scores = core.crd_scores
--- crd_update_bank_(bank, indices, v, momentum): rows = normalize(m * row + (1 - m) * v), in place
F.crd_update_bank_ = core.crd_update_bank_
--- abf_fuse(x, res, att): x * att[:, 1] + nearest(res) * att[:, 2], ReviewKD's fusion, fused (res resized to x's size)
F.abf_fuse = core.abf_fuse

-- ----------------------- tensor maths (also distill.<name> and x:<name>(...))

-- elementwise; operands are tensors or numbers and broadcast
--- add(a, b)
F.add = core.add
--- add_(a, b): a += b in place
F.add_ = core.add_
--- sub(a, b)
F.sub = core.sub
--- sub_(a, b): a -= b in place
F.sub_ = core.sub_
--- mul(a, b)
F.mul = core.mul
--- mul_(a, b): a *= b in place
F.mul_ = core.mul_
--- div(a, b): always float32
F.div = core.div
--- div_(a, b): a /= b in place
F.div_ = core.div_
--- pow(a, b)
F.pow = core.pow
--- pow_(a, b): a = a^b in place
F.pow_ = core.pow_
--- neg(x)
F.neg = core.neg
--- neg_(x): in place
F.neg_ = core.neg_
--- abs(x)
F.abs = core.abs
--- abs_(x): in place
F.abs_ = core.abs_
--- sign(x): -1, 0 or 1
F.sign = core.sign
--- sign_(x): in place
F.sign_ = core.sign_
--- exp(x)
F.exp = core.exp
--- exp_(x): in place
F.exp_ = core.exp_
--- log(x): natural logarithm
F.log = core.log
--- log_(x): in place
F.log_ = core.log_
--- sqrt(x)
F.sqrt = core.sqrt
--- sqrt_(x): in place
F.sqrt_ = core.sqrt_
--- rsqrt(x): 1 / sqrt(x)
F.rsqrt = core.rsqrt
--- rsqrt_(x): in place
F.rsqrt_ = core.rsqrt_
--- clamp(x[, lo][, hi]): x limited to [lo, hi] (nil: unbounded)
F.clamp = core.clamp
--- clamp_(x[, lo][, hi]): in place
F.clamp_ = core.clamp_
--- maximum(a, b): elementwise max
F.maximum = core.maximum
--- minimum(a, b): elementwise min
F.minimum = core.minimum
--- where(condition, a, b): a where condition is nonzero, b elsewhere
F.where = core.where
--- masked_fill(x, mask, value): value where mask is nonzero
F.masked_fill = core.masked_fill
--- masked_fill_(x, mask, value): in place
F.masked_fill_ = core.masked_fill_

-- comparisons: uint8 0/1, never recorded
--- eq(a, b): a == b elementwise (the == operator compares whole tensors)
F.eq = core.eq
--- ne(a, b): a ~= b
F.ne = core.ne
--- lt(a, b): a < b
F.lt = core.lt
--- le(a, b): a <= b
F.le = core.le
--- gt(a, b): a > b
F.gt = core.gt
--- ge(a, b): a >= b
F.ge = core.ge

-- reductions: (x[, dims][, keepdim]); dims is nil (all), a dim or a list of dims
--- sum(x[, dims][, keepdim])
F.sum = core.sum
--- mean(x[, dims][, keepdim])
F.mean = core.mean
--- max(x[, dim][, keepdim]): the maximum; with dim also the (1-based) indices
F.max = core.max
--- min(x[, dim][, keepdim]): the minimum; with dim also the (1-based) indices
F.min = core.min
--- argmax(x[, dim][, keepdim]): 1-based positions of the maxima
F.argmax = core.argmax
--- argmin(x[, dim][, keepdim]): 1-based positions of the minima
F.argmin = core.argmin
--- var(x[, dims][, keepdim]): unbiased variance
F.var = core.var
--- std(x[, dims][, keepdim]): unbiased standard deviation
F.std = core.std
--- norm(x[, p = 2][, dims][, keepdim])
F.norm = core.norm
--- logsumexp(x[, dims][, keepdim])
F.logsumexp = core.logsumexp
--- prod(x[, dims][, keepdim])
F.prod = core.prod

-- linear algebra
--- mm(a, b): matrix product of two 2-d tensors
F.mm = core.mm
--- bmm(a, b): batched matrix product, {B, n, m} x {B, m, p}
F.bmm = core.bmm
--- matmul(a, b): torch.matmul's rank rules, batch dims broadcast
F.matmul = core.matmul
--- mv(m, v): matrix times vector
F.mv = core.mv
--- dot(a, b): inner product of two 1-d tensors
F.dot = core.dot
--- outer(a, b): outer product of two 1-d tensors
F.outer = core.outer

-- indexing and joining; index tensors hold 1-based positions
--- index_select(x, dim, index)
F.index_select = core.index_select
--- gather(x, dim, index)
F.gather = core.gather
--- scatter_add(x, dim, index, src): a copy of x with src added at index
F.scatter_add = core.scatter_add
--- scatter_add_(x, dim, index, src): in place (src must not require grad)
F.scatter_add_ = core.scatter_add_
--- cat(list, dim): concatenates along an existing dim
F.cat = core.cat
--- stack(list, dim): joins along a new dim
F.stack = core.stack
--- split(x, size_or_sizes, dim): a list of views
F.split = core.split
--- chunk(x, n, dim): n views of (nearly) equal size
F.chunk = core.chunk
--- repeat(x, times): x tiled times[i] times along dim i
F["repeat"] = core["repeat"]
--- repeat_tensor(x, times): repeat under a name that is not a Lua keyword
F.repeat_tensor = core.repeat_tensor

-- views and copies
--- view(x, shape): a view with another shape (one -1 inferred)
F.view = core.view
--- reshape(x, shape): a view when the strides allow it, else a copy
F.reshape = core.reshape
--- narrow(x, dim, start, length)
F.narrow = core.narrow
--- select(x, dim, index): the slice at index, dim dropped
F.select = core.select
--- permute(x, dims)
F.permute = core.permute
--- transpose(x, dim1, dim2)
F.transpose = core.transpose
--- squeeze(x[, dim]): drops size-1 dims
F.squeeze = core.squeeze
--- unsqueeze(x, dim): inserts a size-1 dim at dim
F.unsqueeze = core.unsqueeze

--- flatten(x[, start_dim = 2][, end_dim = -1]): dims start..end as one
-- (from 2, keeping the batch dim, unlike distill.flatten's 1).
function F.flatten(x, start_dim, end_dim)
  return x:flatten(start_dim or 2, end_dim or -1)
end

--- clone(x): a copy in a new storage (recorded)
F.clone = core.clone
--- detach(x): a view outside the autograd graph
F.detach = core.detach
--- numel(x): the number of elements
F.numel = core.numel

-- ------------------------ not functions of tensors: prefer distill.<name>
-- F has always forwarded every engine function; these stay so that code
-- written against F keeps working.

-- creation (docs/tensors.md)
--- tensor(values[, dtype]): from (nested) Lua tables, a number or a tensor
F.tensor = core.tensor
--- empty(shape[, dtype])
F.empty = core.empty
--- zeros(shape[, dtype])
F.zeros = core.zeros
--- ones(shape[, dtype])
F.ones = core.ones
--- full(shape, value[, dtype])
F.full = core.full
--- zeros_like(x[, dtype])
F.zeros_like = core.zeros_like
--- ones_like(x[, dtype])
F.ones_like = core.ones_like
--- full_like(x, value[, dtype])
F.full_like = core.full_like
--- eye(n[, m][, dtype])
F.eye = core.eye
--- arange([start,] stop[, step][, dtype]): stop excluded
F.arange = core.arange
--- linspace(start, stop, n): both ends included, float32
F.linspace = core.linspace

-- random numbers and the generator
--- rand(shape): uniform in [0, 1)
F.rand = core.rand
--- randn(shape): standard normal
F.randn = core.randn
--- randint(low, high, shape[, dtype]): integers in [low, high)
F.randint = core.randint
--- randperm(n): a permutation of 1..n
F.randperm = core.randperm
--- manual_seed(seed)
F.manual_seed = core.manual_seed
--- initial_seed(): the last seed
F.initial_seed = core.initial_seed
--- get_rng_state(): {seed =, offset =}
F.get_rng_state = core.get_rng_state
--- set_rng_state(state)
F.set_rng_state = core.set_rng_state

-- autograd modes
--- no_grad(fn, ...): fn's results, computed without recording
F.no_grad = core.no_grad
--- enable_grad(fn, ...): fn's results, computed with recording
F.enable_grad = core.enable_grad
--- set_grad_enabled(on): the previous mode
F.set_grad_enabled = core.set_grad_enabled
--- is_grad_enabled()
F.is_grad_enabled = core.is_grad_enabled

-- distributed training (the engine's side of distill.dist; use that module)
--- dist_available(): true, or false and why this build cannot run distributed
F.dist_available = core.dist_available
--- dist_launched(): whether mpirun or srun started this process
F.dist_launched = core.dist_launched
--- dist_init(): starts MPI (once)
F.dist_init = core.dist_init
--- dist_rank(): this process's rank, 1..dist_size()
F.dist_rank = core.dist_rank
--- dist_size(): the number of ranks
F.dist_size = core.dist_size
--- dist_barrier(): waits for every rank
F.dist_barrier = core.dist_barrier
--- dist_abort(code): kills every rank
F.dist_abort = core.dist_abort
--- dist_all_reduce_(t): t summed over the ranks, in place
F.dist_all_reduce_ = core.dist_all_reduce_
--- dist_broadcast_(t, root): rank root's t on every rank, in place
F.dist_broadcast_ = core.dist_broadcast_
--- dist_all_gather(t): every rank's t along dim 1, on the tape
F.dist_all_gather = core.dist_all_gather
--- dist_sum_numbers(list): the numbers summed over the ranks
F.dist_sum_numbers = core.dist_sum_numbers
--- dist_hash(s): a 64-bit hash of a string
F.dist_hash = core.dist_hash
--- dist_ddp(params, opts): gradient averaging over the ranks (distill.dist.DistributedDataParallel)
F.dist_ddp = core.dist_ddp

-- the engine
--- is_tensor(value)
F.is_tensor = core.is_tensor
--- isa(): the kernel set in use ("generic", "avx2", "avx512")
F.isa = core.isa
--- set_isa(name): switches kernel sets; returns the previous name
F.set_isa = core.set_isa
--- cpu_info(): {model, isa, isas, blas}
F.cpu_info = core.cpu_info
--- conv_algorithm([name]): "auto", "gemm" or "winograd" for 3x3 convolutions; returns the previous name
F.conv_algorithm = core.conv_algorithm
--- wallclock(): seconds, for timing
F.wallclock = core.wallclock
--- live_bytes(): bytes held by all live storages
F.live_bytes = core.live_bytes
--- cache_stats(): {cached, hits, misses, limit} of the block cache
F.cache_stats = core.cache_stats
--- cache_trim(): returns every cached block to the system
F.cache_trim = core.cache_trim
--- gc_stats(): the binding's collector pacing {minor, major, pending, major_at}
F.gc_stats = core.gc_stats
--- gemm_f32{A =, B =, C =, M =, N =, K =, ...}: the engine's GEMM, in place, not recorded (specs)
F.gemm_f32 = core.gemm_f32
--- save_safetensors(path, tensors[, metadata]): see distill.checkpoint
F.save_safetensors = core.save_safetensors
--- load_safetensors(path): tensors, metadata; see distill.checkpoint
F.load_safetensors = core.load_safetensors

return F

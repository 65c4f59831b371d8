/*
 * distill.h - the public C API of the distill engine, in the order of its
 * layers: the tensor core (storage, tensors, views, random numbers), maths
 * on tensors, autograd, neural-network ops, losses, distillation ops,
 * optimizers, I/O (checkpoints, datasets, images, the loader), tools.
 *
 *   dt_tensor *x, *w, *y;
 *   dt_empty(DT_FLOAT32, 4, (int64_t[]){64, 3, 32, 32}, &x);   // 0-based, owned refs
 *   dt_randn_(x, dt_default_rng(), 0.0, 1.0);
 *   ...
 *   dt_f_conv2d(x, w, NULL, stride, padding, dilation, 1, &y); // records on the tape
 *   dt_backward(loss, NULL, false);                              // grads into leaves
 *
 * Conventions shared by every function declared here:
 *  - Everything is 0-based (dims, positions, indices). Only the Lua binding
 *    converts from and to Lua's 1-based numbering.
 *  - Functions that can fail return a dt_status (DT_OK == 0). On failure they
 *    leave a human-readable reason in a thread-local buffer read with
 *    dt_last_error(), and they release whatever they allocated themselves.
 *  - Functions that create a tensor return it through an out-parameter
 *    `dt_tensor **out`. The caller owns one reference and drops it with
 *    dt_tensor_release().
 *  - Differentiable ops are the dt_f_ functions: they compute like their
 *    plain counterparts and record a node on the tape when an input needs
 *    a gradient. Every op's backward sits where a reader looks for it: in
 *    the op's own file for the neural-network ops (engine/nn/, contrast/),
 *    in <file>_grad.c next to <file>.c for the core maths and views
 *    (engine/math/, engine/core/). Writing an op: engine/autograd/op.h.
 */
#ifndef DISTILL_H
#define DISTILL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ status */

typedef enum dt_status {
    DT_OK = 0,
    DT_ERR_ARG,      /* a bad argument value (negative size, bad option...) */
    DT_ERR_SHAPE,    /* shapes do not match or cannot be broadcast */
    DT_ERR_DTYPE,    /* an operation not defined for this dtype */
    DT_ERR_INDEX,    /* an index or dim out of range */
    DT_ERR_NOMEM,    /* allocation failed */
    DT_ERR_IO,       /* file could not be opened, read or written */
    DT_ERR_FORMAT,   /* a file's contents are malformed */
    DT_ERR_STATE     /* call not valid in the current state */
} dt_status;

/* The reason for the last failure on this thread (never NULL). */
const char *dt_last_error(void);
/* Record a failure reason (printf-style) and return `status` for chaining:
 * `return dt_fail(DT_ERR_SHAPE, "expected %d dims, got %d", a, b);` */
dt_status dt_fail(dt_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------ dtypes */

typedef enum dt_dtype {
    DT_FLOAT32 = 0,
    DT_INT64 = 1,
    DT_UINT8 = 2
} dt_dtype;

#define DT_NUM_DTYPES 3
size_t dt_dtype_size(dt_dtype dtype);
const char *dt_dtype_name(dt_dtype dtype);            /* "float32", ... */
/* Parse "float32"/"float", "int64"/"long", "uint8"/"byte"; false if unknown. */
bool dt_dtype_parse(const char *name, dt_dtype *out);

/* ----------------------------------------------------------------- storage */

/* A reference-counted, 64-byte aligned buffer shared by tensor views. */
typedef struct dt_storage {
    void *data;
    size_t nbytes;
    int refcount;
    /* Bumped by every in-place write; autograd compares it to catch writes
     * to tensors a recorded node saved. */
    uint64_t version;
} dt_storage;

dt_status dt_storage_new(size_t nbytes, dt_storage **out);   /* zero-filled */
void dt_storage_retain(dt_storage *s);
void dt_storage_release(dt_storage *s);
/* Total bytes currently held by live storages (all threads). */
size_t dt_storage_live_bytes(void);

/* ------------------------------------------------------------------ tensor */

#define DT_MAX_DIMS 8

struct dt_node;   /* a node of the autograd tape */

typedef struct dt_tensor {
    dt_storage *storage;
    dt_dtype dtype;
    int ndim;
    int64_t shape[DT_MAX_DIMS];
    int64_t stride[DT_MAX_DIMS];   /* in elements; 0 for broadcast dims */
    int64_t offset;                /* in elements, into storage */
    int refcount;
    /* autograd */
    bool requires_grad;
    struct dt_tensor *grad;        /* accumulated gradient of a leaf, or NULL */
    struct dt_node *grad_fn;       /* node that produced this tensor, or NULL */
} dt_tensor;

void dt_tensor_retain(dt_tensor *t);
void dt_tensor_release(dt_tensor *t);      /* NULL is allowed */

int64_t dt_numel(const dt_tensor *t);
bool dt_is_contiguous(const dt_tensor *t);
/* Pointer to the first element (storage data + offset). */
void *dt_data(const dt_tensor *t);
static inline float *dt_f32(const dt_tensor *t) { return (float *)dt_data(t); }
static inline int64_t *dt_i64(const dt_tensor *t) { return (int64_t *)dt_data(t); }
static inline uint8_t *dt_u8(const dt_tensor *t) { return (uint8_t *)dt_data(t); }
size_t dt_nbytes(const dt_tensor *t);       /* numel * element size */
bool dt_same_shape(const dt_tensor *a, const dt_tensor *b);
/* torch.equal: the same shape and equal elements (dtypes may differ). */
bool dt_equal(const dt_tensor *a, const dt_tensor *b);
/* "[2, 3, 4]" into buf; returns buf. */
char *dt_shape_str(const int64_t *shape, int ndim, char *buf, size_t len);
/* Wrap negative dims (-1 = last) and range-check; `fn` names the caller. */
dt_status dt_normalize_dim(int *dim, int ndim);

/* Creation. Shapes are (ndim, shape[]) pairs; 0 <= ndim <= DT_MAX_DIMS. */
dt_status dt_empty(dt_dtype dtype, int ndim, const int64_t *shape, dt_tensor **out);
dt_status dt_zeros(dt_dtype dtype, int ndim, const int64_t *shape, dt_tensor **out);
dt_status dt_full(dt_dtype dtype, int ndim, const int64_t *shape, double value, dt_tensor **out);
dt_status dt_empty_like(const dt_tensor *t, dt_tensor **out);
dt_status dt_zeros_like(const dt_tensor *t, dt_tensor **out);
/* A 0-d tensor holding `value`. */
dt_status dt_scalar(dt_dtype dtype, double value, dt_tensor **out);
dt_status dt_arange(dt_dtype dtype, double start, double end, double step, dt_tensor **out);
dt_status dt_linspace(double start, double end, int64_t steps, dt_tensor **out);
dt_status dt_eye(dt_dtype dtype, int64_t n, int64_t m, dt_tensor **out);

/* Element access by flat position in logical (row-major) order. */
double dt_get_flat(const dt_tensor *t, int64_t i);
void dt_set_flat(dt_tensor *t, int64_t i, double v);
/* Exact int64 access (doubles lose precision above 2^53). */
int64_t dt_get_flat_i64(const dt_tensor *t, int64_t i);
void dt_set_flat_i64(dt_tensor *t, int64_t i, int64_t v);
/* Byte offset (in elements) of a multi-index. */
int64_t dt_offset_of(const dt_tensor *t, const int64_t *index);

/* Views: share storage with `t`; never copy. */
dt_status dt_view(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out); /* one -1 allowed */
dt_status dt_reshape(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out); /* copies if needed */
dt_status dt_narrow(dt_tensor *t, int dim, int64_t start, int64_t length, dt_tensor **out);
dt_status dt_select(dt_tensor *t, int dim, int64_t index, dt_tensor **out);
dt_status dt_transpose(dt_tensor *t, int dim0, int dim1, dt_tensor **out);
dt_status dt_permute(dt_tensor *t, const int *dims, dt_tensor **out); /* dims has t->ndim entries */
#define DT_ALL_DIMS INT32_MIN
dt_status dt_squeeze(dt_tensor *t, int dim, dt_tensor **out);  /* DT_ALL_DIMS: every size-1 dim */
dt_status dt_unsqueeze(dt_tensor *t, int dim, dt_tensor **out);
dt_status dt_expand(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out); /* -1 keeps */
dt_status dt_flatten(dt_tensor *t, int start_dim, int end_dim, dt_tensor **out);
dt_status dt_alias(dt_tensor *t, dt_tensor **out);    /* a new header on the same view */

/* Copies. */
dt_status dt_contiguous(dt_tensor *t, dt_tensor **out);  /* retains t if already contiguous */
dt_status dt_clone(const dt_tensor *t, dt_tensor **out);
/* dst <- src, broadcasting src to dst's shape, converting dtype. */
dt_status dt_copy_(dt_tensor *dst, const dt_tensor *src);
dt_status dt_fill_(dt_tensor *t, double value);
dt_status dt_to_dtype(const dt_tensor *t, dt_dtype dtype, dt_tensor **out); /* always copies */

/* Broadcasting: the NumPy result shape of a and b. */
dt_status dt_broadcast_shape(int na, const int64_t *sa, int nb, const int64_t *sb,
                             int *nout, int64_t *sout);

/* Strided iteration over up to 4 tensors of one shape (after broadcasting).
 * Usage:
 *   dt_iter it; dt_iter_init(&it, n, ts);
 *   while (dt_iter_next(&it)) for (k = 0; k < it.inner; k++) ...
 *       element k of tensor j is at data_j + it.offset[j] + k * it.inner_stride[j]
 * Dims are coalesced so contiguous tensors iterate as one inner run. */
typedef struct dt_iter {
    int ntensors;
    int ndim;                          /* outer dims after coalescing */
    int64_t shape[DT_MAX_DIMS];
    int64_t strides[4][DT_MAX_DIMS];
    int64_t counter[DT_MAX_DIMS];
    int64_t offset[4];                 /* element offsets of the current run */
    int64_t inner;                     /* length of the current run */
    int64_t inner_stride[4];
    int64_t remaining;                 /* runs left */
    bool started;
} dt_iter;

void dt_iter_init(dt_iter *it, int ntensors, const dt_tensor *const *ts);
bool dt_iter_next(dt_iter *it);

/* --------------------------------------------------------------------- RNG */

/* Counter-based generator: the n-th number drawn depends only on (seed, n),
 * so results do not depend on thread count, and the state is two integers. */
typedef struct dt_rng {
    uint64_t seed;
    uint64_t offset;   /* 64-bit words consumed so far */
} dt_rng;

dt_rng *dt_default_rng(void);
void dt_rng_seed(dt_rng *g, uint64_t seed);
/* The k-th 64-bit word of stream (seed), independent of state. */
uint64_t dt_rng_word(uint64_t seed, uint64_t k);
/* Draw: advance the generator by one word and return it / a uniform [0,1). */
uint64_t dt_rng_next(dt_rng *g);
double dt_rng_uniform(dt_rng *g);
double dt_rng_normal(dt_rng *g);

dt_status dt_rand_(dt_tensor *t, dt_rng *g, double low, double high);   /* uniform [low,high) */
dt_status dt_randn_(dt_tensor *t, dt_rng *g, double mean, double std);
dt_status dt_randint_(dt_tensor *t, dt_rng *g, int64_t low, int64_t high); /* [low,high) */
dt_status dt_randperm(dt_rng *g, int64_t n, dt_tensor **out);           /* int64 0..n-1 */

/* ------------------------------------------------------ elementwise maths */

typedef enum dt_binop {
    DT_ADD, DT_SUB, DT_MUL, DT_DIV, DT_POW, DT_MAXIMUM, DT_MINIMUM,
    DT_EQ, DT_NE, DT_LT, DT_LE, DT_GT, DT_GE
} dt_binop;

typedef enum dt_unop {
    DT_NEG, DT_ABS, DT_SIGN, DT_EXP, DT_LOG, DT_SQRT, DT_RSQRT,
    DT_RELU, DT_SIGMOID, DT_TANH
} dt_unop;

/* The dtype an op on (a, b) produces: float32 wins, then int64, then uint8.
 * Division always gives float32; comparisons give uint8. */
dt_dtype dt_result_dtype(dt_binop op, dt_dtype a, dt_dtype b);

/* out = a op b with broadcasting. */
dt_status dt_binary(dt_binop op, const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
/* out = a op scalar (scalar_is_int: the Lua value was an integer). */
dt_status dt_binary_scalar(dt_binop op, const dt_tensor *a, double s, bool scalar_is_int,
                           dt_tensor **out);
/* out = scalar op a (for 2 - x, 2 / x, 2 ^ x). */
dt_status dt_scalar_binary(dt_binop op, double s, bool scalar_is_int, const dt_tensor *a,
                           dt_tensor **out);
/* a <- a op b, b broadcast to a's shape; result cast to a's dtype. */
dt_status dt_binary_(dt_binop op, dt_tensor *a, const dt_tensor *b);
dt_status dt_binary_scalar_(dt_binop op, dt_tensor *a, double s);
dt_status dt_unary(dt_unop op, const dt_tensor *a, dt_tensor **out);
dt_status dt_unary_(dt_unop op, dt_tensor *a);
dt_status dt_clamp(const dt_tensor *a, double lo, double hi, dt_tensor **out); /* +-INFINITY: open */
dt_status dt_clamp_(dt_tensor *a, double lo, double hi);
/* out = cond ? a : b, with broadcasting of all three; cond is uint8. */
dt_status dt_where(const dt_tensor *cond, const dt_tensor *a, const dt_tensor *b, dt_tensor **out);

/* ------------------------------------------------------------- reductions */

typedef enum dt_reduce_op {
    DT_RED_SUM, DT_RED_MEAN, DT_RED_MAX, DT_RED_MIN, DT_RED_ARGMAX, DT_RED_ARGMIN,
    DT_RED_VAR, DT_RED_STD, DT_RED_NORM, DT_RED_LOGSUMEXP, DT_RED_PROD
} dt_reduce_op;

typedef struct dt_reduce_opts {
    int ndims;                  /* 0: reduce over all dims */
    int dims[DT_MAX_DIMS];      /* 0-based, negative allowed */
    bool keepdim;
    int correction;             /* var/std: 1 = unbiased (default), 0 = population */
    double p;                   /* norm order (default 2) */
} dt_reduce_opts;

/* Defaults: all dims, no keepdim, correction 1, p 2. A zeroed struct means
 * p = 0 (the count of nonzeros, as torch), so start from this instead. */
void dt_reduce_opts_init(dt_reduce_opts *o);

/* Sums are accumulated in a fixed order in double precision, so results do
 * not depend on the number of threads. argmax/argmin return int64 indices of
 * the first extreme value; they reduce over one dim (or the flattened
 * tensor when ndims == 0). */
dt_status dt_reduce(dt_reduce_op op, const dt_tensor *a, const dt_reduce_opts *opts, dt_tensor **out);

/* --------------------------------------------------------- linear algebra */

/* a: n x k, b: k x m, both float32 (any strides). */
dt_status dt_mm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
dt_status dt_bmm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
/* torch.matmul semantics: 1-d/2-d/batched with broadcast batch dims. */
dt_status dt_matmul(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
/* Raw row-major sgemm on contiguous buffers: C = alpha*op(A)*op(B) + beta*C.
 * OpenBLAS single-threaded per block; large products split over the OpenMP
 * threads. */
void dt_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc);

/* --------------------------------------------------------------- indexing */

dt_status dt_index_select(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out);
dt_status dt_gather(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out);
/* a[index[i][j]][j] += src[i][j] (for dim 0), in place. */
dt_status dt_scatter_add_(dt_tensor *a, int dim, const dt_tensor *index, const dt_tensor *src);
dt_status dt_masked_fill_(dt_tensor *a, const dt_tensor *mask, double value);
dt_status dt_cat(int n, const dt_tensor *const *ts, int dim, dt_tensor **out);
dt_status dt_stack(int n, const dt_tensor *const *ts, int dim, dt_tensor **out);
/* Views: pieces of `sizes[i]` along dim. */
dt_status dt_split(dt_tensor *a, int dim, int n, const int64_t *sizes, dt_tensor **outs);
dt_status dt_repeat(const dt_tensor *a, int ndim, const int64_t *repeats, dt_tensor **out);

/* --------------------------------------------------------------- autograd */

/* A node of the dynamic tape, made by a differentiable op for its output:
 * what its backward needs and edges to its inputs' nodes (the layout is in
 * engine/autograd/op.h, for op writers). */
typedef struct dt_node dt_node;
/* The name of the node's op, e.g. "MulBackward". */
const char *dt_node_name(const dt_node *node);
void dt_node_release(dt_node *node);

bool dt_grad_enabled(void);
void dt_set_grad_enabled(bool enabled);
/* True when an op on t must be recorded: grad mode on and t requires grad
 * (a leaf with requires_grad, or the result of a recorded op). */
bool dt_needs_grad(const dt_tensor *t);
bool dt_any_needs_grad(int n, const dt_tensor *const *ts);

/* Run backward from `root`. grad: the gradient of root (NULL for a
 * one-element root means 1). Gradients accumulate into leaves' ->grad.
 * Unless retain_graph, saved tensors are freed and a second backward
 * through the same nodes fails. */
dt_status dt_backward(dt_tensor *root, const dt_tensor *grad, bool retain_graph);
/* A view of t sharing storage, outside the graph. */
dt_status dt_detach(dt_tensor *t, dt_tensor **out);

/* ---- differentiable views, copies and core maths (dt_f_)
 * Same arguments, results and errors as the plain functions; they record
 * on the tape when an input needs grad. Results that are not float32
 * (comparisons, argmax, integer maths) never record. */

dt_status dt_f_view(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out);
dt_status dt_f_reshape(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out);
dt_status dt_f_squeeze(dt_tensor *t, int dim, dt_tensor **out);
dt_status dt_f_unsqueeze(dt_tensor *t, int dim, dt_tensor **out);
dt_status dt_f_flatten(dt_tensor *t, int start_dim, int end_dim, dt_tensor **out);
dt_status dt_f_alias(dt_tensor *t, dt_tensor **out);
dt_status dt_f_contiguous(dt_tensor *t, dt_tensor **out);
dt_status dt_f_clone(dt_tensor *t, dt_tensor **out);
dt_status dt_f_to_dtype(dt_tensor *t, dt_dtype dtype, dt_tensor **out);
dt_status dt_f_narrow(dt_tensor *t, int dim, int64_t start, int64_t length, dt_tensor **out);
dt_status dt_f_select(dt_tensor *t, int dim, int64_t index, dt_tensor **out);
dt_status dt_f_transpose(dt_tensor *t, int dim0, int dim1, dt_tensor **out);
dt_status dt_f_permute(dt_tensor *t, const int *dims, dt_tensor **out);
dt_status dt_f_expand(dt_tensor *t, int ndim, const int64_t *shape, dt_tensor **out);
/* Sum a broadcast gradient back down to (ndim, shape); a new float32 tensor. */
dt_status dt_sum_to_shape(const dt_tensor *grad, int ndim, const int64_t *shape, dt_tensor **out);

dt_status dt_f_mm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
dt_status dt_f_bmm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
dt_status dt_f_matmul(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
dt_status dt_f_dot(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);  /* 1-d, 1-d */
dt_status dt_f_mv(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);   /* 2-d, 1-d */
dt_status dt_f_outer(const dt_tensor *a, const dt_tensor *b, dt_tensor **out); /* 1-d, 1-d */
/* y = x W^T + b for x (..., in), w (out, in), b (out) or NULL: one sgemm
 * over all leading dims of x, the bias added in the same pass. */
dt_status dt_f_linear(const dt_tensor *x, const dt_tensor *w, const dt_tensor *b,
                      dt_tensor **out);

dt_status dt_f_index_select(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out);
dt_status dt_f_gather(const dt_tensor *a, int dim, const dt_tensor *index, dt_tensor **out);
/* Copying forms: out = a with src scatter-added / the masked positions
 * filled; a itself is not modified. */
dt_status dt_f_scatter_add(const dt_tensor *a, int dim, const dt_tensor *index,
                           const dt_tensor *src, dt_tensor **out);
dt_status dt_f_masked_fill(const dt_tensor *a, const dt_tensor *mask, double value,
                           dt_tensor **out);
dt_status dt_f_cat(int n, const dt_tensor *const *ts, int dim, dt_tensor **out);
dt_status dt_f_stack(int n, const dt_tensor *const *ts, int dim, dt_tensor **out);
dt_status dt_f_repeat(const dt_tensor *a, int ndim, const int64_t *repeats, dt_tensor **out);

/* maximum/minimum: a tie sends half of the gradient to each side (torch).
 * pow: the exponent's gradient is g * a^b * log(a) where a > 0, 0 elsewhere. */
dt_status dt_f_binary(dt_binop op, const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
dt_status dt_f_binary_scalar(dt_binop op, const dt_tensor *a, double s, bool scalar_is_int,
                             dt_tensor **out);
dt_status dt_f_scalar_binary(dt_binop op, double s, bool scalar_is_int, const dt_tensor *a,
                             dt_tensor **out);
dt_status dt_f_unary(dt_unop op, const dt_tensor *a, dt_tensor **out);
/* Gradient passes where lo <= x <= hi (torch). */
dt_status dt_f_clamp(const dt_tensor *a, double lo, double hi, dt_tensor **out);
dt_status dt_f_where(const dt_tensor *cond, const dt_tensor *a, const dt_tensor *b,
                     dt_tensor **out);
/* max/min with one dim: the gradient goes to the argmax position; over all
 * (or several) dims it is split evenly among tied extremes (torch 1.13).
 * norm: zero gradient where the norm is 0. prod: exact with zeros (one
 * zero in a slice gets the product of the others, two or more give 0). */
dt_status dt_f_reduce(dt_reduce_op op, const dt_tensor *a, const dt_reduce_opts *opts,
                      dt_tensor **out);

/* ----------------------------------------------------- neural-network ops */

/* 2-d convolution (cross-correlation, as PyTorch): x (N, C, H, W), w
 * (O, C/groups, kh, kw), bias (O) or NULL; stride/padding/dilation are
 * {h, w}. Output (N, O, OH, OW) with OH = (H + 2ph - dh*(kh-1) - 1)/sh + 1.
 * Differentiable in x, w and bias. */
dt_status dt_f_conv2d(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                      const int64_t stride[2], const int64_t padding[2],
                      const int64_t dilation[2], int64_t groups, dt_tensor **out);
/* How 3x3 stride-1 convolutions (one group, padding <= 2) are computed,
 * forward and backward: AUTO uses Winograd's F(4x4, 3x3) when both channel
 * counts are at least DT_WINOGRAD_MIN_CHANNELS and im2col + GEMM
 * otherwise; GEMM always im2col + GEMM (the exact-order direct sum);
 * WINOGRAD wherever it applies. Every other convolution uses im2col + GEMM.
 * Until set, the DISTILL_CONV_ALGO environment variable (auto, gemm,
 * winograd) decides. */
typedef enum dt_conv_algo { DT_CONV_AUTO, DT_CONV_GEMM, DT_CONV_WINOGRAD } dt_conv_algo;
#define DT_WINOGRAD_MIN_CHANNELS 16
void dt_set_conv_algo(dt_conv_algo algo);
dt_conv_algo dt_get_conv_algo(void);
/* 2-d transposed convolution (PyTorch's conv_transpose2d), the adjoint of
 * dt_f_conv2d in its input: x (N, Cin, H, W), w (Cin, Cout/groups, kh, kw),
 * bias (Cout) or NULL; stride/padding/output_padding/dilation are {h, w}.
 * Output (N, Cout, OH, OW) with OH = (H-1)*sh - 2ph + dh*(kh-1) + oph + 1;
 * output_padding must be smaller than stride or dilation. Differentiable in
 * x, w and bias. */
dt_status dt_f_conv_transpose2d(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                const int64_t stride[2], const int64_t padding[2],
                                const int64_t output_padding[2], const int64_t dilation[2],
                                int64_t groups, dt_tensor **out);
/* Pooling over the last two dims of a 3-d (C, H, W) or 4-d (N, C, H, W)
 * input. Padding is at most half the kernel; max pooling pads with -inf.
 * ceil_mode rounds the output size up (PyTorch's rule: a last window that
 * would start in the right padding is dropped). */
dt_status dt_f_max_pool2d(const dt_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                          const int64_t padding[2], bool ceil_mode, dt_tensor **out);
dt_status dt_f_avg_pool2d(const dt_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                          const int64_t padding[2], bool ceil_mode, bool count_include_pad,
                          dt_tensor **out);
/* Windows [floor(i*H/oh), ceil((i+1)*H/oh)) as PyTorch. */
dt_status dt_f_adaptive_avg_pool2d(const dt_tensor *x, int64_t out_h, int64_t out_w,
                                   dt_tensor **out);
/* Batch norm over dim 1 of a 2-d, 3-d or 4-d x. running_mean/var (C) may be
 * NULL (then training must be true); weight/bias (C) may be NULL. Training
 * uses batch statistics and updates the running ones in place:
 * r = (1 - momentum) * r + momentum * stat, with the unbiased variance.
 * sync_ranks (SyncBatchNorm): in training, the batch is every rank's
 * (every rank must make the same calls). */
dt_status dt_f_batch_norm(const dt_tensor *x, dt_tensor *running_mean, dt_tensor *running_var,
                          const dt_tensor *weight, const dt_tensor *bias, bool training,
                          bool sync_ranks, double momentum, double eps, dt_tensor **out);

/* Float32 inputs of any strides; results are new contiguous tensors. */
dt_status dt_f_relu6(const dt_tensor *x, dt_tensor **out);
dt_status dt_f_leaky_relu(const dt_tensor *x, double negative_slope, dt_tensor **out);
/* Numerically stable (max subtracted), along one dim. */
dt_status dt_f_softmax(const dt_tensor *x, int dim, dt_tensor **out);
dt_status dt_f_log_softmax(const dt_tensor *x, int dim, dt_tensor **out);
/* Inverted dropout: keeps each element with probability 1 - p, scaled by
 * 1/(1-p); element i uses word i of rng's counter stream (NULL: the
 * default generator). Eval mode or p == 0: an alias of x; p == 1: zeros. */
dt_status dt_f_dropout(const dt_tensor *x, double p, bool training, dt_rng *rng,
                       dt_tensor **out);

/* Distances (p: a finite p > 0; backward is 0, not NaN, at zero distance).
 * normalize: x / max(||x||_p, eps) along dim. cdist: x1 (B...) x P x M,
 * x2 (B...) x R x M -> (B...) x P x R. pairwise_distance: ||x1 - x2 + eps||_p
 * over the last dim (dropped). cosine_similarity (torch 1.13):
 * x1.x2 / sqrt(max(|x1|^2 |x2|^2, eps^2)) along dim (dropped). x1 and x2
 * have the same shape (no broadcasting). */
dt_status dt_f_normalize(const dt_tensor *x, double p, int dim, double eps, dt_tensor **out);
dt_status dt_f_cdist(const dt_tensor *x1, const dt_tensor *x2, double p, dt_tensor **out);
dt_status dt_f_pairwise_distance(const dt_tensor *x1, const dt_tensor *x2, double p, double eps,
                                 dt_tensor **out);
dt_status dt_f_cosine_similarity(const dt_tensor *x1, const dt_tensor *x2, int dim, double eps,
                                 dt_tensor **out);

/* ----------------------------------------------------------------- losses */

typedef enum dt_reduction {
    DT_REDUCTION_NONE, DT_REDUCTION_MEAN, DT_REDUCTION_SUM,
    DT_REDUCTION_BATCHMEAN   /* sum / size of dim 0 (kl_div only) */
} dt_reduction;
/* "none", "mean", "sum", "batchmean"; false if unknown. */
bool dt_reduction_parse(const char *name, dt_reduction *out);

/* Classification losses: input N x C (or N x C x d1 ...) float32, target
 * int64 N (or N x d1 ...) of 0-based classes. Positions whose target
 * equals ignore_index give 0 and are left out of the mean (a mean over no
 * position is NaN, as torch). cross_entropy fuses log_softmax and nll;
 * label smoothing eps as torch: (1-eps) * nll + eps * mean_k(-log p_k). */
dt_status dt_f_cross_entropy(const dt_tensor *logits, const dt_tensor *target,
                             dt_reduction reduction, double label_smoothing, int64_t ignore_index,
                             dt_tensor **out);
dt_status dt_f_nll_loss(const dt_tensor *logp, const dt_tensor *target, dt_reduction reduction,
                        int64_t ignore_index, dt_tensor **out);
/* Pointwise losses over two float32 tensors of one shape; gradients flow
 * to both. kl_div: input = log-probabilities, target = probabilities
 * (target * (log target - input), 0 where target == 0) or, with
 * log_target, log-probabilities (exp(target) * (target - input)). */
dt_status dt_f_kl_div(const dt_tensor *input, const dt_tensor *target, dt_reduction reduction,
                      bool log_target, dt_tensor **out);
dt_status dt_f_mse_loss(const dt_tensor *input, const dt_tensor *target, dt_reduction reduction,
                        dt_tensor **out);
dt_status dt_f_l1_loss(const dt_tensor *input, const dt_tensor *target, dt_reduction reduction,
                       dt_tensor **out);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta 0: l1). */
dt_status dt_f_smooth_l1_loss(const dt_tensor *input, const dt_tensor *target,
                              dt_reduction reduction, double beta, dt_tensor **out);

/* ------------------------------------------------------- distillation ops */

typedef enum dt_fsecd_policy { DT_FSECD_INSTANCE = 0, DT_FSECD_CLASS = 1 } dt_fsecd_policy;

typedef struct dt_fsecd_opts {
    double tau;              /* temperature, default 0.1 */
    double eps;              /* norm floor, default 1e-8 */
    dt_fsecd_policy policy;  /* what counts as a positive pair */
    bool symmetric;          /* average with the teacher-anchored loss */
} dt_fsecd_opts;

/* The fused FSECD contrastive loss (docs/distillers.md): z and t are B x D
 * float32 (student embeddings, teacher features), labels a 1-d int64 of
 * length B (only compared for equality; NULL allowed for the instance
 * policy). Returns a 0-d tensor; gradients flow to z and, if it requires
 * grad, to t. */
dt_status dt_f_fsecd_loss(const dt_tensor *z, const dt_tensor *t, const dt_tensor *labels,
                          const dt_fsecd_opts *opts, dt_tensor **out);

/* CRD's memory-bank scores: out[b][k] = exp(bank[idx[b][k]] . v[b] / T) for
 * bank N x D, idx B x (K+1) int64 (0-based), v B x D; gathered rows are
 * never materialised. Gradient flows to v only. */
dt_status dt_f_crd_scores(const dt_tensor *bank, const dt_tensor *idx, const dt_tensor *v,
                          double temperature, dt_tensor **out);
/* bank[idx[i]] <- normalise(momentum * bank[idx[i]] + (1 - momentum) * v[i]). */
dt_status dt_crd_update_bank_(dt_tensor *bank, const dt_tensor *idx, const dt_tensor *v,
                              double momentum);

/* ReviewKD's attention-weighted fusion: out = x * att[:, 1] + nearest(res)
 * * att[:, 2] for x N x C x H x W, res N x C x h x w (resized to H x W by
 * nearest neighbours, source floor(i * h / H)) and att N x 2 x H x W, all
 * float32; the resized res and the products are never materialised.
 * Gradients flow to all three. */
dt_status dt_f_abf_fuse(const dt_tensor *x, const dt_tensor *res, const dt_tensor *att,
                        dt_tensor **out);

/* ------------------------------------------------------------- optimizers */

/* Fused in-place optimizer updates, torch.optim's single-tensor formulas in
 * float32. All operands float32 and of the parameter's shape (any strides).
 * Bump the storage versions of what they write. */
typedef struct dt_sgd_opts {
    double lr, momentum, dampening, weight_decay;
    bool nesterov, maximize;
} dt_sgd_opts;
/* momentum_buf is used (and required) when momentum != 0; fresh_buffer:
 * first step, the buffer is set to the (decayed) gradient as torch does. */
dt_status dt_sgd_step_(dt_tensor *param, const dt_tensor *grad, dt_tensor *momentum_buf,
                       bool fresh_buffer, const dt_sgd_opts *opts);

typedef struct dt_adam_opts {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;   /* AdamW: param *= 1 - lr * weight_decay */
    bool amsgrad, maximize;
} dt_adam_opts;
/* step: the step number after incrementing (1 on the first step).
 * max_exp_avg_sq is used (and required) only with amsgrad. */
dt_status dt_adam_step_(dt_tensor *param, const dt_tensor *grad, dt_tensor *exp_avg,
                        dt_tensor *exp_avg_sq, dt_tensor *max_exp_avg_sq, int64_t step,
                        const dt_adam_opts *opts);

/* ------------------------------------------------------------ distributed */

/* Data-parallel training over MPI (engine/dist/): ranks are processes
 * started by mpirun or srun, 0-based here (the Lua side counts from 1).
 * A build without MPI has the same functions: dt_dist_available says why
 * not, and everything runs as rank 0 of 1. Collectives use MPI_COMM_WORLD;
 * every rank must call them in the same order. */
bool dt_dist_available(const char **reason);
/* Whether an MPI launcher started this process (its environment says so). */
bool dt_dist_launched(void);
/* Starts MPI (once; MPI is finalised at exit). */
dt_status dt_dist_init(void);
bool dt_dist_active(void);
int dt_dist_rank(void);
int dt_dist_size(void);
/* Kills every rank (MPI_Abort) with exit status code; never returns. */
void dt_dist_abort(int code);
dt_status dt_dist_barrier(void);
/* t <- the sum of t over all ranks, in place. */
dt_status dt_dist_allreduce_(dt_tensor *t);
dt_status dt_dist_sum_doubles(double *v, int64_t n);
/* t <- rank root's t, in place. */
dt_status dt_dist_broadcast_(dt_tensor *t, int root);
/* Every rank's t concatenated along dim 0, in rank order (the ranks' dim-0
 * lengths may differ, their other dims must not). */
dt_status dt_dist_allgather(const dt_tensor *t, dt_tensor **out);
/* The same on the tape: the gradient of the gathered tensor is summed over
 * the ranks and this rank's rows go back to t (so every rank's loss on the
 * gathered rows reaches every rank's inputs). */
dt_status dt_f_dist_allgather(const dt_tensor *t, dt_tensor **out);

/* Gradient averaging as PyTorch's DistributedDataParallel: the parameters
 * (leaves) go into buckets of about bucket_bytes, in reverse order (the
 * order backward finishes them); during dt_ddp_backward a bucket's sum
 * over ranks starts as soon as its gradients are final, while backward
 * goes on, buckets in index order on every rank; at the end each
 * parameter's .grad holds the mean over ranks (zeros for a parameter no
 * rank gave a gradient). */
typedef struct dt_ddp dt_ddp;
dt_status dt_ddp_new(int n, dt_tensor *const *params, size_t bucket_bytes, dt_ddp **out);
dt_status dt_ddp_backward(dt_ddp *d, dt_tensor *root, const dt_tensor *grad);
/* What the gradient averaging did: the bucket layout, how many buckets
 * started before backward ended in the last call, and over every call the
 * time spent in backward and, of it, waiting for sums once backward was
 * done (the communication that computation did not hide). */
typedef struct dt_ddp_stats {
    int buckets, started_early;
    int64_t calls, floats;            /* floats summed per call */
    double backward_seconds, wait_seconds;
} dt_ddp_stats;
void dt_ddp_get_stats(const dt_ddp *d, dt_ddp_stats *out);
void dt_ddp_free(dt_ddp *d);

/* ------------------------------------------------------- I/O: checkpoints */

/* safetensors files: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *  "__metadata__": {"key": "value"}}, then the raw little-endian data.
 * Saving writes a temporary file in the target's directory, fsyncs it and
 * renames it over `path` (then fsyncs the directory): a failure or crash
 * never leaves a partial target. Error messages start with the path. */
dt_status dt_safetensors_save(const char *path, int ntensors, const char *const *names,
                              const dt_tensor *const *tensors, int nmeta,
                              const char *const *meta_keys, const char *const *meta_values);

typedef struct dt_safetensors {
    int ntensors;
    char **names;             /* in file (data offset) order */
    dt_tensor **tensors;      /* contiguous; F64/F16/BF16 -> float32, I8..I32/U16/U32 -> int64,
                                 BOOL -> uint8 */
    int nmeta;
    char **meta_keys;
    char **meta_values;
} dt_safetensors;

/* Validates the whole header (length, JSON, dtypes, shapes, byte sizes,
 * offsets inside the file, no overlap) before reading any data. */
dt_status dt_safetensors_load(const char *path, dt_safetensors **out);
void dt_safetensors_free(dt_safetensors *st);   /* NULL allowed; releases the tensors */

/* -------------------------------------- I/O: datasets, images, the loader */

/* Dataset readers. Labels come back 0-based as stored in the files (the Lua
 * binding adds 1). Every error message starts with the offending path. */

/* CIFAR binary files: records of `label_bytes` label bytes (1: CIFAR-10;
 * 2: CIFAR-100 coarse, fine) then 3072 pixel bytes (R, G, B planes of
 * 32 x 32). Reads all `npaths` files into images (N x 3 x 32 x 32 uint8)
 * and labels (N int64, label byte `label_pick` of each record). A file
 * whose size is not a multiple of the record size is an error. */
#define DT_CIFAR_PIXELS 3072
dt_status dt_read_cifar(int npaths, const char *const *paths, int label_bytes, int label_pick,
                        dt_tensor **images, dt_tensor **labels);

/* CIFAR's "python version" (torchvision's cifar-10-batches-py and
 * cifar-100-python): each file a pickled dict whose b'data' is a NumPy
 * uint8 N x 3072 array and whose labels are a list of N ints under
 * label_key: "labels" (CIFAR-10, 0..9), "fine_labels" (0..99) or
 * "coarse_labels" (0..19). Only that structure is read (nothing in the
 * file is executed); images N x 3 x 32 x 32 uint8, labels N int64. */
dt_status dt_read_cifar_python(int npaths, const char *const *paths, const char *label_key,
                               dt_tensor **images, dt_tensor **labels);
/* The same for one batch already in memory; `name` starts error messages. */
dt_status dt_decode_cifar_python(const uint8_t *buf, size_t len, const char *name,
                                 const char *label_key, dt_tensor **images, dt_tensor **labels);

/* One IDX file (plain or gzip, detected by its magic), unsigned-byte data
 * only (type code 0x08): a uint8 tensor of the file's dims. The size of the
 * data must match the dims exactly. */
dt_status dt_read_idx(const char *path, dt_tensor **out);
/* An IDX image file (N x H x W) and label file (N) of one split:
 * images N x 1 x H x W uint8, labels N int64; the counts must agree. With
 * num_classes > 0 every label must be below it (a byte of 255 in a
 * 10-class file is corruption, not class 256); <= 0 accepts any byte. */
dt_status dt_read_idx_pair(const char *images_path, const char *labels_path,
                           int64_t num_classes, dt_tensor **images, dt_tensor **labels);

/* Whole file into a malloc'd buffer (caller frees); refuses files larger
 * than max_bytes. */
dt_status dt_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len);

/* JPEG (libjpeg-turbo's TurboJPEG API). A decoder holds a TurboJPEG handle
 * and a scratch buffer; use one per thread. Pixels are always RGB. A file
 * the decoder only warns about (truncated or corrupt data, which it would
 * fill with grey) is an error, and so is a header claiming more than
 * DT_JPEG_MAX_PIXELS pixels, or (Huffman-coded files) more than 512 pixels
 * per byte of the file, which a valid file cannot hold (refused before any
 * decoding). */
#define DT_JPEG_MAX_PIXELS ((int64_t)1 << 27)
typedef struct dt_jpeg_decoder dt_jpeg_decoder;
dt_status dt_jpeg_decoder_new(dt_jpeg_decoder **out);
void dt_jpeg_decoder_free(dt_jpeg_decoder *d);     /* NULL allowed */
dt_status dt_jpeg_header(dt_jpeg_decoder *d, const uint8_t *buf, size_t len, int64_t *h,
                         int64_t *w);
/* Decode with the smallest DCT scaling factor (1/8 .. 1) that keeps the
 * image at least min_h x min_w (0: full size). *pixels (H x W x 3, valid
 * until the next call on d) and the decoded size come back. */
dt_status dt_jpeg_decode_scaled(dt_jpeg_decoder *d, const uint8_t *buf, size_t len,
                                int64_t min_h, int64_t min_w, const uint8_t **pixels,
                                int64_t *h, int64_t *w);
/* Convenience: decode to a 3 x H x W uint8 tensor. */
dt_status dt_jpeg_decode(const uint8_t *buf, size_t len, int64_t min_h, int64_t min_w,
                         dt_tensor **out);
/* Encode a C x H x W uint8 tensor (C = 1 or 3) at quality 1..100 (4:2:0 for
 * colour, as most cameras). *buf is malloc'd; the caller frees it. */
dt_status dt_jpeg_encode(const dt_tensor *image, int quality, uint8_t **buf, size_t *len);

/* Transforms: a fixed list of ops, applied in order. Geometric ops (crops,
 * flips, resizes) are composed into one resampling of the source image
 * (exact copies when the composition is a pure integer shift/flip,
 * otherwise bilinear with pixel-centre alignment); value ops (to_float,
 * normalize) into one per-channel affine map. Zero padding is applied to
 * raw pixels (as torchvision pads before ToTensor). The output is float32
 * when a value op is present (normalize implies to_float), else uint8. */
typedef enum dt_tf_kind {
    DT_TF_RANDOM_CROP,          /* h, w, padding */
    DT_TF_HFLIP,                /* p */
    DT_TF_TO_FLOAT,             /* x / 255 */
    DT_TF_NORMALIZE,            /* nmean/mean, nstd/std (1 or C entries) */
    DT_TF_RANDOM_RESIZED_CROP,  /* h, w, scale[2], ratio[2] (torchvision semantics) */
    DT_TF_RESIZE,               /* h, w; w == 0: shorter side becomes h */
    DT_TF_CENTER_CROP           /* h, w */
} dt_tf_kind;

#define DT_TF_MAX_OPS 16
/* Output sizes and padding of the ops are at most this many pixels. */
#define DT_TF_MAX_SIZE (1 << 20)
#define DT_TF_MAX_CHANNELS 4

typedef struct dt_tf_op {
    dt_tf_kind kind;
    int64_t h, w, padding;
    double p;
    double scale[2], ratio[2];
    int nmean, nstd;
    double mean[DT_TF_MAX_CHANNELS], std[DT_TF_MAX_CHANNELS];
} dt_tf_op;

typedef struct dt_transform {
    int nops;
    dt_tf_op ops[DT_TF_MAX_OPS];
} dt_transform;

/* What one sample's transform does, after its random draws. */
typedef struct dt_tf_plan {
    int c;
    int64_t in_h, in_w, out_h, out_w;
    double ax, bx, ay, by;      /* source x = ax * out_x + bx (pixel centres) */
    bool exact;                 /* |a| == 1 and integral offsets: plain copy */
    bool is_float;
    float vscale[DT_TF_MAX_CHANNELS], vshift[DT_TF_MAX_CHANNELS];
    float fill[DT_TF_MAX_CHANNELS];   /* value of padded pixels, after the value map */
} dt_tf_plan;

/* Check the ops (sizes > 0, ranges ordered, std != 0...). */
dt_status dt_transform_validate(const dt_transform *tf);
/* The output size for a c x h x w input, or -1 in *out_h or *out_w when it
 * depends on the input size and h or w is -1 (unknown). */
void dt_transform_out_size(const dt_transform *tf, int64_t h, int64_t w, int64_t *out_h,
                           int64_t *out_w, bool *is_float);
/* Draw the random parameters from stream `key` (dt_rng_word(key, 0), ...). */
dt_status dt_transform_plan(const dt_transform *tf, int c, int64_t h, int64_t w, uint64_t key,
                            dt_tf_plan *plan);
/* The same plan for a source decoded at a reduced size (JPEG DCT scaling). */
void dt_tf_plan_rescale(dt_tf_plan *plan, int64_t new_h, int64_t new_w);
/* Source pixels per output pixel along y and x (for choosing DCT scaling). */
void dt_tf_plan_density(const dt_tf_plan *plan, double *dy, double *dx);
/* Apply: src is a uint8 image of plan->in_h x plan->in_w with element
 * strides (channel, row, column); dst is contiguous C x out_h x out_w,
 * float or uint8 as plan->is_float. */
dt_status dt_tf_apply(const dt_tf_plan *plan, const uint8_t *src, int64_t sc, int64_t sh,
                      int64_t sw, void *dst);
/* The order of an epoch's samples: 0..n-1 shuffled (Fisher-Yates) from a
 * stream of (seed, epoch). */
void dt_data_epoch_order(uint64_t seed, int64_t epoch, int64_t n, int64_t *order);
/* The key of sample `position` of `epoch` for a loader seed. */
uint64_t dt_data_sample_key(uint64_t seed, int64_t epoch, int64_t position);
/* Transform one C x H x W uint8 tensor into a new tensor. */
dt_status dt_transform_image(const dt_transform *tf, const dt_tensor *src, uint64_t key,
                             dt_tensor **out);
/* Transform n C x H x W uint8 images into one N x C x H x W batch, image i
 * as sample `first_position + i` (0-based) of `epoch` for `seed`; every
 * image must come out the same size. */
dt_status dt_transform_batch(const dt_transform *tf, int64_t n, const dt_tensor *const *images,
                             uint64_t seed, int64_t epoch, int64_t first_position,
                             dt_tensor **out);

/* Loader: a pool of pthreads producing whole batches in the background
 * into preallocated tensors, `prefetch` batches ahead. Samples come from an
 * in-memory N x C x H x W uint8 tensor or from JPEG files. Sample randomness
 * depends only on (seed, epoch, position in the epoch), so batches are
 * identical for any number of workers (0: synchronous in the caller). */
typedef struct dt_loader dt_loader;

#define DT_LOADER_MAX_WORKERS 256
#define DT_LOADER_MAX_PREFETCH 4096

typedef struct dt_loader_opts {
    int64_t batch_size;
    bool shuffle, drop_last;
    int workers;             /* 0..DT_LOADER_MAX_WORKERS */
    int prefetch;            /* batches in flight, 0..DT_LOADER_MAX_PREFETCH; 0: 2 per
                                worker (at least 2) */
    uint64_t seed;
    bool skip_errors;        /* JPEG files that fail to read or decode (corrupt, truncated,
                                too large, not regular files): zeros + warning */
    /* Data parallel: this process takes share `shard` (0-based) of every
     * batch split `shards` ways as evenly as possible (the first size %
     * shards shares one sample longer); a last batch smaller than `shards`
     * is dropped, so no share is empty and every process takes the same
     * number of steps. 0 or 1 shards: whole batches. The samples and their
     * randomness are those of the whole batch, so the shares of all
     * processes make exactly the unsharded batches. keep_short keeps that
     * last batch for the processes whose share of it is not empty (their
     * batch counts then differ by one): evaluation, where every sample
     * counts and no step is collective. */
    int shard, shards;
    bool keep_short;
} dt_loader_opts;

/* images: N x C x H x W uint8; labels: N int64 (copied verbatim into
 * targets). Both are retained. */
dt_status dt_loader_new_tensor(dt_tensor *images, dt_tensor *labels, const dt_transform *tf,
                               const dt_loader_opts *opts, dt_loader **out);
/* n JPEG files (paths copied); the transform must give a fixed size. */
dt_status dt_loader_new_files(int64_t n, const char *const *paths, dt_tensor *labels,
                              const dt_transform *tf, const dt_loader_opts *opts,
                              dt_loader **out);
int64_t dt_loader_num_batches(const dt_loader *l);
int64_t dt_loader_size(const dt_loader *l);           /* samples in the dataset */
int64_t dt_loader_skipped(const dt_loader *l);        /* files skipped so far */
/* Batch buffers the next dt_loader_next can reuse or still allocate within
 * its pool. A handed-out batch is reused only once the caller drops its
 * references; when this is 0, the binding runs the Lua collector first. */
int dt_loader_spare_buffers(const dt_loader *l);
/* Start an epoch (stopping any running one); workers begin prefetching. */
dt_status dt_loader_start(dt_loader *l, int64_t epoch);
/* The next batch of the epoch: new references in *input (N x C x H x W),
 * *target (N int64) and *index (N int64, 0-based dataset positions), or
 * all NULL at the end of the epoch. */
dt_status dt_loader_next(dt_loader *l, dt_tensor **input, dt_tensor **target,
                         dt_tensor **index);
/* Stop the workers of the current epoch (waits for them to go idle). */
void dt_loader_stop(dt_loader *l);
void dt_loader_free(dt_loader *l);     /* joins the threads; NULL allowed */

/* ---------------------------------------- tools: start-up and CPU kernels */

/* Once per process, before the first op: OpenBLAS to one thread, so the
 * OpenMP threads are the engine's only pool (linalg.c says why), and the
 * vector kernels chosen (dt_isa_init). The Lua module calls it when
 * loaded. Fails only when DISTILL_ISA names kernels this CPU lacks. */
dt_status dt_engine_init(void);

/* The vector kernels (engine/cpu/cpu.h) come in one set per instruction
 * set: "generic" (plain C, any CPU), "avx2" (AVX2 + FMA) and "avx512"
 * (AVX-512 F/BW/DQ/VL). The best one both the CPU and the build have is
 * used, unless the DISTILL_ISA environment variable (read by dt_isa_init)
 * or dt_isa_set names another: NULL, "" or "auto" mean the best. Naming
 * one the CPU or the build lacks fails with a message naming it and the
 * CPU. Switch between ops, not while one runs. */
dt_status dt_isa_init(void);
dt_status dt_isa_set(const char *name);
/* The set in use: "generic", "avx2" or "avx512". */
const char *dt_isa_name(void);
/* Up to max names of the sets this CPU and build run, in order of
 * preference from the least (generic first); returns how many. */
int dt_isa_list(const char **names, int max);
/* The CPU's model name (CPUID brand string, else /proc/cpuinfo). */
const char *dt_cpu_model(void);
/* The BLAS library's own description of its build ("OpenBLAS 0.3.21 ..."). */
const char *dt_blas_info(void);

/* -------------------------------------------------------- tools: profiler */

/* A global switch: while on, the ops add their wall time (CLOCK_MONOTONIC)
 * and a call count to one of the kinds below. Only the outermost timed
 * region on a thread counts, so an op that calls another timed op (linear ->
 * GEMM) is not counted twice. Off (the default), a timer costs one load and
 * one branch. */
typedef enum dt_prof_kind {
    DT_PROF_CONV_FWD, DT_PROF_CONV_BWD_DATA, DT_PROF_CONV_BWD_WEIGHT, DT_PROF_BN, DT_PROF_POOL,
    DT_PROF_ELEMENTWISE, DT_PROF_GEMM, DT_PROF_LOSS, DT_PROF_OPTIM, DT_PROF_OTHER, DT_PROF_NKINDS
} dt_prof_kind;
void dt_prof_start(void);                    /* clears the counters and switches on */
void dt_prof_stop(void);
bool dt_prof_on(void);
/* calls / seconds of one kind; wall: seconds between start and stop (or now). */
void dt_prof_get(dt_prof_kind kind, int64_t *calls, double *seconds);
double dt_prof_wall(void);
const char *dt_prof_kind_name(dt_prof_kind kind);

/* ---------------------------------------------------------- tools: memory */

/* Freed storage blocks are cached by size class and reused (storage.c:
 * bounded by DISTILL_CACHE_MB if set, else by the larger of 512 MiB and
 * 1.25 times the peak of live bytes). trim: frees every cached block.
 * stats: bytes cached, hits, misses, and the bound in bytes. */
void dt_storage_cache_trim(void);
void dt_storage_cache_stats(size_t *cached_bytes, size_t *hits, size_t *misses, size_t *limit);

/* ------------------------------------------------------- tools: processes */

/* Child processes for the sweep runner (tools/process.c). spawn starts
 * argv[0] (searched on PATH) with argv, the current environment with the
 * "KEY=value" entries of env_set (NULL-terminated, may be NULL) replacing
 * or adding variables, stdin from /dev/null and stdout and stderr appended
 * to output_path; the child leads a process group of its own and starts
 * with default SIGINT/SIGTERM/SIGPIPE handling. */
dt_status dt_process_spawn(const char *const *argv, const char *const *env_set,
                           const char *output_path, int *pid_out);
/* How a child ended: pid 0 when none of the awaited ones did. exited: it
 * called exit (code: its status); else killed by signal `code`. */
typedef struct dt_process_end {
    int pid;
    bool exited;
    int code;
} dt_process_end;
/* Waits up to timeout seconds for one of the n children pids to end and
 * reaps it; returns early, with end->pid 0, when a watched stop signal
 * arrives. */
dt_status dt_process_wait(const int *pids, int n, double timeout, dt_process_end *end);
/* Sends sig to the process group led by pid (a spawned child), else to the
 * process pid; a process that has already ended is not an error. */
dt_status dt_process_signal(int pid, int sig);
/* on: SIGINT and SIGTERM only count (dt_stop_signal_count) instead of
 * their previous handling; off: the previous handlers return. */
dt_status dt_stop_signals_watch(bool on);
/* How many watched signals arrived since watching began; the last one. */
int dt_stop_signal_count(int *last_signal);
/* The CPUs this process may run on (its affinity mask). */
int dt_cpu_count(void);

/* --------------------------------------------------- tools: text and time */

/* CLOCK_MONOTONIC seconds. */
double dt_wallclock(void);


/* torch-like text of a tensor; summarised with "..." when numel > threshold.
 * Returns a malloc'd string the caller frees, or NULL on allocation failure. */
char *dt_format(const dt_tensor *t, int64_t threshold);

#ifdef __cplusplus
}
#endif

#endif /* DISTILL_H */

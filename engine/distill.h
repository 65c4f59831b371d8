/*
 * distill.h - the public C API of the distill engine.
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

struct dt_node;   /* autograd graph node (autograd issue) */

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

/* ------------------------------------------------- elementwise (math issue) */

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

/* ------------------------------------------------ reductions (math issue) */

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

/* Sums are accumulated in a fixed order in double precision, so results do
 * not depend on the number of threads. argmax/argmin return int64 indices of
 * the first extreme value; they reduce over one dim (or the flattened
 * tensor when ndims == 0). */
dt_status dt_reduce(dt_reduce_op op, const dt_tensor *a, const dt_reduce_opts *opts, dt_tensor **out);

/* ------------------------------------------- linear algebra (math issue) */

/* a: n x k, b: k x m, both float32 (any strides). */
dt_status dt_mm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
dt_status dt_bmm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
/* torch.matmul semantics: 1-d/2-d/batched with broadcast batch dims. */
dt_status dt_matmul(const dt_tensor *a, const dt_tensor *b, dt_tensor **out);
/* Raw row-major sgemm on contiguous buffers: C = alpha*op(A)*op(B) + beta*C. */
void dt_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc);

/* ------------------------------------------------- indexing (index issue) */

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

/* ------------------------------------------------------ data (data issue) */

/* ---------------------------------------------------------------- format */

/* torch-like text of a tensor; summarised with "..." when numel > threshold.
 * Returns a malloc'd string the caller frees, or NULL on allocation failure. */
char *dt_format(const dt_tensor *t, int64_t threshold);

#ifdef __cplusplus
}
#endif

#endif /* DISTILL_H */

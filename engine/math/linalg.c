/* linalg.c - matrix products over OpenBLAS: sgemm, mm, bmm, matmul.
 *
 * Every product ends in cblas_sgemm on row-major matrices. A strided 2-d
 * view can be handed to BLAS without copying when one of its dims is
 * unit-stride: stride (ld, 1) is a row-major matrix with leading dim ld,
 * stride (1, ld) is the transpose of a row-major matrix (CblasTrans). Only
 * views that are neither (e.g. every other column) are copied first. */
#include "distill.h"
#include "autograd/op.h"

#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>

/* Threads. The engine has one thread pool, OpenMP's. OpenBLAS keeps
 * pthreads of its own that busy-wait for a while after every call; next to
 * the OpenMP workers on a machine with few cores they take a core away at
 * random and step times scatter (docs/performance.md). So OpenBLAS runs
 * single-threaded (dt_engine_init, init.c) and dt_sgemm splits a large
 * product over the OpenMP threads itself, in blocks of C's columns (or
 * rows): each element is still one single-threaded OpenBLAS sum. */

const char *dt_blas_info(void) { return openblas_get_config(); }

/* Below this many multiply-adds a product stays on the calling thread. */
#define SPLIT_MIN_MACS (1 << 21)
/* Blocks are whole multiples of this many columns or rows. */
#define SPLIT_ALIGN 16

static void sgemm_one(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda,
                b, (int)ldb, beta, c, (int)ldc);
}

void dt_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc)
{
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    bool by_cols = n >= m;
    int64_t extent = by_cols ? n : m;
    if (threads < 2 || (double)m * (double)n * (double)k < SPLIT_MIN_MACS ||
        extent < 2 * SPLIT_ALIGN) {
        sgemm_one(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int64_t block = (extent + threads - 1) / threads;
    block = (block + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    int64_t nblocks = (extent + block - 1) / block;
    #pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t t = 0; t < nblocks; t++) {
        int64_t j0 = t * block, len = extent - j0 < block ? extent - j0 : block;
        if (by_cols)   /* columns j0.. of op(B) and C */
            sgemm_one(trans_a, trans_b, m, len, k, alpha, a, lda, trans_b ? b + j0 * ldb : b + j0,
                      ldb, beta, c + j0, ldc);
        else           /* rows j0.. of op(A) and C */
            sgemm_one(trans_a, trans_b, len, n, k, alpha, trans_a ? a + j0 : a + j0 * lda, lda, b,
                      ldb, beta, c + j0 * ldc, ldc);
    }
}

/* How BLAS can read a rows x cols matrix with strides (rs, cs). */
typedef struct gemm_operand {
    bool trans;
    int64_t ld;
} gemm_operand;

static int64_t max1(int64_t v) { return v > 1 ? v : 1; }

/* True (and the BLAS description in *op) when the matrix can be passed
 * as it is. Size-1 dims may carry any stride, so they never disqualify. */
static bool gemm_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, gemm_operand *op)
{
    /* row-major: unit column stride, rows at least a row apart */
    if ((cols <= 1 || cs == 1) && (rows <= 1 || rs >= max1(cols))) {
        op->trans = false;
        op->ld = rows <= 1 ? max1(cols) : rs;
        return op->ld <= INT_MAX;
    }
    /* column-major, i.e. the transpose of a row-major cols x rows matrix */
    if ((rows <= 1 || rs == 1) && (cols <= 1 || cs >= max1(rows))) {
        op->trans = true;
        op->ld = cols <= 1 ? max1(rows) : cs;
        return op->ld <= INT_MAX;
    }
    return false;
}

static bool matrix_ok(const dt_tensor *t)
{
    gemm_operand op;
    int r = t->ndim - 2, c = t->ndim - 1;
    return gemm_layout(t->shape[r], t->shape[c], t->stride[r], t->stride[c], &op);
}

/* A reference to t, copied to contiguous memory only when BLAS cannot read
 * its matrices (the last two dims) in place. */
static dt_status gemm_ready(const dt_tensor *t, dt_tensor **out)
{
    if (matrix_ok(t)) {
        dt_tensor_retain((dt_tensor *)t);
        *out = (dt_tensor *)t;
        return DT_OK;
    }
    return dt_clone(t, out);
}

static dt_status check_float(const dt_tensor *a, const dt_tensor *b)
{
    if (a->dtype != DT_FLOAT32 || b->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "expected float32 tensors, got %s and %s (convert with "
                       ":float())", dt_dtype_name(a->dtype), dt_dtype_name(b->dtype));
    return DT_OK;
}

static dt_status check_blas_size(int64_t n, int64_t k, int64_t m)
{
    if (n > INT_MAX || k > INT_MAX || m > INT_MAX)
        return dt_fail(DT_ERR_ARG, "matrix dims %lld x %lld x %lld exceed what BLAS accepts",
                       (long long)n, (long long)k, (long long)m);
    return DT_OK;
}

/* out[batch] = a[batch] @ b[batch] for every batch position. a, b and out
 * have the same batch dims (a and b may have stride 0 there, from
 * broadcasting); out is freshly zeroed and contiguous; a's and b's matrices
 * pass gemm_layout. */
static void batched_gemm(const dt_tensor *a, const dt_tensor *b, dt_tensor *out)
{
    int nb = out->ndim - 2;
    int64_t n = a->shape[nb], k = a->shape[nb + 1], m = b->shape[nb + 1];
    if (n == 0 || m == 0 || k == 0)   /* k == 0: the zeroed output is the answer */
        return;
    gemm_operand oa = {false, 1}, ob = {false, 1};
    gemm_layout(n, k, a->stride[nb], a->stride[nb + 1], &oa);
    gemm_layout(k, m, b->stride[nb], b->stride[nb + 1], &ob);

    int64_t nbatch = 1;
    for (int d = 0; d < nb; d++)
        nbatch *= out->shape[d];
    int64_t counter[DT_MAX_DIMS] = {0};
    int64_t off_a = 0, off_b = 0;
    const float *pa = dt_f32(a), *pb = dt_f32(b);
    float *pc = dt_f32(out);
    for (int64_t i = 0; i < nbatch; i++) {
        dt_sgemm(oa.trans, ob.trans, n, m, k, 1.0f, pa + off_a, oa.ld, pb + off_b, ob.ld, 0.0f,
                 pc + i * n * m, m);
        /* advance the batch counter, last dim fastest */
        for (int d = nb - 1; d >= 0; d--) {
            counter[d]++;
            off_a += a->stride[d];
            off_b += b->stride[d];
            if (counter[d] < out->shape[d])
                break;
            off_a -= a->stride[d] * out->shape[d];
            off_b -= b->stride[d] * out->shape[d];
            counter[d] = 0;
        }
    }
}

/* The product of a (batch..., n, k) and b (batch..., k, m) with identical
 * batch shapes (possibly stride-0): a new contiguous (batch..., n, m). */
static dt_status product(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    int nb = a->ndim - 2;
    int64_t shape[DT_MAX_DIMS];
    for (int d = 0; d < nb; d++)
        shape[d] = a->shape[d];
    shape[nb] = a->shape[nb];
    shape[nb + 1] = b->shape[nb + 1];
    dt_status st = check_blas_size(a->shape[nb], a->shape[nb + 1], b->shape[nb + 1]);
    if (st)
        return st;
    dt_tensor *ra, *rb;
    if ((st = gemm_ready(a, &ra)))
        return st;
    if ((st = gemm_ready(b, &rb))) {
        dt_tensor_release(ra);
        return st;
    }
    st = dt_zeros(DT_FLOAT32, nb + 2, shape, out);
    if (st == DT_OK)
        batched_gemm(ra, rb, *out);
    dt_tensor_release(ra);
    dt_tensor_release(rb);
    return st;
}

/* The two operands' shapes as text, for error messages. */
typedef struct shape_texts {
    char a[160], b[160];
} shape_texts;

static shape_texts shapes_of(const dt_tensor *a, const dt_tensor *b)
{
    shape_texts s;
    dt_shape_str(a->shape, a->ndim, s.a, sizeof s.a);
    dt_shape_str(b->shape, b->ndim, s.b, sizeof s.b);
    return s;
}

static dt_status size_mismatch(const dt_tensor *a, const dt_tensor *b, int64_t ka, int64_t kb)
{
    shape_texts s = shapes_of(a, b);
    return dt_fail(DT_ERR_SHAPE, "shapes %s and %s cannot be multiplied (%lld != %lld)", s.a, s.b,
                   (long long)ka, (long long)kb);
}

/* mm's and bmm's operands: both `ndim`-d and float32. */
static dt_status check_operands(const dt_tensor *a, const dt_tensor *b, int ndim)
{
    if (a->ndim != ndim || b->ndim != ndim) {
        shape_texts s = shapes_of(a, b);
        return dt_fail(DT_ERR_SHAPE, "expected two %d-d tensors, got shapes %s and %s", ndim, s.a,
                       s.b);
    }
    return check_float(a, b);
}

dt_status dt_mm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_GEMM);
    *out = NULL;
    dt_status st = check_operands(a, b, 2);
    if (st)
        return st;
    if (a->shape[1] != b->shape[0])
        return size_mismatch(a, b, a->shape[1], b->shape[0]);
    return product(a, b, out);
}

dt_status dt_bmm(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_GEMM);
    *out = NULL;
    dt_status st = check_operands(a, b, 3);
    if (st)
        return st;
    if (a->shape[0] != b->shape[0]) {
        shape_texts s = shapes_of(a, b);
        return dt_fail(DT_ERR_SHAPE, "batch sizes differ: shapes %s and %s (%lld != %lld)", s.a,
                       s.b, (long long)a->shape[0], (long long)b->shape[0]);
    }
    if (a->shape[2] != b->shape[1])
        return size_mismatch(a, b, a->shape[2], b->shape[1]);
    return product(a, b, out);
}

/* 1-d . 1-d, accumulated in double (a fixed order, so thread-independent). */
static dt_status dot(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    if (a->shape[0] != b->shape[0])
        return size_mismatch(a, b, a->shape[0], b->shape[0]);
    const float *pa = dt_f32(a), *pb = dt_f32(b);
    double sum = 0;
    for (int64_t i = 0; i < a->shape[0]; i++)
        sum += (double)pa[i * a->stride[0]] * (double)pb[i * b->stride[0]];
    return dt_scalar(DT_FLOAT32, sum, out);
}

/* A new header viewing `t` as (batch..., rows, cols) after broadcasting its
 * batch dims to `batch`. */
static dt_status expand_batch(const dt_tensor *t, int nb, const int64_t *batch, dt_tensor **out)
{
    int64_t shape[DT_MAX_DIMS];
    for (int d = 0; d < nb; d++)
        shape[d] = batch[d];
    shape[nb] = t->shape[t->ndim - 2];
    shape[nb + 1] = t->shape[t->ndim - 1];
    return dt_expand((dt_tensor *)t, nb + 2, shape, out);
}

/* matmul of a and b, both at least 2-d. */
static dt_status matmul_nd(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    int64_t k = a->shape[a->ndim - 1];
    if (k != b->shape[b->ndim - 2])
        return size_mismatch(a, b, k, b->shape[b->ndim - 2]);
    if (a->ndim == 2 && b->ndim == 2)
        return product(a, b, out);

    /* (batch..., n, k) @ (k, m) with a contiguous: one gemm of
     * (batch*n, k) @ (k, m), as a single large product is faster than many
     * small ones. */
    if (b->ndim == 2 && dt_is_contiguous(a)) {
        int64_t rows = 1;
        for (int d = 0; d < a->ndim - 1; d++)
            rows *= a->shape[d];
        int64_t flat[2] = {rows, k};
        dt_tensor *a2, *r;
        dt_status st = dt_view((dt_tensor *)a, 2, flat, &a2);
        if (st)
            return st;
        st = product(a2, b, &r);
        dt_tensor_release(a2);
        if (st)
            return st;
        int64_t shape[DT_MAX_DIMS];
        for (int d = 0; d < a->ndim - 1; d++)
            shape[d] = a->shape[d];
        shape[a->ndim - 1] = b->shape[1];
        st = dt_view(r, a->ndim, shape, out);
        dt_tensor_release(r);
        return st;
    }

    /* Broadcast the batch dims. Copies (when BLAS cannot read a matrix
     * layout) happen before expanding, so broadcasting never materialises. */
    int nb;
    int64_t batch[DT_MAX_DIMS];
    dt_status st = dt_broadcast_shape(a->ndim - 2, a->shape, b->ndim - 2, b->shape, &nb, batch);
    if (st) {
        shape_texts s = shapes_of(a, b);
        return dt_fail(DT_ERR_SHAPE, "batch dims of shapes %s and %s cannot be broadcast", s.a,
                       s.b);
    }
    dt_tensor *ra = NULL, *rb = NULL, *ea = NULL, *eb = NULL;
    st = gemm_ready(a, &ra);
    if (st == DT_OK)
        st = gemm_ready(b, &rb);
    if (st == DT_OK)
        st = expand_batch(ra, nb, batch, &ea);
    if (st == DT_OK)
        st = expand_batch(rb, nb, batch, &eb);
    if (st == DT_OK)
        st = product(ea, eb, out);
    dt_tensor_release(ra);
    dt_tensor_release(rb);
    dt_tensor_release(ea);
    dt_tensor_release(eb);
    return st;
}

dt_status dt_matmul(const dt_tensor *a, const dt_tensor *b, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_GEMM);
    *out = NULL;
    if (a->ndim == 0 || b->ndim == 0) {
        shape_texts s = shapes_of(a, b);
        return dt_fail(DT_ERR_SHAPE, "both arguments need at least 1 dim, got shapes %s and %s",
                       s.a, s.b);
    }
    dt_status st = check_float(a, b);
    if (st)
        return st;
    /* checked here so that the message shows the shapes as given */
    int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
    if (ka != kb)
        return size_mismatch(a, b, ka, kb);
    if (a->ndim == 1 && b->ndim == 1)
        return dot(a, b, out);

    /* A 1-d a is a (1, k) row and a 1-d b a (k, 1) column; the added dim
     * is dropped from the result again. */
    dt_tensor *a2 = NULL, *b2 = NULL, *r = NULL;
    if (a->ndim == 1)
        st = dt_unsqueeze((dt_tensor *)a, 0, &a2);
    else
        st = dt_alias((dt_tensor *)a, &a2);
    if (st == DT_OK)
        st = b->ndim == 1 ? dt_unsqueeze((dt_tensor *)b, 1, &b2) : dt_alias((dt_tensor *)b, &b2);
    if (st == DT_OK)
        st = matmul_nd(a2, b2, &r);
    dt_tensor_release(a2);
    dt_tensor_release(b2);
    if (st)
        return st;
    if (a->ndim > 1 && b->ndim > 1) {
        *out = r;
        return DT_OK;
    }
    int64_t shape[DT_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < r->ndim; d++) {
        bool added = (a->ndim == 1 && d == r->ndim - 2) || (b->ndim == 1 && d == r->ndim - 1);
        if (!added)
            shape[n++] = r->shape[d];
    }
    st = dt_view(r, n, shape, out);
    dt_tensor_release(r);
    return st;
}

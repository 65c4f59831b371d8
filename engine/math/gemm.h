/* gemm.h - the engine's own single-precision GEMM (internal, not part of
 * distill.h). Row-major, cblas_sgemm semantics:
 *
 *   C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C
 *
 * op(X) = X or X^T. With beta == 0 C is only written (it may hold NaN or
 * uninitialised memory). Single-threaded: callers parallelise over
 * independent products. For given shapes and operands the result is
 * bitwise reproducible (the summation order depends on K only), and the
 * same on the avx2 and avx512 kernels (cpu.h).
 *
 * The tile shape, and with it the layout of a packed op(A), belongs to the
 * kernel table in use (cpu.h): pack and multiply under the same one.
 *
 * dt_gemm_run is the same product described by a dt_gemm_op, which can
 * also take op(A) pre-packed (conv packs its weights once for all
 * images). */
#ifndef DISTILL_GEMM_H
#define DISTILL_GEMM_H

#include "distill.h"

/* Depth of a K block. */
#define DT_GEMM_KC 256

dt_status dt_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);

/* The general form. op(A) comes from A/lda/trans_a, or from `packed_a`
 * made by dt_gemm_pack_a for the same M and K (then A is not read: conv
 * packs its weights once for all images). op(B) comes from B/ldb/trans_b. */
typedef struct dt_gemm_op {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha;
    const float *A;
    int64_t lda;
    const float *packed_a;
    const float *B;
    int64_t ldb;
    float beta;
    float *C;
    int64_t ldc;
} dt_gemm_op;

dt_status dt_gemm_run(const dt_gemm_op *op);

/* Columns of a B panel of the tile in use: callers splitting a product's
 * columns over threads split at multiples of it. */
int64_t dt_gemm_nr(void);

/* Floats of a packed op(A) of M x K. */
size_t dt_gemm_packed_a_size(int64_t M, int64_t K);
/* Packs op(A) (M x K) into dst (dt_gemm_packed_a_size(M, K) floats). */
void dt_gemm_pack_a(bool trans_a, int64_t M, int64_t K, const float *A, int64_t lda, float *dst);

/* A product for callers with their own operand layouts (winograd.c):
 *
 *   C (rows x cols, ldc) = op(A) B over K  (+ C when accumulate)
 *
 * with A element (i, k) at a[i*a_row + k*a_k] and B element (k, j) at
 * b[k*ldb + j]. Single-threaded, in KC-deep passes over tiles of
 * dt_gemm_panel_width(cols) columns. Only A's rows x K, B's K x cols and
 * C's rows x cols elements are touched. Each element is summed over k in
 * order. */
typedef struct dt_gemm_strided {
    int64_t rows, cols, K;
    const float *a;
    int64_t a_row, a_k;
    const float *b;
    int64_t ldb;
    float *c;
    int64_t ldc;
    bool accumulate;
} dt_gemm_strided;

void dt_gemm_strided_run(const dt_gemm_strided *p);

/* The tile width dt_gemm_strided_run uses for a product `cols` columns
 * wide: the kernel's widest tile whose width divides cols, else its
 * widest (callers packing B in panels pack them this wide). */
int64_t dt_gemm_panel_width(int64_t cols);

#endif

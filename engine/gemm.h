/* gemm.h - the engine's own single-precision GEMM (internal, not part of
 * distill.h). Row-major, cblas_sgemm semantics:
 *
 *   C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C
 *
 * op(X) = X or X^T. With beta == 0 C is only written (it may hold NaN or
 * uninitialised memory). Single-threaded: callers parallelise over
 * independent products. For given shapes and operands the result is
 * bitwise reproducible (the summation order depends on K only).
 *
 * dt_gemm_run is the same product described by a dt_gemm_op, which can
 * also take op(A) pre-packed and op(B) from a packing callback, so a
 * caller can build B panels straight from its own data layout. */
#ifndef DISTILL_GEMM_H
#define DISTILL_GEMM_H

#include "distill.h"

/* Columns per packed B panel (the microkernel's width). */
#define DT_GEMM_NR 32
/* Depth of a K block: pack callbacks are never asked for more rows. */
#define DT_GEMM_KC 256

/* Writes op(B)[k0 .. k0+kc) x [j0 .. j0+nc) into dst as ceil(nc / NR)
 * panels of kc x DT_GEMM_NR floats (panel p holds columns j0 + p*NR ..,
 * row k of a panel at dst + p*kc*NR + k*NR), zero-filling columns beyond
 * nc in the last panel. */
typedef void (*dt_gemm_pack_fn)(const void *ctx, int64_t k0, int64_t kc, int64_t j0,
                                int64_t nc, float *dst);

dt_status dt_gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                      const float *A, int64_t lda, const float *B, int64_t ldb, float beta,
                      float *C, int64_t ldc);

/* The general form. op(A) comes from A/lda/trans_a, or from `packed_a`
 * made by dt_gemm_pack_a for the same M and K (then A is not read: conv
 * packs its weights once for all images). op(B) comes from B/ldb/trans_b,
 * or, when B is NULL, from pack_b(pack_ctx, ...). */
typedef struct dt_gemm_op {
    bool trans_a, trans_b;
    int64_t M, N, K;
    float alpha;
    const float *A;
    int64_t lda;
    const float *packed_a;
    const float *B;
    int64_t ldb;
    dt_gemm_pack_fn pack_b;
    const void *pack_ctx;
    float beta;
    float *C;
    int64_t ldc;
} dt_gemm_op;

dt_status dt_gemm_run(const dt_gemm_op *op);

/* One B panel from a transposed source, for pack callbacks:
 * dst[k*DT_GEMM_NR + c] = src[c*lds + k] for k < kc, c < cols (<= NR),
 * columns beyond cols zeroed. */
void dt_gemm_pack_panel_t(const float *src, int64_t lds, int64_t kc, int64_t cols, float *dst);

/* Floats of a packed op(A) of M x K. */
size_t dt_gemm_packed_a_size(int64_t M, int64_t K);
/* Packs op(A) (M x K) into dst (dt_gemm_packed_a_size(M, K) floats). */
void dt_gemm_pack_a(bool trans_a, int64_t M, int64_t K, const float *A, int64_t lda, float *dst);

#endif

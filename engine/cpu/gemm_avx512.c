/* gemm_avx512.c - GEMM tiles for AVX-512 (cpu.h): 8 rows x 32 columns
 * (two zmm vectors per row, 16 accumulators) and a narrow 8 x 16.
 *
 * Each k loads the B row as vectors and multiplies it by each row's A
 * value broadcast from memory. 8 rows: 8 divides every channel count of
 * the CIFAR ResNets (16..256) and every K = 9 * C, so the conv products
 * have no ragged row tiles; taller tiles were no faster in cache and lose
 * on the 16- and 32-channel products, where a second tile is mostly
 * padding (docs/performance.md). Ragged edges: a variant per row count,
 * masked loads and stores for the columns. */
#include "cpu.h"

#include <immintrin.h>

#define MR 8

static inline __mmask16 lanes16(int64_t n)
{
    return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* The tile with mr rows and nv vectors of 16 columns, A at (a_row, a_k):
 * inlined with constant shapes (and, for packed panels, strides), so every
 * variant is fully unrolled. */
static inline __attribute__((always_inline)) void tile(int mr, int nv, const dt_cpu_tile *t,
                                                        int64_t a_row, int64_t a_k)
{
    __m512 acc[MR][2];
    __mmask16 mask[2];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
        mask[v] = lanes16(t->cols - 16 * v);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[i][v] = _mm512_setzero_ps();
    const float *restrict a = t->a, *restrict b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        __m512 bv[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_maskz_loadu_ps(mask[v], b + 16 * v);
#pragma GCC unroll 8
        for (int i = 0; i < mr; i++) {
            __m512 ai = _mm512_set1_ps(a[i * a_row]);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
        }
        a += a_k;
        b += t->ldb;
    }
    __m512 alpha = _mm512_set1_ps(t->alpha), beta = _mm512_set1_ps(t->beta);
#pragma GCC unroll 8
    for (int i = 0; i < mr; i++) {
        float *c = t->c + i * t->ldc;
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++) {
            __m512 r = _mm512_mul_ps(alpha, acc[i][v]);
            if (t->beta != 0.0f)
                r = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask[v], c + 16 * v), r);
            _mm512_mask_storeu_ps(c + 16 * v, mask[v], r);
        }
    }
}

/* The variant for t->rows rows. */
#define BY_ROWS(nv, t, a_row, a_k)                                                       \
    switch ((t)->rows) {                                                                 \
    case 8: tile(8, nv, t, a_row, a_k); break;                                           \
    case 7: tile(7, nv, t, a_row, a_k); break;                                           \
    case 6: tile(6, nv, t, a_row, a_k); break;                                           \
    case 5: tile(5, nv, t, a_row, a_k); break;                                           \
    case 4: tile(4, nv, t, a_row, a_k); break;                                           \
    case 3: tile(3, nv, t, a_row, a_k); break;                                           \
    case 2: tile(2, nv, t, a_row, a_k); break;                                           \
    case 1: tile(1, nv, t, a_row, a_k); break;                                           \
    default: break;                                                                      \
    }

/* The column's tiles, top to bottom; A's row tiles a_panel floats apart. */
#define COLUMN(nv, t, a_row, a_k, a_panel)                                               \
    for (int64_t i = 0; i < (t)->rows; i += MR) {                                        \
        dt_cpu_tile s = *(t);                                                            \
        s.a = (t)->a + i / MR * (a_panel);                                               \
        s.c = (t)->c + i * (t)->ldc;                                                     \
        s.rows = (t)->rows - i < MR ? (t)->rows - i : MR;                                \
        BY_ROWS(nv, &s, a_row, a_k)                                                      \
    }

void dt_cpu_gemm_packed_avx512(const dt_cpu_tile *t) { COLUMN(2, t, 1, MR, t->kc * MR) }

void dt_cpu_gemm_strided_avx512(const dt_cpu_tile *t)
{
    COLUMN(2, t, t->a_row, t->a_k, MR * t->a_row)
}

void dt_cpu_gemm_narrow_avx512(const dt_cpu_tile *t)
{
    COLUMN(1, t, t->a_row, t->a_k, MR * t->a_row)
}

/* Twelve chains of 16-lane FMAs, independent of each other: enough to
 * fill two FMA pipes of latency up to 6. */
void dt_cpu_fma_loop_avx512(int64_t iters, float *sink)
{
    __m512 x[12], m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++)
        x[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            x[i] = _mm512_fmadd_ps(x[i], m, c);
    __m512 s = x[0];
    for (int i = 1; i < 12; i++)
        s = _mm512_add_ps(s, x[i]);
    *sink = _mm512_reduce_add_ps(s);
}

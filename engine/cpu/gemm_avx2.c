/* gemm_avx2.c - GEMM tiles for AVX2 + FMA (cpu.h): 6 rows x 16 columns.
 *
 * 16 ymm registers: 6 rows x 2 vectors = 12 accumulators, 2 for the B row
 * and 1 for the broadcast A value (AVX2 has no broadcast operand, so each
 * A value passes through a register). Per k: 2 vector loads, 6 broadcast
 * loads and 12 FMAs, which two FMA pipes retire in 6 cycles. Products 16
 * columns wide use the same tile (narrow_nr == nr). Ragged edges: a
 * variant per row count, masked loads and stores for the columns. */
#include "cpu.h"

#include <immintrin.h>

#define MR 6

/* Lanes [0, n) of 8 set. */
static inline __m256i lanes8(int64_t n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int32_t k = n >= 8 ? 8 : n <= 0 ? 0 : (int32_t)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

/* The tile with mr rows; `full`: all 16 columns valid (plain loads and
 * stores). Inlined with constant shapes and, for packed panels, strides. */
static inline __attribute__((always_inline)) void tile(int mr, bool full, const dt_cpu_tile *t,
                                                        int64_t a_row, int64_t a_k)
{
    __m256 acc[MR][2];
    __m256i mask[2] = {lanes8(t->cols), lanes8(t->cols - 8)};
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++)
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    const float *restrict a = t->a, *restrict b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        __m256 b0 = full ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, mask[0]);
        __m256 b1 = full ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, mask[1]);
#pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i * a_row);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += a_k;
        b += t->ldb;
    }
    __m256 alpha = _mm256_set1_ps(t->alpha), beta = _mm256_set1_ps(t->beta);
#pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *c = t->c + i * t->ldc;
#pragma GCC unroll 2
        for (int v = 0; v < 2; v++) {
            __m256 r = _mm256_mul_ps(alpha, acc[i][v]);
            if (full) {
                if (t->beta != 0.0f)
                    r = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8 * v), r);
                _mm256_storeu_ps(c + 8 * v, r);
            } else {
                if (t->beta != 0.0f)
                    r = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c + 8 * v, mask[v]), r);
                _mm256_maskstore_ps(c + 8 * v, mask[v], r);
            }
        }
    }
}

#define BY_ROWS(full, t, a_row, a_k)                                                     \
    switch ((t)->rows) {                                                                 \
    case 6: tile(6, full, t, a_row, a_k); break;                                         \
    case 5: tile(5, full, t, a_row, a_k); break;                                         \
    case 4: tile(4, full, t, a_row, a_k); break;                                         \
    case 3: tile(3, full, t, a_row, a_k); break;                                         \
    case 2: tile(2, full, t, a_row, a_k); break;                                         \
    case 1: tile(1, full, t, a_row, a_k); break;                                         \
    default: break;                                                                      \
    }

/* The column's tiles, top to bottom; A's row tiles a_panel floats apart. */
#define COLUMN(full, t, a_row, a_k, a_panel)                                             \
    for (int64_t i = 0; i < (t)->rows; i += MR) {                                        \
        dt_cpu_tile s = *(t);                                                            \
        s.a = (t)->a + i / MR * (a_panel);                                               \
        s.c = (t)->c + i * (t)->ldc;                                                     \
        s.rows = (t)->rows - i < MR ? (t)->rows - i : MR;                                \
        BY_ROWS(full, &s, a_row, a_k)                                                    \
    }

void dt_cpu_gemm_packed_avx2(const dt_cpu_tile *t)
{
    if (t->cols == 16) {
        COLUMN(true, t, 1, MR, t->kc * MR)
    } else {
        COLUMN(false, t, 1, MR, t->kc * MR)
    }
}

void dt_cpu_gemm_strided_avx2(const dt_cpu_tile *t)
{
    if (t->cols == 16) {
        COLUMN(true, t, t->a_row, t->a_k, MR * t->a_row)
    } else {
        COLUMN(false, t, t->a_row, t->a_k, MR * t->a_row)
    }
}

/* Twelve chains of 8-lane FMAs, independent of each other: enough to fill
 * two FMA pipes of latency up to 6. */
void dt_cpu_fma_loop_avx2(int64_t iters, float *sink)
{
    __m256 x[12], m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < 12; i++)
        x[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            x[i] = _mm256_fmadd_ps(x[i], m, c);
    __m256 s = x[0];
    for (int i = 1; i < 12; i++)
        s = _mm256_add_ps(s, x[i]);
    float lanes[8];
    _mm256_storeu_ps(lanes, s);
    *sink = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
}

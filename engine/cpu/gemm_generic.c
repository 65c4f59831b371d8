/* gemm_generic.c - GEMM tiles in plain C (cpu.h): 4 rows x 16 columns,
 * the definition the vector versions follow, for any CPU. With the full
 * shape the loops have constant bounds, so a compiler keeps the tile in
 * vector registers (16 accumulators of 4 floats on SSE2 or NEON); ragged
 * tiles take the same loops with variable bounds. Each C element is summed
 * over k in increasing order, with a multiply and an add per term. */
#include "cpu.h"

#define MR 4
#define NR 16

static inline __attribute__((always_inline)) void tile(int64_t rows, int64_t cols,
                                                        const dt_cpu_tile *t, int64_t a_row,
                                                        int64_t a_k)
{
    float acc[MR][NR] = {{0}};
    const float *restrict a = t->a, *restrict b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        for (int64_t i = 0; i < rows; i++) {
            float ai = a[i * a_row];
            for (int64_t j = 0; j < cols; j++)
                acc[i][j] += ai * b[j];
        }
        a += a_k;
        b += t->ldb;
    }
    for (int64_t i = 0; i < rows; i++) {
        float *c = t->c + i * t->ldc;
        for (int64_t j = 0; j < cols; j++) {
            float r = t->alpha * acc[i][j];
            c[j] = t->beta == 0.0f ? r : r + t->beta * c[j];
        }
    }
}

static void any_tile(const dt_cpu_tile *t, int64_t a_row, int64_t a_k)
{
    if (t->rows == MR && t->cols == NR)
        tile(MR, NR, t, a_row, a_k);
    else
        tile(t->rows, t->cols, t, a_row, a_k);
}

void dt_cpu_gemm_packed_generic(const dt_cpu_tile *t) { any_tile(t, 1, MR); }

void dt_cpu_gemm_strided_generic(const dt_cpu_tile *t) { any_tile(t, t->a_row, t->a_k); }

/* Twelve chains of 4-lane multiply-adds, independent of each other. */
void dt_cpu_fma_loop_generic(int64_t iters, float *sink)
{
    typedef float v4 __attribute__((vector_size(16)));
    v4 x[12], m = {0.999f, 0.999f, 0.999f, 0.999f}, c = {1e-3f, 1e-3f, 1e-3f, 1e-3f};
    for (int i = 0; i < 12; i++)
        x[i] = (v4){(float)i, (float)i, (float)i, (float)i};
    for (int64_t it = 0; it < iters; it++)
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            x[i] = x[i] * m + c;
    v4 s = x[0];
    for (int i = 1; i < 12; i++)
        s = s + x[i];
    *sink = s[0] + s[1] + s[2] + s[3];
}

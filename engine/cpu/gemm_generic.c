/* gemm_generic.c - GEMM tiles in portable C (cpu.h): 4 rows x 16 columns,
 * the definition the vector versions follow, for any CPU.
 *
 * The tile's accumulators are GCC vector-extension values of 4 floats
 * (16 of them), so any compiler target keeps them in vector registers:
 * SSE2 on baseline x86-64, NEON on aarch64. Per k: four loads of the B
 * row, and each row's A value splat across a vector. Ragged tiles
 * (fewer rows or columns) take plain loops with variable bounds. Each C
 * element is summed over k in increasing order, with a multiply and an
 * add per term (a target with FMA may fuse them). */
#include "cpu.h"

#include <string.h>

#define MR 4
#define NR 16

typedef float v4 __attribute__((vector_size(16)));

static inline v4 load4(const float *p)
{
    v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The full 4 x 16 tile. */
static inline __attribute__((always_inline)) void full_tile(const dt_cpu_tile *t, int64_t a_row,
                                                             int64_t a_k)
{
    v4 acc[MR][NR / 4];
    memset(acc, 0, sizeof acc);
    const float *restrict a = t->a, *restrict b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        v4 bv[NR / 4];
        for (int v = 0; v < NR / 4; v++)
            bv[v] = load4(b + 4 * v);
        for (int i = 0; i < MR; i++) {
            float ai = a[i * a_row];
            v4 av = {ai, ai, ai, ai};
            for (int v = 0; v < NR / 4; v++)
                acc[i][v] += av * bv[v];
        }
        a += a_k;
        b += t->ldb;
    }
    for (int i = 0; i < MR; i++) {
        float *c = t->c + i * t->ldc;
        for (int v = 0; v < NR / 4; v++) {
            v4 r = t->alpha * acc[i][v];
            if (t->beta != 0.0f)
                r += t->beta * load4(c + 4 * v);
            memcpy(c + 4 * v, &r, sizeof r);
        }
    }
}

/* Any rows <= MR and cols <= NR. */
static void ragged_tile(const dt_cpu_tile *t, int64_t a_row, int64_t a_k)
{
    float acc[MR][NR] = {{0}};
    const float *restrict a = t->a, *restrict b = t->b;
    for (int64_t k = 0; k < t->kc; k++) {
        for (int64_t i = 0; i < t->rows; i++) {
            float ai = a[i * a_row];
            for (int64_t j = 0; j < t->cols; j++)
                acc[i][j] += ai * b[j];
        }
        a += a_k;
        b += t->ldb;
    }
    for (int64_t i = 0; i < t->rows; i++) {
        float *c = t->c + i * t->ldc;
        for (int64_t j = 0; j < t->cols; j++) {
            float r = t->alpha * acc[i][j];
            c[j] = t->beta == 0.0f ? r : r + t->beta * c[j];
        }
    }
}

/* The column's tiles, top to bottom; A's row tiles a_panel floats apart. */
static void column(const dt_cpu_tile *t, int64_t a_row, int64_t a_k, int64_t a_panel)
{
    for (int64_t i = 0; i < t->rows; i += MR) {
        dt_cpu_tile s = *t;
        s.a = t->a + i / MR * a_panel;
        s.c = t->c + i * t->ldc;
        s.rows = t->rows - i < MR ? t->rows - i : MR;
        if (s.rows == MR && s.cols == NR)
            full_tile(&s, a_row, a_k);
        else
            ragged_tile(&s, a_row, a_k);
    }
}

void dt_cpu_gemm_packed_generic(const dt_cpu_tile *t) { column(t, 1, MR, t->kc * MR); }

void dt_cpu_gemm_strided_generic(const dt_cpu_tile *t)
{
    column(t, t->a_row, t->a_k, MR * t->a_row);
}

/* Twelve chains of 4-lane multiply-adds, independent of each other. */
void dt_cpu_fma_loop_generic(int64_t iters, float *sink)
{
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

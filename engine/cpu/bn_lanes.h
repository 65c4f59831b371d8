/* bn_lanes.h - the row kernels of batch norm (batchnorm.c), written once
 * and compiled for every ISA by table.h. The lane sums keep their lanes in
 * GCC vector-extension registers (float lanes as v16.h vectors, double
 * lanes as 8-double vectors), so every ISA adds the same values in the
 * same order: lane j receives the elements k with k % lanes == j. */
#ifndef DISTILL_CPU_BN_LANES_H
#define DISTILL_CPU_BN_LANES_H

#include "cpu.h"
#include "v16.h"

#include <string.h>

typedef float bn_vf8 __attribute__((vector_size(32)));
typedef double bn_vd8 __attribute__((vector_size(64)));

/* 8 floats widened to double (exactly). */
static inline bn_vd8 bn_load8d(const float *p)
{
    bn_vf8 v;
    memcpy(&v, p, sizeof v);
    return __builtin_convertvector(v, bn_vd8);
}

static void bn_sum_row(float *restrict a, const float *restrict r, int64_t n)
{
    int64_t k = 0;
    if (n >= DT_BN_LANES) {
        dt_v16 acc[4];
        memcpy(acc, a, sizeof acc);
        for (; k + DT_BN_LANES <= n; k += DT_BN_LANES)
            for (int v = 0; v < 4; v++)
                acc[v] += dt_v16_load(r + k + 16 * v);
        memcpy(a, acc, sizeof acc);
    }
    for (int j = 0; k + j < n; j++)
        a[j] += r[k + j];
}

static void bn_centred_row(double *restrict a, double *restrict q, const float *restrict x,
                           int64_t n, double m)
{
    int64_t k = 0;
    if (n >= DT_BN_GLANES) {
        bn_vd8 va[4], vq[4];
        memcpy(va, a, sizeof va);
        memcpy(vq, q, sizeof vq);
        for (; k + DT_BN_GLANES <= n; k += DT_BN_GLANES)
            for (int v = 0; v < 4; v++) {
                bn_vd8 d = bn_load8d(x + k + 8 * v) - m;
                va[v] += d;
                vq[v] += d * d;
            }
        memcpy(a, va, sizeof va);
        memcpy(q, vq, sizeof vq);
    }
    for (int j = 0; k + j < n; j++) {
        double d = (double)x[k + j] - m;
        a[j] += d;
        q[j] += d * d;
    }
}

static void bn_grad_row(double *restrict g, double *restrict p, const float *restrict dy,
                        const float *restrict x, int64_t n, double m)
{
    int64_t k = 0;
    if (n >= DT_BN_GLANES) {
        bn_vd8 vg[4], vp[4];
        memcpy(vg, g, sizeof vg);
        memcpy(vp, p, sizeof vp);
        for (; k + DT_BN_GLANES <= n; k += DT_BN_GLANES)
            for (int v = 0; v < 4; v++) {
                bn_vd8 d = bn_load8d(dy + k + 8 * v);
                vg[v] += d;
                vp[v] += d * (bn_load8d(x + k + 8 * v) - m);
            }
        memcpy(g, vg, sizeof vg);
        memcpy(p, vp, sizeof vp);
    }
    for (int j = 0; k + j < n; j++) {
        g[j] += dy[k + j];
        p[j] += dy[k + j] * ((double)x[k + j] - m);
    }
}

static void bn_affine_row(float *restrict y, const float *restrict x, int64_t n, float scale,
                          float shift)
{
    for (int64_t k = 0; k < n; k++)
        y[k] = x[k] * scale + shift;
}

static void bn_dx_row(float *restrict dx, const float *restrict dy, const float *restrict x,
                      int64_t n, double a, double mdy, double b, double m)
{
    for (int64_t k = 0; k < n; k++)
        dx[k] = (float)(a * ((double)dy[k] - mdy) - b * ((double)x[k] - m));
}

#endif

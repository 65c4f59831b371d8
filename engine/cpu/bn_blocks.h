/* bn_blocks.h - the block passes of batch norm (cpu.h says what each
 * computes), included by bn_<isa>.c after its row kernels.
 *
 * The rows come in two parts: the including file's vector loop over whole
 * groups of lanes, then the plain loops below from where it stopped (for a
 * row shorter than a group, and for the generic build, the whole row).
 * Both give each lane the elements k with k % lanes == j in increasing k,
 * so every ISA adds the same values in the same order.
 *
 * The including file defines DT_ISA (its name, for the symbols) and
 *   static int64_t sum_vec(float *a, const float *r, int64_t n)
 *   static int64_t centred_vec(double *a, double *q, const float *x, int64_t n, double m)
 *   static int64_t grad_vec(double *g, double *p, const float *dy, const float *x,
 *                           int64_t n, double m)
 * each returning the k it stopped at (a multiple of the lane count). The
 * elementwise passes (affine, dx) are plain loops here, which compilers
 * vectorise for each ISA. */
#ifndef DISTILL_CPU_BN_BLOCKS_H
#define DISTILL_CPU_BN_BLOCKS_H

#include "cpu.h"

#define BN_JOIN_(a, b) a##_##b
#define BN_JOIN(a, b) BN_JOIN_(a, b)
#define BN_OWN(name) BN_JOIN(name, DT_ISA)

static inline void sum_rest(float *restrict a, const float *restrict r, int64_t k, int64_t n)
{
    for (; k + DT_BN_LANES <= n; k += DT_BN_LANES)
        for (int j = 0; j < DT_BN_LANES; j++)
            a[j] += r[k + j];
    for (int j = 0; k + j < n; j++)
        a[j] += r[k + j];
}

/* (A float x minus a float m is exact in double.) */
static inline void centred_rest(double *restrict a, double *restrict q, const float *restrict x,
                                int64_t k, int64_t n, double m)
{
    for (; k < n; k += DT_BN_GLANES)
        for (int j = 0; j < DT_BN_GLANES && k + j < n; j++) {
            double d = (double)x[k + j] - m;
            a[j] += d;
            q[j] += d * d;
        }
}

static inline void grad_rest(double *restrict g, double *restrict p, const float *restrict dy,
                             const float *restrict x, int64_t k, int64_t n, double m)
{
    for (; k < n; k += DT_BN_GLANES)
        for (int j = 0; j < DT_BN_GLANES && k + j < n; j++) {
            g[j] += dy[k + j];
            p[j] += dy[k + j] * ((double)x[k + j] - m);
        }
}

static inline void affine_row(float *restrict y, const float *restrict x, int64_t n, float scale,
                              float shift)
{
    for (int64_t k = 0; k < n; k++)
        y[k] = x[k] * scale + shift;
}

static inline void dx_row(float *restrict dx, const float *restrict dy, const float *restrict x,
                          int64_t n, const dt_cpu_bn_dx *c)
{
    double a = c->a, mdy = c->mdy, b = c->b, m = c->m;
    for (int64_t k = 0; k < n; k++)
        dx[k] = (float)(a * ((double)dy[k] - mdy) - b * ((double)x[k] - m));
}

/* The rows of a block, image by image, channels within. */
#define BN_ROWS(b, ...)                                                                  \
    for (int64_t n = 0; n < (b)->rows; n++)                                              \
        for (int64_t i = 0; i < (b)->nc; i++) {                                          \
            int64_t o = n * (b)->row_stride + i * (b)->S;                                \
            __VA_ARGS__;                                                                 \
        }

void BN_OWN(dt_cpu_bn_sum)(const dt_cpu_bn_block *b, const float *x, float *lanes)
{
    BN_ROWS(b, {
        float *a = lanes + i * DT_BN_LANES;
        sum_rest(a, x + o, sum_vec(a, x + o, b->S), b->S);
    })
}

void BN_OWN(dt_cpu_bn_centred)(const dt_cpu_bn_block *b, const float *x, const float *m,
                               double *a, double *q)
{
    BN_ROWS(b, {
        double *ai = a + i * DT_BN_GLANES, *qi = q + i * DT_BN_GLANES;
        centred_rest(ai, qi, x + o, centred_vec(ai, qi, x + o, b->S, m[i]), b->S, m[i]);
    })
}

void BN_OWN(dt_cpu_bn_grad)(const dt_cpu_bn_block *b, const float *dy, const float *x,
                            const double *m, double *g, double *p)
{
    BN_ROWS(b, {
        double *gi = g + i * DT_BN_GLANES, *pi = p + i * DT_BN_GLANES;
        grad_rest(gi, pi, dy + o, x + o, grad_vec(gi, pi, dy + o, x + o, b->S, m[i]), b->S,
                  m[i]);
    })
}

void BN_OWN(dt_cpu_bn_affine)(const dt_cpu_bn_block *b, const float *x, float *y,
                              const float *scale, const float *shift)
{
    BN_ROWS(b, affine_row(y + o, x + o, b->S, scale[i], shift[i]))
}

void BN_OWN(dt_cpu_bn_dx)(const dt_cpu_bn_block *b, const float *dy, const float *x, float *dx,
                          const dt_cpu_bn_dx *coef)
{
    BN_ROWS(b, dx_row(dx + o, dy + o, x + o, b->S, &coef[i]))
}

#endif

/* wino_tiles.h - the per-tile transforms of Winograd's F(4x4, 3x3)
 * (winograd.c explains the algorithm), written once with GCC vector
 * extensions over 16 channels (v16.h) and compiled for every ISA by
 * table.h.
 * Lines of the transforms share terms so each costs few operations. */
#ifndef DISTILL_CPU_WINO_TILES_H
#define DISTILL_CPU_WINO_TILES_H

#include "cpu.h"
#include "v16.h"

/* One line of B^T d (6 -> 6), inputs `s` apart, outputs `os` apart:
 *   [ 1  -3/2  -2    3/2  1  0 ]
 *   [ 0   1    -5/2  1/2  1  0 ]
 *   [ 0  -1     1/2  5/2  1  0 ]
 *   [ 0  -2    -1    2    1  0 ]
 *   [ 0   1/2  -1   -1/2  1  0 ]
 *   [ 0   1    -3/2 -2    3/2 1 ]
 * written with the shared terms s = d4 - d2 and q = d3 - d1. */
static inline void wino_bt_line(const dt_v16 *d, int s, dt_v16 *o, int os)
{
    dt_v16 d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    dt_v16 sd = d4 - d2, q = d3 - d1;
    o[0] = d0 + d4 - 2.0f * d2 + 1.5f * q;
    o[os] = d4 + 0.5f * d3 + d1 - 2.5f * d2;
    o[2 * os] = d4 + 2.5f * d3 - d1 + 0.5f * d2;
    o[3 * os] = sd + 2.0f * q;
    o[4 * os] = sd - 0.5f * q;
    o[5 * os] = d1 + d5 - 2.0f * d3 + 1.5f * sd;
}

/* One line of A^T m (6 -> 4):
 *   [ 1  1  1  1    1  0 ]
 *   [ 0 -1  1  1/2 -2  0 ]
 *   [ 0  1  1  1/4  4  0 ]
 *   [ 0 -1  1  1/8 -8  1 ] */
static inline void wino_at_line(const dt_v16 *m, int s, dt_v16 *o, int os)
{
    dt_v16 m3 = m[3 * s], m4 = m[4 * s];
    dt_v16 p = m[s] + m[2 * s], n = m[2 * s] - m[s];
    o[0] = m[0] + p + m3 + m4;
    o[os] = n + 0.5f * m3 - 2.0f * m4;
    o[2 * os] = p + 0.25f * m3 + 4.0f * m4;
    o[3 * os] = n + 0.125f * m3 - 8.0f * m4 + m[5 * s];
}

/* One line of A g (4 -> 6), the adjoint of wino_at_line. */
static inline void wino_a_line(const dt_v16 *g, int s, dt_v16 *o, int os)
{
    dt_v16 g0 = g[0], g1 = g[s], g2 = g[2 * s], g3 = g[3 * s];
    dt_v16 even = g0 + g2, odd = g1 + g3;
    o[0] = g0;
    o[os] = even - odd;
    o[2 * os] = even + odd;
    o[3 * os] = g0 + 0.5f * g1 + 0.25f * g2 + 0.125f * g3;
    o[4 * os] = g0 - 2.0f * g1 + 4.0f * g2 - 8.0f * g3;
    o[5 * os] = g3;
}

static void wino_input_tile(const float *src, int64_t ld, float *v, int64_t stride)
{
    dt_v16 d[36], t[36];
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            d[i * 6 + j] = dt_v16_load(src + i * ld + j * 16);
    for (int j = 0; j < 6; j++)
        wino_bt_line(d + j, 6, t + j, 6);
    for (int k = 0; k < 6; k++)
        wino_bt_line(t + k * 6, 1, d + k * 6, 1);
    for (int xi = 0; xi < 36; xi++)
        dt_v16_store(v + xi * stride, d[xi]);
}

static void wino_grad_tile(const float *src, int64_t ld, float *v, int64_t stride)
{
    dt_v16 g[16], t[24], o[36];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            g[i * 4 + j] = dt_v16_load(src + i * ld + j * 16);
    for (int j = 0; j < 4; j++)
        wino_a_line(g + j, 4, t + j, 4);
    for (int k = 0; k < 6; k++)
        wino_a_line(t + k * 4, 1, o + k * 6, 1);
    for (int xi = 0; xi < 36; xi++)
        dt_v16_store(v + xi * stride, o[xi]);
}

static void wino_output_tile(const float *m, int64_t stride, const float *bias, float *out,
                             int64_t out_row)
{
    dt_v16 x[36], s[24], y[16], b = dt_v16_load(bias);
    for (int xi = 0; xi < 36; xi++)
        x[xi] = dt_v16_load(m + xi * stride);
    for (int l = 0; l < 6; l++)
        wino_at_line(x + l, 6, s + l, 6);
    for (int i = 0; i < 4; i++)
        wino_at_line(s + i * 6, 1, y + i * 4, 1);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            dt_v16_store(out + i * out_row + j * 16, y[i * 4 + j] + b);
}

#endif

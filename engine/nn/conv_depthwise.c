/* conv_depthwise.c - depthwise convolutions (groups == C == O; conv.h) by
 * direct loops: a K = kh*kw GEMM per channel would spend more time building
 * patches than multiplying. Planes are spread over the OpenMP threads; the
 * weight gradient sums each channel's images in order, in double. */
#include "conv.h"

#include <stdlib.h>
#include <string.h>

/* out plane (OH x OW) = bias + sum over taps of w[i][j] * shifted x plane. */
static void depthwise_plane_forward(const dt_conv_geom *g, const float *x, const float *w, float b,
                                    float *out)
{
    for (int64_t p = 0; p < g->P; p++)
        out[p] = b;
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            float wv = w[i * g->kw + j];
            int64_t lo, hi;
            dt_conv_valid_cols(g, j, &lo, &hi);
            for (int64_t oh = 0; oh < g->OH; oh++) {
                int64_t ih = oh * g->sh - g->ph + i * g->dh;
                if (ih < 0 || ih >= g->H)
                    continue;
                const float *src = x + ih * g->W + j * g->dw - g->pw;
                float *dst = out + oh * g->OW;
                if (g->sw == 1)
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] += wv * src[ow];
                else
                    for (int64_t ow = lo; ow < hi; ow++)
                        dst[ow] += wv * src[ow * g->sw];
            }
        }
}

/* dx plane += taps scattered back; dw (kh*kw) += correlation of x and dy. */
static void depthwise_plane_backward(const dt_conv_geom *g, const float *x, const float *w,
                                     const float *dy, float *dx, double *dw)
{
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++) {
            float wv = w[i * g->kw + j];
            double acc = 0.0;
            int64_t lo, hi;
            dt_conv_valid_cols(g, j, &lo, &hi);
            for (int64_t oh = 0; oh < g->OH; oh++) {
                int64_t ih = oh * g->sh - g->ph + i * g->dh;
                if (ih < 0 || ih >= g->H)
                    continue;
                int64_t base = ih * g->W + j * g->dw - g->pw;
                const float *gy = dy + oh * g->OW;
                if (dx)
                    for (int64_t ow = lo; ow < hi; ow++)
                        dx[base + ow * g->sw] += wv * gy[ow];
                if (dw) {
                    float row = 0.0f;
                    for (int64_t ow = lo; ow < hi; ow++)
                        row += x[base + ow * g->sw] * gy[ow];
                    acc += row;
                }
            }
            if (dw)
                dw[i * g->kw + j] += acc;
        }
}

void dt_conv_depthwise_forward(const dt_conv_geom *g, const float *x, const float *w,
                               const float *bias, float *out)
{
    int64_t planes = g->N * g->C, hw = g->H * g->W, kk = g->kh * g->kw;
    #pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < planes; q++) {
        int64_t c = q % g->C;
        depthwise_plane_forward(g, x + q * hw, w + c * kk, bias ? bias[c] : 0.0f, out + q * g->P);
    }
}

dt_status dt_conv_depthwise_backward(const dt_conv_geom *g, const float *x, const float *w,
                                     const float *dy, float *dx, float *dw)
{
    int64_t hw = g->H * g->W, kk = g->kh * g->kw;
    double *acc = dw ? calloc((size_t)(g->C * kk), sizeof *acc) : NULL;
    if (dw && !acc)
        return dt_fail(DT_ERR_NOMEM, "conv2d backward: out of memory");
    /* One channel per iteration; images in order, so dw is deterministic. */
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g->C; c++) {
        double *a = acc ? acc + c * kk : NULL;
        for (int64_t n = 0; n < g->N; n++) {
            int64_t q = n * g->C + c;
            float *dxq = dx ? dx + q * hw : NULL;
            if (dxq)
                memset(dxq, 0, (size_t)hw * sizeof *dxq);
            depthwise_plane_backward(g, x + q * hw, w + c * kk, dy + q * g->P, dxq, a);
        }
        if (a)
            for (int64_t t = 0; t < kk; t++)
                dw[c * kk + t] = (float)a[t];
    }
    free(acc);
    return DT_OK;
}

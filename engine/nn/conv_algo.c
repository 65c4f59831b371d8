/* conv_algo.c - which algorithm runs each pass of a convolution (conv.h):
 *
 *   Winograd's F(4x4, 3x3) (winograd.c) for 3x3 stride-1 convolutions,
 *     when dt_get_conv_algo says so: "auto" takes it when both channel
 *     counts are at least DT_WINOGRAD_MIN_CHANNELS (below, its transforms
 *     cost more than the 4x fewer multiply-adds save);
 *   im2col + GEMM (conv_gemm.c) for every other convolution, with the
 *     engine's GEMM, or OpenBLAS when DISTILL_CONV_BLAS=1 (the baseline of
 *     scripts/bench_ops.lua).
 *
 * The input gradient of a 3x3 stride-1 convolution is again one (the
 * kernel rotated and transposed, padding 2 - p), so Winograd's forward
 * computes it. Depthwise convolutions have their own kernel (conv.c calls
 * it). */
#include "conv.h"
#include "winograd.h"

#include <stdlib.h>
#include <string.h>

/* Read once; every thread reads the same value. */
bool dt_conv_use_blas(void)
{
    static int flag = -1;
    if (flag < 0) {
        const char *e = getenv("DISTILL_CONV_BLAS");
        flag = e && e[0] == '1';
    }
    return flag;
}

/* dt_set_conv_algo's choice; until set, DISTILL_CONV_ALGO (auto, gemm or
 * winograd) as read at the first convolution. */
static int conv_algo = -1;

void dt_set_conv_algo(dt_conv_algo algo) { conv_algo = (int)algo; }

dt_conv_algo dt_get_conv_algo(void)
{
    if (conv_algo < 0) {
        const char *e = getenv("DISTILL_CONV_ALGO");
        conv_algo = e && strcmp(e, "gemm") == 0       ? DT_CONV_GEMM
                    : e && strcmp(e, "winograd") == 0 ? DT_CONV_WINOGRAD
                                                      : DT_CONV_AUTO;
    }
    return (dt_conv_algo)conv_algo;
}

/* Whether g's forward, input gradient and weight gradient go through
 * Winograd's F(4x4, 3x3) (winograd.c) rather than im2col + GEMM. */
static bool use_winograd(const dt_conv_geom *g)
{
    if (!dt_winograd_fits(g->kh, g->kw, g->sh, g->sw, g->dh, g->dw, g->groups, g->ph, g->pw,
                          g->H, g->W))
        return false;
    switch (dt_get_conv_algo()) {
    case DT_CONV_GEMM:
        return false;
    case DT_CONV_WINOGRAD:
        return true;
    default:
        return !dt_conv_use_blas() && g->C >= DT_WINOGRAD_MIN_CHANNELS &&
               g->O >= DT_WINOGRAD_MIN_CHANNELS;
    }
}

/* The problem of g's forward, and of its input gradient: the correlation of
 * dy with the kernel rotated and transposed, padded by 2 - p. */
static dt_wino_problem wino_forward(const dt_conv_geom *g)
{
    return (dt_wino_problem){g->N, g->C, g->H, g->W, g->O, g->ph, g->pw};
}

static dt_wino_problem wino_backward_data(const dt_conv_geom *g)
{
    return (dt_wino_problem){g->N, g->O, g->OH, g->OW, g->C, 2 - g->ph, 2 - g->pw};
}

dt_status dt_conv_forward_pass(const dt_conv_geom *g, const float *x, const float *w,
                               const float *bias, float *y)
{
    if (use_winograd(g)) {
        dt_wino_problem p = wino_forward(g);
        return dt_winograd_forward(&p, x, w, false, bias, y);
    }
    return dt_conv_gemm_forward(g, x, w, bias, y);
}

dt_status dt_conv_weight_grad_pass(const dt_conv_geom *g, const float *x, const float *dy,
                                   float *dw)
{
    if (use_winograd(g)) {
        dt_wino_problem p = wino_forward(g);
        return dt_winograd_weight_grad(&p, x, dy, dw);
    }
    return dt_conv_gemm_weight_grad(g, x, dy, dw);
}

dt_status dt_conv_input_grad_pass(const dt_conv_geom *g, const float *w, const float *dy,
                                  float *dx)
{
    if (use_winograd(g)) {
        dt_wino_problem p = wino_backward_data(g);
        return dt_winograd_forward(&p, dy, w, true, NULL, dx);
    }
    return dt_conv_gemm_input_grad(g, w, dy, dx);
}

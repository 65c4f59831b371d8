/* winograd.h - 3x3 stride-1 convolution by Winograd's F(4x4, 3x3)
 * (winograd.c). Internal to the engine: conv_algo.c chooses it for the layers it
 * applies to; not part of distill.h.
 *
 * A problem is a correlation of x (N, C, H, W) with a 3x3 kernel per
 * (out, in) channel pair, zero padding (ph, pw) <= 2, stride and dilation 1,
 * one group: y (N, O, H + 2ph - 2, W + 2pw - 2). */
#ifndef DISTILL_WINOGRAD_H
#define DISTILL_WINOGRAD_H

#include "distill.h"

typedef struct dt_wino_problem {
    int64_t N, C, H, W;   /* input */
    int64_t O;            /* output channels */
    int64_t ph, pw;       /* zero padding, 0..2 */
} dt_wino_problem;

/* Whether F(4x4, 3x3) computes this convolution: a 3x3 kernel, stride 1,
 * dilation 1, one group, padding 0..2 and an output of at least 1 x 1. */
bool dt_winograd_fits(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh, int64_t dw,
                      int64_t groups, int64_t ph, int64_t pw, int64_t H, int64_t W);

/* y = conv(x, w) + bias (bias may be NULL). With flip false, w is the
 * usual (O, C, 3, 3). With flip true it is read as the kernel of the
 * adjoint: w is (C, O, 3, 3) and y[o] correlates x[c] with w[c][o]
 * rotated by 180 degrees, which turns conv2d's input gradient into a
 * forward (dx = conv(dy, w flipped), padding 2 - p). Runs on the OpenMP
 * threads. */
dt_status dt_winograd_forward(const dt_wino_problem *p, const float *x, const float *w,
                              bool flip, const float *bias, float *y);

/* dw (O, C, 3, 3) = sum over images of the correlation of dy (N, O, OH, OW)
 * with the padded x (N, C, H, W): the weight gradient of the forward above
 * (flip false). Each element is summed in an order fixed by the shapes. */
dt_status dt_winograd_weight_grad(const dt_wino_problem *p, const float *x, const float *dy,
                                  float *dw);

#endif

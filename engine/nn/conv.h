/* conv.h - the pieces of 2-d convolution (NCHW) shared by its files
 * (internal, not part of distill.h):
 *
 *   conv.c            conv2d: the op, its backward, the bias
 *   conv_transpose.c  conv_transpose2d, as conv2d's adjoint in its input
 *   conv_geom.c       geometry: arguments checked, output sizes, windows
 *   conv_algo.c       which algorithm runs each pass (DISTILL_CONV_ALGO,
 *                     DISTILL_CONV_BLAS) and the passes themselves
 *   conv_gemm.c       im2col + GEMM: patches, products, threading
 *   conv_depthwise.c  depthwise convolutions (groups == C == O), direct loops
 *   winograd.c        3x3 stride-1 convolutions by Winograd's F(4x4, 3x3)
 *
 * A convolution is three passes over the batch: forward, the weight
 * gradient and the input gradient, each timed under its own profile kind.
 * All take contiguous float32 buffers; results never depend on the number
 * of threads. */
#ifndef DISTILL_CONV_H
#define DISTILL_CONV_H

#include "autograd/op.h"

typedef struct dt_conv_geom {
    int64_t N, C, H, W;        /* input */
    int64_t O, kh, kw;         /* weight: O x Cg x kh x kw */
    int64_t sh, sw, ph, pw, dh, dw, groups;
    int64_t OH, OW;            /* output plane */
    int64_t Cg, Og;            /* channels per group (in, out) */
    int64_t K, P;              /* patch rows (Cg*kh*kw), output positions (OH*OW) */
    bool direct;               /* 1x1, stride 1, no padding: input is the patch matrix */
    bool depthwise;            /* groups == C == O */
} dt_conv_geom;

/* ------------------------------------------------------------ conv_geom.c */

/* The geometry of conv2d(x, w, bias), or an error naming what is wrong. */
dt_status dt_conv_geom_of(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                          const int64_t stride[2], const int64_t padding[2],
                          const int64_t dilation[2], int64_t groups, dt_conv_geom *g);
/* The geometry of conv_transpose2d(x, w, bias) as the conv2d it is the
 * adjoint of: its output is that conv2d's input (C, H, W), its input that
 * conv2d's output (O = Cin, OH, OW). */
dt_status dt_conv_transpose_geom_of(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                    const int64_t stride[2], const int64_t padding[2],
                                    const int64_t output_padding[2], const int64_t dilation[2],
                                    int64_t groups, dt_conv_geom *g);
/* The output columns ow whose input column ow*sw - pw + j*dw lies in
 * [0, W): [*lo, *hi). */
void dt_conv_valid_cols(const dt_conv_geom *g, int64_t j, int64_t *lo, int64_t *hi);

/* ------------------------------------------------------------------ conv.c */

/* db[c] = the sum of dy's channel c (dy: N x C planes of `plane` values),
 * per image in float, images added in order in double. Timed as part of
 * the weight-gradient pass. */
void dt_conv_bias_grad(const float *dy, int64_t N, int64_t C, int64_t plane, float *db);
/* y (N x C planes of `plane` values) += bias[c] on channel c's planes. */
void dt_conv_add_bias(float *y, const float *bias, int64_t N, int64_t C, int64_t plane);

/* conv2d's and conv_transpose2d's operands as contiguous tensors: x, w and,
 * when given, bias (else *bc = NULL). On an error all three are NULL. */
dt_status dt_conv_dense_operands(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                 dt_tensor **xc, dt_tensor **wc, dt_tensor **bc);
/* A convolution node's saved input and weight (*xs, *ws: borrowed, for
 * their shapes) and contiguous copies of them and of grad_out (*x, *w, *dy:
 * the caller releases them; NULL where an error stopped the copies). */
dt_status dt_conv_backward_operands(dt_node *node, const dt_tensor *grad_out, dt_tensor **xs,
                                    dt_tensor **ws, dt_tensor **x, dt_tensor **w,
                                    dt_tensor **dy);

/* Records the node of a convolution's output *y: inputs x, w and, when
 * given, bias; x and w saved for backward. On failure *y is released. */
dt_status dt_conv_record(const char *name, dt_backward_fn backward, const dt_tensor *x,
                         const dt_tensor *w, const dt_tensor *bias, dt_tensor **y,
                         dt_node **node);

/* ------------------------------------------------------------ conv_algo.c */

/* y (N, O, OH, OW) = conv(x, w) + bias (bias may be NULL). */
dt_status dt_conv_forward_pass(const dt_conv_geom *g, const float *x, const float *w,
                               const float *bias, float *y);
/* dw (O, Cg, kh, kw) = the weight gradient for dy (N, O, OH, OW). */
dt_status dt_conv_weight_grad_pass(const dt_conv_geom *g, const float *x, const float *dy,
                                   float *dw);
/* dx (N, C, H, W) = the input gradient for dy. */
dt_status dt_conv_input_grad_pass(const dt_conv_geom *g, const float *w, const float *dy,
                                  float *dx);
/* Whether the products go to OpenBLAS (DISTILL_CONV_BLAS=1, the baseline
 * of the benchmarks) rather than the engine's GEMM. */
bool dt_conv_use_blas(void);

/* ------------------------------------------------------------ conv_gemm.c */

dt_status dt_conv_gemm_forward(const dt_conv_geom *g, const float *x, const float *w,
                               const float *bias, float *y);
dt_status dt_conv_gemm_weight_grad(const dt_conv_geom *g, const float *x, const float *dy,
                                   float *dw);
dt_status dt_conv_gemm_input_grad(const dt_conv_geom *g, const float *w, const float *dy,
                                  float *dx);

/* ------------------------------------------------------- conv_depthwise.c */

void dt_conv_depthwise_forward(const dt_conv_geom *g, const float *x, const float *w,
                               const float *bias, float *y);
/* dx and dw (either may be NULL) of a depthwise convolution. */
dt_status dt_conv_depthwise_backward(const dt_conv_geom *g, const float *x, const float *w,
                                     const float *dy, float *dx, float *dw);

#endif

/* conv_transpose.c - differentiable transposed 2-d convolution (NCHW).
 *
 * conv_transpose2d is the adjoint of conv2d in its input: with the weight
 * (Cin, Cout/groups, kh, kw) read as a conv2d weight (O = Cin, Cg =
 * Cout/groups), the transposed op's output y (N, Cout, OH, OW) plays the
 * conv2d input and its input x (N, Cin, H, W) the conv2d output. So the
 * forward is conv2d's backward-data, the input gradient is conv2d's forward
 * and the weight gradient is conv2d's backward-weight with x and dy
 * swapped (conv.h: dt_conv_transpose_geom_of). */
#include "conv.h"

#include <string.h>

static dt_status conv_transpose_backward(dt_node *node, const dt_tensor *grad_out,
                                         dt_tensor **gi)
{
    dt_tensor *xs = NULL, *ws = NULL, *x, *w, *dy;
    dt_conv_geom g = {0};
    dt_status st = dt_conv_backward_operands(node, grad_out, &xs, &ws, &x, &w, &dy);
    if (st == DT_OK)
        st = dt_conv_transpose_geom_of(xs, ws, NULL, &node->iarg[0], &node->iarg[2],
                                       &node->iarg[4], &node->iarg[6], node->iarg[8], &g);
    bool need_x = node->needs_grad[0], need_w = node->needs_grad[1];
    bool need_b = node->ninputs > 2 && node->needs_grad[2];
    if (st == DT_OK && need_x)
        st = dt_zeros(DT_FLOAT32, 4, xs->shape, &gi[0]);
    if (st == DT_OK && need_w)
        st = dt_zeros(DT_FLOAT32, 4, ws->shape, &gi[1]);
    if (st == DT_OK && need_b)
        st = dt_empty(DT_FLOAT32, 1, &g.C, &gi[2]);
    bool work = g.N > 0 && g.O > 0 && g.C > 0;
    if (st == DT_OK && work && need_w) {
        DT_PROF_BEGIN(t0);
        st = dt_conv_weight_grad_pass(&g, dt_f32(dy), dt_f32(x), dt_f32(gi[1]));
        DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
    }
    if (st == DT_OK && work && need_x) {
        DT_PROF_BEGIN(t0);
        st = dt_conv_forward_pass(&g, dt_f32(dy), dt_f32(w), NULL, dt_f32(gi[0]));
        DT_PROF_END(DT_PROF_CONV_BWD_DATA, t0);
    }
    if (st == DT_OK && need_b)
        dt_conv_bias_grad(dt_f32(dy), g.N, g.C, g.H * g.W, dt_f32(gi[2]));
    dt_tensor_release(x);
    dt_tensor_release(w);
    dt_tensor_release(dy);
    return st;
}

dt_status dt_f_conv_transpose2d(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                const int64_t stride[2], const int64_t padding[2],
                                const int64_t output_padding[2], const int64_t dilation[2],
                                int64_t groups, dt_tensor **out)
{
    *out = NULL;
    dt_conv_geom g;
    dt_status st = dt_conv_transpose_geom_of(x, w, bias, stride, padding, output_padding,
                                             dilation, groups, &g);
    if (st)
        return st;
    dt_tensor *xc, *wc, *bc, *y = NULL;
    st = dt_conv_dense_operands(x, w, bias, &xc, &wc, &bc);
    int64_t shape[4] = {g.N, g.C, g.H, g.W};
    if (st == DT_OK)
        st = dt_zeros(DT_FLOAT32, 4, shape, &y);
    DT_PROF_BEGIN(t0);
    if (st == DT_OK && g.N > 0 && g.C > 0) {
        float *yp = dt_f32(y);
        if (g.O > 0)
            st = dt_conv_input_grad_pass(&g, dt_f32(wc), dt_f32(xc), yp);
        if (st == DT_OK && bc)
            dt_conv_add_bias(yp, dt_f32(bc), g.N, g.C, g.H * g.W);
    }
    DT_PROF_END(DT_PROF_CONV_FWD, t0);
    dt_tensor_release(xc);
    dt_tensor_release(wc);
    dt_tensor_release(bc);
    dt_node *node = NULL;
    if (st == DT_OK)
        st = dt_conv_record("ConvTranspose2dBackward", conv_transpose_backward, x, w, bias, &y,
                            &node);
    else
        dt_tensor_release(y);
    if (st)
        return st;
    if (node) {
        node->iarg[0] = g.sh, node->iarg[1] = g.sw, node->iarg[2] = g.ph, node->iarg[3] = g.pw;
        node->iarg[4] = output_padding[0], node->iarg[5] = output_padding[1];
        node->iarg[6] = g.dh, node->iarg[7] = g.dw, node->iarg[8] = g.groups;
    }
    *out = y;
    return DT_OK;
}

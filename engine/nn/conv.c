/* conv.c - differentiable 2-d convolution (NCHW): the op and its backward
 * (conv.h lists the files that compute it). Forward and both gradients run
 * as separate passes, each timed under its own profile kind; the pass
 * picks the algorithm (conv_algo.c), except for depthwise convolutions,
 * whose direct kernel computes both gradients in one pass. */
#include "conv.h"

#include <string.h>

void dt_conv_bias_grad(const float *dy, int64_t N, int64_t C, int64_t plane, float *db)
{
    DT_PROF_BEGIN(t0);
    #pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < C; c++) {
        double s = 0.0;
        for (int64_t n = 0; n < N; n++) {
            const float *row = dy + (n * C + c) * plane;
            float part = 0.0f;
            for (int64_t p = 0; p < plane; p++)
                part += row[p];
            s += part;
        }
        db[c] = (float)s;
    }
    DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
}

void dt_conv_add_bias(float *y, const float *bias, int64_t N, int64_t C, int64_t plane)
{
    #pragma omp parallel for schedule(static)
    for (int64_t q = 0; q < N * C; q++) {
        float *row = y + q * plane, b = bias[q % C];
        for (int64_t p = 0; p < plane; p++)
            row[p] += b;
    }
}

dt_status dt_conv_dense_operands(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                 dt_tensor **xc, dt_tensor **wc, dt_tensor **bc)
{
    *xc = *wc = *bc = NULL;
    dt_status st = dt_contiguous((dt_tensor *)x, xc);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)w, wc);
    if (st == DT_OK && bias)
        st = dt_contiguous((dt_tensor *)bias, bc);
    if (st) {
        dt_tensor_release(*xc);
        dt_tensor_release(*wc);
        *xc = *wc = NULL;
    }
    return st;
}

dt_status dt_conv_backward_operands(dt_node *node, const dt_tensor *grad_out, dt_tensor **xs,
                                    dt_tensor **ws, dt_tensor **x, dt_tensor **w, dt_tensor **dy)
{
    *x = *w = *dy = NULL;
    dt_status st = dt_node_saved(node, 0, xs);
    if (st == DT_OK)
        st = dt_node_saved(node, 1, ws);
    if (st == DT_OK)
        st = dt_contiguous(*xs, x);
    if (st == DT_OK)
        st = dt_contiguous(*ws, w);
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)grad_out, dy);
    return st;
}

dt_status dt_conv_record(const char *name, dt_backward_fn backward, const dt_tensor *x,
                         const dt_tensor *w, const dt_tensor *bias, dt_tensor **y,
                         dt_node **node)
{
    return dt_record_or_drop(name, backward, bias ? 3 : 2, (const dt_tensor *[]){x, w, bias}, 2,
                             (const dt_tensor *[]){x, w}, y, node);
}

/* Whether a convolution has products to compute: with no images, no
 * output channels or no input channels (a valid, empty convolution) the
 * output is the bias alone and the gradients are zeros or empty. */
static bool has_work(const dt_conv_geom *g) { return g->N > 0 && g->O > 0 && g->C > 0; }

static dt_status conv_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    dt_tensor *xs = NULL, *ws = NULL, *x, *w, *dy;
    dt_conv_geom g = {0};
    dt_status st = dt_conv_backward_operands(node, grad_out, &xs, &ws, &x, &w, &dy);
    if (st == DT_OK)
        st = dt_conv_geom_of(xs, ws, NULL, &node->iarg[0], &node->iarg[2], &node->iarg[4],
                             node->iarg[6], &g);
    bool need_x = node->needs_grad[0], need_w = node->needs_grad[1];
    bool need_b = node->ninputs > 2 && node->needs_grad[2];
    bool work = st == DT_OK && has_work(&g);
    if (st == DT_OK && need_x)
        st = work ? dt_empty(DT_FLOAT32, 4, xs->shape, &gi[0])
                  : dt_zeros(DT_FLOAT32, 4, xs->shape, &gi[0]);
    if (st == DT_OK && need_w)
        st = work ? dt_empty(DT_FLOAT32, 4, ws->shape, &gi[1])
                  : dt_zeros(DT_FLOAT32, 4, ws->shape, &gi[1]);
    if (st == DT_OK && need_b)
        st = dt_empty(DT_FLOAT32, 1, &g.O, &gi[2]);
    if (st == DT_OK && work && (need_x || need_w)) {
        float *dx = need_x ? dt_f32(gi[0]) : NULL, *dw = need_w ? dt_f32(gi[1]) : NULL;
        if (g.depthwise) {
            DT_PROF_BEGIN(t0);
            st = dt_conv_depthwise_backward(&g, dt_f32(x), dt_f32(w), dt_f32(dy), dx, dw);
            DT_PROF_END(DT_PROF_CONV_BWD_DATA, t0);
        } else {
            if (dw) {
                DT_PROF_BEGIN(t0);
                st = dt_conv_weight_grad_pass(&g, dt_f32(x), dt_f32(dy), dw);
                DT_PROF_END(DT_PROF_CONV_BWD_WEIGHT, t0);
            }
            if (st == DT_OK && dx) {
                DT_PROF_BEGIN(t0);
                st = dt_conv_input_grad_pass(&g, dt_f32(w), dt_f32(dy), dx);
                DT_PROF_END(DT_PROF_CONV_BWD_DATA, t0);
            }
        }
    }
    if (st == DT_OK && need_b)
        dt_conv_bias_grad(dt_f32(dy), g.N, g.O, g.P, dt_f32(gi[2]));
    dt_tensor_release(x);
    dt_tensor_release(w);
    dt_tensor_release(dy);
    return st;
}

dt_status dt_f_conv2d(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                      const int64_t stride[2], const int64_t padding[2],
                      const int64_t dilation[2], int64_t groups, dt_tensor **out)
{
    *out = NULL;
    dt_conv_geom g;
    dt_status st = dt_conv_geom_of(x, w, bias, stride, padding, dilation, groups, &g);
    if (st)
        return st;
    dt_tensor *xc, *wc, *bc, *y = NULL;
    st = dt_conv_dense_operands(x, w, bias, &xc, &wc, &bc);
    int64_t shape[4] = {g.N, g.O, g.OH, g.OW};
    bool work = has_work(&g);
    if (st == DT_OK)
        st = work ? dt_empty(DT_FLOAT32, 4, shape, &y) : dt_zeros(DT_FLOAT32, 4, shape, &y);
    DT_PROF_BEGIN(t0);
    const float *bp = bc ? dt_f32(bc) : NULL;
    if (st == DT_OK && work) {
        if (g.depthwise)
            dt_conv_depthwise_forward(&g, dt_f32(xc), dt_f32(wc), bp, dt_f32(y));
        else
            st = dt_conv_forward_pass(&g, dt_f32(xc), dt_f32(wc), bp, dt_f32(y));
    } else if (st == DT_OK && bp) {
        dt_conv_add_bias(dt_f32(y), bp, g.N, g.O, g.P);
    }
    DT_PROF_END(DT_PROF_CONV_FWD, t0);
    dt_tensor_release(xc);
    dt_tensor_release(wc);
    dt_tensor_release(bc);
    dt_node *node = NULL;
    if (st == DT_OK)
        st = dt_conv_record("Conv2dBackward", conv_backward, x, w, bias, &y, &node);
    else
        dt_tensor_release(y);
    if (st)
        return st;
    if (node) {
        node->iarg[0] = g.sh, node->iarg[1] = g.sw, node->iarg[2] = g.ph, node->iarg[3] = g.pw;
        node->iarg[4] = g.dh, node->iarg[5] = g.dw, node->iarg[6] = g.groups;
    }
    *out = y;
    return DT_OK;
}

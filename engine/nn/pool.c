/* pool.c - differentiable 2-d max, average and adaptive average pooling.
 *
 * Inputs are (N, C, H, W) or (C, H, W); every leading index is one plane,
 * and planes are spread over OpenMP threads. Output sizes follow PyTorch:
 *   out = floor_or_ceil((in + 2*pad - k) / stride) + 1,
 * and with ceil_mode a last window that would start in the right padding
 * (or beyond) is dropped. Max pooling saves the argmax of each window (the
 * flat position inside its plane, int64) for backward. */
#include "distill.h"
#include "autograd/op.h"
#include "core/size.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct pool_geom {
    int64_t planes, H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw;
    bool ceil_mode, count_include_pad;
    bool adaptive;           /* windows from PyTorch's adaptive rule, not k/s/p */
} pool_geom;

/* For 0 <= 2p <= k (checked first), so that no step leaves int64_t even
 * for kernels, strides and paddings near 2^63. */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode)
{
    int64_t span = in - (k - 2 * p);
    if (span < 0)
        return 0;
    int64_t n = span / s + 1;
    if (ceil_mode && span % s != 0) {
        /* the last window must start inside the input or the left padding */
        bool big = false;
        int64_t start = dt_size_mul(n, s, &big);
        if (!big && start < in + p)
            n++;
    }
    return n;
}

/* The end of a window starting at `start` (>= -p) of size k, clipped to
 * `limit`, computed without forming start + k. */
static int64_t window_end(int64_t start, int64_t k, int64_t limit)
{
    return k >= limit - start ? limit : start + k;
}

static dt_status check_input(const dt_tensor *x, const char *what)
{
    if (x->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "%s needs a float32 input, got %s", what,
                       dt_dtype_name(x->dtype));
    if (x->ndim != 3 && x->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "%s expects a 3-d (C, H, W) or 4-d (N, C, H, W) input, "
                       "got %d-d", what, x->ndim);
    return DT_OK;
}

static void plane_dims(const dt_tensor *x, pool_geom *g)
{
    g->planes = 1;
    for (int d = 0; d < x->ndim - 2; d++)
        g->planes *= x->shape[d];
    g->H = x->shape[x->ndim - 2];
    g->W = x->shape[x->ndim - 1];
}

static dt_status window_geom(const dt_tensor *x, const int64_t *kernel, const int64_t *stride,
                             const int64_t *padding, bool ceil_mode, const char *what,
                             pool_geom *g)
{
    dt_status st = check_input(x, what);
    if (st)
        return st;
    memset(g, 0, sizeof *g);
    plane_dims(x, g);
    g->kh = kernel[0], g->kw = kernel[1], g->sh = stride[0], g->sw = stride[1];
    g->ph = padding[0], g->pw = padding[1], g->ceil_mode = ceil_mode;
    if (g->kh <= 0 || g->kw <= 0)
        return dt_fail(DT_ERR_ARG, "%s: kernel_size must be positive, got (%lld, %lld)", what,
                       (long long)g->kh, (long long)g->kw);
    if (g->sh <= 0 || g->sw <= 0)
        return dt_fail(DT_ERR_ARG, "%s: stride must be positive, got (%lld, %lld)", what,
                       (long long)g->sh, (long long)g->sw);
    if (g->ph < 0 || g->pw < 0 || g->ph > g->kh / 2 || g->pw > g->kw / 2)
        return dt_fail(DT_ERR_ARG, "%s: padding must be between 0 and half the kernel size, "
                       "got padding (%lld, %lld) for kernel (%lld, %lld)", what,
                       (long long)g->ph, (long long)g->pw, (long long)g->kh, (long long)g->kw);
    g->OH = out_size(g->H, g->kh, g->sh, g->ph, ceil_mode);
    g->OW = out_size(g->W, g->kw, g->sw, g->pw, ceil_mode);
    if (g->OH <= 0 || g->OW <= 0)
        return dt_fail(DT_ERR_SHAPE, "%s: kernel (%lld x %lld) is bigger than the padded input "
                       "(%lld x %lld plus padding (%lld, %lld) on each side)", what,
                       (long long)g->kh, (long long)g->kw, (long long)g->H, (long long)g->W,
                       (long long)g->ph, (long long)g->pw);
    return DT_OK;
}

static dt_status new_output(const dt_tensor *x, const pool_geom *g, dt_dtype dtype, dt_tensor **out)
{
    int64_t shape[4];
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    shape[x->ndim - 2] = g->OH;
    shape[x->ndim - 1] = g->OW;
    return dt_empty(dtype, x->ndim, shape, out);
}

static void save_geom(dt_node *node, const pool_geom *g)
{
    int64_t *a = node->iarg;
    a[0] = g->kh, a[1] = g->kw, a[2] = g->sh, a[3] = g->sw, a[4] = g->ph, a[5] = g->pw;
    a[6] = g->ceil_mode, a[7] = g->count_include_pad, a[8] = g->adaptive;
    a[9] = g->OH, a[10] = g->OW;
}

/* Rebuild the geometry in backward from the node's input shape and iarg. */
static void load_geom(const dt_node *node, pool_geom *g)
{
    const int64_t *a = node->iarg;
    memset(g, 0, sizeof *g);
    int nd = node->input_ndims[0];
    g->planes = 1;
    for (int d = 0; d < nd - 2; d++)
        g->planes *= node->input_shapes[0][d];
    g->H = node->input_shapes[0][nd - 2];
    g->W = node->input_shapes[0][nd - 1];
    g->kh = a[0], g->kw = a[1], g->sh = a[2], g->sw = a[3], g->ph = a[4], g->pw = a[5];
    g->ceil_mode = a[6], g->count_include_pad = a[7], g->adaptive = a[8];
    g->OH = a[9], g->OW = a[10];
}

static dt_status grad_input(const dt_node *node, dt_tensor **gx)
{
    return dt_zeros(DT_FLOAT32, node->input_ndims[0], node->input_shapes[0], gx);
}

/* ------------------------------------------------------------------ max */

static void max_plane(const pool_geom *g, const float *x, float *y, int64_t *idx)
{
    for (int64_t oh = 0; oh < g->OH; oh++) {
        int64_t h0 = oh * g->sh - g->ph, h1 = window_end(h0, g->kh, g->H);
        h0 = h0 < 0 ? 0 : h0;
        for (int64_t ow = 0; ow < g->OW; ow++) {
            int64_t w0 = ow * g->sw - g->pw, w1 = window_end(w0, g->kw, g->W);
            w0 = w0 < 0 ? 0 : w0;
            float best = -INFINITY;
            int64_t at = h0 * g->W + w0;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) {
                    float v = x[h * g->W + w];
                    if (v > best || isnan(v)) {   /* NaN wins and sticks, as in PyTorch */
                        best = v;
                        at = h * g->W + w;
                        if (isnan(v))
                            goto done;
                    }
                }
        done:
            y[oh * g->OW + ow] = best;
            idx[oh * g->OW + ow] = at;
        }
    }
}

static dt_status max_pool_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_POOL);
    dt_tensor *idx, *gy = NULL;
    dt_status st = dt_node_saved(node, 0, &idx);
    if (st)
        return st;
    pool_geom g;
    load_geom(node, &g);
    st = dt_contiguous((dt_tensor *)grad_out, &gy);
    if (st == DT_OK)
        st = grad_input(node, &gi[0]);
    if (st == DT_OK) {
        const float *dy = dt_f32(gy);
        const int64_t *ix = dt_i64(idx);
        float *dx = dt_f32(gi[0]);
        int64_t op = g.OH * g.OW, ip = g.H * g.W;
        #pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < g.planes; q++)
            for (int64_t k = 0; k < op; k++)
                dx[q * ip + ix[q * op + k]] += dy[q * op + k];
    }
    dt_tensor_release(gy);
    return st;
}

dt_status dt_f_max_pool2d(const dt_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                          const int64_t padding[2], bool ceil_mode, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_POOL);
    *out = NULL;
    pool_geom g;
    dt_status st = window_geom(x, kernel, stride, padding, ceil_mode, "max_pool2d", &g);
    if (st)
        return st;
    dt_tensor *xc = NULL, *y = NULL, *idx = NULL;
    st = dt_contiguous((dt_tensor *)x, &xc);
    if (st == DT_OK)
        st = new_output(x, &g, DT_FLOAT32, &y);
    if (st == DT_OK)
        st = new_output(x, &g, DT_INT64, &idx);
    if (st == DT_OK) {
        const float *xp = dt_f32(xc);
        float *yp = dt_f32(y);
        int64_t *ip = dt_i64(idx);
        int64_t op = g.OH * g.OW, inp = g.H * g.W;
        #pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < g.planes; q++)
            max_plane(&g, xp + q * inp, yp + q * op, ip + q * op);
    }
    dt_node *node = NULL;
    if (st == DT_OK)
        st = dt_record("MaxPool2dBackward", max_pool_backward, 1, (const dt_tensor *[]){x}, 1,
                       (const dt_tensor *[]){idx}, y, &node);
    dt_tensor_release(xc);
    dt_tensor_release(idx);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    if (node)
        save_geom(node, &g);
    *out = y;
    return DT_OK;
}

/* -------------------------------------------------------------- average */

/* The window of output (oh, ow) clipped to the input, and its divisor. */
static void avg_window(const pool_geom *g, int64_t oh, int64_t ow, int64_t *h0, int64_t *h1,
                       int64_t *w0, int64_t *w1, float *divisor)
{
    if (g->adaptive) {
        /* in 128 bits: an output and an input size may each be near 2^59 */
        typedef __int128 i128;
        *h0 = (int64_t)((i128)oh * g->H / g->OH);
        *h1 = (int64_t)(((i128)(oh + 1) * g->H + g->OH - 1) / g->OH);
        *w0 = (int64_t)((i128)ow * g->W / g->OW);
        *w1 = (int64_t)(((i128)(ow + 1) * g->W + g->OW - 1) / g->OW);
        *divisor = (float)((double)(*h1 - *h0) * (double)(*w1 - *w0));
        return;
    }
    int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;
    /* the padded extent counts for count_include_pad, but not past it */
    int64_t he = window_end(hs, g->kh, g->H + g->ph), we = window_end(ws, g->kw, g->W + g->pw);
    double padded = (double)(he - hs) * (double)(we - ws);
    *h0 = hs < 0 ? 0 : hs, *w0 = ws < 0 ? 0 : ws;
    *h1 = he > g->H ? g->H : he, *w1 = we > g->W ? g->W : we;
    *divisor = (float)(g->count_include_pad ? padded : (double)(*h1 - *h0) * (double)(*w1 - *w0));
}

static void avg_plane(const pool_geom *g, const float *x, float *y)
{
    for (int64_t oh = 0; oh < g->OH; oh++)
        for (int64_t ow = 0; ow < g->OW; ow++) {
            int64_t h0, h1, w0, w1;
            float div;
            avg_window(g, oh, ow, &h0, &h1, &w0, &w1, &div);
            float s = 0.0f;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    s += x[h * g->W + w];
            y[oh * g->OW + ow] = div > 0 ? s / div : 0.0f;
        }
}

static void avg_plane_backward(const pool_geom *g, const float *dy, float *dx)
{
    for (int64_t oh = 0; oh < g->OH; oh++)
        for (int64_t ow = 0; ow < g->OW; ow++) {
            int64_t h0, h1, w0, w1;
            float div;
            avg_window(g, oh, ow, &h0, &h1, &w0, &w1, &div);
            if (div <= 0)
                continue;
            float v = dy[oh * g->OW + ow] / div;
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++)
                    dx[h * g->W + w] += v;
        }
}

static dt_status avg_pool_backward(dt_node *node, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_POOL);
    pool_geom g;
    load_geom(node, &g);
    dt_tensor *gy = NULL;
    dt_status st = dt_contiguous((dt_tensor *)grad_out, &gy);
    if (st == DT_OK)
        st = grad_input(node, &gi[0]);
    if (st == DT_OK) {
        const float *dy = dt_f32(gy);
        float *dx = dt_f32(gi[0]);
        int64_t op = g.OH * g.OW, ip = g.H * g.W;
        #pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < g.planes; q++)
            avg_plane_backward(&g, dy + q * op, dx + q * ip);
    }
    dt_tensor_release(gy);
    return st;
}

static dt_status avg_forward(const dt_tensor *x, const pool_geom *g, const char *name,
                             dt_tensor **out)
{
    dt_tensor *xc = NULL, *y = NULL;
    dt_status st = dt_contiguous((dt_tensor *)x, &xc);
    if (st == DT_OK)
        st = new_output(x, g, DT_FLOAT32, &y);
    if (st == DT_OK) {
        const float *xp = dt_f32(xc);
        float *yp = dt_f32(y);
        int64_t op = g->OH * g->OW, ip = g->H * g->W;
        #pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < g->planes; q++)
            avg_plane(g, xp + q * ip, yp + q * op);
    }
    dt_tensor_release(xc);
    dt_node *node = NULL;
    if (st == DT_OK)
        st = dt_record(name, avg_pool_backward, 1, (const dt_tensor *[]){x}, 0, NULL, y, &node);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    if (node)
        save_geom(node, g);
    *out = y;
    return DT_OK;
}

dt_status dt_f_avg_pool2d(const dt_tensor *x, const int64_t kernel[2], const int64_t stride[2],
                          const int64_t padding[2], bool ceil_mode, bool count_include_pad,
                          dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_POOL);
    *out = NULL;
    pool_geom g;
    dt_status st = window_geom(x, kernel, stride, padding, ceil_mode, "avg_pool2d", &g);
    if (st)
        return st;
    g.count_include_pad = count_include_pad;
    return avg_forward(x, &g, "AvgPool2dBackward", out);
}

dt_status dt_f_adaptive_avg_pool2d(const dt_tensor *x, int64_t out_h, int64_t out_w,
                                   dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_POOL);
    *out = NULL;
    dt_status st = check_input(x, "adaptive_avg_pool2d");
    if (st)
        return st;
    if (out_h <= 0 || out_w <= 0)
        return dt_fail(DT_ERR_ARG, "adaptive_avg_pool2d: output size must be positive, got "
                       "(%lld, %lld)", (long long)out_h, (long long)out_w);
    pool_geom g;
    memset(&g, 0, sizeof g);
    plane_dims(x, &g);
    if (g.H <= 0 || g.W <= 0)
        return dt_fail(DT_ERR_SHAPE, "adaptive_avg_pool2d: input plane is empty (%lld x %lld)",
                       (long long)g.H, (long long)g.W);
    g.OH = out_h, g.OW = out_w, g.adaptive = true;
    return avg_forward(x, &g, "AdaptiveAvgPool2dBackward", out);
}

/* activation.c - relu6, leaky_relu, softmax, log_softmax and dropout, each
 * forward kernel next to its backward.
 *
 * Kernels read a contiguous copy of their input (the input itself when it
 * already is contiguous), so any strides work, and write fresh contiguous
 * float32 results. Parallel loops only split independent elements or
 * lanes: every output is computed by one thread in a fixed order, so
 * results do not depend on the thread count. */
#include "distill.h"
#include "autograd/op.h"
#include "autograd/kernel_util.h"

#include <math.h>

/* Below this many elements OpenMP's start-up costs more than it saves. */
#define PAR_MIN 32768

static dt_status check_float(const dt_tensor *x)
{
    if (x->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "expected a float32 tensor, got %s",
                       dt_dtype_name(x->dtype));
    return DT_OK;
}

/* ------------------------------------------------ relu6 and leaky_relu */

enum { ACT_RELU6, ACT_LEAKY_RELU };

/* Written with comparisons rather than fminf/fmaxf so NaN passes through. */
static float act_value(int kind, float v, float slope)
{
    if (kind == ACT_RELU6)
        return v < 0.0f ? 0.0f : (v > 6.0f ? 6.0f : v);
    return v > 0.0f ? v : v * slope;
}

/* As torch: relu6 (hardtanh) passes gradient only strictly inside (0, 6);
 * leaky_relu uses the slope for v <= 0. */
static float act_slope(int kind, float v, float slope)
{
    if (kind == ACT_RELU6)
        return v > 0.0f && v < 6.0f ? 1.0f : 0.0f;
    return v > 0.0f ? 1.0f : slope;
}

static dt_status act_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    if (!n->needs_grad[0])
        return DT_OK;
    int kind = (int)n->iarg[0];
    float slope = (float)n->darg[0];
    ku_backward b;
    dt_status st = ku_backward_begin(n, grad_out, gi, 1, 1, 1, &b);
    if (st == DT_OK) {
        const float *xp = dt_f32(b.dense[0]), *gp = dt_f32(b.grad);
        float *out = dt_f32(gi[0]);
        int64_t count = dt_numel(b.dense[0]);
        #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
        for (int64_t i = 0; i < count; i++)
            out[i] = gp[i] * act_slope(kind, xp[i], slope);
    }
    ku_backward_end(&b);
    return st;
}

static dt_status activation(int kind, const char *name, const dt_tensor *x,
                            double slope, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    dt_tensor *xc, *y;
    dt_status st = check_float(x);
    if (st || (st = ku_dense_and_like(x, &xc, &y)))
        return st;
    const float *xp = dt_f32(xc);
    float *yp = dt_f32(y);
    int64_t count = dt_numel(xc);
    #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
    for (int64_t i = 0; i < count; i++)
        yp[i] = act_value(kind, xp[i], (float)slope);
    dt_tensor_release(xc);
    dt_node *node;
    if ((st = ku_record1(name, act_backward, x, x, y, &node)))
        return st;
    if (node) {
        node->iarg[0] = kind;
        node->darg[0] = slope;
    }
    *out = y;
    return DT_OK;
}

dt_status dt_f_relu6(const dt_tensor *x, dt_tensor **out)
{
    return activation(ACT_RELU6, "Relu6Backward", x, 0.0, out);
}

dt_status dt_f_leaky_relu(const dt_tensor *x, double negative_slope, dt_tensor **out)
{
    return activation(ACT_LEAKY_RELU, "LeakyReluBackward", x, negative_slope, out);
}

/* ------------------------------------------------ softmax, log_softmax */

/* One lane: softmax, or log_softmax, of n values `stride` apart. The
 * maximum is subtracted first so exp never overflows; sums are in double. */
static void softmax_lane(const float *x, float *y, int64_t n, int64_t stride, bool log_space)
{
    float m = -INFINITY;
    for (int64_t k = 0; k < n; k++)
        m = fmaxf(m, x[k * stride]);
    double sum = 0;
    for (int64_t k = 0; k < n; k++)
        sum += expf(x[k * stride] - m);
    if (log_space) {
        float lse = (float)(m + log(sum));
        for (int64_t k = 0; k < n; k++)
            y[k * stride] = x[k * stride] - lse;
    } else {
        float inv = (float)(1.0 / sum);
        for (int64_t k = 0; k < n; k++)
            y[k * stride] = expf(x[k * stride] - m) * inv;
    }
}

/* Backward of one lane from the saved output y:
 *   softmax:     dx = y * (g - sum_k g_k y_k)
 *   log_softmax: dx = g - exp(y) * sum_k g_k */
static void softmax_lane_backward(const float *y, const float *g, float *dx, int64_t n,
                                  int64_t stride, bool log_space)
{
    double acc = 0;
    for (int64_t k = 0; k < n; k++)
        acc += log_space ? (double)g[k * stride] : (double)g[k * stride] * y[k * stride];
    for (int64_t k = 0; k < n; k++) {
        int64_t j = k * stride;
        dx[j] = log_space ? (float)(g[j] - expf(y[j]) * acc) : (float)(y[j] * (g[j] - acc));
    }
}

static dt_status softmax_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    if (!n->needs_grad[0])
        return DT_OK;
    bool log_space = n->iarg[1] != 0;
    ku_backward b;   /* saved: the output, contiguous */
    dt_status st = ku_backward_begin(n, grad_out, gi, 1, 0, 1, &b);
    if (st == DT_OK) {
        const dt_tensor *y = b.saved[0];
        ku_lanes l = ku_lanes_of(y, (int)n->iarg[0]);
        const float *yp = dt_f32(y), *gp = dt_f32(b.grad);
        float *dx = dt_f32(gi[0]);
        int64_t count = l.outer * l.inner;
        #pragma omp parallel for schedule(static) if (count * l.n >= PAR_MIN)
        for (int64_t lane = 0; lane < count; lane++) {
            int64_t base = ku_lane_base(&l, lane);
            softmax_lane_backward(yp + base, gp + base, dx + base, l.n, l.inner, log_space);
        }
    }
    ku_backward_end(&b);
    return st;
}

static dt_status softmax_common(const dt_tensor *x, int dim, bool log_space, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_LOSS);
    *out = NULL;
    dt_status st = check_float(x);
    if (st || (st = dt_normalize_dim(&dim, x->ndim)))
        return st;
    dt_tensor *xc, *y;
    if ((st = ku_dense_and_like(x, &xc, &y)))
        return st;
    ku_lanes l = ku_lanes_of(xc, dim);
    const float *xp = dt_f32(xc);
    float *yp = dt_f32(y);
    int64_t count = l.outer * l.inner;
    #pragma omp parallel for schedule(static) if (count * l.n >= PAR_MIN)
    for (int64_t lane = 0; lane < count; lane++) {
        int64_t base = ku_lane_base(&l, lane);
        softmax_lane(xp + base, yp + base, l.n, l.inner, log_space);
    }
    dt_tensor_release(xc);
    /* Backward needs only the output, so that is what is saved. */
    dt_node *node;
    st = ku_record1(log_space ? "LogSoftmaxBackward" : "SoftmaxBackward", softmax_backward, x, y, y,
                 &node);
    if (st)
        return st;
    if (node) {
        node->iarg[0] = dim;
        node->iarg[1] = log_space;
    }
    *out = y;
    return DT_OK;
}

dt_status dt_f_softmax(const dt_tensor *x, int dim, dt_tensor **out)
{
    return softmax_common(x, dim, false, out);
}

dt_status dt_f_log_softmax(const dt_tensor *x, int dim, dt_tensor **out)
{
    return softmax_common(x, dim, true, out);
}

/* ------------------------------------------------------------- dropout */

static dt_status dropout_backward(dt_node *n, const dt_tensor *grad_out, dt_tensor **gi)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    if (!n->needs_grad[0])
        return DT_OK;
    ku_backward b;   /* saved: the mask, contiguous: 0 or 1/(1-p) */
    dt_status st = ku_backward_begin(n, grad_out, gi, 1, 0, 1, &b);
    if (st == DT_OK) {
        const dt_tensor *mask = b.saved[0];
        const float *mp = dt_f32(mask), *gp = dt_f32(b.grad);
        float *dx = dt_f32(gi[0]);
        int64_t count = dt_numel(mask);
        #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
        for (int64_t i = 0; i < count; i++)
            dx[i] = gp[i] * mp[i];
    }
    ku_backward_end(&b);
    return st;
}

dt_status dt_f_dropout(const dt_tensor *x, double p, bool training, dt_rng *rng, dt_tensor **out)
{
    DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);
    *out = NULL;
    dt_status st = check_float(x);
    if (st)
        return st;
    if (!(p >= 0.0 && p <= 1.0))
        return dt_fail(DT_ERR_ARG, "dropout probability must be between 0 and 1, got %g", p);
    /* Identity: a new header on the same data, still on the tape. */
    if (!training || p == 0.0)
        return dt_f_alias((dt_tensor *)x, out);
    if (!rng)
        rng = dt_default_rng();

    dt_tensor *xc, *mask = NULL, *y = NULL;
    if ((st = ku_dense(x, &xc)))
        return st;
    st = dt_zeros(DT_FLOAT32, x->ndim, x->shape, &mask);
    if (st == DT_OK)
        st = dt_empty(DT_FLOAT32, x->ndim, x->shape, &y);
    if (st) {
        dt_tensor_release(xc);
        dt_tensor_release(mask);
        return st;
    }
    int64_t count = dt_numel(xc);
    float *mp = dt_f32(mask), *yp = dt_f32(y);
    const float *xp = dt_f32(xc);
    /* p == 1 drops everything (the mask stays zero) and draws nothing, as
     * torch; otherwise element i keeps with probability 1 - p using word
     * offset + i of the counter-based stream, so masks depend on the seed
     * only, never on the thread count. */
    if (p < 1.0) {
        uint64_t seed = rng->seed, base = rng->offset;
        float scale = (float)(1.0 / (1.0 - p));
        #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
        for (int64_t i = 0; i < count; i++) {
            double u = (double)(dt_rng_word(seed, base + (uint64_t)i) >> 11) * 0x1.0p-53;
            mp[i] = u < p ? 0.0f : scale;
        }
        rng->offset += (uint64_t)count;
    }
    #pragma omp parallel for schedule(static) if (count >= PAR_MIN)
    for (int64_t i = 0; i < count; i++)
        yp[i] = xp[i] * mp[i];
    dt_tensor_release(xc);
    st = ku_record1("DropoutBackward", dropout_backward, x, mask, y, NULL);
    dt_tensor_release(mask);   /* the node keeps its own alias */
    if (st)
        return st;
    *out = y;
    return DT_OK;
}

/* conv_geom.c - the geometry of a convolution (conv.h): arguments checked
 * with messages naming what is wrong, output sizes, and the windows of
 * valid input columns that im2col and the direct kernels walk. */
#include "conv.h"
#include "core/size.h"

#include <string.h>

/* ceil(a / b) for b > 0 and any sign of a. */
static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The channels of all groups: the weight's channels per group (dim 1)
 * times groups, which a user may make overflow. */
static dt_status channels_of_groups(const dt_tensor *w, int64_t groups, const char *which,
                                    int64_t *out)
{
    bool big = false;
    *out = dt_size_mul(w->shape[1], groups, &big);
    if (big)
        return dt_fail(DT_ERR_ARG, "groups=%lld times the weight's %lld %s channels per group "
                       "overflows 64 bits", (long long)groups, (long long)w->shape[1], which);
    return DT_OK;
}

/* The im2col patch matrix (K x P floats per thread) must be addressable. */
static dt_status check_patches(const dt_conv_geom *g)
{
    bool big = false;
    int64_t n = dt_size_mul(g->K, g->P, &big);
    if (big || n > DT_MAX_NUMEL)
        return dt_fail(DT_ERR_ARG, "the patch matrix of %lld rows (channels x kernel) by %lld "
                       "output positions is too large", (long long)g->K, (long long)g->P);
    return DT_OK;
}

dt_status dt_conv_geom_of(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                          const int64_t stride[2], const int64_t padding[2],
                          const int64_t dilation[2], int64_t groups, dt_conv_geom *g)
{
    if (x->dtype != DT_FLOAT32 || w->dtype != DT_FLOAT32 || (bias && bias->dtype != DT_FLOAT32))
        return dt_fail(DT_ERR_DTYPE, "conv2d needs float32 tensors");
    if (x->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d input (N, C, H, W), got %d-d", x->ndim);
    if (w->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d weight (O, C/groups, kh, kw), got %d-d",
                       w->ndim);
    memset(g, 0, sizeof *g);
    g->N = x->shape[0], g->C = x->shape[1], g->H = x->shape[2], g->W = x->shape[3];
    g->O = w->shape[0], g->kh = w->shape[2], g->kw = w->shape[3];
    g->sh = stride[0], g->sw = stride[1], g->ph = padding[0], g->pw = padding[1];
    g->dh = dilation[0], g->dw = dilation[1], g->groups = groups;
    if (g->sh <= 0 || g->sw <= 0)
        return dt_fail(DT_ERR_ARG, "stride must be positive, got (%lld, %lld)",
                       (long long)g->sh, (long long)g->sw);
    if (g->dh <= 0 || g->dw <= 0)
        return dt_fail(DT_ERR_ARG, "dilation must be positive, got (%lld, %lld)",
                       (long long)g->dh, (long long)g->dw);
    if (g->ph < 0 || g->pw < 0)
        return dt_fail(DT_ERR_ARG, "padding must be non-negative, got (%lld, %lld)",
                       (long long)g->ph, (long long)g->pw);
    if (groups <= 0)
        return dt_fail(DT_ERR_ARG, "groups must be positive, got %lld", (long long)groups);
    int64_t expect_c;
    dt_status st = channels_of_groups(w, groups, "input", &expect_c);
    if (st)
        return st;
    if (expect_c != g->C)
        return dt_fail(DT_ERR_SHAPE, "input has %lld channels but weight expects %lld "
                       "(groups=%lld)", (long long)g->C, (long long)expect_c, (long long)groups);
    if (g->C % groups || g->O % groups)
        return dt_fail(DT_ERR_ARG, "input channels (%lld) and output channels (%lld) must both "
                       "be divisible by groups (%lld)", (long long)g->C, (long long)g->O,
                       (long long)groups);
    if (bias && (bias->ndim != 1 || bias->shape[0] != g->O))
        return dt_fail(DT_ERR_SHAPE, "bias must be a 1-d tensor of %lld elements", (long long)g->O);
    if (g->kh <= 0 || g->kw <= 0)
        return dt_fail(DT_ERR_SHAPE, "kernel size must be positive");
    bool big = false;
    int64_t ekh = dt_size_add(dt_size_mul(g->dh, g->kh - 1, &big), 1, &big);
    int64_t ekw = dt_size_add(dt_size_mul(g->dw, g->kw - 1, &big), 1, &big);
    int64_t padded_h = dt_size_add(g->H, dt_size_mul(2, g->ph, &big), &big);
    int64_t padded_w = dt_size_add(g->W, dt_size_mul(2, g->pw, &big), &big);
    if (big)
        return dt_fail(DT_ERR_ARG, "the geometry overflows 64 bits: input %lld x %lld, "
                       "kernel %lld x %lld, padding (%lld, %lld), dilation (%lld, %lld)",
                       (long long)g->H, (long long)g->W, (long long)g->kh, (long long)g->kw,
                       (long long)g->ph, (long long)g->pw, (long long)g->dh, (long long)g->dw);
    if (padded_h < ekh || padded_w < ekw)
        return dt_fail(DT_ERR_SHAPE, "kernel size (%lld x %lld, dilated) is bigger than the "
                       "padded input (%lld x %lld)", (long long)ekh, (long long)ekw,
                       (long long)padded_h, (long long)padded_w);
    g->OH = (padded_h - ekh) / g->sh + 1;
    g->OW = (padded_w - ekw) / g->sw + 1;
    g->Cg = g->C / groups;
    g->Og = g->O / groups;
    g->K = g->Cg * g->kh * g->kw;   /* the weight's dims: bounded (size.h) */
    int64_t out_shape[4] = {g->N, g->O, g->OH, g->OW}, out_numel;
    st = dt_shape_numel("output shape", 4, out_shape, &out_numel);
    if (st)
        return st;
    g->P = g->OH * g->OW;
    g->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
    g->depthwise = groups == g->C && groups == g->O && groups > 1;
    return check_patches(g);
}

/* Built directly (OH = H given, not derived), so output_padding rows that
 * no window reaches simply stay zero / unused. */
dt_status dt_conv_transpose_geom_of(const dt_tensor *x, const dt_tensor *w, const dt_tensor *bias,
                                    const int64_t stride[2], const int64_t padding[2],
                                    const int64_t output_padding[2], const int64_t dilation[2],
                                    int64_t groups, dt_conv_geom *g)
{
    if (x->dtype != DT_FLOAT32 || w->dtype != DT_FLOAT32 || (bias && bias->dtype != DT_FLOAT32))
        return dt_fail(DT_ERR_DTYPE, "conv_transpose2d needs float32 tensors");
    if (x->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d input (N, C, H, W), got %d-d", x->ndim);
    if (w->ndim != 4)
        return dt_fail(DT_ERR_SHAPE, "expected a 4-d weight (in_channels, out_channels/groups, "
                       "kh, kw), got %d-d", w->ndim);
    if (stride[0] <= 0 || stride[1] <= 0)
        return dt_fail(DT_ERR_ARG, "stride must be positive, got (%lld, %lld)",
                       (long long)stride[0], (long long)stride[1]);
    if (dilation[0] <= 0 || dilation[1] <= 0)
        return dt_fail(DT_ERR_ARG, "dilation must be positive, got (%lld, %lld)",
                       (long long)dilation[0], (long long)dilation[1]);
    if (padding[0] < 0 || padding[1] < 0)
        return dt_fail(DT_ERR_ARG, "padding must be non-negative, got (%lld, %lld)",
                       (long long)padding[0], (long long)padding[1]);
    for (int d = 0; d < 2; d++)
        if (output_padding[d] < 0 ||
            (output_padding[d] >= stride[d] && output_padding[d] >= dilation[d]))
            return dt_fail(DT_ERR_ARG, "output_padding must be non-negative and smaller than "
                           "either stride or dilation, got output_padding (%lld, %lld), stride "
                           "(%lld, %lld), dilation (%lld, %lld)",
                           (long long)output_padding[0], (long long)output_padding[1],
                           (long long)stride[0], (long long)stride[1],
                           (long long)dilation[0], (long long)dilation[1]);
    if (groups <= 0)
        return dt_fail(DT_ERR_ARG, "groups must be positive, got %lld", (long long)groups);
    int64_t cin = x->shape[1];
    if (w->shape[0] != cin)
        return dt_fail(DT_ERR_SHAPE, "input has %lld channels but weight expects %lld",
                       (long long)cin, (long long)w->shape[0]);
    if (cin % groups)
        return dt_fail(DT_ERR_ARG, "input channels (%lld) must be divisible by groups (%lld)",
                       (long long)cin, (long long)groups);
    if (w->shape[2] <= 0 || w->shape[3] <= 0)
        return dt_fail(DT_ERR_SHAPE, "kernel size must be positive");
    int64_t cout;
    dt_status st = channels_of_groups(w, groups, "output", &cout);
    if (st)
        return st;
    bool big = false;
    if (bias && (bias->ndim != 1 || bias->shape[0] != cout))
        return dt_fail(DT_ERR_SHAPE, "bias must be a 1-d tensor of %lld elements",
                       (long long)cout);
    memset(g, 0, sizeof *g);
    g->N = x->shape[0], g->C = cout;
    g->O = cin, g->kh = w->shape[2], g->kw = w->shape[3];
    g->sh = stride[0], g->sw = stride[1], g->ph = padding[0], g->pw = padding[1];
    g->dh = dilation[0], g->dw = dilation[1], g->groups = groups;
    g->OH = x->shape[2], g->OW = x->shape[3];
    /* (OH - 1) * sh - 2 * ph + dh * (kh - 1) + output_padding + 1, in steps */
    int64_t out_size[2];
    for (int d = 0; d < 2; d++) {
        int64_t in = x->shape[2 + d], k = w->shape[2 + d];
        int64_t v = dt_size_mul(in - 1, stride[d], &big);
        v = dt_size_add(v, dt_size_mul(-2, padding[d], &big), &big);
        v = dt_size_add(v, dt_size_mul(dilation[d], k - 1, &big), &big);
        out_size[d] = dt_size_add(v, output_padding[d] + 1, &big);
    }
    if (big)
        return dt_fail(DT_ERR_ARG, "the geometry overflows 64 bits: input "
                       "%lld x %lld, kernel %lld x %lld, stride (%lld, %lld), padding (%lld, "
                       "%lld), dilation (%lld, %lld)", (long long)x->shape[2],
                       (long long)x->shape[3], (long long)w->shape[2], (long long)w->shape[3],
                       (long long)stride[0], (long long)stride[1], (long long)padding[0],
                       (long long)padding[1], (long long)dilation[0], (long long)dilation[1]);
    g->H = out_size[0];
    g->W = out_size[1];
    if (g->OH <= 0 || g->OW <= 0 || g->H <= 0 || g->W <= 0)
        return dt_fail(DT_ERR_SHAPE, "input %lld x %lld gives a non-positive output size "
                       "%lld x %lld", (long long)g->OH, (long long)g->OW, (long long)g->H,
                       (long long)g->W);
    int64_t out_shape[4] = {g->N, g->C, g->H, g->W}, out_numel;
    st = dt_shape_numel("output shape", 4, out_shape, &out_numel);
    if (st)
        return st;
    g->Cg = g->C / groups;
    g->Og = g->O / groups;
    g->K = g->Cg * g->kh * g->kw;
    g->P = g->OH * g->OW;
    g->direct = g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
                g->pw == 0 && g->H == g->OH && g->W == g->OW;
    g->depthwise = false;   /* the general paths handle every grouping */
    return check_patches(g);
}

void dt_conv_valid_cols(const dt_conv_geom *g, int64_t j, int64_t *lo, int64_t *hi)
{
    int64_t off = j * g->dw - g->pw;
    *lo = clamp64(ceil_div(-off, g->sw), 0, g->OW);
    *hi = clamp64(ceil_div(g->W - off, g->sw), *lo, g->OW);
}

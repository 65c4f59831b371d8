/* nn.c - convolution, pooling and batch norm bindings (module functions):
 *   distill.conv2d(x, w, b_or_nil, {stride=, padding=, dilation=, groups=})
 *   distill.conv_transpose2d(x, w, b_or_nil, {stride=, padding=, output_padding=,
 *                            dilation=, groups=})
 *   distill.max_pool2d(x, {kernel_size=, stride=, padding=, ceil_mode=})
 *   distill.avg_pool2d(x, {kernel_size=, stride=, padding=, ceil_mode=, count_include_pad=})
 *   distill.adaptive_avg_pool2d(x, size_or_{h, w})
 *   distill.batch_norm(x, running_mean, running_var, weight, bias,
 *                      {training=false, momentum=0.1, eps=1e-5, sync=false})
 *                      sync: SyncBatchNorm over the ranks (distill.dist)
 *   distill.conv_algorithm([name]) -> the algorithm of 3x3 stride-1
 *                      convolutions before the call: "auto", "gemm" or
 *                      "winograd"; sets it when name is given
 * Sizes given as "a number or {h, w}" mean the same value for both dims. */
#include "bind.h"

#include <string.h>

/* A number or a {h, w} table at stack index idx into out[2]. */
static void check_pair(lua_State *L, int idx, const char *fn, const char *what, int64_t *out)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        out[0] = out[1] = lt_check_int(L, idx, fn, what);
        return;
    }
    if (!lua_istable(L, idx) || luaL_len(L, idx) != 2)
        lt_error(L, fn, "%s must be an integer or a table {h, w}, got %s", what,
                 lua_istable(L, idx) ? "a table of another length" : lt_typename(L, idx));
    for (int i = 0; i < 2; i++) {
        lua_geti(L, idx, i + 1);
        int isint = 0;
        out[i] = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint)
            lt_error(L, fn, "%s: entry %d of {h, w} must be an integer", what, i + 1);
    }
}

/* opts[key] as a pair; `def` (both dims) when absent. Returns 0 if absent. */
static int opt_pair(lua_State *L, int opts, const char *fn, const char *key, int64_t def,
                    int64_t *out)
{
    out[0] = out[1] = def;
    if (lua_isnoneornil(L, opts))
        return 0;
    lua_getfield(L, opts, key);
    int present = !lua_isnil(L, -1);
    if (present)
        check_pair(L, lua_gettop(L), fn, key, out);
    lua_pop(L, 1);
    return present;
}

static dt_tensor *opt_tensor(lua_State *L, int idx, const char *fn)
{
    return lua_isnoneornil(L, idx) ? NULL : lt_check(L, idx, fn);
}

static void check_positive(lua_State *L, const char *fn, const char *what, const int64_t *v)
{
    if (v[0] <= 0 || v[1] <= 0)
        lt_error(L, fn, "%s must be positive, got {%lld, %lld}", what, (long long)v[0],
                 (long long)v[1]);
}

static void check_nonneg(lua_State *L, const char *fn, const char *what, const int64_t *v)
{
    if (v[0] < 0 || v[1] < 0)
        lt_error(L, fn, "%s must be non-negative, got {%lld, %lld}", what, (long long)v[0],
                 (long long)v[1]);
}

static void check_float_input(lua_State *L, const char *fn, const dt_tensor *x, const char *what)
{
    if (x->dtype != DT_FLOAT32)
        lt_error(L, fn, "%s must be float32, got %s", what, dt_dtype_name(x->dtype));
}

/* The tensor arguments of both convolutions: float32, a 4-d input and a
 * 4-d weight laid out as `weight_layout` says. */
static void check_conv_tensors(lua_State *L, const char *fn, const dt_tensor *x,
                               const dt_tensor *w, const dt_tensor *b, const char *weight_layout)
{
    check_float_input(L, fn, x, "input");
    check_float_input(L, fn, w, "weight");
    if (b)
        check_float_input(L, fn, b, "bias");
    if (x->ndim != 4)
        lt_error(L, fn, "expected a 4-d input (N, C, H, W), got %d-d", x->ndim);
    if (w->ndim != 4)
        lt_error(L, fn, "expected a 4-d weight (%s), got %d-d", weight_layout, w->ndim);
}

/* The options table (argument #4) of both convolutions; output_padding is
 * conv_transpose2d's only. */
typedef struct conv_options {
    int64_t stride[2], padding[2], output_padding[2], dilation[2], groups;
} conv_options;

/* Reads and checks the options, in the order the messages name them. */
static void check_conv_options(lua_State *L, const char *fn, bool transposed, conv_options *o)
{
    static const char *const keys[] = {"stride", "padding", "dilation", "groups", NULL};
    static const char *const transposed_keys[] = {"stride", "padding", "output_padding",
                                                  "dilation", "groups", NULL};
    lt_check_option_keys(L, 4, fn, transposed ? transposed_keys : keys);
    opt_pair(L, 4, fn, "stride", 1, o->stride);
    opt_pair(L, 4, fn, "padding", 0, o->padding);
    opt_pair(L, 4, fn, "output_padding", 0, o->output_padding);
    opt_pair(L, 4, fn, "dilation", 1, o->dilation);
    o->groups = lt_opt_field_int(L, 4, fn, "groups", 1);
    check_positive(L, fn, "stride", o->stride);
    check_nonneg(L, fn, "padding", o->padding);
    check_nonneg(L, fn, "output_padding", o->output_padding);
    check_positive(L, fn, "dilation", o->dilation);
    if (o->groups <= 0)
        lt_error(L, fn, "groups must be positive, got %lld", (long long)o->groups);
}

static int l_conv2d(lua_State *L)
{
    const char *fn = "distill.conv2d";
    dt_tensor *x = lt_check(L, 1, fn), *w = lt_check(L, 2, fn), *b = opt_tensor(L, 3, fn);
    conv_options o;
    check_conv_options(L, fn, false, &o);
    check_conv_tensors(L, fn, x, w, b, "out_channels, in_channels/groups, kh, kw");
    dt_tensor *r;
    LT_TRY(L, fn, dt_f_conv2d(x, w, b, o.stride, o.padding, o.dilation, o.groups, &r));
    lt_push(L, r);
    return 1;
}

static int l_conv_transpose2d(lua_State *L)
{
    const char *fn = "distill.conv_transpose2d";
    dt_tensor *x = lt_check(L, 1, fn), *w = lt_check(L, 2, fn), *b = opt_tensor(L, 3, fn);
    conv_options o;
    check_conv_options(L, fn, true, &o);
    for (int d = 0; d < 2; d++)
        if (o.output_padding[d] >= o.stride[d] && o.output_padding[d] >= o.dilation[d])
            return lt_error(L, fn, "output_padding must be smaller than either stride or "
                            "dilation, got output_padding {%lld, %lld}, stride {%lld, %lld}, "
                            "dilation {%lld, %lld}", (long long)o.output_padding[0],
                            (long long)o.output_padding[1], (long long)o.stride[0],
                            (long long)o.stride[1], (long long)o.dilation[0],
                            (long long)o.dilation[1]);
    check_conv_tensors(L, fn, x, w, b, "in_channels, out_channels/groups, kh, kw");
    dt_tensor *r;
    LT_TRY(L, fn, dt_f_conv_transpose2d(x, w, b, o.stride, o.padding, o.output_padding,
                                        o.dilation, o.groups, &r));
    lt_push(L, r);
    return 1;
}

/* Pool options shared by max and avg: kernel_size (required), stride
 * (default kernel_size), padding (0), ceil_mode (false). A number as the
 * second argument is taken as kernel_size. */
typedef struct pool_args {
    int64_t kernel[2], stride[2], padding[2];
    int ceil_mode, count_include_pad;
} pool_args;

static void check_pool_args(lua_State *L, const char *fn, bool avg, pool_args *a)
{
    static const char *const max_keys[] = {"kernel_size", "stride", "padding", "ceil_mode", NULL};
    static const char *const avg_keys[] = {"kernel_size", "stride", "padding", "ceil_mode",
                                           "count_include_pad", NULL};
    int opts = 2;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        check_pair(L, 2, fn, "kernel_size", a->kernel);
        opts = 3;
    } else {
        lt_check_option_keys(L, 2, fn, avg ? avg_keys : max_keys);
        if (!opt_pair(L, 2, fn, "kernel_size", 0, a->kernel))
            lt_error(L, fn, "option 'kernel_size' is required");
    }
    if (opts == 3)
        lt_check_option_keys(L, 3, fn, avg ? avg_keys : max_keys);
    check_positive(L, fn, "kernel_size", a->kernel);
    if (!opt_pair(L, opts, fn, "stride", 0, a->stride)) {
        a->stride[0] = a->kernel[0];
        a->stride[1] = a->kernel[1];
    }
    opt_pair(L, opts, fn, "padding", 0, a->padding);
    a->ceil_mode = lt_opt_field_bool(L, opts, fn, "ceil_mode", 0);
    a->count_include_pad = avg ? lt_opt_field_bool(L, opts, fn, "count_include_pad", 1) : 1;
    check_positive(L, fn, "stride", a->stride);
    check_nonneg(L, fn, "padding", a->padding);
    if (a->padding[0] > a->kernel[0] / 2 || a->padding[1] > a->kernel[1] / 2)
        lt_error(L, fn, "padding must be at most half of kernel_size, got padding {%lld, %lld} "
                 "for kernel_size {%lld, %lld}", (long long)a->padding[0],
                 (long long)a->padding[1], (long long)a->kernel[0], (long long)a->kernel[1]);
}

static void check_pool_input(lua_State *L, const char *fn, const dt_tensor *x)
{
    check_float_input(L, fn, x, "input");
    if (x->ndim != 3 && x->ndim != 4)
        lt_error(L, fn, "expected a 3-d (C, H, W) or 4-d (N, C, H, W) input, got %d-d", x->ndim);
}

static int l_max_pool2d(lua_State *L)
{
    const char *fn = "distill.max_pool2d";
    dt_tensor *x = lt_check(L, 1, fn), *r;
    pool_args a;
    check_pool_args(L, fn, false, &a);
    check_pool_input(L, fn, x);
    LT_TRY(L, fn, dt_f_max_pool2d(x, a.kernel, a.stride, a.padding, a.ceil_mode, &r));
    lt_push(L, r);
    return 1;
}

static int l_avg_pool2d(lua_State *L)
{
    const char *fn = "distill.avg_pool2d";
    dt_tensor *x = lt_check(L, 1, fn), *r;
    pool_args a;
    check_pool_args(L, fn, true, &a);
    check_pool_input(L, fn, x);
    LT_TRY(L, fn, dt_f_avg_pool2d(x, a.kernel, a.stride, a.padding, a.ceil_mode,
                                  a.count_include_pad, &r));
    lt_push(L, r);
    return 1;
}

static int l_adaptive_avg_pool2d(lua_State *L)
{
    const char *fn = "distill.adaptive_avg_pool2d";
    dt_tensor *x = lt_check(L, 1, fn), *r;
    if (lua_isnoneornil(L, 2))
        return lt_error(L, fn, "argument #2: expected the output size (an integer or {h, w})");
    int64_t size[2];
    check_pair(L, 2, fn, "output size", size);
    check_positive(L, fn, "output size", size);
    check_pool_input(L, fn, x);
    LT_TRY(L, fn, dt_f_adaptive_avg_pool2d(x, size[0], size[1], &r));
    lt_push(L, r);
    return 1;
}

static int l_batch_norm(lua_State *L)
{
    const char *fn = "distill.batch_norm";
    dt_tensor *x = lt_check(L, 1, fn);
    dt_tensor *rm = opt_tensor(L, 2, fn), *rv = opt_tensor(L, 3, fn);
    dt_tensor *w = opt_tensor(L, 4, fn), *b = opt_tensor(L, 5, fn), *r;
    static const char *const keys[] = {"training", "momentum", "eps", "sync", NULL};
    lt_check_option_keys(L, 6, fn, keys);
    int training = lt_opt_field_bool(L, 6, fn, "training", 0);
    int sync = lt_opt_field_bool(L, 6, fn, "sync", 0);
    double momentum = lt_opt_field_num(L, 6, fn, "momentum", 0.1);
    double eps = lt_opt_field_num(L, 6, fn, "eps", 1e-5);
    if (!(eps >= 0))
        return lt_error(L, fn, "eps must be non-negative, got %g", eps);
    check_float_input(L, fn, x, "input");
    if (x->ndim < 2 || x->ndim > 4)
        return lt_error(L, fn, "expected a 2-d (N, C), 3-d (N, C, L) or 4-d (N, C, H, W) input, "
                        "got %d-d", x->ndim);
    if (!rm != !rv)
        return lt_error(L, fn, "running_mean and running_var must be both given or both nil");
    if (!training && !rm)
        return lt_error(L, fn, "eval mode (training = false) needs running_mean and running_var");
    if (training && rm) {
        lt_check_inplace(L, rm, fn);
        lt_check_inplace(L, rv, fn);
    }
    LT_TRY(L, fn, dt_f_batch_norm(x, rm, rv, w, b, training, sync, momentum, eps, &r));
    lt_push(L, r);
    return 1;
}

static int l_conv_algorithm(lua_State *L)
{
    static const char *const names[] = {"auto", "gemm", "winograd", NULL};
    const char *fn = "distill.conv_algorithm";
    dt_conv_algo before = dt_get_conv_algo();
    if (!lua_isnoneornil(L, 1)) {
        const char *name = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : NULL;
        int i = 0;
        while (name && names[i] && strcmp(names[i], name) != 0)
            i++;
        if (!name || !names[i])
            return lt_error(L, fn, "expected \"auto\", \"gemm\" or \"winograd\", got %s",
                            name ? name : lt_typename(L, 1));
        dt_set_conv_algo((dt_conv_algo)i);
    }
    lua_pushstring(L, names[before]);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"conv2d", l_conv2d},
    {"conv_algorithm", l_conv_algorithm},
    {"conv_transpose2d", l_conv_transpose2d},
    {"max_pool2d", l_max_pool2d},
    {"avg_pool2d", l_avg_pool2d},
    {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
    {"batch_norm", l_batch_norm},
    {NULL, NULL},
};

void lt_open_nn(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, NULL); }

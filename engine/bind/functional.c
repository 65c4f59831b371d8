/* functional.c - activations, losses and distances:
 *   distill.relu6(x)                    distill.leaky_relu(x, [slope = 0.01])
 *   distill.softmax(x, dim)             distill.log_softmax(x, dim)
 *   distill.dropout(x, {p = 0.5, training = true})
 *   distill.cross_entropy(logits, target, {reduction = "mean", label_smoothing = 0,
 *                                          ignore_index = -100})
 *   distill.nll_loss(logp, target, {reduction = "mean", ignore_index = -100})
 *   distill.kl_div(input, target, {reduction = "mean", log_target = false})
 *   distill.mse_loss(a, b, {reduction})  distill.l1_loss(a, b, {reduction})
 *   distill.smooth_l1_loss(a, b, {reduction = "mean", beta = 1})
 *   distill.normalize(x, {p = 2, dim = 2, eps = 1e-12})
 *   distill.cdist(x1, x2, {p = 2})
 *   distill.pairwise_distance(x1, x2, {p = 2, eps = 1e-6})
 *   distill.cosine_similarity(x1, x2, {dim = 2, eps = 1e-8})
 * Dims count from 1 (negative from the end). Targets are 1-based class
 * labels; ignore_index is compared with those labels as given. */
#include "bind.h"

#include <stdio.h>


static dt_reduction check_reduction(lua_State *L, int opts, const char *fn, bool allow_batchmean)
{
    const char *name = lt_opt_field_str(L, opts, fn, "reduction", "mean");
    dt_reduction r;
    if (!dt_reduction_parse(name, &r) || (r == DT_REDUCTION_BATCHMEAN && !allow_batchmean))
        lt_error(L, fn, "reduction must be %s, got \"%s\"",
                 allow_batchmean ? "\"mean\", \"batchmean\", \"sum\" or \"none\""
                                 : "\"mean\", \"sum\" or \"none\"",
                 name);
    return r;
}

/* ----------------------------------------------------------- activations */

static int l_relu6(lua_State *L)
{
    const char *fn = "distill.relu6";
    dt_tensor *x = lt_check(L, 1, fn), *out;
    return lt_push_or_fail(L, fn, dt_f_relu6(x, &out), &out);
}

static int l_leaky_relu(lua_State *L)
{
    const char *fn = "distill.leaky_relu";
    dt_tensor *x = lt_check(L, 1, fn), *out;
    double slope = lua_isnoneornil(L, 2) ? 0.01 : lt_check_num(L, 2, fn, "negative_slope");
    return lt_push_or_fail(L, fn, dt_f_leaky_relu(x, slope, &out), &out);
}

static int softmax_common(lua_State *L, const char *fn, bool log_space)
{
    dt_tensor *x = lt_check(L, 1, fn), *out;
    int dim = lt_check_dim(L, 2, fn, x->ndim);
    dt_status st = log_space ? dt_f_log_softmax(x, dim, &out) : dt_f_softmax(x, dim, &out);
    return lt_push_or_fail(L, fn, st, &out);
}

static int l_softmax(lua_State *L) { return softmax_common(L, "distill.softmax", false); }
static int l_log_softmax(lua_State *L) { return softmax_common(L, "distill.log_softmax", true); }

static int l_dropout(lua_State *L)
{
    const char *fn = "distill.dropout";
    dt_tensor *x = lt_check(L, 1, fn), *out;
    static const char *const keys[] = {"p", "training", NULL};
    lt_check_option_keys(L, 2, fn, keys);
    double p = lt_opt_field_num(L, 2, fn, "p", 0.5);
    bool training = lt_opt_field_bool(L, 2, fn, "training", 1);
    if (!(p >= 0.0 && p <= 1.0))
        return lt_error(L, fn, "p must be between 0 and 1, got %g", p);
    return lt_push_or_fail(L, fn, dt_f_dropout(x, p, training, dt_default_rng(), &out), &out);
}

/* --------------------------------------------------- classification losses */

static void describe_target(char *buf, size_t len, int64_t v, int64_t i, const void *ctx)
{
    (void)i;
    const int64_t *classes = ctx;
    snprintf(buf, len, "target %lld out of range for %lld classes (labels count from 1)",
             (long long)v, (long long)*classes);
}

/* The target at idx as a 0-based int64 copy the caller releases, after
 * checking it against the N x C x ... input: int64, one label per row (and
 * position), labels in 1..C unless equal to ignore_index. */
static dt_tensor *zero_based_target(lua_State *L, int idx, const char *fn, const dt_tensor *input,
                                    const char *input_name, int64_t ignore_index)
{
    char a[128], b[128];
    dt_tensor *target = lt_check(L, idx, fn);
    if (input->ndim < 2)
        lt_error(L, fn, "%s must be N x C (or N x C x d1 ...), got shape %s", input_name,
                 dt_shape_str(input->shape, input->ndim, a, sizeof a));
    if (target->dtype != DT_INT64)
        lt_error(L, fn, "target must be an int64 tensor of class labels, got %s",
                 dt_dtype_name(target->dtype));
    if (target->ndim >= 1 && target->shape[0] != input->shape[0])
        lt_error(L, fn, "target has %lld entries but %s have %lld rows",
                 (long long)target->shape[0], input_name, (long long)input->shape[0]);
    bool ok = target->ndim == input->ndim - 1;
    for (int d = 1; ok && d < target->ndim; d++)
        ok = target->shape[d] == input->shape[d + 1];
    if (!ok)
        lt_error(L, fn, "target of shape %s does not match %s of shape %s (expected its shape "
                 "without the class dim)", dt_shape_str(target->shape, target->ndim, a, sizeof a),
                 input_name, dt_shape_str(input->shape, input->ndim, b, sizeof b));
    int64_t classes = input->shape[1];
    /* ignored entries shift too; the engine's ignore_index does as well */
    lt_positions p = {.size = classes, .has_skip = true, .skip = ignore_index,
                      .describe = describe_target, .ctx = &classes};
    return lt_to_engine_positions(L, idx, fn, &p);
}

/* ignore_index for the engine: shifted like the labels (INT64_MIN cannot
 * shift; no label equals it after the shift either). */
static int64_t shifted_ignore(int64_t ignore_index)
{
    return ignore_index == INT64_MIN ? INT64_MIN : ignore_index - 1;
}

static int l_cross_entropy(lua_State *L)
{
    const char *fn = "distill.cross_entropy";
    dt_tensor *logits = lt_check(L, 1, fn), *out;
    static const char *const keys[] = {"reduction", "label_smoothing", "ignore_index", NULL};
    lt_check_option_keys(L, 3, fn, keys);
    dt_reduction reduction = check_reduction(L, 3, fn, false);
    double smoothing = lt_opt_field_num(L, 3, fn, "label_smoothing", 0.0);
    int64_t ignore_index = lt_opt_field_int(L, 3, fn, "ignore_index", -100);
    if (!(smoothing >= 0.0 && smoothing <= 1.0))
        return lt_error(L, fn, "label_smoothing must be in [0, 1], got %g", smoothing);
    if (logits->dtype != DT_FLOAT32)
        return lt_error(L, fn, "logits must be float32, got %s", dt_dtype_name(logits->dtype));
    dt_tensor *target = zero_based_target(L, 2, fn, logits, "logits", ignore_index);
    dt_status st = dt_f_cross_entropy(logits, target, reduction, smoothing,
                                      shifted_ignore(ignore_index), &out);
    dt_tensor_release(target);
    return lt_push_or_fail(L, fn, st, &out);
}

static int l_nll_loss(lua_State *L)
{
    const char *fn = "distill.nll_loss";
    dt_tensor *logp = lt_check(L, 1, fn), *out;
    static const char *const keys[] = {"reduction", "ignore_index", NULL};
    lt_check_option_keys(L, 3, fn, keys);
    dt_reduction reduction = check_reduction(L, 3, fn, false);
    int64_t ignore_index = lt_opt_field_int(L, 3, fn, "ignore_index", -100);
    if (logp->dtype != DT_FLOAT32)
        return lt_error(L, fn, "input must be float32, got %s", dt_dtype_name(logp->dtype));
    dt_tensor *target = zero_based_target(L, 2, fn, logp, "log-probabilities", ignore_index);
    dt_status st = dt_f_nll_loss(logp, target, reduction, shifted_ignore(ignore_index), &out);
    dt_tensor_release(target);
    return lt_push_or_fail(L, fn, st, &out);
}

/* ------------------------------------------------------ pointwise losses */

static int l_kl_div(lua_State *L)
{
    const char *fn = "distill.kl_div";
    dt_tensor *input = lt_check(L, 1, fn), *target = lt_check(L, 2, fn), *out;
    static const char *const keys[] = {"reduction", "log_target", NULL};
    lt_check_option_keys(L, 3, fn, keys);
    dt_reduction reduction = check_reduction(L, 3, fn, true);
    bool log_target = lt_opt_field_bool(L, 3, fn, "log_target", 0);
    return lt_push_or_fail(L, fn, dt_f_kl_div(input, target, reduction, log_target, &out), &out);
}

enum { LOSS_MSE, LOSS_L1, LOSS_SMOOTH_L1 };

static int regression_loss(lua_State *L, const char *fn, int kind)
{
    dt_tensor *a = lt_check(L, 1, fn), *b = lt_check(L, 2, fn), *out;
    static const char *const keys[] = {"reduction", NULL};
    static const char *const smooth_keys[] = {"reduction", "beta", NULL};
    lt_check_option_keys(L, 3, fn, kind == LOSS_SMOOTH_L1 ? smooth_keys : keys);
    dt_reduction reduction = check_reduction(L, 3, fn, false);
    dt_status st;
    if (kind == LOSS_MSE) {
        st = dt_f_mse_loss(a, b, reduction, &out);
    } else if (kind == LOSS_L1) {
        st = dt_f_l1_loss(a, b, reduction, &out);
    } else {
        double beta = lt_opt_field_num(L, 3, fn, "beta", 1.0);
        if (!(beta >= 0.0))
            return lt_error(L, fn, "beta must be >= 0, got %g", beta);
        st = dt_f_smooth_l1_loss(a, b, reduction, beta, &out);
    }
    return lt_push_or_fail(L, fn, st, &out);
}

static int l_mse_loss(lua_State *L) { return regression_loss(L, "distill.mse_loss", LOSS_MSE); }
static int l_l1_loss(lua_State *L) { return regression_loss(L, "distill.l1_loss", LOSS_L1); }
static int l_smooth_l1_loss(lua_State *L)
{
    return regression_loss(L, "distill.smooth_l1_loss", LOSS_SMOOTH_L1);
}

/* ------------------------------------------------------------- distances */

static int l_normalize(lua_State *L)
{
    const char *fn = "distill.normalize";
    dt_tensor *x = lt_check(L, 1, fn), *out;
    static const char *const keys[] = {"p", "dim", "eps", NULL};
    lt_check_option_keys(L, 2, fn, keys);
    double p = lt_opt_field_num(L, 2, fn, "p", 2.0);
    int dim = lt_dim_from_lua(L, lt_opt_field_int(L, 2, fn, "dim", 2), fn, x->ndim);
    double eps = lt_opt_field_num(L, 2, fn, "eps", 1e-12);
    return lt_push_or_fail(L, fn, dt_f_normalize(x, p, dim, eps, &out), &out);
}

static int l_cdist(lua_State *L)
{
    const char *fn = "distill.cdist";
    dt_tensor *x1 = lt_check(L, 1, fn), *x2 = lt_check(L, 2, fn), *out;
    static const char *const keys[] = {"p", NULL};
    lt_check_option_keys(L, 3, fn, keys);
    double p = lt_opt_field_num(L, 3, fn, "p", 2.0);
    return lt_push_or_fail(L, fn, dt_f_cdist(x1, x2, p, &out), &out);
}

static int l_pairwise_distance(lua_State *L)
{
    const char *fn = "distill.pairwise_distance";
    dt_tensor *x1 = lt_check(L, 1, fn), *x2 = lt_check(L, 2, fn), *out;
    static const char *const keys[] = {"p", "eps", NULL};
    lt_check_option_keys(L, 3, fn, keys);
    double p = lt_opt_field_num(L, 3, fn, "p", 2.0);
    double eps = lt_opt_field_num(L, 3, fn, "eps", 1e-6);
    return lt_push_or_fail(L, fn, dt_f_pairwise_distance(x1, x2, p, eps, &out), &out);
}

static int l_cosine_similarity(lua_State *L)
{
    const char *fn = "distill.cosine_similarity";
    dt_tensor *x1 = lt_check(L, 1, fn), *x2 = lt_check(L, 2, fn), *out;
    static const char *const keys[] = {"dim", "eps", NULL};
    lt_check_option_keys(L, 3, fn, keys);
    int dim = lt_dim_from_lua(L, lt_opt_field_int(L, 3, fn, "dim", 2), fn, x1->ndim);
    double eps = lt_opt_field_num(L, 3, fn, "eps", 1e-8);
    return lt_push_or_fail(L, fn, dt_f_cosine_similarity(x1, x2, dim, eps, &out), &out);
}

static const luaL_Reg funcs[] = {
    {"relu6", l_relu6},
    {"leaky_relu", l_leaky_relu},
    {"softmax", l_softmax},
    {"log_softmax", l_log_softmax},
    {"dropout", l_dropout},
    {"cross_entropy", l_cross_entropy},
    {"nll_loss", l_nll_loss},
    {"kl_div", l_kl_div},
    {"mse_loss", l_mse_loss},
    {"l1_loss", l_l1_loss},
    {"smooth_l1_loss", l_smooth_l1_loss},
    {"normalize", l_normalize},
    {"cdist", l_cdist},
    {"pairwise_distance", l_pairwise_distance},
    {"cosine_similarity", l_cosine_similarity},
    {NULL, NULL},
};

void lt_open_functional(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, NULL); }

/* contrast.c - the contrastive-distillation ops:
 *   distill.fsecd_loss(z, ft, labels, {tau=, policy=, symmetric=, eps=, num_classes=})
 *   distill.crd_scores(bank, indices, v, temperature)
 *   distill.crd_update_bank_(bank, indices, v, momentum)
 *   distill.abf_fuse(x, res, att)
 * Bank indices are 1-based on the Lua side. */
#include "bind.h"

#include <stdio.h>

#include <string.h>

static void describe_label(char *buf, size_t len, int64_t v, int64_t i, const void *ctx)
{
    const int64_t *num_classes = ctx;
    snprintf(buf, len, "label %lld at position %lld is out of range (labels count from 1%s)",
             (long long)v, (long long)i + 1, *num_classes > 0 ? " up to num_classes" : "");
}

static int l_fsecd_loss(lua_State *L)
{
    const char *fn = "distill.fsecd_loss";
    dt_tensor *z = lt_check(L, 1, fn), *t = lt_check(L, 2, fn);
    dt_tensor *labels = lua_isnoneornil(L, 3) ? NULL : lt_check(L, 3, fn);
    static const char *const keys[] = {"tau", "policy", "symmetric", "eps", "num_classes", NULL};
    lt_check_option_keys(L, 4, fn, keys);
    dt_fsecd_opts opts = {
        .tau = lt_opt_field_num(L, 4, fn, "tau", 0.1),
        .eps = lt_opt_field_num(L, 4, fn, "eps", 1e-8),
        .symmetric = lt_opt_field_bool(L, 4, fn, "symmetric", 0),
    };
    const char *policy = lt_opt_field_str(L, 4, fn, "policy", "instance");
    if (strcmp(policy, "instance") == 0)
        opts.policy = DT_FSECD_INSTANCE;
    else if (strcmp(policy, "class") == 0)
        opts.policy = DT_FSECD_CLASS;
    else
        return lt_error(L, fn, "policy must be \"instance\" or \"class\", got \"%s\"", policy);
    /* Labels are 1-based class indices; only equality matters to the loss,
     * but out-of-range labels are a caller's bug worth reporting. */
    int64_t num_classes = lt_opt_field_int(L, 4, fn, "num_classes", 0);
    dt_tensor *shifted = NULL;
    if (labels && labels->dtype == DT_INT64 && labels->ndim == 1) {
        lt_positions p = {.size = num_classes > 0 ? num_classes : -1, .describe = describe_label,
                          .ctx = &num_classes};
        shifted = lt_to_engine_positions(L, 3, fn, &p);
    }
    dt_tensor *out;
    dt_status st = dt_f_fsecd_loss(z, t, shifted ? shifted : labels, &opts, &out);
    dt_tensor_release(shifted);
    return lt_push_or_fail(L, fn, st, &out);
}

/* 1-based Lua indices -> a 0-based int64 copy the caller releases (the
 * engine checks them against the bank). */
static dt_tensor *zero_based(lua_State *L, int idx, const char *fn)
{
    dt_tensor *t = lt_check(L, idx, fn);
    if (t->dtype != DT_INT64)
        lt_error(L, fn, "indices must be int64, got %s", dt_dtype_name(t->dtype));
    lt_positions p = {.size = -1};
    return lt_to_engine_positions(L, idx, fn, &p);
}

static int l_crd_scores(lua_State *L)
{
    const char *fn = "distill.crd_scores";
    dt_tensor *bank = lt_check(L, 1, fn), *v = lt_check(L, 3, fn);
    double temperature = lt_check_num(L, 4, fn, "temperature");
    dt_tensor *idx = zero_based(L, 2, fn), *out;
    dt_status st = dt_f_crd_scores(bank, idx, v, temperature, &out);
    dt_tensor_release(idx);
    return lt_push_or_fail(L, fn, st, &out);
}

static int l_crd_update_bank_(lua_State *L)
{
    const char *fn = "distill.crd_update_bank_";
    dt_tensor *bank = lt_check(L, 1, fn), *v = lt_check(L, 3, fn);
    double momentum = lt_check_num(L, 4, fn, "momentum");
    if (momentum < 0 || momentum > 1)
        return lt_error(L, fn, "momentum must be in [0, 1], got %g", momentum);
    dt_tensor *idx = zero_based(L, 2, fn);
    dt_status st = dt_crd_update_bank_(bank, idx, v, momentum);
    dt_tensor_release(idx);
    if (st)
        return lt_fail(L, fn);
    lua_settop(L, 1);
    return 1;
}

static int l_abf_fuse(lua_State *L)
{
    const char *fn = "distill.abf_fuse";
    dt_tensor *x = lt_check(L, 1, fn), *res = lt_check(L, 2, fn), *att = lt_check(L, 3, fn), *out;
    if (dt_f_abf_fuse(x, res, att, &out))
        return lt_fail(L, fn);
    lt_push(L, out);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"fsecd_loss", l_fsecd_loss},
    {"crd_scores", l_crd_scores},
    {"crd_update_bank_", l_crd_update_bank_},
    {"abf_fuse", l_abf_fuse},
    {NULL, NULL},
};

void lt_open_contrast(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, NULL); }

/* optim.c - the fused optimizer kernels, as core.optim_kernels.*.
 *
 * These are the building blocks of lua/distill/optim; they update tensors
 * in place and never record on the autograd tape:
 *   optim_kernels.sgd_step_(param, grad, momentum_buffer|nil, opts)
 *       opts: lr, momentum, dampening, weight_decay, nesterov, maximize,
 *             fresh_buffer (first step: the buffer takes the gradient)
 *   optim_kernels.adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq|nil, step, opts)
 *       opts: lr, beta1, beta2, eps, weight_decay, decoupled (AdamW), amsgrad, maximize
 * All tensors float32 of the parameter's shape; step is the step number
 * after incrementing (1 on the first step). */
#include "bind.h"

static dt_tensor *opt_tensor(lua_State *L, int idx, const char *fn)
{
    return lua_isnoneornil(L, idx) ? NULL : lt_check(L, idx, fn);
}

static int l_sgd_step_(lua_State *L)
{
    const char *fn = "optim_kernels.sgd_step_";
    static const char *const keys[] = {"lr", "momentum", "dampening", "weight_decay", "nesterov",
                                       "maximize", "fresh_buffer", NULL};
    dt_tensor *param = lt_check(L, 1, fn), *grad = lt_check(L, 2, fn);
    dt_tensor *buf = opt_tensor(L, 3, fn);
    if (!lua_istable(L, 4))
        return lt_error(L, fn, "argument #4: expected an options table, got %s",
                        lt_typename(L, 4));
    lt_check_option_keys(L, 4, fn, keys);
    dt_sgd_opts o;
    lua_getfield(L, 4, "lr");
    if (lua_type(L, -1) != LUA_TNUMBER)
        return lt_error(L, fn, "option 'lr' is required (a number)");
    lua_pop(L, 1);
    o.lr = lt_opt_field_num(L, 4, fn, "lr", 0);
    o.momentum = lt_opt_field_num(L, 4, fn, "momentum", 0);
    o.dampening = lt_opt_field_num(L, 4, fn, "dampening", 0);
    o.weight_decay = lt_opt_field_num(L, 4, fn, "weight_decay", 0);
    o.nesterov = lt_opt_field_bool(L, 4, fn, "nesterov", 0);
    o.maximize = lt_opt_field_bool(L, 4, fn, "maximize", 0);
    bool fresh = lt_opt_field_bool(L, 4, fn, "fresh_buffer", 0);
    LT_TRY(L, fn, dt_sgd_step_(param, grad, buf, fresh, &o));
    return 0;
}

static int l_adam_step_(lua_State *L)
{
    const char *fn = "optim_kernels.adam_step_";
    static const char *const keys[] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                       "decoupled", "amsgrad", "maximize", NULL};
    dt_tensor *param = lt_check(L, 1, fn), *grad = lt_check(L, 2, fn);
    dt_tensor *m = lt_check(L, 3, fn), *v = lt_check(L, 4, fn);
    dt_tensor *vmax = opt_tensor(L, 5, fn);
    int64_t step = lt_check_int(L, 6, fn, "step");
    if (!lua_istable(L, 7))
        return lt_error(L, fn, "argument #7: expected an options table, got %s",
                        lt_typename(L, 7));
    lt_check_option_keys(L, 7, fn, keys);
    dt_adam_opts o;
    o.lr = lt_opt_field_num(L, 7, fn, "lr", 1e-3);
    o.beta1 = lt_opt_field_num(L, 7, fn, "beta1", 0.9);
    o.beta2 = lt_opt_field_num(L, 7, fn, "beta2", 0.999);
    o.eps = lt_opt_field_num(L, 7, fn, "eps", 1e-8);
    o.weight_decay = lt_opt_field_num(L, 7, fn, "weight_decay", 0);
    o.decoupled = lt_opt_field_bool(L, 7, fn, "decoupled", 0);
    o.amsgrad = lt_opt_field_bool(L, 7, fn, "amsgrad", 0);
    o.maximize = lt_opt_field_bool(L, 7, fn, "maximize", 0);
    LT_TRY(L, fn, dt_adam_step_(param, grad, m, v, vmax, step, &o));
    return 0;
}

static const luaL_Reg kernels[] = {
    {"sgd_step_", l_sgd_step_},
    {"adam_step_", l_adam_step_},
    {NULL, NULL},
};

void lt_open_optim(lua_State *L, int mod_idx)
{
    mod_idx = lua_absindex(L, mod_idx);
    lua_newtable(L);
    luaL_setfuncs(L, kernels, 0);
    lua_setfield(L, mod_idx, "optim_kernels");
}

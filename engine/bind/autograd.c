/* autograd.c - requires_grad/grad properties, backward and grad modes. */
#include "bind.h"

void lt_check_inplace(lua_State *L, dt_tensor *t, const char *fn)
{
    if (dt_needs_grad(t))
        lt_error(L, fn, "in-place operation on a tensor that requires grad (a leaf with "
                 "requires_grad, or a result recorded for backward); wrap it in distill.no_grad "
                 "or use the out-of-place op");
}

dt_tensor *lt_check_mutable(lua_State *L, int idx, const char *fn)
{
    dt_tensor *t = lt_check(L, idx, fn);
    lt_check_inplace(L, t, fn);
    return t;
}

static int get_requires_grad(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor.requires_grad");
    lua_pushboolean(L, t->requires_grad || t->grad_fn != NULL);
    return 1;
}

static void set_requires_grad(lua_State *L, dt_tensor *t, int flag, const char *fn)
{
    if (t->grad_fn) {
        if (!flag)
            lt_error(L, fn, "only leaf tensors can change requires_grad (use detach() to get a "
                     "tensor outside the graph)");
        return;
    }
    if (flag && t->dtype != DT_FLOAT32)
        lt_error(L, fn, "only float32 tensors can require gradients, got %s",
                 dt_dtype_name(t->dtype));
    t->requires_grad = flag;
}

static int set_requires_grad_prop(lua_State *L)
{
    const char *fn = "Tensor.requires_grad";
    dt_tensor *t = lt_check(L, 1, fn);
    if (!lua_isboolean(L, 2))
        return lt_error(L, fn, "expected a boolean, got %s", lt_typename(L, 2));
    set_requires_grad(L, t, lua_toboolean(L, 2), fn);
    return 0;
}

static int m_requires_grad_(lua_State *L)
{
    const char *fn = "Tensor:requires_grad_";
    dt_tensor *t = lt_check(L, 1, fn);
    if (!lua_isnoneornil(L, 2) && !lua_isboolean(L, 2))
        return lt_error(L, fn, "expected a boolean, got %s", lt_typename(L, 2));
    set_requires_grad(L, t, lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2), fn);
    lua_settop(L, 1);
    return 1;
}

static int get_grad(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor.grad");
    if (!t->grad) {
        lua_pushnil(L);
        return 1;
    }
    dt_tensor_retain(t->grad);
    lt_push(L, t->grad);
    return 1;
}

static int set_grad(lua_State *L)
{
    const char *fn = "Tensor.grad";
    dt_tensor *t = lt_check(L, 1, fn);
    if (lua_isnil(L, 2)) {
        dt_tensor_release(t->grad);
        t->grad = NULL;
        return 0;
    }
    dt_tensor *g = lt_check(L, 2, fn);
    if (!dt_same_shape(g, t) || g->dtype != DT_FLOAT32) {
        char a[128], b[128];
        return lt_error(L, fn, "gradient must be a float32 tensor of the tensor's shape %s, got "
                        "%s %s", dt_shape_str(t->shape, t->ndim, a, sizeof a),
                        dt_dtype_name(g->dtype), dt_shape_str(g->shape, g->ndim, b, sizeof b));
    }
    dt_tensor_retain(g);
    dt_tensor_release(t->grad);
    t->grad = g;
    return 0;
}

static int get_grad_fn(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor.grad_fn");
    if (t->grad_fn)
        lua_pushstring(L, dt_node_name(t->grad_fn));
    else
        lua_pushnil(L);
    return 1;
}

static int get_is_leaf(lua_State *L)
{
    lua_pushboolean(L, lt_check(L, 1, "Tensor.is_leaf")->grad_fn == NULL);
    return 1;
}

/* t:backward([grad], [{retain_graph = false}]) */
static int m_backward(lua_State *L)
{
    const char *fn = "Tensor:backward";
    dt_tensor *t = lt_check(L, 1, fn);
    int opts = 3;
    dt_tensor *grad = NULL;
    if (lua_istable(L, 2) && !lt_to(L, 2))
        opts = 2;
    else if (!lua_isnoneornil(L, 2))
        grad = lt_check(L, 2, fn);
    static const char *const keys[] = {"retain_graph", NULL};
    lt_check_option_keys(L, opts, fn, keys);
    int retain = lt_opt_field_bool(L, opts, fn, "retain_graph", 0);
    LT_TRY(L, fn, dt_backward(t, grad, retain));
    return 0;
}

static int m_detach(lua_State *L) { return lt_tensor_method(L, "Tensor:detach", dt_detach); }

static int m_detach_(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:detach_");
    dt_node_release(t->grad_fn);
    t->grad_fn = NULL;
    t->requires_grad = false;
    lua_settop(L, 1);
    return 1;
}

/* Run f(...) with grad mode set to `mode`, restoring it even on error;
 * returns f's results. */
static int run_with_grad_mode(lua_State *L, bool mode, const char *fn)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    (void)fn;
    bool saved = dt_grad_enabled();
    dt_set_grad_enabled(mode);
    int nargs = lua_gettop(L) - 1;
    int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
    dt_set_grad_enabled(saved);
    if (status != LUA_OK)
        return lua_error(L);
    return lua_gettop(L);
}

static int l_no_grad(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TFUNCTION)
        return lt_error(L, "distill.no_grad", "expected a function, got %s", lt_typename(L, 1));
    return run_with_grad_mode(L, false, "distill.no_grad");
}

static int l_enable_grad(lua_State *L)
{
    if (lua_type(L, 1) != LUA_TFUNCTION)
        return lt_error(L, "distill.enable_grad", "expected a function, got %s",
                        lt_typename(L, 1));
    return run_with_grad_mode(L, true, "distill.enable_grad");
}

static int l_is_grad_enabled(lua_State *L)
{
    lua_pushboolean(L, dt_grad_enabled());
    return 1;
}

static int l_set_grad_enabled(lua_State *L)
{
    if (!lua_isboolean(L, 1))
        return lt_error(L, "distill.set_grad_enabled", "expected a boolean, got %s",
                        lt_typename(L, 1));
    lua_pushboolean(L, dt_grad_enabled());
    dt_set_grad_enabled(lua_toboolean(L, 1));
    return 1;   /* the previous mode, so callers can restore it */
}

static const luaL_Reg funcs[] = {
    {"no_grad", l_no_grad}, {"enable_grad", l_enable_grad},
    {"is_grad_enabled", l_is_grad_enabled}, {"set_grad_enabled", l_set_grad_enabled},
    {"detach", m_detach},
    {NULL, NULL},
};

static const luaL_Reg methods[] = {
    {"backward", m_backward}, {"detach", m_detach}, {"detach_", m_detach_},
    {"requires_grad_", m_requires_grad_},
    {NULL, NULL},
};

void lt_open_autograd(lua_State *L, int mod_idx)
{
    lt_register(L, mod_idx, funcs, methods);
    lt_register_property(L, "requires_grad", get_requires_grad, set_requires_grad_prop);
    lt_register_property(L, "grad", get_grad, set_grad);
    lt_register_property(L, "grad_fn", get_grad_fn, NULL);
    lt_register_property(L, "is_leaf", get_is_leaf, NULL);
}

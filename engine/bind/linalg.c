/* linalg.c - mm, bmm, matmul, dot, mv, outer, linear, and a wall clock for
 * timing. All products go through the dt_f_ versions, so they record on the
 * autograd tape. */
#include "bind.h"


typedef dt_status (*product_fn)(const dt_tensor *, const dt_tensor *, dt_tensor **);

/* The common shape of the bindings: two tensors in, one out. `want_a` /
 * `want_b` are the required dims (0: any), checked here so that the message
 * names the Lua function's expectations. */
static int product(lua_State *L, const char *fn, product_fn op, int want_a, int want_b)
{
    dt_tensor *a = lt_check(L, 1, fn), *b = lt_check(L, 2, fn), *r;
    if (want_a && a->ndim != want_a)
        return lt_error(L, fn, "argument #1: expected a %d-d tensor, got %d-d", want_a, a->ndim);
    if (want_b && b->ndim != want_b)
        return lt_error(L, fn, "argument #2: expected a %d-d tensor, got %d-d", want_b, b->ndim);
    LT_TRY(L, fn, op(a, b, &r));
    lt_push(L, r);
    return 1;
}

static int l_mm(lua_State *L) { return product(L, "distill.mm", dt_f_mm, 2, 2); }
static int l_bmm(lua_State *L) { return product(L, "distill.bmm", dt_f_bmm, 3, 3); }
static int l_matmul(lua_State *L) { return product(L, "distill.matmul", dt_f_matmul, 0, 0); }
static int l_dot(lua_State *L) { return product(L, "distill.dot", dt_f_dot, 1, 1); }
static int l_mv(lua_State *L) { return product(L, "distill.mv", dt_f_mv, 2, 1); }

static int l_outer(lua_State *L)
{
    const char *fn = "distill.outer";
    dt_tensor *a = lt_check(L, 1, fn), *b = lt_check(L, 2, fn), *r;
    if (a->ndim != 1 || b->ndim != 1)
        return lt_error(L, fn, "expected two 1-d tensors, got %d-d and %d-d", a->ndim, b->ndim);
    LT_TRY(L, fn, dt_f_outer(a, b, &r));
    lt_push(L, r);
    return 1;
}

/* linear(x, w [, b]): x (..., in) @ w^T + b, w (out, in), b (out) or nil. */
static int l_linear(lua_State *L)
{
    const char *fn = "distill.linear";
    dt_tensor *x = lt_check(L, 1, fn), *w = lt_check(L, 2, fn), *r;
    dt_tensor *b = lua_isnoneornil(L, 3) ? NULL : lt_check(L, 3, fn);
    LT_TRY(L, fn, dt_f_linear(x, w, b, &r));
    lt_push(L, r);
    return 1;
}

/* Seconds on CLOCK_MONOTONIC: os.clock() counts CPU time of every thread,
 * which overstates the time of multithreaded BLAS calls. */
static int l_wallclock(lua_State *L)
{
    lua_pushnumber(L, dt_wallclock());
    return 1;
}

static const luaL_Reg funcs[] = {
    {"mm", l_mm}, {"bmm", l_bmm}, {"matmul", l_matmul}, {"dot", l_dot}, {"mv", l_mv},
    {"outer", l_outer}, {"linear", l_linear}, {"wallclock", l_wallclock},
    {NULL, NULL},
};

static const luaL_Reg methods[] = {
    {"mm", l_mm}, {"bmm", l_bmm}, {"matmul", l_matmul}, {"dot", l_dot}, {"mv", l_mv},
    {"outer", l_outer},
    {NULL, NULL},
};

void lt_open_linalg(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, methods); }

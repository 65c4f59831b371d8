/* random.c - seeding, generator state and random tensors from Lua. */
#include "bind.h"

static int l_manual_seed(lua_State *L)
{
    int64_t seed = lt_check_int(L, 1, "distill.manual_seed", "seed");
    dt_rng_seed(dt_default_rng(), (uint64_t)seed);
    return 0;
}

static int l_initial_seed(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)dt_default_rng()->seed);
    return 1;
}

/* The state is {seed = s, offset = n}: plain integers, so it fits in a
 * checkpoint's JSON metadata. */
static int l_get_rng_state(lua_State *L)
{
    dt_rng *g = dt_default_rng();
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)g->seed);
    lua_setfield(L, -2, "seed");
    lua_pushinteger(L, (lua_Integer)g->offset);
    lua_setfield(L, -2, "offset");
    return 1;
}

static int l_set_rng_state(lua_State *L)
{
    const char *fn = "distill.set_rng_state";
    if (!lua_istable(L, 1))
        return lt_error(L, fn, "expected a state table {seed=, offset=}, got %s",
                        lt_typename(L, 1));
    lua_getfield(L, 1, "seed");
    lua_getfield(L, 1, "offset");
    if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1))
        return lt_error(L, fn, "state needs integer fields 'seed' and 'offset'");
    dt_rng *g = dt_default_rng();
    g->seed = (uint64_t)lua_tointeger(L, -2);
    g->offset = (uint64_t)lua_tointeger(L, -1);
    return 0;
}

/* rand{2,3} / rand(2,3), optional trailing dtype only with the table form. */
static dt_tensor *new_float(lua_State *L, const char *fn)
{
    int64_t shape[DT_MAX_DIMS];
    int ndim = lt_check_shape(L, 1, fn, shape, 0);
    if (lua_istable(L, 1) && !lua_isnoneornil(L, 2) &&
        lt_opt_dtype(L, 2, fn, DT_FLOAT32) != DT_FLOAT32)
        lt_error(L, fn, "random floats are float32 only");
    dt_tensor *t;
    if (dt_zeros(DT_FLOAT32, ndim, shape, &t))
        lt_fail(L, fn);
    lt_push(L, t);
    return t;
}

static int l_rand(lua_State *L)
{
    dt_tensor *t = new_float(L, "distill.rand");
    LT_TRY(L, "distill.rand", dt_rand_(t, dt_default_rng(), 0, 1));
    return 1;
}

static int l_randn(lua_State *L)
{
    dt_tensor *t = new_float(L, "distill.randn");
    LT_TRY(L, "distill.randn", dt_randn_(t, dt_default_rng(), 0, 1));
    return 1;
}

/* randint(low, high, shape): integers in [low, high), int64, as torch. */
static int l_randint(lua_State *L)
{
    const char *fn = "distill.randint";
    int64_t low = lt_check_int(L, 1, fn, "low"), high = lt_check_int(L, 2, fn, "high");
    int64_t shape[DT_MAX_DIMS];
    if (!lua_istable(L, 3))
        return lt_error(L, fn, "expected (low, high, shape table), got %s as the shape",
                        lt_typename(L, 3));
    int ndim = lt_check_shape(L, 3, fn, shape, 0);
    dt_dtype dtype = lt_opt_dtype(L, 4, fn, DT_INT64);
    dt_tensor *t;
    LT_TRY(L, fn, dt_zeros(dtype, ndim, shape, &t));
    lt_push(L, t);
    LT_TRY(L, fn, dt_randint_(t, dt_default_rng(), low, high));
    return 1;
}

/* A random permutation of 1..n: positions are 1-based on the Lua side, so
 * the result indexes tensors directly (x:index_select(1, randperm(n))). */
static int l_randperm(lua_State *L)
{
    const char *fn = "distill.randperm";
    dt_tensor *t;
    LT_TRY(L, fn, dt_randperm(dt_default_rng(), lt_check_int(L, 1, fn, "n"), &t));
    int64_t *p = dt_i64(t), n = dt_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i]++;
    lt_push(L, t);
    return 1;
}

static int m_uniform_(lua_State *L)
{
    const char *fn = "Tensor:uniform_";
    dt_tensor *t = lt_check_mutable(L, 1, fn);
    double lo = lua_isnoneornil(L, 2) ? 0 : lt_check_num(L, 2, fn, "low");
    double hi = lua_isnoneornil(L, 3) ? 1 : lt_check_num(L, 3, fn, "high");
    LT_TRY(L, fn, dt_rand_(t, dt_default_rng(), lo, hi));
    lua_settop(L, 1);
    return 1;
}

static int m_normal_(lua_State *L)
{
    const char *fn = "Tensor:normal_";
    dt_tensor *t = lt_check_mutable(L, 1, fn);
    double mean = lua_isnoneornil(L, 2) ? 0 : lt_check_num(L, 2, fn, "mean");
    double std = lua_isnoneornil(L, 3) ? 1 : lt_check_num(L, 3, fn, "std");
    if (std < 0)
        return lt_error(L, fn, "std must be >= 0, got %g", std);
    LT_TRY(L, fn, dt_randn_(t, dt_default_rng(), mean, std));
    lua_settop(L, 1);
    return 1;
}

static int m_random_(lua_State *L)
{
    const char *fn = "Tensor:random_";
    dt_tensor *t = lt_check_mutable(L, 1, fn);
    int64_t low = lt_check_int(L, 2, fn, "low"), high = lt_check_int(L, 3, fn, "high");
    LT_TRY(L, fn, dt_randint_(t, dt_default_rng(), low, high));
    lua_settop(L, 1);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"manual_seed", l_manual_seed}, {"initial_seed", l_initial_seed},
    {"get_rng_state", l_get_rng_state}, {"set_rng_state", l_set_rng_state},
    {"rand", l_rand}, {"randn", l_randn}, {"randint", l_randint}, {"randperm", l_randperm},
    {NULL, NULL},
};

static const luaL_Reg methods[] = {
    {"uniform_", m_uniform_}, {"normal_", m_normal_}, {"random_", m_random_},
    {NULL, NULL},
};

void lt_open_random(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, methods); }

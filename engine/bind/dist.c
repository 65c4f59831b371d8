/* bind/dist.c - data-parallel training over MPI (distill.h, lua/distill/dist.lua).
 *
 *   distill.core.dist_available()      -> ok, reason (reason when not)
 *   distill.core.dist_launched()       -> whether mpirun/srun started this process
 *   distill.core.dist_init()           -> starts MPI (once)
 *   distill.core.dist_rank()           -> 1..size (1 before init or without MPI)
 *   distill.core.dist_size()
 *   distill.core.dist_barrier()
 *   distill.core.dist_abort(code)      -> kills every rank; never returns
 *   distill.core.dist_all_reduce_(t)   -> t summed over ranks, in place; returns t
 *   distill.core.dist_broadcast_(t, root) -> t from rank root (1-based), in place
 *   distill.core.dist_all_gather(t)    -> every rank's t along dim 1, on the tape
 *   distill.core.dist_sum_numbers(list) -> a new list: each number summed over ranks
 *                                        (in double)
 *   distill.core.dist_hash(s)          -> a 64-bit FNV-1a hash of string s
 *   distill.core.dist_ddp(params, {bucket_mb = 25}) -> a DDP object:
 *       ddp:backward(loss [, grad])    -> backward with bucketed gradient averaging
 *       ddp:stats()                    -> {buckets =, started_early =, calls =, floats =,
 *                                          backward_seconds =, wait_seconds =}
 * Ranks count from 1 on the Lua side. */
#include "bind.h"

#define LT_DDP_MT "distill.dist.DDP"

static int l_available(lua_State *L)
{
    const char *reason = NULL;
    bool ok = dt_dist_available(&reason);
    lua_pushboolean(L, ok);
    if (ok)
        return 1;
    lua_pushstring(L, reason);
    return 2;
}

static int l_launched(lua_State *L)
{
    lua_pushboolean(L, dt_dist_launched());
    return 1;
}

static int l_init(lua_State *L)
{
    LT_TRY(L, "distill.dist.init", dt_dist_init());
    return 0;
}

static int l_rank(lua_State *L)
{
    lua_pushinteger(L, dt_dist_rank() + 1);
    return 1;
}

static int l_size(lua_State *L)
{
    lua_pushinteger(L, dt_dist_size());
    return 1;
}

static int l_barrier(lua_State *L)
{
    LT_TRY(L, "distill.dist.barrier", dt_dist_barrier());
    return 0;
}

static int l_abort(lua_State *L)
{
    int code = (int)lt_opt_int(L, 1, "distill.dist.abort", "code", 1);
    dt_dist_abort(code);
    return 0;
}

static int l_all_reduce_(lua_State *L)
{
    const char *fn = "distill.dist.all_reduce_";
    dt_tensor *t = lt_check_mutable(L, 1, fn);
    LT_TRY(L, fn, dt_dist_allreduce_(t));
    lua_settop(L, 1);
    return 1;
}

static int l_broadcast_(lua_State *L)
{
    const char *fn = "distill.dist.broadcast_";
    dt_tensor *t = lt_check(L, 1, fn);
    int64_t root = lt_opt_int(L, 2, fn, "root", 1);
    if (root < 1 || root > dt_dist_size())
        return lt_error(L, fn, "root rank %lld is not one of the %d ranks (ranks count from 1)",
                        (long long)root, dt_dist_size());
    lt_check_inplace(L, t, fn);
    LT_TRY(L, fn, dt_dist_broadcast_(t, (int)root - 1));
    lua_settop(L, 1);
    return 1;
}

static int l_all_gather(lua_State *L)
{
    const char *fn = "distill.dist.all_gather";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    LT_TRY(L, fn, dt_f_dist_allgather(t, &r));
    lt_push(L, r);
    return 1;
}

static int l_sum_numbers(lua_State *L)
{
    const char *fn = "distill.dist.sum_numbers";
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t n = (int64_t)luaL_len(L, 1);
    double *v = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *v, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        int isnum = 0;
        v[i] = lua_tonumberx(L, -1, &isnum);
        lua_pop(L, 1);
        if (!isnum)
            return lt_error(L, fn, "entry %lld is not a number", (long long)i + 1);
    }
    LT_TRY(L, fn, dt_dist_sum_doubles(v, n));
    lua_createtable(L, (int)n, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_pushnumber(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_hash(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    lua_pushinteger(L, (lua_Integer)h);
    return 1;
}

/* ------------------------------------------------------------------ DDP */

typedef struct lt_ddp {
    dt_ddp *d;
} lt_ddp;

static int l_ddp(lua_State *L)
{
    const char *fn = "distill.dist.DistributedDataParallel";
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"bucket_mb", NULL};
    lt_check_option_keys(L, 2, fn, keys);
    double mb = lt_opt_field_num(L, 2, fn, "bucket_mb", 25.0);
    if (!(mb > 0))
        return lt_error(L, fn, "bucket_mb must be positive, got %g", mb);
    int n = (int)luaL_len(L, 1);
    dt_tensor **params = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *params, 0);
    for (int i = 0; i < n; i++) {
        lua_geti(L, 1, i + 1);
        params[i] = lt_to(L, -1);
        lua_pop(L, 1);
        if (!params[i])
            return lt_error(L, fn, "parameter %d is not a tensor", i + 1);
    }
    lt_ddp *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->d = NULL;
    luaL_setmetatable(L, LT_DDP_MT);
    LT_TRY(L, fn, dt_ddp_new(n, params, (size_t)(mb * 1024 * 1024), &u->d));
    return 1;
}

static dt_ddp *check_ddp(lua_State *L, const char *fn)
{
    lt_ddp *u = luaL_testudata(L, 1, LT_DDP_MT);
    if (!u || !u->d)
        lt_error(L, fn, "expected a DistributedDataParallel object, got %s", luaL_typename(L, 1));
    return u->d;
}

static int m_ddp_backward(lua_State *L)
{
    const char *fn = "DistributedDataParallel:backward";
    dt_ddp *d = check_ddp(L, fn);
    dt_tensor *loss = lt_check(L, 2, fn);
    dt_tensor *grad = lua_isnoneornil(L, 3) ? NULL : lt_check(L, 3, fn);
    LT_TRY(L, fn, dt_ddp_backward(d, loss, grad));
    return 0;
}

static int m_ddp_stats(lua_State *L)
{
    dt_ddp *d = check_ddp(L, "DistributedDataParallel:stats");
    dt_ddp_stats st;
    dt_ddp_get_stats(d, &st);
    const struct { const char *name; lua_Integer value; } counts[] = {
        {"buckets", st.buckets}, {"started_early", st.started_early},
        {"calls", st.calls}, {"floats", st.floats},
    };
    const struct { const char *name; lua_Number value; } times[] = {
        {"backward_seconds", st.backward_seconds}, {"wait_seconds", st.wait_seconds},
    };
    lua_createtable(L, 0, 6);
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        lua_pushinteger(L, counts[i].value);
        lua_setfield(L, -2, counts[i].name);
    }
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        lua_pushnumber(L, times[i].value);
        lua_setfield(L, -2, times[i].name);
    }
    return 1;
}

static int m_ddp_gc(lua_State *L)
{
    lt_ddp *u = luaL_checkudata(L, 1, LT_DDP_MT);
    dt_ddp_free(u->d);
    u->d = NULL;
    return 0;
}

static const luaL_Reg ddp_methods[] = {
    {"backward", m_ddp_backward}, {"stats", m_ddp_stats}, {NULL, NULL},
};

static const luaL_Reg funcs[] = {
    {"dist_available", l_available}, {"dist_launched", l_launched}, {"dist_init", l_init},
    {"dist_rank", l_rank}, {"dist_size", l_size}, {"dist_barrier", l_barrier},
    {"dist_abort", l_abort}, {"dist_all_reduce_", l_all_reduce_},
    {"dist_broadcast_", l_broadcast_}, {"dist_all_gather", l_all_gather}, {"dist_ddp", l_ddp},
    {"dist_sum_numbers", l_sum_numbers}, {"dist_hash", l_hash},
    {NULL, NULL},
};

void lt_open_dist(lua_State *L, int mod_idx)
{
    luaL_newmetatable(L, LT_DDP_MT);
    lua_newtable(L);
    luaL_setfuncs(L, ddp_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_ddp_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lt_register(L, mod_idx, funcs, NULL);
}

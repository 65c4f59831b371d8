/* core.c - the Tensor userdata, its metatable and luaopen_distill_core. */
#include "bind.h"

#include <stdlib.h>
#include <string.h>

void lt_push(lua_State *L, dt_tensor *t)
{
    /* A storage with a single owner was just allocated: tell the collector
     * how many bytes it stands for, so loops that drop big tensors keep a
     * flat footprint without manual collectgarbage(). */
    size_t fresh = t->storage->refcount == 1 ? t->storage->nbytes : 0;
    lt_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = t;
    luaL_setmetatable(L, LT_TENSOR_MT);
    if (fresh >= 1024) {
        lua_pushvalue(L, -1);   /* keep the new tensor reachable during the step */
        lua_gc(L, LUA_GCSTEP, (int)(fresh / 1024 > 1 << 20 ? 1 << 20 : fresh / 1024));
        lua_pop(L, 1);
    }
}

static int tensor_gc(lua_State *L)
{
    lt_tensor *u = luaL_checkudata(L, 1, LT_TENSOR_MT);
    dt_tensor_release(u->t);
    u->t = NULL;
    return 0;
}

/* Push element at flat offset `off` of t as a Lua number. */
static void push_element(lua_State *L, const dt_tensor *t, int64_t off)
{
    switch (t->dtype) {
    case DT_FLOAT32: lua_pushnumber(L, dt_f32(t)[off]); break;
    case DT_INT64: lua_pushinteger(L, dt_i64(t)[off]); break;
    case DT_UINT8: lua_pushinteger(L, dt_u8(t)[off]); break;
    }
}

/* Resolve a Torch7-style index key into a view of t:
 *   integer i        -> select along the current dim
 *   {a, b} table     -> narrow to positions a..b (inclusive; negatives count from the end)
 *   {} or ":"        -> keep the dim whole
 * A table key {k1, k2, ...} applies one entry per leading dim. */
static dt_tensor *index_view(lua_State *L, dt_tensor *t, int key, const char *fn)
{
    dt_tensor *cur = t;
    dt_tensor_retain(cur);
    int nkeys = 1, dim = 0;
    int is_table = lua_istable(L, key);
    if (is_table)
        nkeys = (int)luaL_len(L, key);
    if (nkeys > t->ndim) {
        dt_tensor_release(cur);
        lt_error(L, fn, "%d indices given for a %d-d tensor", nkeys, t->ndim);
    }
    for (int k = 1; k <= nkeys; k++) {
        if (is_table)
            lua_geti(L, key, k);
        else
            lua_pushvalue(L, key);
        dt_tensor *next = NULL;
        dt_status st = DT_OK;
        int isint = 0;
        lua_Integer i = lua_tointegerx(L, -1, &isint);
        if (isint) {
            int64_t pos = i > 0 ? i - 1 : i;   /* negative counts from the end */
            if (i == 0)
                st = dt_fail(DT_ERR_INDEX, "index 0 is invalid (indices count from 1)");
            else
                st = dt_f_select(cur, dim, pos, &next);
        } else if (lua_istable(L, -1) || (lua_type(L, -1) == LUA_TSTRING &&
                                          strcmp(lua_tostring(L, -1), ":") == 0)) {
            int64_t size = cur->shape[dim], first = 1, last = size;
            if (lua_istable(L, -1) && luaL_len(L, -1) > 0) {
                lua_geti(L, -1, 1);
                lua_geti(L, -2, 2);
                int ok1 = 0, ok2 = 0;
                first = lua_tointegerx(L, -2, &ok1);
                last = lua_isnil(L, -1) ? first : lua_tointegerx(L, -1, &ok2);
                if (lua_isnil(L, -1))
                    ok2 = 1;
                lua_pop(L, 2);
                if (!ok1 || !ok2)
                    st = dt_fail(DT_ERR_ARG, "a range index must be {first, last} integers");
                if (first < 0)
                    first += size + 1;
                if (last < 0)
                    last += size + 1;
            }
            if (st == DT_OK)
                st = first < 1 || last > size || last < first - 1
                    ? dt_fail(DT_ERR_INDEX, "range {%lld, %lld} is out of range for dim %d of "
                              "size %lld", (long long)first, (long long)last, dim + 1,
                              (long long)size)
                    : dt_f_narrow(cur, dim, first - 1, last - first + 1, &next);
            dim++;
        } else {
            st = dt_fail(DT_ERR_ARG, "an index must be an integer, a {first, last} range or "
                         "\":\", got %s", luaL_typename(L, -1));
        }
        lua_pop(L, 1);
        dt_tensor_release(cur);
        if (st)
            lt_fail(L, fn);
        cur = next;
    }
    return cur;
}

static int tensor_index(lua_State *L)
{
    /* Method lookup works on a freed tensor too, so that x:numel() on one
     * raises "Tensor:numel: ... freed" from the method itself. */
    lt_tensor *u = luaL_checkudata(L, 1, LT_TENSOR_MT);
    int kt = lua_type(L, 2);
    if (kt == LUA_TSTRING) {
        lua_getfield(L, LUA_REGISTRYINDEX, LT_GETTERS_KEY);
        if (lua_getfield(L, -1, lua_tostring(L, 2)) != LUA_TNIL) {
            lua_pushvalue(L, 1);
            lua_call(L, 1, 1);
            return 1;
        }
        lua_getfield(L, LUA_REGISTRYINDEX, LT_METHODS_KEY);
        lua_getfield(L, -1, lua_tostring(L, 2));
        return 1;
    }
    if (kt == LUA_TNUMBER || kt == LUA_TTABLE) {
        dt_tensor *t = u->t ? u->t : lt_check(L, 1, "Tensor indexing");
        dt_tensor *v = index_view(L, t, 2, "Tensor indexing");
        if (v->ndim == 0) {
            push_element(L, v, 0);
            dt_tensor_release(v);
        } else {
            lt_push(L, v);
        }
        return 1;
    }
    return lt_error(L, "Tensor indexing", "cannot index a tensor with a %s", luaL_typename(L, 2));
}

static int tensor_newindex(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor.__newindex");
    int kt = lua_type(L, 2);
    if (kt == LUA_TSTRING) {
        lua_getfield(L, LUA_REGISTRYINDEX, LT_SETTERS_KEY);
        if (lua_getfield(L, -1, lua_tostring(L, 2)) == LUA_TNIL)
            return lt_error(L, "Tensor", "cannot set field '%s' of a tensor", lua_tostring(L, 2));
        lua_pushvalue(L, 1);
        lua_pushvalue(L, 3);
        lua_call(L, 2, 0);
        return 0;
    }
    if (kt != LUA_TNUMBER && kt != LUA_TTABLE)
        return lt_error(L, "Tensor assignment", "cannot index a tensor with a %s",
                        luaL_typename(L, 2));
    lt_check_inplace(L, t, "Tensor assignment");
    dt_tensor *v = index_view(L, t, 2, "Tensor assignment");
    dt_status st;
    if (lua_type(L, 3) == LUA_TNUMBER) {
        st = dt_fill_(v, lua_tonumber(L, 3));
    } else if (lt_to(L, 3)) {
        st = dt_copy_(v, lt_to(L, 3));
    } else {
        dt_tensor_release(v);
        return lt_error(L, "Tensor assignment", "value must be a number or a tensor, got %s",
                        luaL_typename(L, 3));
    }
    dt_tensor_release(v);
    if (st)
        return lt_fail(L, "Tensor assignment");
    return 0;
}

static int tensor_len(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor.__len");
    if (t->ndim == 0)
        return lt_error(L, "Tensor.__len", "a 0-d tensor has no length");
    lua_pushinteger(L, t->shape[0]);
    return 1;
}

static int tensor_tostring(lua_State *L)
{
    lt_tensor *u = luaL_checkudata(L, 1, LT_TENSOR_MT);
    if (!u->t) {
        lua_pushliteral(L, "tensor(<freed>)");
        return 1;
    }
    char *s = dt_format(u->t, 1000);
    if (!s)
        return luaL_error(L, "tostring: out of memory");
    lua_pushstring(L, s);
    free(s);
    return 1;
}

static int tensor_free(lua_State *L) { return tensor_gc(L); }

/* Lua 5.4 calls __eq only for two userdata and keeps only a boolean, so
 * `a == b` means torch.equal: same shape and equal elements (dtypes may
 * differ). The elementwise comparison is a:eq(b). */
static int tensor_eq(lua_State *L)
{
    dt_tensor *a = lt_to(L, 1), *b = lt_to(L, 2);
    if (!a || !b) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int equal = dt_same_shape(a, b);
    int64_t n = dt_numel(a);
    for (int64_t i = 0; i < n && equal; i++)
        equal = dt_get_flat(a, i) == dt_get_flat(b, i);
    lua_pushboolean(L, equal);
    return 1;
}

static const luaL_Reg metamethods[] = {
    {"__gc", tensor_gc},
    {"__close", tensor_gc},
    {"__index", tensor_index},
    {"__newindex", tensor_newindex},
    {"__len", tensor_len},
    {"__tostring", tensor_tostring},
    {"__eq", tensor_eq},
    {NULL, NULL},
};

static const luaL_Reg core_methods[] = {
    {"free", tensor_free},
    {NULL, NULL},
};

static int is_tensor(lua_State *L)
{
    lua_pushboolean(L, lt_to(L, 1) != NULL || luaL_testudata(L, 1, LT_TENSOR_MT) != NULL);
    return 1;
}

static int live_bytes(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)dt_storage_live_bytes());
    return 1;
}

int luaopen_distill_core(lua_State *L)
{
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LT_METHODS_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LT_GETTERS_KEY);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LT_SETTERS_KEY);

    luaL_newmetatable(L, LT_TENSOR_MT);
    luaL_setfuncs(L, metamethods, 0);
    lua_pushliteral(L, "Tensor");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);

    lua_newtable(L);
    int mod = lua_gettop(L);
    lt_register(L, mod, NULL, core_methods);
    lua_pushcfunction(L, is_tensor);
    lua_setfield(L, mod, "is_tensor");
    lua_pushcfunction(L, live_bytes);
    lua_setfield(L, mod, "live_bytes");
    lt_open_tensor(L, mod);
    lt_open_random(L, mod);
    lt_open_math(L, mod);
    lt_open_linalg(L, mod);
    lt_open_index(L, mod);
    lt_open_data(L, mod);
    lt_open_autograd(L, mod);
    lt_open_nn(L, mod);
    lt_open_functional(L, mod);
    lt_open_optim(L, mod);
    lt_open_checkpoint(L, mod);
    lt_open_contrast(L, mod);
    lt_open_profile(L, mod);
    /* lua5.4 (lua.c) starts the collector in generational mode, where
     * objects that survived two minor collections (every activation of a
     * forward pass) wait for a major collection that tensor bytes never
     * trigger: RSS grew by a forward pass per step. lt_push's LUA_GCSTEP
     * pacing works in incremental mode. */
    lua_gc(L, LUA_GCINC, 0, 0, 0);

    /* Expose the methods table so Lua code can add methods (nn helpers...). */
    lua_getfield(L, LUA_REGISTRYINDEX, LT_METHODS_KEY);
    lua_setfield(L, mod, "Tensor");
    return 1;
}

/* core.c - the Tensor userdata: its metatable, memory accounting and the
 * collector's pacing. */
#include "bind.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ GC pacing
 *
 * Tensor bytes live outside the Lua heap, so Lua's own pacing never sees
 * them: a loop that drops big tensors would grow without bound. The binding
 * counts the bytes of fresh storages it hands to Lua and paces the
 * collector itself, in Lua 5.4's generational mode:
 *
 *  - every GC_MINOR_BUDGET fresh bytes, a minor collection: it visits only
 *    the objects created since the previous one, so it frees the many
 *    short-lived activations of a forward pass at a cost independent of the
 *    Lua heap's size;
 *  - when the live tensor bytes after a minor collection have grown past
 *    the level left by the last major collection by a margin, a major
 *    (full) collection: tensors that lived through two minor collections
 *    (a step's saved activations) are old, and only a major collection
 *    frees them once they die. The margin is proportional to what is live
 *    (the live bytes over GC_LIVE_DIVISOR, as Lua's own pacing lets a heap
 *    grow by a fraction before collecting) and to the Lua heap
 *    (GC_HEAP_RATIO times it: a major collection walks the whole heap,
 *    which must stay cheap per tensor byte on big heaps), and at least
 *    GC_MAJOR_MIN. Also every GC_MAJOR_EVERY margins of fresh bytes:
 *    otherwise tensors that died old after a peak (a phase that held
 *    more) would wait until the live bytes reach that peak again.
 *
 * Why minor collections: a full collection walks the whole Lua heap, whose
 * objects are pointer-chased out of DRAM between conv kernels, so a full
 * cycle per op (the earlier LUA_GCSTEP policy) or per 16 MB cost a large
 * share of a forward pass; minor ones cost a fraction of that
 * (docs/performance.md).
 *
 * The state is per process: the binding runs in one Lua state. */
#define GC_MINOR_BUDGET ((size_t)16 << 20)
#define GC_MAJOR_MIN ((size_t)32 << 20)
#define GC_LIVE_DIVISOR 2
#define GC_HEAP_RATIO 4
#define GC_MAJOR_EVERY 8

static struct {
    size_t pending;       /* fresh tensor bytes pushed since the last collection */
    size_t major_at;      /* live tensor bytes that call for a major collection */
    size_t fresh_since_major, fresh_major_at;   /* ... and fresh bytes */
    size_t minors, majors;
    double seconds;       /* wall time spent in the pacing's collections */
} gc_pacing = {0, GC_MAJOR_MIN, 0, GC_MAJOR_EVERY * GC_MAJOR_MIN, 0, 0, 0.0};

static size_t lua_heap_bytes(lua_State *L)
{
    return (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
}

/* Sets the levels of the next major collection, right after one. */
static void plan_next_major(lua_State *L)
{
    size_t live = dt_storage_live_bytes();
    size_t by_live = live / GC_LIVE_DIVISOR, by_heap = lua_heap_bytes(L) * GC_HEAP_RATIO;
    size_t margin = by_live > by_heap ? by_live : by_heap;
    if (margin < GC_MAJOR_MIN)
        margin = GC_MAJOR_MIN;
    gc_pacing.major_at = live + margin;
    gc_pacing.fresh_since_major = 0;
    gc_pacing.fresh_major_at = GC_MAJOR_EVERY * margin;
}

static void gc_collect(lua_State *L)
{
    double t0 = dt_wallclock();
    /* A step with no debt: in generational mode a minor collection (or a
     * major one when Lua's own heap has grown enough); in incremental mode
     * (a user's choice) a small step, and the live-byte check below then
     * does the freeing with full collections. */
    lua_gc(L, LUA_GCSTEP, 0);
    gc_pacing.minors++;
    if (dt_storage_live_bytes() >= gc_pacing.major_at ||
        gc_pacing.fresh_since_major >= gc_pacing.fresh_major_at) {
        lua_gc(L, LUA_GCCOLLECT);
        gc_pacing.majors++;
        plan_next_major(L);
    }
    gc_pacing.seconds += dt_wallclock() - t0;
}

/* Called with the new tensor on top of the stack, so it survives. */
static void gc_account(lua_State *L, size_t fresh)
{
    gc_pacing.pending += fresh;
    gc_pacing.fresh_since_major += fresh;
    if (gc_pacing.pending < GC_MINOR_BUDGET)
        return;
    gc_pacing.pending = 0;
    if (lua_gc(L, LUA_GCISRUNNING))   /* collectgarbage("stop") is respected */
        gc_collect(L);
}

void lt_push(lua_State *L, dt_tensor *t)
{
    /* Only a storage with a single owner was just allocated; views and
     * aliases of existing storages add no bytes. */
    size_t fresh = t->storage->refcount == 1 ? t->storage->nbytes : 0;
    lt_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = t;
    luaL_setmetatable(L, LT_TENSOR_MT);
    if (fresh)
        gc_account(L, fresh);
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
                         "\":\", got %s", lt_typename(L, -1));
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
    return lt_error(L, "Tensor indexing", "cannot index a tensor with a %s", lt_typename(L, 2));
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
                        lt_typename(L, 2));
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
                        lt_typename(L, 3));
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
    lua_pushboolean(L, a && b && dt_equal(a, b));
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

/* {cached =, hits =, misses =, limit =}: the storage cache (bytes held,
 * block counts, its bound in bytes). */
static int cache_stats(lua_State *L)
{
    size_t cached, hits, misses, limit;
    dt_storage_cache_stats(&cached, &hits, &misses, &limit);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)limit);
    lua_setfield(L, -2, "limit");
    lua_pushinteger(L, (lua_Integer)cached);
    lua_setfield(L, -2, "cached");
    lua_pushinteger(L, (lua_Integer)hits);
    lua_setfield(L, -2, "hits");
    lua_pushinteger(L, (lua_Integer)misses);
    lua_setfield(L, -2, "misses");
    return 1;
}

/* Frees every cached block back to the system (torch.cuda.empty_cache's
 * counterpart): for a long phase that needs less memory than the last. */
static int cache_trim(lua_State *L)
{
    (void)L;
    dt_storage_cache_trim();
    return 0;
}

/* {minor =, major =, seconds =, pending =, major_at =}: the GC pacing's
 * collections so far, the wall time spent in them, the fresh bytes since
 * the last one and the live-byte level of the next major collection. */
static int gc_stats(lua_State *L)
{
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, (lua_Integer)gc_pacing.minors);
    lua_setfield(L, -2, "minor");
    lua_pushinteger(L, (lua_Integer)gc_pacing.majors);
    lua_setfield(L, -2, "major");
    lua_pushnumber(L, gc_pacing.seconds);
    lua_setfield(L, -2, "seconds");
    lua_pushinteger(L, (lua_Integer)gc_pacing.pending);
    lua_setfield(L, -2, "pending");
    lua_pushinteger(L, (lua_Integer)gc_pacing.major_at);
    lua_setfield(L, -2, "major_at");
    return 1;
}

static const luaL_Reg core_funcs[] = {
    {"is_tensor", is_tensor}, {"live_bytes", live_bytes}, {"gc_stats", gc_stats},
    {"cache_stats", cache_stats}, {"cache_trim", cache_trim}, {NULL, NULL},
};

/* The Tensor metatable and the memory functions (is_tensor, live_bytes,
 * gc_stats, cache_stats, cache_trim); init.c opens everything else. */
void lt_open_core(lua_State *L, int mod)
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

    lt_register(L, mod, core_funcs, core_methods);
}

/* checkpoint.c - safetensors files from Lua:
 *   distill.save_safetensors(path, {name = tensor, ...}, {key = "value", ...} | nil)
 *   distill.load_safetensors(path) -> {name = tensor, ...}, {key = "value", ...}
 * lua/distill/checkpoint.lua builds nested checkpoints on top of these. */
#include "bind.h"

#include <stdlib.h>
#include <string.h>

/* Count the entries of the table at idx after checking that keys are
 * non-empty strings without NUL and values pass `check` (raises). */
static int count_entries(lua_State *L, int idx, const char *fn, const char *what, bool tensors)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t len;
        if (lua_type(L, -2) != LUA_TSTRING)
            return lt_error(L, fn, "%s keys must be strings, got a %s key", what,
                            lt_typename(L, -2));
        const char *k = lua_tolstring(L, -2, &len);
        if (len == 0 || strlen(k) != len)
            return lt_error(L, fn, "%s keys must be non-empty strings without NUL characters",
                            what);
        if (tensors) {
            lt_tensor *u = luaL_testudata(L, -1, LT_TENSOR_MT);
            if (!u)
                return lt_error(L, fn, "%s '%s' must be a tensor, got %s", what, k,
                                lt_typename(L, -1));
            if (!u->t)
                return lt_error(L, fn, "%s '%s' was freed", what, k);
        } else {
            size_t vlen;
            if (lua_type(L, -1) != LUA_TSTRING)
                return lt_error(L, fn, "%s '%s' must be a string, got %s", what, k,
                                lt_typename(L, -1));
            const char *v = lua_tolstring(L, -1, &vlen);
            if (strlen(v) != vlen)
                return lt_error(L, fn, "%s '%s' contains a NUL character", what, k);
        }
        n++;
        lua_pop(L, 1);
    }
    return n;
}

static int l_save_safetensors(lua_State *L)
{
    const char *fn = "distill.save_safetensors";
    const char *path = luaL_checkstring(L, 1);
    if (!lua_istable(L, 2))
        return lt_error(L, fn, "argument #2: expected a table {name = tensor}, got %s",
                        lt_typename(L, 2));
    if (!lua_isnoneornil(L, 3) && !lua_istable(L, 3))
        return lt_error(L, fn, "argument #3: expected a metadata table of strings or nil, got %s",
                        lt_typename(L, 3));
    int nt = count_entries(L, 2, fn, "tensor", true);
    int nm = lua_istable(L, 3) ? count_entries(L, 3, fn, "metadata", false) : 0;

    /* Nothing below raises until the arrays are freed. */
    const char **names = calloc((size_t)nt + 1, sizeof *names);
    const dt_tensor **ts = calloc((size_t)nt + 1, sizeof *ts);
    const char **mk = calloc((size_t)nm + 1, sizeof *mk);
    const char **mv = calloc((size_t)nm + 1, sizeof *mv);
    dt_status st;
    if (!names || !ts || !mk || !mv) {
        st = dt_fail(DT_ERR_NOMEM, "out of memory");
    } else {
        int i = 0;
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            names[i] = lua_tostring(L, -2);
            ts[i++] = ((lt_tensor *)lua_touserdata(L, -1))->t;
            lua_pop(L, 1);
        }
        i = 0;
        if (nm) {
            lua_pushnil(L);
            while (lua_next(L, 3)) {
                mk[i] = lua_tostring(L, -2);
                mv[i++] = lua_tostring(L, -1);
                lua_pop(L, 1);
            }
        }
        st = dt_safetensors_save(path, nt, names, ts, nm, mk, mv);
    }
    free(names);
    free(ts);
    free(mk);
    free(mv);
    if (st)
        return lt_fail(L, fn);
    return 0;
}

static int l_load_safetensors(lua_State *L)
{
    const char *fn = "distill.load_safetensors";
    const char *path = luaL_checkstring(L, 1);
    dt_safetensors *sf;
    LT_TRY(L, fn, dt_safetensors_load(path, &sf));
    lua_createtable(L, 0, sf->ntensors);
    for (int i = 0; i < sf->ntensors; i++) {
        lt_push(L, sf->tensors[i]);   /* takes over the reference */
        sf->tensors[i] = NULL;
        lua_setfield(L, -2, sf->names[i]);
    }
    lua_createtable(L, 0, sf->nmeta);
    for (int i = 0; i < sf->nmeta; i++) {
        lua_pushstring(L, sf->meta_values[i]);
        lua_setfield(L, -2, sf->meta_keys[i]);
    }
    dt_safetensors_free(sf);
    return 2;
}

static const luaL_Reg funcs[] = {
    {"save_safetensors", l_save_safetensors},
    {"load_safetensors", l_load_safetensors},
    {NULL, NULL},
};

void lt_open_checkpoint(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, NULL); }

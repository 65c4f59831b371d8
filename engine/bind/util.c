/* util.c - argument checking and registration helpers for the binding. */
#include "bind.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int lt_fail(lua_State *L, const char *fn) { return luaL_error(L, "%s: %s", fn, dt_last_error()); }

int lt_push_or_fail(lua_State *L, const char *fn, dt_status st, dt_tensor **out)
{
    if (st)
        return lt_fail(L, fn);
    lt_push(L, *out);
    return 1;
}

int lt_tensor_method(lua_State *L, const char *fn, lt_tensor_op op)
{
    dt_tensor *t = lt_check(L, 1, fn), *r;
    LT_TRY(L, fn, op(t, &r));
    lt_push(L, r);
    return 1;
}

int lt_error(lua_State *L, const char *fn, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return luaL_error(L, "%s: %s", fn, msg);
}

const char *lt_typename(lua_State *L, int idx)
{
    lt_tensor *u = luaL_testudata(L, idx, LT_TENSOR_MT);
    if (u)
        return u->t ? "tensor" : "freed tensor (its :free() was called)";
    return luaL_typename(L, idx);
}

dt_tensor *lt_to(lua_State *L, int idx)
{
    lt_tensor *u = luaL_testudata(L, idx, LT_TENSOR_MT);
    return u ? u->t : NULL;
}

dt_tensor *lt_check(lua_State *L, int idx, const char *fn)
{
    lt_tensor *u = luaL_testudata(L, idx, LT_TENSOR_MT);
    if (!u)
        lt_error(L, fn, "argument #%d: expected a tensor, got %s", idx, lt_typename(L, idx));
    if (!u->t)
        lt_error(L, fn, "argument #%d: the tensor was freed", idx);
    return u->t;
}

dt_tensor *lt_check_tensor_or_number(lua_State *L, int idx, const char *fn, dt_dtype dtype)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        dt_tensor *t;
        if (dt_scalar(dtype, lua_tonumber(L, idx), &t))
            lt_fail(L, fn);
        return t;
    }
    dt_tensor *t = lt_check(L, idx, fn);
    dt_tensor_retain(t);
    return t;
}

int64_t lt_check_int(lua_State *L, int idx, const char *fn, const char *what)
{
    int isint = 0;
    lua_Integer v = lua_tointegerx(L, idx, &isint);
    if (!isint) {
        if (lua_type(L, idx) == LUA_TNUMBER)
            lt_error(L, fn, "%s must be an integer, got %s", what, lua_tostring(L, idx));
        lt_error(L, fn, "%s: expected an integer, got %s", what, lt_typename(L, idx));
    }
    return v;
}

int64_t lt_opt_int(lua_State *L, int idx, const char *fn, const char *what, int64_t def)
{
    return lua_isnoneornil(L, idx) ? def : lt_check_int(L, idx, fn, what);
}

double lt_check_num(lua_State *L, int idx, const char *fn, const char *what)
{
    if (lua_type(L, idx) != LUA_TNUMBER)
        lt_error(L, fn, "%s: expected a number, got %s", what, lt_typename(L, idx));
    return lua_tonumber(L, idx);
}

int lt_dim_from_lua(lua_State *L, int64_t d, const char *fn, int ndim)
{
    int n = ndim > 0 ? ndim : 1;
    if (d == 0 || d > n || d < -n)
        lt_error(L, fn, "dim %lld out of range for a %d-d tensor (dims count from 1; "
                 "negative dims count from the end)", (long long)d, ndim);
    return (int)(d > 0 ? d - 1 : d + n);
}

int lt_check_dim(lua_State *L, int idx, const char *fn, int ndim)
{
    return lt_dim_from_lua(L, lt_check_int(L, idx, fn, "dim"), fn, ndim);
}

int lt_check_shape(lua_State *L, int idx, const char *fn, int64_t *shape, int allow_infer)
{
    int n;
    if (lua_istable(L, idx)) {
        lua_Integer len = luaL_len(L, idx);
        if (len > DT_MAX_DIMS)
            lt_error(L, fn, "shape has %lld dims; at most %d are supported", (long long)len,
                     DT_MAX_DIMS);
        n = (int)len;
        for (int d = 0; d < n; d++) {
            lua_geti(L, idx, d + 1);
            int isint = 0;
            shape[d] = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint)
                lt_error(L, fn, "shape entry %d must be an integer", d + 1);
        }
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
        int top = lua_gettop(L);
        n = top - idx + 1;
        if (n > DT_MAX_DIMS)
            lt_error(L, fn, "shape has %d dims; at most %d are supported", n, DT_MAX_DIMS);
        for (int d = 0; d < n; d++)
            shape[d] = lt_check_int(L, idx + d, fn, "size");
    } else if (lua_isnoneornil(L, idx)) {
        n = 0;
    } else {
        return lt_error(L, fn, "expected a shape table such as {2, 3}, got %s", lt_typename(L, idx));
    }
    for (int d = 0; d < n; d++)
        if (shape[d] < 0 && !(allow_infer && shape[d] == -1))
            lt_error(L, fn, "size %lld in dim %d is negative", (long long)shape[d], d + 1);
    return n;
}

dt_dtype lt_opt_dtype(lua_State *L, int idx, const char *fn, dt_dtype def)
{
    if (lua_isnoneornil(L, idx))
        return def;
    if (lua_type(L, idx) != LUA_TSTRING)
        lt_error(L, fn, "dtype must be a string (\"float32\", \"int64\" or \"uint8\"), got %s",
                 lt_typename(L, idx));
    dt_dtype d;
    if (!dt_dtype_parse(lua_tostring(L, idx), &d))
        lt_error(L, fn, "unknown dtype \"%s\" (expected \"float32\", \"int64\" or \"uint8\")",
                 lua_tostring(L, idx));
    return d;
}

/* Pushes options[key] (or nil) and returns its type. */
static int get_field(lua_State *L, int idx, const char *fn, const char *key)
{
    if (lua_isnoneornil(L, idx)) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    if (!lua_istable(L, idx))
        lt_error(L, fn, "options must be a table, got %s", lt_typename(L, idx));
    return lua_getfield(L, idx, key);
}

double lt_opt_field_num(lua_State *L, int idx, const char *fn, const char *key, double def)
{
    int t = get_field(L, idx, fn, key);
    double v = def;
    if (t == LUA_TNUMBER)
        v = lua_tonumber(L, -1);
    else if (t != LUA_TNIL)
        lt_error(L, fn, "option '%s' must be a number, got %s", key, lt_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

int64_t lt_opt_field_int(lua_State *L, int idx, const char *fn, const char *key, int64_t def)
{
    int t = get_field(L, idx, fn, key);
    int64_t v = def;
    if (t != LUA_TNIL) {
        int isint = 0;
        v = lua_tointegerx(L, -1, &isint);
        if (!isint)
            lt_error(L, fn, "option '%s' must be an integer, got %s", key,
                     t == LUA_TNUMBER ? lua_tostring(L, -1) : lt_typename(L, -1));
    }
    lua_pop(L, 1);
    return v;
}

int lt_opt_field_bool(lua_State *L, int idx, const char *fn, const char *key, int def)
{
    int t = get_field(L, idx, fn, key);
    int v = def;
    if (t == LUA_TBOOLEAN)
        v = lua_toboolean(L, -1);
    else if (t != LUA_TNIL)
        lt_error(L, fn, "option '%s' must be a boolean, got %s", key, lt_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

const char *lt_opt_field_str(lua_State *L, int idx, const char *fn, const char *key, const char *def)
{
    int t = get_field(L, idx, fn, key);
    const char *v = def;
    if (t == LUA_TSTRING)
        v = lua_tostring(L, -1);   /* still referenced by the options table */
    else if (t != LUA_TNIL)
        lt_error(L, fn, "option '%s' must be a string, got %s", key, lt_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

void lt_check_option_keys(lua_State *L, int idx, const char *fn, const char *const *valid)
{
    if (lua_isnoneornil(L, idx))
        return;
    if (!lua_istable(L, idx))
        lt_error(L, fn, "options must be a table, got %s", lt_typename(L, idx));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (int i = 0; valid[i] && !ok; i++)
                ok = strcmp(valid[i], lua_tostring(L, -1)) == 0;
        if (!ok) {
            char list[256] = "";
            for (int i = 0; valid[i]; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, valid[i], sizeof list - strlen(list) - 1);
            }
            lt_error(L, fn, "unknown option '%s' (valid: %s)", luaL_tolstring(L, -1, NULL), list);
        }
    }
}

void lt_register(lua_State *L, int mod_idx, const luaL_Reg *funcs, const luaL_Reg *methods)
{
    mod_idx = lua_absindex(L, mod_idx);
    if (funcs) {
        lua_pushvalue(L, mod_idx);
        luaL_setfuncs(L, funcs, 0);
        lua_pop(L, 1);
    }
    if (methods) {
        lua_getfield(L, LUA_REGISTRYINDEX, LT_METHODS_KEY);
        luaL_setfuncs(L, methods, 0);
        lua_pop(L, 1);
    }
}

void lt_register_property(lua_State *L, const char *name, lua_CFunction getter, lua_CFunction setter)
{
    if (getter) {
        lua_getfield(L, LUA_REGISTRYINDEX, LT_GETTERS_KEY);
        lua_pushcfunction(L, getter);
        lua_setfield(L, -2, name);
        lua_pop(L, 1);
    }
    if (setter) {
        lua_getfield(L, LUA_REGISTRYINDEX, LT_SETTERS_KEY);
        lua_pushcfunction(L, setter);
        lua_setfield(L, -2, name);
        lua_pop(L, 1);
    }
}

/* --------------------------------------------------------- positions */

dt_tensor *lt_to_engine_positions(lua_State *L, int idx, const char *fn, const lt_positions *p)
{
    dt_tensor *src = lt_to(L, idx), *r = NULL;
    int64_t n = src ? dt_numel(src) : (int64_t)luaL_len(L, idx);
    dt_status st = src ? dt_zeros(DT_INT64, src->ndim, src->shape, &r)
                       : dt_zeros(DT_INT64, 1, &n, &r);
    if (st)
        lt_fail(L, fn);
    int64_t *out = dt_i64(r);
    /* index tensors are usually dense int64 (randint, arange, argmax): read
     * them directly rather than through the per-element accessor */
    const int64_t *dense = src && src->dtype == DT_INT64 && dt_is_contiguous(src) ? dt_i64(src) : NULL;
    char bad[200] = "";
    for (int64_t i = 0; i < n && !bad[0]; i++) {
        int64_t v;
        if (dense) {
            v = dense[i];
        } else if (src) {
            v = dt_get_flat_i64(src, i);
        } else {
            lua_geti(L, idx, i + 1);
            int isint = 0;
            v = lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint) {
                snprintf(bad, sizeof bad, "index list entry %lld is not an integer",
                         (long long)i + 1);
                break;
            }
        }
        bool skipped = p->has_skip && v == p->skip;
        if (p->describe && !skipped && (v < 1 || (p->size >= 0 && v > p->size)))
            p->describe(bad, sizeof bad, v, i, p->ctx);
        /* INT64_MIN has no 0-based form: it stays, out of range for the engine */
        out[i] = v == INT64_MIN ? v : v - 1;
    }
    if (bad[0]) {
        dt_tensor_release(r);
        lt_error(L, fn, "%s", bad);
    }
    return r;
}

void lt_positions_to_lua(dt_tensor *t)
{
    int64_t *p = dt_i64(t), n = dt_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i] += 1;
}

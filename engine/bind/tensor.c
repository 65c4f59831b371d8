/* tensor.c - creation, geometry, views and element access from Lua. */
#include "bind.h"

#include <string.h>

/* ---------------------------------------------------------------- creation */

/* zeros/ones/empty share one shape: f{2,3} or f(2,3), then an optional dtype
 * string (only with the table form). */
static int make_filled(lua_State *L, const char *fn, double value)
{
    int64_t shape[DT_MAX_DIMS];
    int ndim = lt_check_shape(L, 1, fn, shape, 0);
    dt_dtype dtype = lua_istable(L, 1) ? lt_opt_dtype(L, 2, fn, DT_FLOAT32) : DT_FLOAT32;
    dt_tensor *t;
    LT_TRY(L, fn, dt_full(dtype, ndim, shape, value, &t));
    lt_push(L, t);
    return 1;
}

static int l_zeros(lua_State *L) { return make_filled(L, "distill.zeros", 0); }
static int l_ones(lua_State *L) { return make_filled(L, "distill.ones", 1); }
static int l_empty(lua_State *L) { return make_filled(L, "distill.empty", 0); }

static int l_full(lua_State *L)
{
    const char *fn = "distill.full";
    int64_t shape[DT_MAX_DIMS];
    if (!lua_istable(L, 1))
        return lt_error(L, fn, "expected a shape table such as {2, 3}, got %s",
                        lt_typename(L, 1));
    int ndim = lt_check_shape(L, 1, fn, shape, 0);
    double v = lt_check_num(L, 2, fn, "fill value");
    dt_dtype dtype = lt_opt_dtype(L, 3, fn, lua_isinteger(L, 2) ? DT_INT64 : DT_FLOAT32);
    dt_tensor *t;
    LT_TRY(L, fn, dt_full(dtype, ndim, shape, v, &t));
    lt_push(L, t);
    return 1;
}

static int make_like(lua_State *L, const char *fn, int has_value, double value)
{
    dt_tensor *src = lt_check(L, 1, fn);
    int dtype_idx = 2;
    if (has_value < 0) {   /* full_like: value is argument 2 */
        value = lt_check_num(L, 2, fn, "fill value");
        dtype_idx = 3;
    }
    dt_dtype dtype = lt_opt_dtype(L, dtype_idx, fn, src->dtype);
    dt_tensor *t;
    LT_TRY(L, fn, dt_full(dtype, src->ndim, src->shape, value, &t));
    lt_push(L, t);
    return 1;
}

static int l_zeros_like(lua_State *L) { return make_like(L, "distill.zeros_like", 1, 0); }
static int l_ones_like(lua_State *L) { return make_like(L, "distill.ones_like", 1, 1); }
static int l_full_like(lua_State *L) { return make_like(L, "distill.full_like", -1, 0); }

static int l_arange(lua_State *L)
{
    const char *fn = "distill.arange";
    /* arange(n) = 1..n is tempting in a 1-based world, but positions and
     * values are different things: arange follows torch (start 0, end
     * excluded) so ported code keeps its numbers. */
    double start = 0, end, step = 1;
    int nnum = 0, all_int = 1;
    for (int i = 1; i <= 3 && lua_type(L, i) == LUA_TNUMBER; i++) {
        nnum++;
        all_int = all_int && lua_isinteger(L, i);
    }
    if (nnum == 0)
        return lt_error(L, fn, "expected (end), (start, end) or (start, end, step) numbers, "
                        "got %s", lt_typename(L, 1));
    if (nnum == 1) {
        end = lua_tonumber(L, 1);
    } else {
        start = lua_tonumber(L, 1);
        end = lua_tonumber(L, 2);
        if (nnum == 3)
            step = lua_tonumber(L, 3);
    }
    dt_dtype dtype = lt_opt_dtype(L, nnum + 1, fn, all_int ? DT_INT64 : DT_FLOAT32);
    dt_tensor *t;
    LT_TRY(L, fn, dt_arange(dtype, start, end, step, &t));
    lt_push(L, t);
    return 1;
}

static int l_linspace(lua_State *L)
{
    const char *fn = "distill.linspace";
    double a = lt_check_num(L, 1, fn, "start"), b = lt_check_num(L, 2, fn, "end");
    int64_t steps = lt_check_int(L, 3, fn, "steps");
    dt_tensor *t;
    LT_TRY(L, fn, dt_linspace(a, b, steps, &t));
    lt_push(L, t);
    return 1;
}

static int l_eye(lua_State *L)
{
    const char *fn = "distill.eye";
    int64_t n = lt_check_int(L, 1, fn, "n");
    int64_t m = lua_type(L, 2) == LUA_TNUMBER ? lt_check_int(L, 2, fn, "m") : n;
    dt_dtype dtype = lt_opt_dtype(L, lua_type(L, 2) == LUA_TNUMBER ? 3 : 2, fn, DT_FLOAT32);
    if (n < 0 || m < 0)
        return lt_error(L, fn, "sizes must be >= 0, got %lld x %lld", (long long)n, (long long)m);
    dt_tensor *t;
    LT_TRY(L, fn, dt_eye(dtype, n, m, &t));
    lt_push(L, t);
    return 1;
}

/* Nested tables -> shape. Every row at a depth must have the same length. */
static void table_shape(lua_State *L, int idx, const char *fn, int depth, int64_t *shape,
                        int *ndim, int *all_int)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (depth == 0 || (*ndim >= 0 && *ndim != depth))
            lt_error(L, fn, "nested tables are ragged (a number where a table was expected)");
        *ndim = depth;
        if (!lua_isinteger(L, idx))
            *all_int = 0;
        return;
    }
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        if (*ndim >= 0 && *ndim != depth)
            lt_error(L, fn, "nested tables are ragged");
        *ndim = depth;
        return;
    }
    if (!lua_istable(L, idx))
        lt_error(L, fn, "expected numbers or nested tables of numbers, got %s",
                 lt_typename(L, idx));
    if (depth >= DT_MAX_DIMS)
        lt_error(L, fn, "tables nest deeper than %d dims", DT_MAX_DIMS);
    if (*ndim >= 0 && depth >= *ndim)
        lt_error(L, fn, "nested tables are ragged (a table where a number was expected)");
    int64_t len = (int64_t)luaL_len(L, idx);
    if (shape[depth] < 0)
        shape[depth] = len;
    else if (shape[depth] != len)
        lt_error(L, fn, "nested tables are ragged: rows of length %lld and %lld at depth %d",
                 (long long)shape[depth], (long long)len, depth + 1);
    if (len == 0 && *ndim < 0)
        *ndim = depth + 1;
    luaL_checkstack(L, 2, fn);
    for (int64_t i = 1; i <= len; i++) {
        lua_geti(L, idx, i);
        table_shape(L, lua_gettop(L), fn, depth + 1, shape, ndim, all_int);
        lua_pop(L, 1);
    }
}

static void table_fill(lua_State *L, int idx, dt_tensor *t, int64_t *pos)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        if (t->dtype == DT_INT64 && lua_isinteger(L, idx))
            dt_i64(t)[(*pos)++] = lua_tointeger(L, idx);
        else
            dt_set_flat(t, (*pos)++, lua_tonumber(L, idx));
        return;
    }
    if (lua_type(L, idx) == LUA_TBOOLEAN) {
        dt_set_flat(t, (*pos)++, lua_toboolean(L, idx));
        return;
    }
    int64_t len = (int64_t)luaL_len(L, idx);
    for (int64_t i = 1; i <= len; i++) {
        lua_geti(L, idx, i);
        table_fill(L, lua_gettop(L), t, pos);
        lua_pop(L, 1);
    }
}

static int l_tensor(lua_State *L)
{
    const char *fn = "distill.tensor";
    dt_tensor *src = lt_to(L, 1);
    if (src) {
        dt_tensor *t;
        LT_TRY(L, fn, dt_to_dtype(src, lt_opt_dtype(L, 2, fn, src->dtype), &t));
        lt_push(L, t);
        return 1;
    }
    if (lua_type(L, 1) != LUA_TTABLE && lua_type(L, 1) != LUA_TNUMBER)
        return lt_error(L, fn, "expected a number or a (nested) table of numbers, got %s",
                        lt_typename(L, 1));
    int64_t shape[DT_MAX_DIMS];
    for (int d = 0; d < DT_MAX_DIMS; d++)
        shape[d] = -1;
    int ndim = -1, all_int = 1;
    if (lua_type(L, 1) == LUA_TNUMBER) {
        ndim = 0;
        all_int = lua_isinteger(L, 1);
    } else {
        table_shape(L, 1, fn, 0, shape, &ndim, &all_int);
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0)
            shape[d] = 0;
    dt_dtype dtype = lt_opt_dtype(L, 2, fn, all_int && ndim >= 0 ? DT_INT64 : DT_FLOAT32);
    /* An empty table has no numbers to infer from: float32, as torch. */
    if (lua_isnoneornil(L, 2) && lua_type(L, 1) == LUA_TTABLE && luaL_len(L, 1) == 0)
        dtype = DT_FLOAT32;
    dt_tensor *t;
    LT_TRY(L, fn, dt_zeros(dtype, ndim, shape, &t));
    int64_t pos = 0;
    lt_push(L, t);   /* anchored before filling, so an error cannot leak it */
    table_fill(L, 1, t, &pos);
    return 1;
}

/* ---------------------------------------------------------------- geometry */

static void push_shape(lua_State *L, const dt_tensor *t)
{
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
        lua_pushinteger(L, t->shape[d]);
        lua_rawseti(L, -2, d + 1);
    }
}

static int m_size(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:size");
    if (lua_isnoneornil(L, 2)) {
        push_shape(L, t);
        return 1;
    }
    int d = lt_check_dim(L, 2, "Tensor:size", t->ndim);
    lua_pushinteger(L, t->ndim ? t->shape[d] : 1);
    return 1;
}

static int m_shape(lua_State *L)
{
    push_shape(L, lt_check(L, 1, "Tensor:shape"));
    return 1;
}

static int m_stride(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:stride");
    if (!lua_isnoneornil(L, 2)) {
        int d = lt_check_dim(L, 2, "Tensor:stride", t->ndim);
        lua_pushinteger(L, t->ndim ? t->stride[d] : 1);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int d = 0; d < t->ndim; d++) {
        lua_pushinteger(L, t->stride[d]);
        lua_rawseti(L, -2, d + 1);
    }
    return 1;
}

static int m_numel(lua_State *L)
{
    lua_pushinteger(L, dt_numel(lt_check(L, 1, "Tensor:numel")));
    return 1;
}

static int m_dim(lua_State *L)
{
    lua_pushinteger(L, lt_check(L, 1, "Tensor:dim")->ndim);
    return 1;
}

static int m_dtype(lua_State *L)
{
    lua_pushstring(L, dt_dtype_name(lt_check(L, 1, "Tensor:dtype")->dtype));
    return 1;
}

static int m_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, dt_is_contiguous(lt_check(L, 1, "Tensor:is_contiguous")));
    return 1;
}

static int m_storage_offset(lua_State *L)
{
    lua_pushinteger(L, lt_check(L, 1, "Tensor:storage_offset")->offset);
    return 1;
}

static int m_nbytes(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)dt_nbytes(lt_check(L, 1, "Tensor:nbytes")));
    return 1;
}

/* True when both tensors view the same storage. */
static int m_shares_storage(lua_State *L)
{
    dt_tensor *a = lt_check(L, 1, "Tensor:shares_storage");
    dt_tensor *b = lt_check(L, 2, "Tensor:shares_storage");
    lua_pushboolean(L, a->storage == b->storage);
    return 1;
}

/* ---------------------------------------------------------- element access */

static void push_flat(lua_State *L, const dt_tensor *t, int64_t i)
{
    if (t->dtype == DT_FLOAT32)
        lua_pushnumber(L, dt_get_flat(t, i));
    else
        lua_pushinteger(L, dt_get_flat_i64(t, i));
}

static int m_item(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:item");
    if (dt_numel(t) != 1) {
        char buf[128];
        return lt_error(L, "Tensor:item", "only a tensor with one element converts to a "
                        "number, got shape %s", dt_shape_str(t->shape, t->ndim, buf, sizeof buf));
    }
    push_flat(L, t, 0);
    return 1;
}

static void totable_rec(lua_State *L, const dt_tensor *t, int dim, int64_t *pos)
{
    if (dim == t->ndim) {
        push_flat(L, t, (*pos)++);
        return;
    }
    luaL_checkstack(L, 3, "Tensor:totable");
    lua_createtable(L, (int)t->shape[dim], 0);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        totable_rec(L, t, dim + 1, pos);
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_totable(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:totable");
    int64_t pos = 0;
    totable_rec(L, t, 0, &pos);
    return 1;
}

/* ------------------------------------------------------------------- views */

static int m_view(lua_State *L)
{
    const char *fn = "Tensor:view";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int64_t shape[DT_MAX_DIMS];
    int n = lt_check_shape(L, 2, fn, shape, 1);
    LT_TRY(L, fn, dt_f_view(t, n, shape, &r));
    lt_push(L, r);
    return 1;
}

static int m_reshape(lua_State *L)
{
    const char *fn = "Tensor:reshape";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int64_t shape[DT_MAX_DIMS];
    int n = lt_check_shape(L, 2, fn, shape, 1);
    LT_TRY(L, fn, dt_f_reshape(t, n, shape, &r));
    lt_push(L, r);
    return 1;
}

static int m_view_as(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:view_as"), *o = lt_check(L, 2, "Tensor:view_as"), *r;
    LT_TRY(L, "Tensor:view_as", dt_f_view(t, o->ndim, o->shape, &r));
    lt_push(L, r);
    return 1;
}

static int m_narrow(lua_State *L)
{
    const char *fn = "Tensor:narrow";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    if (t->ndim == 0)
        return lt_error(L, fn, "cannot narrow a 0-d tensor");
    int d = lt_check_dim(L, 2, fn, t->ndim);
    int64_t start = lt_check_int(L, 3, fn, "start");
    int64_t len = lt_check_int(L, 4, fn, "length");
    if (start < 0)
        start += t->shape[d] + 1;
    if (start < 1)
        return lt_error(L, fn, "start %lld is out of range (positions count from 1)",
                        (long long)lua_tointeger(L, 3));
    LT_TRY(L, fn, dt_f_narrow(t, d, start - 1, len, &r));
    lt_push(L, r);
    return 1;
}

static int m_select(lua_State *L)
{
    const char *fn = "Tensor:select";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    if (t->ndim == 0)
        return lt_error(L, fn, "cannot select from a 0-d tensor");
    int d = lt_check_dim(L, 2, fn, t->ndim);
    int64_t i = lt_check_int(L, 3, fn, "index");
    if (i == 0)
        return lt_error(L, fn, "index 0 is invalid (indices count from 1)");
    LT_TRY(L, fn, dt_f_select(t, d, i > 0 ? i - 1 : i, &r));
    lt_push(L, r);
    return 1;
}

static int m_transpose(lua_State *L)
{
    const char *fn = "Tensor:transpose";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int a = lt_check_dim(L, 2, fn, t->ndim), b = lt_check_dim(L, 3, fn, t->ndim);
    LT_TRY(L, fn, dt_f_transpose(t, a, b, &r));
    lt_push(L, r);
    return 1;
}

static int m_t(lua_State *L)
{
    const char *fn = "Tensor:t";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    if (t->ndim > 2)
        return lt_error(L, fn, "expects a tensor with <= 2 dims, got %d (use transpose)", t->ndim);
    LT_TRY(L, fn, t->ndim < 2 ? dt_f_alias(t, &r) : dt_f_transpose(t, 0, 1, &r));
    lt_push(L, r);
    return 1;
}

static int m_permute(lua_State *L)
{
    const char *fn = "Tensor:permute";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    /* dims as a table {3, 1, 2} or varargs; negative dims count from the end,
     * so they are read as plain integers rather than as a shape. */
    int64_t raw[DT_MAX_DIMS];
    int n;
    if (lua_istable(L, 2)) {
        lua_Integer len = luaL_len(L, 2);
        if (len != t->ndim)
            return lt_error(L, fn, "permutation has %lld dims but the tensor has %d",
                            (long long)len, t->ndim);
        n = (int)len;
        for (int i = 0; i < n; i++) {
            lua_geti(L, 2, i + 1);
            raw[i] = lt_check_int(L, -1, fn, "dim");
            lua_pop(L, 1);
        }
    } else {
        n = lua_gettop(L) - 1;
        if (n > DT_MAX_DIMS)
            n = DT_MAX_DIMS + 1;
        for (int i = 0; i < n && i < DT_MAX_DIMS; i++)
            raw[i] = lt_check_int(L, i + 2, fn, "dim");
    }
    if (n != t->ndim)
        return lt_error(L, fn, "permutation has %d dims but the tensor has %d", n, t->ndim);
    int dims[DT_MAX_DIMS];
    for (int i = 0; i < n; i++)
        dims[i] = lt_dim_from_lua(L, raw[i], fn, t->ndim);
    LT_TRY(L, fn, dt_f_permute(t, dims, &r));
    lt_push(L, r);
    return 1;
}

static int m_squeeze(lua_State *L)
{
    const char *fn = "Tensor:squeeze";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int d = lua_isnoneornil(L, 2) ? DT_ALL_DIMS : lt_check_dim(L, 2, fn, t->ndim);
    LT_TRY(L, fn, dt_f_squeeze(t, d, &r));
    lt_push(L, r);
    return 1;
}

static int m_unsqueeze(lua_State *L)
{
    const char *fn = "Tensor:unsqueeze";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int d = lt_check_dim(L, 2, fn, t->ndim + 1);
    LT_TRY(L, fn, dt_f_unsqueeze(t, d, &r));
    lt_push(L, r);
    return 1;
}

static int m_expand(lua_State *L)
{
    const char *fn = "Tensor:expand";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int64_t shape[DT_MAX_DIMS];
    int n = lt_check_shape(L, 2, fn, shape, 1);
    LT_TRY(L, fn, dt_f_expand(t, n, shape, &r));
    lt_push(L, r);
    return 1;
}

static int m_expand_as(lua_State *L)
{
    const char *fn = "Tensor:expand_as";
    dt_tensor *t = lt_check(L, 1, fn), *o = lt_check(L, 2, fn), *r;
    LT_TRY(L, fn, dt_f_expand(t, o->ndim, o->shape, &r));
    lt_push(L, r);
    return 1;
}

static int m_flatten(lua_State *L)
{
    const char *fn = "Tensor:flatten";
    dt_tensor *t = lt_check(L, 1, fn), *r;
    int nd = t->ndim > 0 ? t->ndim : 1;
    int a = lua_isnoneornil(L, 2) ? 0 : lt_check_dim(L, 2, fn, nd);
    int b = lua_isnoneornil(L, 3) ? nd - 1 : lt_check_dim(L, 3, fn, nd);
    LT_TRY(L, fn, dt_f_flatten(t, a, b, &r));
    lt_push(L, r);
    return 1;
}

static int m_contiguous(lua_State *L) { return lt_tensor_method(L, "Tensor:contiguous", dt_f_contiguous); }
static int m_clone(lua_State *L) { return lt_tensor_method(L, "Tensor:clone", dt_f_clone); }

static int m_copy_(lua_State *L)
{
    const char *fn = "Tensor:copy_";
    dt_tensor *dst = lt_check(L, 1, fn), *src = lt_check(L, 2, fn);
    lt_check_inplace(L, dst, fn);
    LT_TRY(L, fn, dt_copy_(dst, src));
    lua_settop(L, 1);
    return 1;
}

static int m_fill_(lua_State *L)
{
    const char *fn = "Tensor:fill_";
    dt_tensor *t = lt_check_mutable(L, 1, fn);
    LT_TRY(L, fn, dt_fill_(t, lt_check_num(L, 2, fn, "value")));
    lua_settop(L, 1);
    return 1;
}

static int m_zero_(lua_State *L)
{
    dt_tensor *t = lt_check(L, 1, "Tensor:zero_");
    lt_check_inplace(L, t, "Tensor:zero_");
    LT_TRY(L, "Tensor:zero_", dt_fill_(t, 0));
    lua_settop(L, 1);
    return 1;
}

static int convert(lua_State *L, const char *fn, dt_dtype dtype)
{
    dt_tensor *t = lt_check(L, 1, fn), *r;
    if (t->dtype == dtype) {   /* as torch: no copy when the dtype already matches */
        lua_settop(L, 1);
        return 1;
    }
    LT_TRY(L, fn, dt_f_to_dtype(t, dtype, &r));
    lt_push(L, r);
    return 1;
}

static int m_float(lua_State *L) { return convert(L, "Tensor:float", DT_FLOAT32); }
static int m_long(lua_State *L) { return convert(L, "Tensor:long", DT_INT64); }
static int m_byte(lua_State *L) { return convert(L, "Tensor:byte", DT_UINT8); }

static int m_to(lua_State *L)
{
    const char *fn = "Tensor:to";
    lt_check(L, 1, fn);
    if (lua_isnoneornil(L, 2))
        return lt_error(L, fn, "expected a dtype (\"float32\", \"int64\" or \"uint8\")");
    return convert(L, fn, lt_opt_dtype(L, 2, fn, DT_FLOAT32));
}

static const luaL_Reg funcs[] = {
    {"zeros", l_zeros}, {"ones", l_ones}, {"empty", l_empty}, {"full", l_full},
    {"zeros_like", l_zeros_like}, {"ones_like", l_ones_like}, {"full_like", l_full_like},
    {"arange", l_arange}, {"linspace", l_linspace}, {"eye", l_eye}, {"tensor", l_tensor},
    /* functional forms of the view methods */
    {"view", m_view}, {"reshape", m_reshape}, {"narrow", m_narrow}, {"select", m_select},
    {"transpose", m_transpose}, {"permute", m_permute}, {"squeeze", m_squeeze},
    {"unsqueeze", m_unsqueeze}, {"flatten", m_flatten}, {"clone", m_clone},
    {"numel", m_numel},
    {NULL, NULL},
};

static const luaL_Reg methods[] = {
    {"size", m_size}, {"shape", m_shape}, {"stride", m_stride}, {"numel", m_numel},
    {"nelement", m_numel}, {"dim", m_dim}, {"dtype", m_dtype},
    {"is_contiguous", m_is_contiguous}, {"storage_offset", m_storage_offset},
    {"nbytes", m_nbytes}, {"shares_storage", m_shares_storage},
    {"item", m_item}, {"totable", m_totable},
    {"view", m_view}, {"reshape", m_reshape}, {"view_as", m_view_as}, {"narrow", m_narrow},
    {"select", m_select}, {"transpose", m_transpose}, {"t", m_t}, {"permute", m_permute},
    {"squeeze", m_squeeze}, {"unsqueeze", m_unsqueeze}, {"expand", m_expand},
    {"expand_as", m_expand_as}, {"flatten", m_flatten}, {"contiguous", m_contiguous},
    {"clone", m_clone}, {"copy_", m_copy_}, {"fill_", m_fill_}, {"zero_", m_zero_},
    {"float", m_float}, {"long", m_long}, {"byte", m_byte}, {"to", m_to},
    {NULL, NULL},
};

void lt_open_tensor(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, methods); }

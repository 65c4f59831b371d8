/* index.c - index_select, gather, scatter_add(_), masked_fill(_), cat, stack,
 * split, chunk, repeat.
 *
 * Index tensors count from 1 in Lua and from 0 in the engine: every index
 * argument is converted into a temporary 0-based int64 tensor, range-checked
 * against the indexed dim on the way (the message speaks Lua's numbering). */
#include "bind.h"

#include <stdio.h>
#include <string.h>

static void describe_index(char *buf, size_t len, int64_t v, int64_t i, const void *ctx)
{
    (void)i;
    const int64_t *dim_size = ctx;
    snprintf(buf, len, "index %lld out of range for dim %lld of size %lld (indices count from 1)",
             (long long)v, (long long)dim_size[0] + 1, (long long)dim_size[1]);
}

/* A 0-based int64 copy of the 1-based index at idx (an int64 tensor, or a
 * Lua list of integers), checked to lie in 1..size. The caller releases it. */
static dt_tensor *index_arg(lua_State *L, int idx, const char *fn, int dim, int64_t size)
{
    dt_tensor *src = lt_to(L, idx);
    if (src && src->dtype != DT_INT64)
        lt_error(L, fn, "argument #%d: index must be an int64 tensor, got %s", idx,
                 dt_dtype_name(src->dtype));
    if (!src && !lua_istable(L, idx))
        lt_error(L, fn, "argument #%d: expected an int64 index tensor or a list of integers, "
                 "got %s", idx, lt_typename(L, idx));
    int64_t dim_size[2] = {dim, size};
    lt_positions p = {.size = size, .describe = describe_index, .ctx = dim_size};
    return lt_to_engine_positions(L, idx, fn, &p);
}

/* ------------------------------------------------------ select and gather */

typedef dt_status (*dim_index_op)(const dt_tensor *a, int dim, const dt_tensor *index,
                                  dt_tensor **out);

/* op(a, dim, index) for (a, dim, index) at stack 1..3: the index counts
 * along dim (a 0-d a has one position). */
static int dim_index(lua_State *L, const char *fn, dim_index_op op)
{
    dt_tensor *a = lt_check(L, 1, fn), *r;
    int dim = lt_check_dim(L, 2, fn, a->ndim);
    dt_tensor *index = index_arg(L, 3, fn, dim, a->ndim ? a->shape[dim] : 1);
    dt_status st = op(a, dim, index, &r);
    dt_tensor_release(index);
    return lt_push_or_fail(L, fn, st, &r);
}

static int l_index_select(lua_State *L)
{
    const char *fn = "distill.index_select";
    if (lt_check(L, 1, fn)->ndim == 0)
        return lt_error(L, fn, "cannot index_select from a 0-d tensor");
    return dim_index(L, fn, dt_f_index_select);
}

static int l_gather(lua_State *L) { return dim_index(L, "distill.gather", dt_f_gather); }

/* scatter_add of (dim, index, src) at stack 2..4 into a: in place, or
 * into a new tensor (*out != NULL) recorded on the tape. */
static dt_status scatter_into(lua_State *L, const char *fn, dt_tensor *a, dt_tensor **out)
{
    int dim = lt_check_dim(L, 2, fn, a->ndim);
    dt_tensor *src = lt_check(L, 4, fn);
    if (!out && dt_needs_grad(src))   /* the gradient to src would be lost */
        lt_error(L, fn, "src requires grad: use the out-of-place scatter_add");
    dt_tensor *index = index_arg(L, 3, fn, dim, a->ndim ? a->shape[dim] : 1);
    dt_status st = out ? dt_f_scatter_add(a, dim, index, src, out)
                       : dt_scatter_add_(a, dim, index, src);
    dt_tensor_release(index);
    return st;
}

static int l_scatter_add_(lua_State *L)
{
    const char *fn = "distill.scatter_add_";
    dt_tensor *a = lt_check_mutable(L, 1, fn);
    if (scatter_into(L, fn, a, NULL))
        return lt_fail(L, fn);
    lua_settop(L, 1);
    return 1;
}

static int l_scatter_add(lua_State *L)
{
    const char *fn = "distill.scatter_add";
    dt_tensor *a = lt_check(L, 1, fn), *r;
    if (scatter_into(L, fn, a, &r))
        return lt_fail(L, fn);
    lt_push(L, r);
    return 1;
}

/* --------------------------------------------------------------- masks */

static void mask_args(lua_State *L, const char *fn, dt_tensor **mask, double *value)
{
    *mask = lt_check(L, 2, fn);
    if ((*mask)->dtype != DT_UINT8)
        lt_error(L, fn, "argument #2: mask must be a uint8 tensor (e.g. from x:gt(0)), got %s",
                 dt_dtype_name((*mask)->dtype));
    dt_tensor *v = lt_to(L, 3);
    if (v) {
        if (dt_numel(v) != 1)
            lt_error(L, fn, "argument #3: a tensor fill value must have one element, got %lld",
                     (long long)dt_numel(v));
        *value = dt_get_flat(v, 0);
    } else {
        *value = lt_check_num(L, 3, fn, "fill value");
    }
}

static int l_masked_fill_(lua_State *L)
{
    const char *fn = "distill.masked_fill_";
    dt_tensor *a = lt_check(L, 1, fn), *mask;
    lt_check_inplace(L, a, fn);
    double value;
    mask_args(L, fn, &mask, &value);
    LT_TRY(L, fn, dt_masked_fill_(a, mask, value));
    lua_settop(L, 1);
    return 1;
}

static int l_masked_fill(lua_State *L)
{
    const char *fn = "distill.masked_fill";
    dt_tensor *a = lt_check(L, 1, fn), *mask, *r;
    double value;
    mask_args(L, fn, &mask, &value);
    LT_TRY(L, fn, dt_f_masked_fill(a, mask, value, &r));
    lt_push(L, r);
    return 1;
}

/* ----------------------------------------------------------- cat / stack */

/* The tensors of the list at idx, in a scratch array owned by Lua (so an
 * error raised later frees it). Returns the count. */
static int tensor_list(lua_State *L, int idx, const char *fn, const dt_tensor ***out)
{
    if (!lua_istable(L, idx))
        lt_error(L, fn, "argument #%d: expected a list of tensors, got %s", idx,
                 lt_to(L, idx) ? "a tensor (wrap the tensors in a table: {a, b})"
                               : lt_typename(L, idx));
    lua_Integer n = luaL_len(L, idx);
    if (n < 1)
        lt_error(L, fn, "expected a non-empty list of tensors");
    if (n > 1 << 20)
        lt_error(L, fn, "too many tensors (%lld)", (long long)n);
    const dt_tensor **ts = lua_newuserdatauv(L, (size_t)n * sizeof *ts, 0);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        ts[i - 1] = lt_to(L, -1);
        if (!ts[i - 1])
            lt_error(L, fn, "list entry %lld: expected a tensor, got %s", (long long)i,
                     lt_typename(L, -1));
        lua_pop(L, 1);
    }
    *out = ts;
    return (int)n;
}

static int l_cat(lua_State *L)
{
    const char *fn = "distill.cat";
    const dt_tensor **ts;
    lua_settop(L, 2);
    int n = tensor_list(L, 1, fn, &ts);
    int ndim = ts[0]->ndim;
    int dim = lua_isnil(L, 2) ? 0 : lt_check_dim(L, 2, fn, ndim);
    dt_tensor *r;
    LT_TRY(L, fn, dt_f_cat(n, ts, dim, &r));
    lt_push(L, r);
    return 1;
}

static int l_stack(lua_State *L)
{
    const char *fn = "distill.stack";
    const dt_tensor **ts;
    lua_settop(L, 2);
    int n = tensor_list(L, 1, fn, &ts);
    int dim = lua_isnil(L, 2) ? 0 : lt_check_dim(L, 2, fn, ts[0]->ndim + 1);
    dt_tensor *r;
    LT_TRY(L, fn, dt_f_stack(n, ts, dim, &r));
    lt_push(L, r);
    return 1;
}

/* --------------------------------------------------------- split / chunk */

/* Push a Lua list of views of a along dim, of the given sizes (their sum
 * checked by the caller). Views go through dt_f_narrow so that gradients
 * flow back to a. */
static int push_pieces(lua_State *L, const char *fn, dt_tensor *a, int dim, int64_t n,
                       const int64_t *sizes, int64_t uniform)
{
    lua_createtable(L, (int)n, 0);
    int64_t start = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t len = sizes ? sizes[i] : uniform;
        if (len > a->shape[dim] - start)
            len = a->shape[dim] - start;   /* the last uniform piece may be shorter */
        dt_tensor *piece;
        LT_TRY(L, fn, dt_f_narrow(a, dim, start, len, &piece));
        lt_push(L, piece);
        lua_rawseti(L, -2, i + 1);
        start += len;
    }
    return 1;
}

/* Pieces of `size` along dim, the last one shorter when it does not divide. */
static int split_uniform(lua_State *L, const char *fn, dt_tensor *a, int dim, int64_t size)
{
    int64_t len = a->shape[dim];
    if (size < 0 || (size == 0 && len > 0))
        return lt_error(L, fn, "split size must be positive, got %lld", (long long)size);
    int64_t n = len == 0 ? 1 : len / size + (len % size != 0);
    return push_pieces(L, fn, a, dim, n, NULL, size);
}

static int l_split(lua_State *L)
{
    const char *fn = "distill.split";
    dt_tensor *a = lt_check(L, 1, fn);
    if (a->ndim == 0)
        return lt_error(L, fn, "cannot split a 0-d tensor");
    int dim = lua_isnoneornil(L, 3) ? 0 : lt_check_dim(L, 3, fn, a->ndim);
    if (!lua_istable(L, 2))
        return split_uniform(L, fn, a, dim, lt_check_int(L, 2, fn, "split size"));
    lua_Integer n = luaL_len(L, 2);
    if (n < 1 || n > 1 << 20)
        return lt_error(L, fn, "expected a non-empty list of split sizes");
    int64_t *sizes = lua_newuserdatauv(L, (size_t)n * sizeof *sizes, 0);
    int64_t total = 0;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 2, i);
        int isint = 0;
        sizes[i - 1] = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint || sizes[i - 1] < 0)
            return lt_error(L, fn, "split size %lld must be a non-negative integer",
                            (long long)i);
        if (sizes[i - 1] > a->shape[dim] - total)   /* also keeps the sum from overflowing */
            return lt_error(L, fn, "split sizes add up to more than dim %d's size %lld (at "
                            "size %lld)", dim + 1, (long long)a->shape[dim], (long long)i);
        total += sizes[i - 1];
    }
    if (total != a->shape[dim])
        return lt_error(L, fn, "split sizes add up to %lld but dim %d has size %lld",
                        (long long)total, dim + 1, (long long)a->shape[dim]);
    return push_pieces(L, fn, a, dim, n, sizes, 0);
}

/* torch.chunk: pieces of ceil(size / n), so there may be fewer than n. */
static int l_chunk(lua_State *L)
{
    const char *fn = "distill.chunk";
    dt_tensor *a = lt_check(L, 1, fn);
    if (a->ndim == 0)
        return lt_error(L, fn, "cannot chunk a 0-d tensor");
    int64_t n = lt_check_int(L, 2, fn, "number of chunks");
    if (n < 1)
        return lt_error(L, fn, "number of chunks must be positive, got %lld", (long long)n);
    int dim = lua_isnoneornil(L, 3) ? 0 : lt_check_dim(L, 3, fn, a->ndim);
    int64_t len = a->shape[dim];
    return split_uniform(L, fn, a, dim, len / n + (len % n != 0));
}

/* --------------------------------------------------------------- repeat */

/* `repeat` is a Lua keyword, so x:repeat(...) does not parse: it is also
 * registered as repeat_tensor (Torch7 called it repeatTensor). */

static int l_repeat(lua_State *L)
{
    const char *fn = "distill.repeat";
    dt_tensor *a = lt_check(L, 1, fn), *r;
    int64_t repeats[DT_MAX_DIMS];
    if (lua_isnoneornil(L, 2))
        return lt_error(L, fn, "expected repeat counts such as {2, 1}");
    int n = lt_check_shape(L, 2, fn, repeats, 0);
    LT_TRY(L, fn, dt_f_repeat(a, n, repeats, &r));
    lt_push(L, r);
    return 1;
}

static const luaL_Reg funcs[] = {
    {"index_select", l_index_select}, {"gather", l_gather}, {"scatter_add_", l_scatter_add_},
    {"scatter_add", l_scatter_add}, {"masked_fill_", l_masked_fill_},
    {"masked_fill", l_masked_fill}, {"cat", l_cat}, {"stack", l_stack}, {"split", l_split},
    {"chunk", l_chunk}, {"repeat", l_repeat}, {"repeat_tensor", l_repeat},
    {NULL, NULL},
};

static const luaL_Reg methods[] = {
    {"index_select", l_index_select}, {"gather", l_gather}, {"scatter_add_", l_scatter_add_},
    {"scatter_add", l_scatter_add}, {"masked_fill_", l_masked_fill_},
    {"masked_fill", l_masked_fill}, {"split", l_split}, {"chunk", l_chunk},
    {"repeat", l_repeat}, {"repeat_tensor", l_repeat},
    {NULL, NULL},
};

void lt_open_index(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, methods); }

/* math.c - elementwise maths, comparisons, where, reductions and the
 * arithmetic operators of the Tensor metatable.
 *
 * Every function is registered both as distill.f(x, ...) and as the method
 * x:f(...), with the tensor first. Operands of binary ops may be tensors or
 * Lua numbers (on either side); an integer number keeps the tensor's dtype,
 * a float number with an integer tensor gives float32.
 *
 * Reductions take (dims, keepdim): dims is nil (all dims), a dim or a table
 * of dims, 1-based, negative counting from the end. argmax/argmin and the
 * indices of max(dim)/min(dim) are 1-based.
 */
#include "bind.h"

#include <math.h>
#include <string.h>

/* The tensor at idx, NULL when the value is not a tensor; a freed tensor is
 * an error. */
static dt_tensor *opt_tensor(lua_State *L, int idx, const char *fn)
{
    lt_tensor *u = luaL_testudata(L, idx, LT_TENSOR_MT);
    if (!u)
        return NULL;
    if (!u->t)
        lt_error(L, fn, "argument #%d: the tensor was freed", idx);
    return u->t;
}

/* a op b with a, b at stack positions ia, ib: tensors or numbers. */
static dt_tensor *binary_values(lua_State *L, dt_binop op, const char *fn, int ia, int ib)
{
    dt_tensor *a = opt_tensor(L, ia, fn), *b = opt_tensor(L, ib, fn), *r = NULL;
    dt_status st;
    if (a && b)
        st = dt_f_binary(op, a, b, &r);
    else if (a && lua_type(L, ib) == LUA_TNUMBER)
        st = dt_f_binary_scalar(op, a, lua_tonumber(L, ib), lua_isinteger(L, ib), &r);
    else if (b && lua_type(L, ia) == LUA_TNUMBER)
        st = dt_f_scalar_binary(op, lua_tonumber(L, ia), lua_isinteger(L, ia), b, &r);
    else if (a || b)
        return (lt_error(L, fn, "argument #%d: expected a tensor or a number, got %s",
                         a ? ib : ia, lt_typename(L, a ? ib : ia)), NULL);
    else
        return (lt_error(L, fn, "expected a tensor operand, got %s and %s", lt_typename(L, ia),
                         lt_typename(L, ib)), NULL);
    if (st)
        lt_fail(L, fn);
    return r;
}

static int binary(lua_State *L, dt_binop op, const char *fn)
{
    lt_push(L, binary_values(L, op, fn, 1, 2));
    return 1;
}

/* add(x, y [, alpha]) = x + alpha * y (sub likewise), as torch. */
static int add_sub(lua_State *L, dt_binop op, const char *fn)
{
    if (lua_isnoneornil(L, 3))
        return binary(L, op, fn);
    double alpha = lt_check_num(L, 3, fn, "alpha");
    int alpha_int = lua_isinteger(L, 3);
    dt_tensor *y = opt_tensor(L, 2, fn);
    if (y) {
        dt_tensor *scaled;
        LT_TRY(L, fn, dt_f_binary_scalar(DT_MUL, y, alpha, alpha_int, &scaled));
        lt_push(L, scaled);   /* anchored on the stack while we compute */
    } else if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_pushvalue(L, 2);
        lua_pushvalue(L, 3);
        lua_arith(L, LUA_OPMUL);
    } else {
        return lt_error(L, fn, "argument #2: expected a tensor or a number, got %s",
                        lt_typename(L, 2));
    }
    lt_push(L, binary_values(L, op, fn, 1, lua_gettop(L)));
    return 1;
}

static int l_add(lua_State *L) { return add_sub(L, DT_ADD, "Tensor:add"); }
static int l_sub(lua_State *L) { return add_sub(L, DT_SUB, "Tensor:sub"); }
static int l_mul(lua_State *L) { return binary(L, DT_MUL, "Tensor:mul"); }
static int l_div(lua_State *L) { return binary(L, DT_DIV, "Tensor:div"); }
static int l_pow(lua_State *L) { return binary(L, DT_POW, "Tensor:pow"); }
static int l_maximum(lua_State *L) { return binary(L, DT_MAXIMUM, "Tensor:maximum"); }
static int l_minimum(lua_State *L) { return binary(L, DT_MINIMUM, "Tensor:minimum"); }
static int l_eq(lua_State *L) { return binary(L, DT_EQ, "Tensor:eq"); }
static int l_ne(lua_State *L) { return binary(L, DT_NE, "Tensor:ne"); }
static int l_lt(lua_State *L) { return binary(L, DT_LT, "Tensor:lt"); }
static int l_le(lua_State *L) { return binary(L, DT_LE, "Tensor:le"); }
static int l_gt(lua_State *L) { return binary(L, DT_GT, "Tensor:gt"); }
static int l_ge(lua_State *L) { return binary(L, DT_GE, "Tensor:ge"); }

/* Operators: Lua calls them with the operands in written order, either of
 * which may be the number. */
static int mm_add(lua_State *L) { return binary(L, DT_ADD, "Tensor.__add"); }
static int mm_sub(lua_State *L) { return binary(L, DT_SUB, "Tensor.__sub"); }
static int mm_mul(lua_State *L) { return binary(L, DT_MUL, "Tensor.__mul"); }
static int mm_div(lua_State *L) { return binary(L, DT_DIV, "Tensor.__div"); }
static int mm_pow(lua_State *L) { return binary(L, DT_POW, "Tensor.__pow"); }

/* x:add_(y [, alpha]) and friends: write into x (keeping its dtype), return x. */
static int binary_inplace(lua_State *L, dt_binop op, const char *fn, int allow_alpha)
{
    dt_tensor *x = lt_check_mutable(L, 1, fn);
    dt_tensor *y = opt_tensor(L, 2, fn);
    if (!y && lua_type(L, 2) != LUA_TNUMBER)
        return lt_error(L, fn, "argument #2: expected a tensor or a number, got %s",
                        lt_typename(L, 2));
    if (y && dt_needs_grad(y))   /* x is outside the graph: y's gradient would be lost */
        return lt_error(L, fn, "argument #2 requires grad, which an in-place op cannot record "
                        "(use the out-of-place op)");
    if (allow_alpha && !lua_isnoneornil(L, 3)) {
        double alpha = lt_check_num(L, 3, fn, "alpha");
        if (y) {
            dt_tensor *scaled;
            LT_TRY(L, fn, dt_binary_scalar(DT_MUL, y, alpha, lua_isinteger(L, 3), &scaled));
            dt_status st = dt_binary_(op, x, scaled);
            dt_tensor_release(scaled);
            if (st)
                return lt_fail(L, fn);
        } else {
            LT_TRY(L, fn, dt_binary_scalar_(op, x, lua_tonumber(L, 2) * alpha));
        }
    } else if (y) {
        LT_TRY(L, fn, dt_binary_(op, x, y));
    } else {
        LT_TRY(L, fn, dt_binary_scalar_(op, x, lua_tonumber(L, 2)));
    }
    lua_settop(L, 1);
    return 1;
}

static int l_add_(lua_State *L) { return binary_inplace(L, DT_ADD, "Tensor:add_", 1); }
static int l_sub_(lua_State *L) { return binary_inplace(L, DT_SUB, "Tensor:sub_", 1); }
static int l_mul_(lua_State *L) { return binary_inplace(L, DT_MUL, "Tensor:mul_", 0); }
static int l_div_(lua_State *L) { return binary_inplace(L, DT_DIV, "Tensor:div_", 0); }
static int l_pow_(lua_State *L) { return binary_inplace(L, DT_POW, "Tensor:pow_", 0); }

/* ------------------------------------------------------------------- unary */

static int unary(lua_State *L, dt_unop op, const char *fn)
{
    dt_tensor *x = lt_check(L, 1, fn), *r;
    LT_TRY(L, fn, dt_f_unary(op, x, &r));
    lt_push(L, r);
    return 1;
}

static int unary_inplace(lua_State *L, dt_unop op, const char *fn)
{
    dt_tensor *x = lt_check_mutable(L, 1, fn);
    LT_TRY(L, fn, dt_unary_(op, x));
    lua_settop(L, 1);
    return 1;
}

static int l_neg(lua_State *L) { return unary(L, DT_NEG, "Tensor:neg"); }
static int l_abs(lua_State *L) { return unary(L, DT_ABS, "Tensor:abs"); }
static int l_sign(lua_State *L) { return unary(L, DT_SIGN, "Tensor:sign"); }
static int l_exp(lua_State *L) { return unary(L, DT_EXP, "Tensor:exp"); }
static int l_log(lua_State *L) { return unary(L, DT_LOG, "Tensor:log"); }
static int l_sqrt(lua_State *L) { return unary(L, DT_SQRT, "Tensor:sqrt"); }
static int l_rsqrt(lua_State *L) { return unary(L, DT_RSQRT, "Tensor:rsqrt"); }
static int l_relu(lua_State *L) { return unary(L, DT_RELU, "Tensor:relu"); }
static int l_sigmoid(lua_State *L) { return unary(L, DT_SIGMOID, "Tensor:sigmoid"); }
static int l_tanh(lua_State *L) { return unary(L, DT_TANH, "Tensor:tanh"); }
static int mm_unm(lua_State *L) { return unary(L, DT_NEG, "Tensor.__unm"); }

static int l_neg_(lua_State *L) { return unary_inplace(L, DT_NEG, "Tensor:neg_"); }
static int l_abs_(lua_State *L) { return unary_inplace(L, DT_ABS, "Tensor:abs_"); }
static int l_sign_(lua_State *L) { return unary_inplace(L, DT_SIGN, "Tensor:sign_"); }
static int l_exp_(lua_State *L) { return unary_inplace(L, DT_EXP, "Tensor:exp_"); }
static int l_log_(lua_State *L) { return unary_inplace(L, DT_LOG, "Tensor:log_"); }
static int l_sqrt_(lua_State *L) { return unary_inplace(L, DT_SQRT, "Tensor:sqrt_"); }
static int l_rsqrt_(lua_State *L) { return unary_inplace(L, DT_RSQRT, "Tensor:rsqrt_"); }
static int l_relu_(lua_State *L) { return unary_inplace(L, DT_RELU, "Tensor:relu_"); }
static int l_sigmoid_(lua_State *L) { return unary_inplace(L, DT_SIGMOID, "Tensor:sigmoid_"); }
static int l_tanh_(lua_State *L) { return unary_inplace(L, DT_TANH, "Tensor:tanh_"); }

/* ------------------------------------------------------------------- clamp */

/* clamp(x, lo, hi): either bound may be nil (open), not both. */
static void clamp_bounds(lua_State *L, const char *fn, double *lo, double *hi)
{
    if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3))
        lt_error(L, fn, "at least one of min and max must be given");
    *lo = lua_isnoneornil(L, 2) ? -INFINITY : lt_check_num(L, 2, fn, "min");
    *hi = lua_isnoneornil(L, 3) ? INFINITY : lt_check_num(L, 3, fn, "max");
    if (*lo != *lo || *hi != *hi)
        lt_error(L, fn, "bounds must not be NaN");
}

static int l_clamp(lua_State *L)
{
    const char *fn = "Tensor:clamp";
    dt_tensor *x = lt_check(L, 1, fn), *r;
    double lo, hi;
    clamp_bounds(L, fn, &lo, &hi);
    LT_TRY(L, fn, dt_f_clamp(x, lo, hi, &r));
    lt_push(L, r);
    return 1;
}

static int l_clamp_(lua_State *L)
{
    const char *fn = "Tensor:clamp_";
    dt_tensor *x = lt_check_mutable(L, 1, fn);
    double lo, hi;
    clamp_bounds(L, fn, &lo, &hi);
    LT_TRY(L, fn, dt_clamp_(x, lo, hi));
    lua_settop(L, 1);
    return 1;
}

/* ------------------------------------------------------------------- where */

/* where(cond, a, b): cond a uint8 tensor; a and b tensors or numbers. A
 * number next to a tensor takes its dtype when it is an integer (float32
 * otherwise); two numbers give int64 if both are integers, else float32. */
static int l_where(lua_State *L)
{
    const char *fn = "Tensor:where";
    dt_tensor *cond = lt_check(L, 1, fn);
    dt_tensor *a = opt_tensor(L, 2, fn), *b = opt_tensor(L, 3, fn);
    for (int i = 2; i <= 3; i++)
        if (!opt_tensor(L, i, fn) && lua_type(L, i) != LUA_TNUMBER)
            return lt_error(L, fn, "argument #%d: expected a tensor or a number, got %s", i,
                            lt_typename(L, i));
    dt_tensor *ops[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        if (ops[i])
            continue;
        int idx = i + 2;
        dt_tensor *other = ops[1 - i];
        dt_dtype dtype;
        if (!lua_isinteger(L, idx))
            dtype = DT_FLOAT32;
        else if (other)
            dtype = other->dtype;
        else
            dtype = lua_isinteger(L, 5 - idx) ? DT_INT64 : DT_FLOAT32;
        dt_tensor *s;
        LT_TRY(L, fn, dt_scalar(dtype, lua_tonumber(L, idx), &s));
        lt_push(L, s);   /* anchored: released by the collector */
        ops[i] = s;
    }
    dt_tensor *r;
    LT_TRY(L, fn, dt_f_where(cond, ops[0], ops[1], &r));
    lt_push(L, r);
    return 1;
}

/* -------------------------------------------------------------- reductions */

/* An options table: a table with string keys and no array part, e.g.
 * {correction = 0}. (A table of dims is a sequence such as {1, 2}.) */
static int is_options(lua_State *L, int idx)
{
    if (!lua_istable(L, idx) || luaL_len(L, idx) > 0)
        return 0;
    lua_pushnil(L);
    int has = lua_next(L, idx);
    if (has)
        lua_pop(L, 2);
    return has;
}

/* dims at idx: nil (all), an integer, or a table of integers. */
static void parse_dims(lua_State *L, int idx, const char *fn, const dt_tensor *t,
                       dt_reduce_opts *o)
{
    o->ndims = 0;
    if (lua_isnoneornil(L, idx))
        return;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        o->dims[0] = lt_check_dim(L, idx, fn, t->ndim);
        o->ndims = 1;
        return;
    }
    if (!lua_istable(L, idx))
        lt_error(L, fn, "dim: expected an integer or a table of integers, got %s",
                 lt_typename(L, idx));
    lua_Integer n = luaL_len(L, idx);
    if (n > DT_MAX_DIMS)
        lt_error(L, fn, "%lld dims given; at most %d", (long long)n, DT_MAX_DIMS);
    for (int i = 0; i < (int)n; i++) {
        lua_geti(L, idx, i + 1);
        int isint = 0;
        lua_Integer d = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint)
            lt_error(L, fn, "dims entry %d must be an integer", i + 1);
        o->dims[i] = lt_dim_from_lua(L, d, fn, t->ndim);
    }
    o->ndims = (int)n;
}

/* (dims, keepdim, options) from stack position idx on; returns the index of
 * the options table or 0. An options table may come right after the
 * tensor, after dims, or after keepdim. */
static int parse_reduce(lua_State *L, int idx, const char *fn, const dt_tensor *t,
                        dt_reduce_opts *o)
{
    dt_reduce_opts_init(o);
    int top = lua_gettop(L), opts = 0;
    if (idx <= top && is_options(L, idx)) {
        opts = idx++;
    } else {
        parse_dims(L, idx++, fn, t, o);
        if (idx <= top && is_options(L, idx)) {
            opts = idx++;
        } else {
            if (!lua_isnoneornil(L, idx) && !lua_isboolean(L, idx))
                lt_error(L, fn, "keepdim must be a boolean, got %s", lt_typename(L, idx));
            o->keepdim = lua_toboolean(L, idx);
            idx++;
            if (!lua_isnoneornil(L, idx)) {
                if (!lua_istable(L, idx))
                    lt_error(L, fn, "options must be a table, got %s", lt_typename(L, idx));
                opts = idx;
            }
            idx++;
        }
    }
    for (; idx <= top; idx++)
        if (!lua_isnil(L, idx))
            lt_error(L, fn, "unexpected argument #%d (%s)", idx, lt_typename(L, idx));
    return opts;
}

static void no_options(lua_State *L, int opts, const char *fn)
{
    if (opts)
        lt_error(L, fn, "takes (dim, keepdim) and no options table");
}

static int reduce(lua_State *L, dt_reduce_op op, const char *fn)
{
    dt_tensor *x = lt_check(L, 1, fn), *r;
    dt_reduce_opts o;
    no_options(L, parse_reduce(L, 2, fn, x, &o), fn);
    LT_TRY(L, fn, dt_f_reduce(op, x, &o, &r));
    lt_push(L, r);
    return 1;
}

static int l_sum(lua_State *L) { return reduce(L, DT_RED_SUM, "Tensor:sum"); }
static int l_mean(lua_State *L) { return reduce(L, DT_RED_MEAN, "Tensor:mean"); }
static int l_prod(lua_State *L) { return reduce(L, DT_RED_PROD, "Tensor:prod"); }
static int l_logsumexp(lua_State *L) { return reduce(L, DT_RED_LOGSUMEXP, "Tensor:logsumexp"); }

/* var/std: x:var([dims [, keepdim]] [, {correction = c} | {unbiased = b}]).
 * The default is correction = 1 (unbiased, as torch); {correction = 0} or
 * {unbiased = false} gives the population statistic. */
static int var_std(lua_State *L, dt_reduce_op op, const char *fn)
{
    dt_tensor *x = lt_check(L, 1, fn), *r;
    dt_reduce_opts o;
    int opts = parse_reduce(L, 2, fn, x, &o);
    if (opts) {
        static const char *const valid[] = {"correction", "unbiased", NULL};
        lt_check_option_keys(L, opts, fn, valid);
        lua_getfield(L, opts, "unbiased");
        int has_unbiased = !lua_isnil(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, opts, "correction");
        int has_correction = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (has_unbiased && has_correction)
            lt_error(L, fn, "give either correction or unbiased, not both");
        if (has_unbiased)
            o.correction = lt_opt_field_bool(L, opts, fn, "unbiased", 1) ? 1 : 0;
        int64_t c = lt_opt_field_int(L, opts, fn, "correction", 1);
        if (has_correction && (c < 0 || c > 1 << 30))
            lt_error(L, fn, "correction must be >= 0, got %lld", (long long)c);
        if (has_correction)
            o.correction = (int)c;
    }
    LT_TRY(L, fn, dt_f_reduce(op, x, &o, &r));
    lt_push(L, r);
    return 1;
}

static int l_var(lua_State *L) { return var_std(L, DT_RED_VAR, "Tensor:var"); }
static int l_std(lua_State *L) { return var_std(L, DT_RED_STD, "Tensor:std"); }

/* norm: x:norm([p [, dims [, keepdim]]]); p a number (default 2), or
 * "inf"/"-inf"/"fro" (math.huge works too). */
static int l_norm(lua_State *L)
{
    const char *fn = "Tensor:norm";
    dt_tensor *x = lt_check(L, 1, fn), *r;
    double p = 2;
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *s = lua_tostring(L, 2);
        if (strcmp(s, "inf") == 0)
            p = INFINITY;
        else if (strcmp(s, "-inf") == 0)
            p = -INFINITY;
        else if (strcmp(s, "fro") == 0)
            p = 2;
        else
            return lt_error(L, fn, "p must be a number, \"inf\", \"-inf\" or \"fro\", got \"%s\"", s);
    } else if (!lua_isnoneornil(L, 2)) {
        p = lt_check_num(L, 2, fn, "p");
        if (p != p)
            return lt_error(L, fn, "p must not be NaN");
    }
    dt_reduce_opts o;
    no_options(L, parse_reduce(L, 3, fn, x, &o), fn);
    o.p = p;
    LT_TRY(L, fn, dt_f_reduce(DT_RED_NORM, x, &o, &r));
    lt_push(L, r);
    return 1;
}

/* argmax/argmin: x:argmax([dim [, keepdim]]); without dim, the position in
 * the flattened tensor. Positions are 1-based. */
static int arg_extreme(lua_State *L, dt_reduce_op op, const char *fn)
{
    dt_tensor *x = lt_check(L, 1, fn), *r;
    if (lua_istable(L, 2))
        return lt_error(L, fn, "takes a single dim (an integer), got a table");
    dt_reduce_opts o;
    no_options(L, parse_reduce(L, 2, fn, x, &o), fn);
    LT_TRY(L, fn, dt_reduce(op, x, &o, &r));
    lt_positions_to_lua(r);
    lt_push(L, r);
    return 1;
}

static int l_argmax(lua_State *L) { return arg_extreme(L, DT_RED_ARGMAX, "Tensor:argmax"); }
static int l_argmin(lua_State *L) { return arg_extreme(L, DT_RED_ARGMIN, "Tensor:argmin"); }

/* max/min, as torch:
 *   x:max()                  -> 0-d tensor of the largest element
 *   x:max(dim [, keepdim])   -> values, indices (1-based positions along dim)
 *   x:max(y)                 -> elementwise maximum (y a tensor) */
static int extreme(lua_State *L, bool is_max, const char *fn)
{
    dt_tensor *x = lt_check(L, 1, fn), *v, *i;
    if (opt_tensor(L, 2, fn))
        return binary(L, is_max ? DT_MAXIMUM : DT_MINIMUM, fn);
    if (lua_istable(L, 2))
        return lt_error(L, fn, "takes a single dim (an integer), got a table");
    dt_reduce_opts o;
    no_options(L, parse_reduce(L, 2, fn, x, &o), fn);
    LT_TRY(L, fn, dt_f_reduce(is_max ? DT_RED_MAX : DT_RED_MIN, x, &o, &v));
    if (o.ndims == 0) {
        lt_push(L, v);
        return 1;
    }
    lt_push(L, v);   /* anchored before the second call can fail */
    LT_TRY(L, fn, dt_reduce(is_max ? DT_RED_ARGMAX : DT_RED_ARGMIN, x, &o, &i));
    lt_positions_to_lua(i);
    lt_push(L, i);
    return 2;
}

static int l_max(lua_State *L) { return extreme(L, true, "Tensor:max"); }
static int l_min(lua_State *L) { return extreme(L, false, "Tensor:min"); }

/* ------------------------------------------------------------ registration */

static const luaL_Reg funcs[] = {
    {"add", l_add}, {"sub", l_sub}, {"mul", l_mul}, {"div", l_div}, {"pow", l_pow},
    {"neg", l_neg}, {"abs", l_abs}, {"sign", l_sign}, {"exp", l_exp}, {"log", l_log},
    {"sqrt", l_sqrt}, {"rsqrt", l_rsqrt}, {"clamp", l_clamp}, {"relu", l_relu},
    {"sigmoid", l_sigmoid}, {"tanh", l_tanh},
    {"eq", l_eq}, {"ne", l_ne}, {"lt", l_lt}, {"le", l_le}, {"gt", l_gt}, {"ge", l_ge},
    {"where", l_where}, {"maximum", l_maximum}, {"minimum", l_minimum},
    {"add_", l_add_}, {"sub_", l_sub_}, {"mul_", l_mul_}, {"div_", l_div_}, {"pow_", l_pow_},
    {"neg_", l_neg_}, {"abs_", l_abs_}, {"sign_", l_sign_}, {"exp_", l_exp_}, {"log_", l_log_},
    {"sqrt_", l_sqrt_}, {"rsqrt_", l_rsqrt_}, {"clamp_", l_clamp_}, {"relu_", l_relu_},
    {"sigmoid_", l_sigmoid_}, {"tanh_", l_tanh_},
    {"sum", l_sum}, {"mean", l_mean}, {"max", l_max}, {"min", l_min},
    {"argmax", l_argmax}, {"argmin", l_argmin}, {"var", l_var}, {"std", l_std},
    {"norm", l_norm}, {"logsumexp", l_logsumexp}, {"prod", l_prod},
    {NULL, NULL},
};

static const luaL_Reg metamethods[] = {
    {"__add", mm_add}, {"__sub", mm_sub}, {"__mul", mm_mul}, {"__div", mm_div},
    {"__pow", mm_pow}, {"__unm", mm_unm},
    {NULL, NULL},
};

void lt_open_math(lua_State *L, int mod_idx)
{
    /* Same C functions as module functions and as methods (self first). */
    lt_register(L, mod_idx, funcs, funcs);
    luaL_getmetatable(L, LT_TENSOR_MT);
    luaL_setfuncs(L, metamethods, 0);
    lua_pop(L, 1);
}

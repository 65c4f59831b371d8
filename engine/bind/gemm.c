/* bind/gemm.c - distill.gemm_f32, a direct line to the engine's internal
 * GEMM (engine/gemm.c) so specs can check it on any shape, transpose,
 * leading dimension and alpha/beta. Not autograd: it writes C in place.
 *
 *   distill.gemm_f32{A = t, B = t, C = t, M =, N =, K =, lda =, ldb =, ldc =,
 *                    trans_a = false, trans_b = false, alpha = 1, beta = 0}
 *
 * A, B and C are contiguous float32 tensors read as flat row-major buffers
 * (their shapes are ignored); each must hold the elements its matrix and
 * leading dimension reach. */
#include "bind.h"

#include "../math/gemm.h"

/* Elements a rows x cols row-major matrix with leading dimension ld reaches. */
static int64_t extent(int64_t rows, int64_t cols, int64_t ld)
{
    return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

/* The flat float32 buffer in field `key`, checked to hold `need` elements. */
static dt_tensor *check_buffer(lua_State *L, const char *fn, const char *key, int64_t need)
{
    lua_getfield(L, 1, key);
    dt_tensor *t = lt_to(L, -1);
    lua_pop(L, 1);
    if (!t)
        lt_error(L, fn, "field '%s' must be a tensor", key);
    if (t->dtype != DT_FLOAT32 || !dt_is_contiguous(t))
        lt_error(L, fn, "field '%s' must be a contiguous float32 tensor", key);
    if (dt_numel(t) < need)
        lt_error(L, fn, "field '%s' has %lld elements, the matrix reaches %lld", key,
                 (long long)dt_numel(t), (long long)need);
    return t;
}

static int l_gemm_f32(lua_State *L)
{
    const char *fn = "distill.gemm_f32";
    luaL_checktype(L, 1, LUA_TTABLE);
    static const char *const keys[] = {"A", "B", "C", "M", "N", "K", "lda", "ldb", "ldc",
                                       "trans_a", "trans_b", "alpha", "beta", NULL};
    lt_check_option_keys(L, 1, fn, keys);
    bool ta = lt_opt_field_bool(L, 1, fn, "trans_a", 0);
    bool tb = lt_opt_field_bool(L, 1, fn, "trans_b", 0);
    int64_t M = lt_opt_field_int(L, 1, fn, "M", -1), N = lt_opt_field_int(L, 1, fn, "N", -1);
    int64_t K = lt_opt_field_int(L, 1, fn, "K", -1);
    if (M < 0 || N < 0 || K < 0)
        return lt_error(L, fn, "M, N and K must be given and non-negative");
    int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
    int64_t lda = lt_opt_field_int(L, 1, fn, "lda", a_cols > 1 ? a_cols : 1);
    int64_t ldb = lt_opt_field_int(L, 1, fn, "ldb", b_cols > 1 ? b_cols : 1);
    int64_t ldc = lt_opt_field_int(L, 1, fn, "ldc", N > 1 ? N : 1);
    float alpha = (float)lt_opt_field_num(L, 1, fn, "alpha", 1.0);
    float beta = (float)lt_opt_field_num(L, 1, fn, "beta", 0.0);
    dt_tensor *a = check_buffer(L, fn, "A", extent(a_rows, a_cols, lda));
    dt_tensor *b = check_buffer(L, fn, "B", extent(b_rows, b_cols, ldb));
    dt_tensor *c = check_buffer(L, fn, "C", extent(M, N, ldc));
    lt_check_inplace(L, c, fn);
    LT_TRY(L, fn, dt_gemm_f32(ta, tb, M, N, K, alpha, dt_f32(a), lda, dt_f32(b), ldb, beta,
                              dt_f32(c), ldc));
    lua_settop(L, 1);
    lua_getfield(L, 1, "C");
    return 1;
}

void lt_open_gemm(lua_State *L, int mod)
{
    static const luaL_Reg funcs[] = {{"gemm_f32", l_gemm_f32}, {NULL, NULL}};
    lt_register(L, mod, funcs, NULL);
}

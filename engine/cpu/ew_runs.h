/* ew_runs.h - the run kernels of elementwise.c, written once as plain
 * loops and compiled for every ISA by table.h, so each vectorises for the
 * vector unit it runs on. A run kernel (cpu.h) computes one run of
 * elements; each special-cases the contiguous and scalar-operand runs so
 * those loops vectorise. Selects load both operands and pick without a
 * branch: conditions such as x > 0 are random, and a conditional load
 * would keep compilers without masked loads (SSE2) from vectorising. */
#ifndef DISTILL_CPU_EW_RUNS_H
#define DISTILL_CPU_EW_RUNS_H

#include "cpu.h"

#include <math.h>

/* ------------------------------------------------------------ scalar maths */

/* Integer arithmetic wraps (two's complement) instead of being undefined. */
static inline int64_t wadd(int64_t x, int64_t y) { return (int64_t)((uint64_t)x + (uint64_t)y); }
static inline int64_t wsub(int64_t x, int64_t y) { return (int64_t)((uint64_t)x - (uint64_t)y); }
static inline int64_t wmul(int64_t x, int64_t y) { return (int64_t)((uint64_t)x * (uint64_t)y); }

/* x^e by squaring, wrapping; e >= 0 (callers reject negative exponents). */
static inline int64_t ipow(int64_t x, int64_t e)
{
    uint64_t r = 1, b = (uint64_t)x;
    while (e > 0) {
        if (e & 1)
            r *= b;
        b *= b;
        e >>= 1;
    }
    return (int64_t)r;
}

/* Squares and first powers (x.pow(2) in AT, OFD, FitNet-style losses, and
 * a^(e-1) in their gradients) are exact products, and powf would cost them
 * a libm call per element. */
static inline float fpow(float x, float y)
{
    if (y == 2.0f)
        return x * x;
    if (y == 1.0f)
        return x;
    return powf(x, y);
}

/* torch.maximum/minimum propagate NaN. */
static inline float fmax_nan(float x, float y) { return (x > y || x != x) ? x : y; }
static inline float fmin_nan(float x, float y) { return (x < y || x != x) ? x : y; }


/* ---------------------------------------------------------- binary kernels */

/* One kernel per (op, compute type). x and y are the operands, EXPR the
 * result; the four loop shapes let the common cases vectorise. */
#define BIN_KERNEL(NAME, TI, TO, EXPR)                                                   \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *ctx)       \
    {                                                                                    \
        (void)ctx;                                                                       \
        TO *o = (TO *)p[0];                                                              \
        const TI *a = (const TI *)p[1], *b = (const TI *)p[2];                           \
        int64_t so = s[0], sa = s[1], sb = s[2];                                         \
        if (so == 1 && sa == 1 && sb == 1) {                                             \
            for (int64_t k = 0; k < n; k++) {                                            \
                TI x = a[k], y = b[k];                                                   \
                o[k] = (TO)(EXPR);                                                       \
            }                                                                            \
        } else if (so == 1 && sa == 1 && sb == 0) {                                      \
            TI y = b[0];                                                                 \
            for (int64_t k = 0; k < n; k++) {                                            \
                TI x = a[k];                                                             \
                o[k] = (TO)(EXPR);                                                       \
            }                                                                            \
        } else if (so == 1 && sa == 0 && sb == 1) {                                      \
            TI x = a[0];                                                                 \
            for (int64_t k = 0; k < n; k++) {                                            \
                TI y = b[k];                                                             \
                o[k] = (TO)(EXPR);                                                       \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                TI x = a[k * sa], y = b[k * sb];                                         \
                o[k * so] = (TO)(EXPR);                                                  \
            }                                                                            \
        }                                                                                \
    }

BIN_KERNEL(f_add, float, float, x + y)
BIN_KERNEL(f_sub, float, float, x - y)
BIN_KERNEL(f_mul, float, float, x * y)
BIN_KERNEL(f_div, float, float, x / y)
BIN_KERNEL(f_pow, float, float, fpow(x, y))
BIN_KERNEL(f_max, float, float, fmax_nan(x, y))
BIN_KERNEL(f_min, float, float, fmin_nan(x, y))
BIN_KERNEL(f_eq, float, uint8_t, x == y)
BIN_KERNEL(f_ne, float, uint8_t, x != y)
BIN_KERNEL(f_lt, float, uint8_t, x < y)
BIN_KERNEL(f_le, float, uint8_t, x <= y)
BIN_KERNEL(f_gt, float, uint8_t, x > y)
BIN_KERNEL(f_ge, float, uint8_t, x >= y)

BIN_KERNEL(l_add, int64_t, int64_t, wadd(x, y))
BIN_KERNEL(l_sub, int64_t, int64_t, wsub(x, y))
BIN_KERNEL(l_mul, int64_t, int64_t, wmul(x, y))
BIN_KERNEL(l_pow, int64_t, int64_t, ipow(x, y))
BIN_KERNEL(l_max, int64_t, int64_t, x > y ? x : y)
BIN_KERNEL(l_min, int64_t, int64_t, x < y ? x : y)
BIN_KERNEL(l_eq, int64_t, uint8_t, x == y)
BIN_KERNEL(l_ne, int64_t, uint8_t, x != y)
BIN_KERNEL(l_lt, int64_t, uint8_t, x < y)
BIN_KERNEL(l_le, int64_t, uint8_t, x <= y)
BIN_KERNEL(l_gt, int64_t, uint8_t, x > y)
BIN_KERNEL(l_ge, int64_t, uint8_t, x >= y)

BIN_KERNEL(b_add, uint8_t, uint8_t, x + y)
BIN_KERNEL(b_sub, uint8_t, uint8_t, x - y)
BIN_KERNEL(b_mul, uint8_t, uint8_t, x * y)
BIN_KERNEL(b_pow, uint8_t, uint8_t, ipow(x, y))
BIN_KERNEL(b_max, uint8_t, uint8_t, x > y ? x : y)
BIN_KERNEL(b_min, uint8_t, uint8_t, x < y ? x : y)
BIN_KERNEL(b_eq, uint8_t, uint8_t, x == y)
BIN_KERNEL(b_ne, uint8_t, uint8_t, x != y)
BIN_KERNEL(b_lt, uint8_t, uint8_t, x < y)
BIN_KERNEL(b_le, uint8_t, uint8_t, x <= y)
BIN_KERNEL(b_gt, uint8_t, uint8_t, x > y)
BIN_KERNEL(b_ge, uint8_t, uint8_t, x >= y)

/* Indexed [op][compute dtype]; integer DIV never runs (it computes in float). */
static const dt_cpu_run_fn ew_binary[DT_NUM_BINOPS][DT_NUM_DTYPES] = {
    [DT_ADD] = {f_add, l_add, b_add},     [DT_SUB] = {f_sub, l_sub, b_sub},
    [DT_MUL] = {f_mul, l_mul, b_mul},     [DT_DIV] = {f_div, NULL, NULL},
    [DT_POW] = {f_pow, l_pow, b_pow},     [DT_MAXIMUM] = {f_max, l_max, b_max},
    [DT_MINIMUM] = {f_min, l_min, b_min}, [DT_EQ] = {f_eq, l_eq, b_eq},
    [DT_NE] = {f_ne, l_ne, b_ne},         [DT_LT] = {f_lt, l_lt, b_lt},
    [DT_LE] = {f_le, l_le, b_le},         [DT_GT] = {f_gt, l_gt, b_gt},
    [DT_GE] = {f_ge, l_ge, b_ge},
};


/* ----------------------------------------------------------- unary kernels */


#define UN_KERNEL(NAME, TI, TO, EXPR)                                                    \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *ctx)       \
    {                                                                                    \
        (void)ctx;                                                                       \
        TO *o = (TO *)p[0];                                                              \
        const TI *a = (const TI *)p[1];                                                  \
        int64_t so = s[0], sa = s[1];                                                    \
        if (so == 1 && sa == 1) {                                                        \
            for (int64_t k = 0; k < n; k++) {                                            \
                TI x = a[k];                                                             \
                o[k] = (TO)(EXPR);                                                       \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                TI x = a[k * sa];                                                        \
                o[k * so] = (TO)(EXPR);                                                  \
            }                                                                            \
        }                                                                                \
    }

UN_KERNEL(f_neg, float, float, -x)
UN_KERNEL(f_abs, float, float, fabsf(x))
UN_KERNEL(f_sign, float, float, (float)((x > 0) - (x < 0)))
UN_KERNEL(f_exp, float, float, expf(x))
UN_KERNEL(f_log, float, float, logf(x))
UN_KERNEL(f_sqrt, float, float, sqrtf(x))
UN_KERNEL(f_rsqrt, float, float, 1.0f / sqrtf(x))
UN_KERNEL(f_relu, float, float, x < 0 ? 0.0f : x)   /* NaN stays NaN */
UN_KERNEL(f_sigmoid, float, float, 1.0f / (1.0f + expf(-x)))
UN_KERNEL(f_tanh, float, float, tanhf(x))

UN_KERNEL(l_neg, int64_t, int64_t, wsub(0, x))
UN_KERNEL(l_abs, int64_t, int64_t, x < 0 ? wsub(0, x) : x)
UN_KERNEL(l_sign, int64_t, int64_t, (x > 0) - (x < 0))
UN_KERNEL(l_relu, int64_t, int64_t, x < 0 ? 0 : x)

UN_KERNEL(b_neg, uint8_t, uint8_t, -x)   /* wraps, as torch's uint8 */
UN_KERNEL(b_copy, uint8_t, uint8_t, x)   /* abs and relu of unsigned values */
UN_KERNEL(b_sign, uint8_t, uint8_t, x > 0)

/* [op][compute dtype]; NULL: the op computes in float32 for that dtype. */
static const dt_cpu_run_fn ew_unary[DT_NUM_UNOPS][DT_NUM_DTYPES] = {
    [DT_NEG] = {f_neg, l_neg, b_neg},     [DT_ABS] = {f_abs, l_abs, b_copy},
    [DT_SIGN] = {f_sign, l_sign, b_sign}, [DT_EXP] = {f_exp, NULL, NULL},
    [DT_LOG] = {f_log, NULL, NULL},       [DT_SQRT] = {f_sqrt, NULL, NULL},
    [DT_RSQRT] = {f_rsqrt, NULL, NULL},   [DT_RELU] = {f_relu, l_relu, b_copy},
    [DT_SIGMOID] = {f_sigmoid, NULL, NULL}, [DT_TANH] = {f_tanh, NULL, NULL},
};


/* ------------------------------------------------------------------- clamp */

/* max then min, as torch: lo > hi gives hi everywhere; NaN passes through. */
#define CLAMP_KERNEL(NAME, T, LO, HI)                                                    \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *ctx)       \
    {                                                                                    \
        const dt_cpu_clamp_ctx *c = ctx;                                                        \
        T *o = (T *)p[0];                                                                \
        const T *a = (const T *)p[1];                                                    \
        T lo = (T)c->LO, hi = (T)c->HI;                                                  \
        int64_t so = s[0], sa = s[1];                                                    \
        if (so == 1 && sa == 1) {                                                        \
            for (int64_t k = 0; k < n; k++) {                                            \
                T x = a[k];                                                              \
                x = x < lo ? lo : x;                                                     \
                o[k] = x > hi ? hi : x;                                                  \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                T x = a[k * sa];                                                         \
                x = x < lo ? lo : x;                                                     \
                o[k * so] = x > hi ? hi : x;                                             \
            }                                                                            \
        }                                                                                \
    }

CLAMP_KERNEL(f_clamp, float, flo, fhi)
CLAMP_KERNEL(l_clamp, int64_t, llo, lhi)
CLAMP_KERNEL(b_clamp, uint8_t, llo, lhi)

static const dt_cpu_run_fn ew_clamp[DT_NUM_DTYPES] = {f_clamp, l_clamp, b_clamp};

/* ------------------------------------------------------------------- where */

/* The scalar-operand runs (where(c, g, 0)) get their own loops so they
 * vectorise. */
#define WHERE_KERNEL(NAME, T)                                                            \
    static void NAME(int64_t n, char *const *p, const int64_t *s, const void *ctx)       \
    {                                                                                    \
        (void)ctx;                                                                       \
        T *restrict o = (T *)p[0];                                                       \
        const uint8_t *restrict c = (const uint8_t *)p[1];                               \
        const T *restrict a = (const T *)p[2], *restrict b = (const T *)p[3];            \
        int64_t so = s[0], sc = s[1], sa = s[2], sb = s[3];                              \
        if (so == 1 && sc == 1 && sa == 1 && sb == 1) {                                  \
            for (int64_t k = 0; k < n; k++) {                                            \
                T av = a[k], bv = b[k];                                                  \
                o[k] = c[k] ? av : bv;                                                   \
            }                                                                            \
        } else if (so == 1 && sc == 1 && sa == 1 && sb == 0) {                           \
            T bv = b[0];                                                                 \
            for (int64_t k = 0; k < n; k++) {                                            \
                T av = a[k];                                                             \
                o[k] = c[k] ? av : bv;                                                   \
            }                                                                            \
        } else if (so == 1 && sc == 1 && sa == 0 && sb == 1) {                           \
            T av = a[0];                                                                 \
            for (int64_t k = 0; k < n; k++) {                                            \
                T bv = b[k];                                                             \
                o[k] = c[k] ? av : bv;                                                   \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                T av = a[k * sa], bv = b[k * sb];                                        \
                o[k * so] = c[k * sc] ? av : bv;                                         \
            }                                                                            \
        }                                                                                \
    }

WHERE_KERNEL(f_where, float)
WHERE_KERNEL(l_where, int64_t)
WHERE_KERNEL(b_where, uint8_t)

static const dt_cpu_run_fn ew_where[DT_NUM_DTYPES] = {f_where, l_where, b_where};

/* ------------------------------------------------------------ ReLU backward */

/* dx = out > 0 ? g : 0 over one run: p = {dx, out, g}. */
static void f_relu_grad(int64_t n, char *const *p, const int64_t *s, const void *ctx)
{
    (void)ctx;
    float *restrict o = (float *)p[0];
    const float *restrict y = (const float *)p[1], *restrict g = (const float *)p[2];
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
        for (int64_t k = 0; k < n; k++) {
            float gv = g[k];
            o[k] = y[k] > 0.0f ? gv : 0.0f;
        }
    } else {
        for (int64_t k = 0; k < n; k++) {
            float gv = g[k * s[2]];
            o[k * s[0]] = y[k * s[1]] > 0.0f ? gv : 0.0f;
        }
    }
}


#endif

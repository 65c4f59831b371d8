/* rng.c - a counter-based random generator.
 *
 * Word k of the stream for `seed` is a SplitMix64 finaliser applied to
 * key(seed) + (k+1) * golden-gamma. Any element of a random fill can be
 * computed on its own, so parallel fills give the same numbers for any
 * thread count, and the whole state is (seed, offset). */
#include "distill.h"

#include <math.h>

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t dt_rng_word(uint64_t seed, uint64_t k)
{
    uint64_t key = mix64(seed ^ 0x6A09E667F3BCC909ULL);
    return mix64(key + (k + 1) * 0x9E3779B97F4A7C15ULL);
}

static dt_rng default_rng = {.seed = 0, .offset = 0};

dt_rng *dt_default_rng(void) { return &default_rng; }

void dt_rng_seed(dt_rng *g, uint64_t seed)
{
    g->seed = seed;
    g->offset = 0;
}

uint64_t dt_rng_next(dt_rng *g) { return dt_rng_word(g->seed, g->offset++); }

/* 53 random bits -> [0, 1). */
static double unit_double(uint64_t w) { return (double)(w >> 11) * 0x1.0p-53; }

double dt_rng_uniform(dt_rng *g) { return unit_double(dt_rng_next(g)); }

/* Box-Muller on two words; 1 - u keeps the log argument in (0, 1]. */
static double normal_from(uint64_t w1, uint64_t w2)
{
    double u1 = 1.0 - unit_double(w1), u2 = unit_double(w2);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double dt_rng_normal(dt_rng *g)
{
    uint64_t w1 = dt_rng_next(g), w2 = dt_rng_next(g);
    return normal_from(w1, w2);
}

/* Uniform integer in [0, range) by multiply-shift (Lemire). */
static uint64_t below(uint64_t w, uint64_t range)
{
    return (uint64_t)(((unsigned __int128)w * range) >> 64);
}

static dt_status check_float(const dt_tensor *t, const char *what)
{
    if (t->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_DTYPE, "%s fills float32 tensors, got %s", what,
                       dt_dtype_name(t->dtype));
    return DT_OK;
}

dt_status dt_rand_(dt_tensor *t, dt_rng *g, double low, double high)
{
    dt_status st = check_float(t, "rand");
    if (st)
        return st;
    if (!(low <= high))
        return dt_fail(DT_ERR_ARG, "rand: low %g must be <= high %g", low, high);
    int64_t n = dt_numel(t);
    uint64_t base = g->offset;
    for (int64_t i = 0; i < n; i++) {
        double u = unit_double(dt_rng_word(g->seed, base + (uint64_t)i));
        float v = (float)(low + (high - low) * u);
        /* rounding to float can land on `high`; keep the interval half-open */
        if (v >= (float)high && high > low)
            v = nextafterf((float)high, (float)low);
        dt_set_flat(t, i, v);
    }
    g->offset += (uint64_t)n;
    return DT_OK;
}

dt_status dt_randn_(dt_tensor *t, dt_rng *g, double mean, double std)
{
    dt_status st = check_float(t, "randn");
    if (st)
        return st;
    int64_t n = dt_numel(t);
    uint64_t base = g->offset;
    for (int64_t i = 0; i < n; i++) {
        uint64_t k = base + 2 * (uint64_t)i;
        dt_set_flat(t, i, mean + std * normal_from(dt_rng_word(g->seed, k),
                                                   dt_rng_word(g->seed, k + 1)));
    }
    g->offset += 2 * (uint64_t)n;
    return DT_OK;
}

dt_status dt_randint_(dt_tensor *t, dt_rng *g, int64_t low, int64_t high)
{
    if (high <= low)
        return dt_fail(DT_ERR_ARG, "randint: high (%lld) must be greater than low (%lld)",
                       (long long)high, (long long)low);
    int64_t n = dt_numel(t);
    /* in unsigned arithmetic: the range of [INT64_MIN, INT64_MAX) is 2^64 - 1 */
    uint64_t range = (uint64_t)high - (uint64_t)low, base = g->offset;
    for (int64_t i = 0; i < n; i++)
        dt_set_flat_i64(t, i, (int64_t)((uint64_t)low +
                                        below(dt_rng_word(g->seed, base + (uint64_t)i), range)));
    g->offset += (uint64_t)n;
    return DT_OK;
}

dt_status dt_randperm(dt_rng *g, int64_t n, dt_tensor **out)
{
    dt_status st = n < 0 ? dt_fail(DT_ERR_ARG, "randperm: n must be >= 0, got %lld", (long long)n)
                         : dt_zeros(DT_INT64, 1, &n, out);
    if (st)
        return st;
    int64_t *p = dt_i64(*out);
    for (int64_t i = 0; i < n; i++)
        p[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {   /* Fisher-Yates */
        int64_t j = (int64_t)below(dt_rng_next(g), (uint64_t)i + 1);
        int64_t tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return DT_OK;
}

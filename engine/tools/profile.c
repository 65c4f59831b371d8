/* profile.c - per-op-kind wall-time counters behind a global switch.
 *
 * Ops time themselves with DT_PROF_SCOPE (autograd/op.h), one line at the
 * top of the op. With profiling off the macro reads one volatile int. With it on, the outermost
 * timed region of the calling thread is measured with CLOCK_MONOTONIC; nested
 * regions (an op implemented with another timed op) only count once, under
 * the outer kind. Ops are called from the Lua thread; OpenMP workers inside a
 * kernel are covered by the caller's region. */
#include "autograd/op.h"

#include <time.h>

volatile int dt_prof_enabled;

static _Thread_local int depth;
static int64_t calls[DT_PROF_NKINDS];
static double seconds[DT_PROF_NKINDS];
static double wall_start, wall_stop;

static const char *const names[DT_PROF_NKINDS] = {
    "conv_forward", "conv_backward_data", "conv_backward_weight", "batchnorm", "pooling",
    "elementwise", "gemm", "loss", "optimizer", "other",
};

double dt_wallclock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *dt_prof_kind_name(dt_prof_kind kind)
{
    return kind >= 0 && kind < DT_PROF_NKINDS ? names[kind] : "?";
}

/* -1: profiling was off (DT_PROF_END does nothing); -2: nested region
 * (the outer one counts; its end only unwinds the depth). */
double dt_prof_begin_(void)
{
    if (depth++ > 0)
        return -2.0;
    return dt_wallclock();
}

void dt_prof_end_(dt_prof_kind kind, double t0)
{
    if (depth > 0)
        depth--;
    if (t0 < 0 || !dt_prof_enabled || kind < 0 || kind >= DT_PROF_NKINDS)
        return;
    calls[kind]++;
    seconds[kind] += dt_wallclock() - t0;
}

void dt_prof_start(void)
{
    for (int k = 0; k < DT_PROF_NKINDS; k++)
        calls[k] = 0, seconds[k] = 0.0;
    depth = 0;
    wall_start = dt_wallclock();
    wall_stop = 0.0;
    dt_prof_enabled = 1;
}

bool dt_prof_on(void) { return dt_prof_enabled != 0; }

void dt_prof_stop(void)
{
    if (dt_prof_enabled)
        wall_stop = dt_wallclock();
    dt_prof_enabled = 0;
}

void dt_prof_get(dt_prof_kind kind, int64_t *c, double *s)
{
    *c = 0, *s = 0.0;
    if (kind >= 0 && kind < DT_PROF_NKINDS)
        *c = calls[kind], *s = seconds[kind];
}

double dt_prof_wall(void)
{
    if (wall_start == 0.0)
        return 0.0;
    return (dt_prof_enabled || wall_stop == 0.0 ? dt_wallclock() : wall_stop) - wall_start;
}

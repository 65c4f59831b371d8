/* ddp.c - gradient averaging over ranks, as PyTorch's
 * DistributedDataParallel (distill.h: dt_ddp_*).
 *
 * The parameters are laid out in buckets of about bucket_bytes, in reverse
 * order: backward finishes the last layers first, so the first buckets
 * fill first. Backward runs with leaf hooks (autograd/op.h): before it
 * starts, every edge into a parameter is counted; when as many gradients
 * have arrived as edges were counted, the parameter's gradient is final and
 * is copied into its bucket. A bucket whose parameters are all final starts
 * its sum over the ranks at once (non-blocking), while backward goes on
 * with the layers before it; every later arrival lets the started sums
 * progress. Buckets start strictly in index order, so every rank issues
 * the same collectives in the same order, whatever its timing. After
 * backward the remaining buckets start (a parameter that got no gradient
 * contributes zeros), all sums are awaited, and each .grad becomes the mean
 * over ranks. */
#include "autograd/op.h"
#include "dist.h"

#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    int first, count;       /* parameters order[first .. first + count) */
    int64_t floats;
    float *buf;
    int waiting;            /* parameters not final yet */
    bool started;
    dt_dist_request req;
} bucket;

struct dt_ddp {
    int n;
    dt_tensor **params;     /* retained */
    int *order;             /* bucket layout: parameter indices, last parameter first */
    int *bucket_of;
    int64_t *offset;        /* floats into the bucket's buffer */
    int nbuckets;
    bucket *buckets;
    /* per backward */
    int *edges, *arrived;
    bool *final;
    int next_start;
    int started_early;
    int64_t calls;
    double backward_seconds, wait_seconds;
    /* parameter tensor -> index (open addressing on the pointer) */
    size_t map_cap;
    const dt_tensor **map_keys;
    int *map_vals;
};

static size_t hash_ptr(const void *p, size_t cap)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

static void map_put(dt_ddp *d, const dt_tensor *t, int idx)
{
    size_t h = hash_ptr(t, d->map_cap);
    while (d->map_keys[h] && d->map_keys[h] != t)
        h = (h + 1) & (d->map_cap - 1);
    d->map_keys[h] = t;
    d->map_vals[h] = idx;
}

static int map_get(const dt_ddp *d, const dt_tensor *t)
{
    size_t h = hash_ptr(t, d->map_cap);
    while (d->map_keys[h]) {
        if (d->map_keys[h] == t)
            return d->map_vals[h];
        h = (h + 1) & (d->map_cap - 1);
    }
    return -1;
}

void dt_ddp_free(dt_ddp *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        dt_tensor_release(d->params[i]);
    for (int b = 0; b < d->nbuckets; b++) {
        dt_dist_wait(&d->buckets[b].req);
        free(d->buckets[b].buf);
    }
    free(d->params);
    free(d->order);
    free(d->bucket_of);
    free(d->offset);
    free(d->buckets);
    free(d->edges);
    free(d->arrived);
    free(d->final);
    free(d->map_keys);
    free(d->map_vals);
    free(d);
}

/* Buckets of about bucket_bytes, filled from the last parameter back. */
static dt_status lay_out(dt_ddp *d, size_t bucket_bytes)
{
    int64_t limit = (int64_t)(bucket_bytes / sizeof(float));
    if (limit < 1)
        limit = 1;
    d->buckets = calloc((size_t)d->n + 1, sizeof *d->buckets);
    if (!d->buckets)
        return dt_fail(DT_ERR_NOMEM, "ddp: out of memory");
    for (int k = 0; k < d->n; k++) {
        int i = d->n - 1 - k;
        d->order[k] = i;
        bucket *b = d->nbuckets ? &d->buckets[d->nbuckets - 1] : NULL;
        int64_t numel = dt_numel(d->params[i]);
        if (!b || (b->floats > 0 && b->floats + numel > limit)) {
            b = &d->buckets[d->nbuckets++];
            b->first = k;
        }
        d->bucket_of[i] = (int)(b - d->buckets);
        d->offset[i] = b->floats;
        b->floats += numel;
        b->count++;
    }
    for (int b = 0; b < d->nbuckets; b++) {
        d->buckets[b].buf = malloc((size_t)(d->buckets[b].floats > 0 ? d->buckets[b].floats : 1) *
                                   sizeof(float));
        if (!d->buckets[b].buf)
            return dt_fail(DT_ERR_NOMEM, "ddp: out of memory for gradient buckets");
    }
    return DT_OK;
}

dt_status dt_ddp_new(int n, dt_tensor *const *params, size_t bucket_bytes, dt_ddp **out)
{
    *out = NULL;
    if (n < 0)
        return dt_fail(DT_ERR_ARG, "ddp: negative parameter count");
    for (int i = 0; i < n; i++)
        if (!params[i] || params[i]->dtype != DT_FLOAT32 || params[i]->grad_fn)
            return dt_fail(DT_ERR_ARG, "ddp: parameter %d must be a float32 leaf tensor", i + 1);
    dt_ddp *d = calloc(1, sizeof *d);
    if (!d)
        return dt_fail(DT_ERR_NOMEM, "ddp: out of memory");
    d->n = n;
    d->map_cap = 16;
    while (d->map_cap < 2 * (size_t)n + 1)
        d->map_cap *= 2;
    size_t m = (size_t)n + 1;
    d->params = calloc(m, sizeof *d->params);
    d->order = calloc(m, sizeof *d->order);
    d->bucket_of = calloc(m, sizeof *d->bucket_of);
    d->offset = calloc(m, sizeof *d->offset);
    d->edges = calloc(m, sizeof *d->edges);
    d->arrived = calloc(m, sizeof *d->arrived);
    d->final = calloc(m, sizeof *d->final);
    d->map_keys = calloc(d->map_cap, sizeof *d->map_keys);
    d->map_vals = calloc(d->map_cap, sizeof *d->map_vals);
    dt_status st = d->params && d->order && d->bucket_of && d->offset && d->edges && d->arrived &&
                           d->final && d->map_keys && d->map_vals
                       ? DT_OK
                       : dt_fail(DT_ERR_NOMEM, "ddp: out of memory");
    for (int i = 0; st == DT_OK && i < n; i++) {
        if (map_get(d, params[i]) >= 0)
            st = dt_fail(DT_ERR_ARG, "ddp: parameter %d is listed twice", i + 1);
        dt_tensor_retain(params[i]);
        d->params[i] = params[i];
        map_put(d, params[i], i);
    }
    if (st == DT_OK)
        st = lay_out(d, bucket_bytes);
    if (st) {
        dt_ddp_free(d);
        return st;
    }
    *out = d;
    return DT_OK;
}

/* The parameter's gradient (zeros when it has none) into its bucket. */
static void copy_in(dt_ddp *d, int i)
{
    dt_tensor *p = d->params[i];
    float *dst = d->buckets[d->bucket_of[i]].buf + d->offset[i];
    int64_t n = dt_numel(p);
    if (!p->grad) {
        memset(dst, 0, (size_t)n * sizeof *dst);
        return;
    }
    if (dt_is_contiguous(p->grad)) {
        memcpy(dst, dt_f32(p->grad), (size_t)n * sizeof *dst);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        dst[k] = (float)dt_get_flat(p->grad, k);
}

/* Starts the sums of the ready buckets, in index order. */
static dt_status start_ready(dt_ddp *d, bool during_backward)
{
    while (d->next_start < d->nbuckets && d->buckets[d->next_start].waiting == 0) {
        bucket *b = &d->buckets[d->next_start++];
        dt_status st = dt_dist_isum_floats(b->buf, b->floats, &b->req);
        if (st)
            return st;
        b->started = true;
        if (during_backward)
            d->started_early++;
    }
    return DT_OK;
}

/* Lets the started sums progress (MPI moves non-blocking collectives on
 * when it is called). */
static dt_status progress(dt_ddp *d)
{
    for (int b = 0; b < d->next_start; b++) {
        bool done;
        dt_status st = dt_dist_test(&d->buckets[b].req, &done);
        if (st)
            return st;
    }
    return DT_OK;
}

static void on_edge(dt_tensor *leaf, void *ctx)
{
    dt_ddp *d = ctx;
    int i = map_get(d, leaf);
    if (i >= 0)
        d->edges[i]++;
}

static void make_final(dt_ddp *d, int i)
{
    d->final[i] = true;
    copy_in(d, i);
    d->buckets[d->bucket_of[i]].waiting--;
}

static dt_status on_arrived(dt_tensor *leaf, void *ctx)
{
    dt_ddp *d = ctx;
    int i = map_get(d, leaf);
    if (i < 0 || d->final[i])
        return DT_OK;
    if (++d->arrived[i] < d->edges[i])
        return DT_OK;
    make_final(d, i);
    dt_status st = start_ready(d, true);
    return st ? st : progress(d);
}

void dt_ddp_get_stats(const dt_ddp *d, dt_ddp_stats *out)
{
    memset(out, 0, sizeof *out);
    out->buckets = d->nbuckets;
    out->started_early = d->started_early;
    out->calls = d->calls;
    for (int b = 0; b < d->nbuckets; b++)
        out->floats += d->buckets[b].floats;
    out->backward_seconds = d->backward_seconds;
    out->wait_seconds = d->wait_seconds;
}

dt_status dt_ddp_backward(dt_ddp *d, dt_tensor *root, const dt_tensor *grad)
{
    if (dt_dist_size() == 1) {
        double t0 = dt_wallclock();
        dt_status st = dt_backward(root, grad, false);
        d->calls++;
        d->backward_seconds += dt_wallclock() - t0;
        return st;
    }
    for (int i = 0; i < d->n; i++)
        d->edges[i] = d->arrived[i] = 0, d->final[i] = false;
    for (int b = 0; b < d->nbuckets; b++)
        d->buckets[b].waiting = d->buckets[b].count, d->buckets[b].started = false;
    d->next_start = 0;
    d->started_early = 0;
    double t0 = dt_wallclock();
    dt_leaf_hooks hooks = {on_edge, on_arrived, d};
    dt_status st = dt_backward_hooked(root, grad, false, &hooks);
    double t_backward = dt_wallclock();
    /* The buckets not started yet, with whatever arrived (or zeros), so the
     * ranks still issue the same sums even if this one failed. */
    for (int i = 0; i < d->n; i++)
        if (!d->final[i])
            make_final(d, i);
    dt_status st2 = start_ready(d, false);
    for (int b = 0; b < d->nbuckets; b++) {
        dt_status w = dt_dist_wait(&d->buckets[b].req);
        if (st2 == DT_OK)
            st2 = w;
    }
    double t_done = dt_wallclock();
    d->calls++;
    d->backward_seconds += t_done - t0;
    d->wait_seconds += t_done - t_backward;
    if (st == DT_OK)
        st = st2;
    if (st)
        return st;
    float scale = 1.0f / (float)dt_dist_size();
    for (int i = 0; i < d->n && st == DT_OK; i++) {
        dt_tensor *p = d->params[i];
        if (!p->grad)
            st = dt_zeros(DT_FLOAT32, p->ndim, p->shape, &p->grad);
        if (st)
            break;
        const float *src = d->buckets[d->bucket_of[i]].buf + d->offset[i];
        int64_t n = dt_numel(p);
        if (dt_is_contiguous(p->grad)) {
            float *g = dt_f32(p->grad);
            for (int64_t k = 0; k < n; k++)
                g[k] = src[k] * scale;
        } else {
            for (int64_t k = 0; k < n; k++)
                dt_set_flat(p->grad, k, src[k] * scale);
        }
        p->grad->storage->version++;
    }
    return st;
}

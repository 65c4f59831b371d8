/* data_loader.c - a pthread pool producing whole batches in the background.
 *
 * The epoch's batches go round a ring of `nslots` slots, at most nslots
 * batches ahead of the consumer. Only the calling (Lua) thread allocates,
 * retains or releases tensors; workers write raw pixels, targets and
 * indices into the buffers of the slot they claimed. Every random choice of
 * a sample comes from dt_data_sample_key(seed, epoch, position), so the
 * batches do not depend on the number of workers or on scheduling. */
#include "distill.h"
#include "autograd/op.h"
#include "core/size.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES ((size_t)1 << 28)
#define ERROR_LEN 512
#define POOL_EXTRA 4

typedef enum slot_state { SLOT_FREE, SLOT_QUEUED, SLOT_FILLING, SLOT_DONE } slot_state;

/* One batch's tensors. The pool keeps a reference to each; an entry is
 * reused once the caller has dropped its references (refcount back to 1).
 * Refcounts are touched by the calling thread only. */
typedef struct batch_bufs {
    dt_tensor *input, *target, *index;
    bool busy;                     /* assigned to a slot that is not free */
} batch_bufs;

typedef struct slot {
    slot_state state;
    int64_t batch, first, count;   /* epoch positions [first, first + count) */
    batch_bufs *bufs;
    uint8_t *input_data;
    int64_t *target_data, *index_data;
    dt_status status;
    char error[ERROR_LEN];
} slot;

/* Per-thread scratch. */
typedef struct worker_ctx {
    dt_jpeg_decoder *jpeg;
} worker_ctx;

struct dt_loader {
    /* source: an image tensor, or files */
    dt_tensor *images, *labels;
    char **paths;
    int64_t n;
    int c;
    dt_transform tf;
    int64_t out_h, out_w;
    bool is_float;
    size_t sample_bytes;
    dt_loader_opts opts;
    int64_t nbatches;
    /* the running epoch */
    bool active;
    int64_t epoch, next_dispatch, next_take;
    int64_t *order;
    int nslots;
    slot *slots;
    int npool;
    batch_bufs *pool;              /* up to POOL_EXTRA + nslots entries */
    /* threads */
    int nthreads;
    pthread_t *threads;
    worker_ctx *ctx;            /* nthreads + 1 (the last: synchronous mode) */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    bool shutdown, sync_ready;   /* sync_ready: mutex and conditions initialised */
    atomic_bool cancel;
    atomic_llong skipped;
};

/* ------------------------------------------------------------ filling */

static dt_status fill_from_tensor(dt_loader *l, int64_t idx, uint64_t key, uint8_t *dst)
{
    const dt_tensor *im = l->images;
    dt_tf_plan plan;
    dt_status st = dt_transform_plan(&l->tf, l->c, im->shape[2], im->shape[3], key, &plan);
    if (st)
        return st;
    const uint8_t *src = dt_u8(im) + idx * im->stride[0];
    return dt_tf_apply(&plan, src, im->stride[1], im->stride[2], im->stride[3], dst);
}

static dt_status fill_from_file(dt_loader *l, worker_ctx *ctx, const char *path, uint64_t key,
                                uint8_t *dst)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    dt_status st = dt_read_file(path, MAX_FILE_BYTES, &buf, &len);
    if (st)
        return st;
    int64_t h = 0, w = 0, sh = 0, sw = 0;
    dt_tf_plan plan;
    const uint8_t *px = NULL;
    st = dt_jpeg_header(ctx->jpeg, buf, len, &h, &w);
    if (st == DT_OK)
        st = dt_transform_plan(&l->tf, 3, h, w, key, &plan);
    if (st == DT_OK && (plan.out_h != l->out_h || plan.out_w != l->out_w))
        st = dt_fail(DT_ERR_SHAPE, "the transform gives %lld x %lld, expected %lld x %lld",
                     (long long)plan.out_h, (long long)plan.out_w, (long long)l->out_h,
                     (long long)l->out_w);
    if (st == DT_OK) {
        /* decode just large enough that no axis is upsampled by the scaling */
        double dy, dx;
        dt_tf_plan_density(&plan, &dy, &dx);
        int64_t min_h = dy > 1 ? (int64_t)((double)h / dy) : h;
        int64_t min_w = dx > 1 ? (int64_t)((double)w / dx) : w;
        st = dt_jpeg_decode_scaled(ctx->jpeg, buf, len, min_h, min_w, &px, &sh, &sw);
    }
    if (st == DT_OK) {
        if (sh != h || sw != w)
            dt_tf_plan_rescale(&plan, sh, sw);
        st = dt_tf_apply(&plan, px, 1, 3 * sw, 3, dst);
    }
    free(buf);
    if (st && strncmp(dt_last_error(), path, strlen(path)) != 0) {
        char why[ERROR_LEN];
        snprintf(why, sizeof why, "%s", dt_last_error());
        dt_fail(st, "%s: %s", path, why);
    }
    return st;
}

static void report(slot *s, dt_status st)
{
    s->status = st;
    snprintf(s->error, sizeof s->error, "%s", dt_last_error());
}

/* Produce batch s->batch into the slot's buffers. */
static void fill_slot(dt_loader *l, worker_ctx *ctx, slot *s)
{
    s->status = DT_OK;
    int64_t first = s->first;
    for (int64_t j = 0; j < s->count; j++) {
        if (atomic_load(&l->cancel)) {
            report(s, dt_fail(DT_ERR_STATE, "cancelled"));
            return;
        }
        int64_t pos = first + j, idx = l->order[pos];
        uint64_t key = dt_data_sample_key(l->opts.seed, l->epoch, pos);
        uint8_t *dst = s->input_data + (size_t)j * l->sample_bytes;
        s->index_data[j] = idx;
        s->target_data[j] = l->labels ? dt_i64(l->labels)[idx * l->labels->stride[0]] : 0;
        dt_status st = l->images ? fill_from_tensor(l, idx, key, dst)
                                 : fill_from_file(l, ctx, l->paths[idx], key, dst);
        if (st && l->paths && l->opts.skip_errors) {
            fprintf(stderr, "warning: data loader: skipping %s\n", dt_last_error());
            memset(dst, 0, l->sample_bytes);
            atomic_fetch_add(&l->skipped, 1);
        } else if (st) {
            report(s, st);
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    void **args = arg;
    dt_loader *l = args[0];
    worker_ctx *ctx = args[1];
    free(args);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        slot *pick = NULL;
        while (!l->shutdown) {
            for (int i = 0; i < l->nslots; i++)
                if (l->slots[i].state == SLOT_QUEUED &&
                    (!pick || l->slots[i].batch < pick->batch))
                    pick = &l->slots[i];
            if (pick)
                break;
            pthread_cond_wait(&l->work_cv, &l->mu);
        }
        if (l->shutdown)
            break;
        pick->state = SLOT_FILLING;
        pthread_mutex_unlock(&l->mu);
        fill_slot(l, ctx, pick);
        pthread_mutex_lock(&l->mu);
        pick->state = SLOT_DONE;
        pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ------------------------------------------------- slots (calling thread) */

static bool reusable(const dt_tensor *t, int64_t count)
{
    return t && t->refcount == 1 && t->storage->refcount == 1 && t->shape[0] == count;
}

static void bufs_release(batch_bufs *b)
{
    dt_tensor_release(b->input);
    dt_tensor_release(b->target);
    dt_tensor_release(b->index);
    b->input = b->target = b->index = NULL;
}

/* A pool entry for a batch of `count` samples: a free one whose tensors
 * the caller has dropped, else fresh tensors (replacing a free entry that
 * is still held by the caller when the pool is full). */
static dt_status acquire(dt_loader *l, int64_t count, batch_bufs **out)
{
    int cap = l->nslots + POOL_EXTRA;
    batch_bufs *victim = NULL;
    for (int i = 0; i < l->npool; i++) {
        batch_bufs *b = &l->pool[i];
        if (b->busy)
            continue;
        if (reusable(b->input, count) && reusable(b->target, count) &&
            reusable(b->index, count)) {
            *out = b;
            return DT_OK;
        }
        victim = victim ? victim : b;
    }
    batch_bufs *b = l->npool < cap ? &l->pool[l->npool] : victim;
    if (!b)
        return dt_fail(DT_ERR_STATE, "loader: no free batch buffers");
    bufs_release(b);
    int64_t shape[4] = {count, l->c, l->out_h, l->out_w};
    dt_status st = dt_empty(l->is_float ? DT_FLOAT32 : DT_UINT8, 4, shape, &b->input);
    if (st == DT_OK)
        st = dt_empty(DT_INT64, 1, &count, &b->target);
    if (st == DT_OK)
        st = dt_empty(DT_INT64, 1, &count, &b->index);
    if (st) {
        bufs_release(b);
        return st;
    }
    if (b == &l->pool[l->npool])
        l->npool++;
    *out = b;
    return DT_OK;
}

/* The epoch positions of this process's share of a batch. */
static void batch_range(const dt_loader *l, int64_t batch, int64_t *first, int64_t *count)
{
    int64_t start = batch * l->opts.batch_size;
    int64_t size = l->n - start < l->opts.batch_size ? l->n - start : l->opts.batch_size;
    *first = start;
    *count = size;
    if (l->opts.shards > 1) {
        int64_t r = l->opts.shard, base = size / l->opts.shards, extra = size % l->opts.shards;
        *first = start + r * base + (r < extra ? r : extra);
        *count = base + (r < extra ? 1 : 0);
    }
}

static dt_status prepare_slot(dt_loader *l, slot *s, int64_t batch)
{
    int64_t first, count;
    batch_range(l, batch, &first, &count);
    batch_bufs *b = NULL;
    dt_status st = acquire(l, count, &b);
    if (st)
        return st;
    b->busy = true;
    s->bufs = b;
    b->input->storage->version++;
    b->target->storage->version++;
    b->index->storage->version++;
    s->input_data = dt_data(b->input);
    s->target_data = dt_i64(b->target);
    s->index_data = dt_i64(b->index);
    s->batch = batch;
    s->first = first;
    s->count = count;
    return DT_OK;
}

/* Free a slot; its buffers may be reused once the caller drops them. */
static void release_slot(slot *s)
{
    s->state = SLOT_FREE;
    if (s->bufs)
        s->bufs->busy = false;
    s->bufs = NULL;
}

/* Queue batches up to nslots ahead of the consumer (mutex held). */
static dt_status dispatch(dt_loader *l)
{
    while (l->next_dispatch < l->nbatches && l->next_dispatch < l->next_take + l->nslots) {
        slot *s = &l->slots[l->next_dispatch % l->nslots];
        dt_status st = prepare_slot(l, s, l->next_dispatch);
        if (st)
            return st;
        s->state = SLOT_QUEUED;
        l->next_dispatch++;
        pthread_cond_signal(&l->work_cv);
    }
    return DT_OK;
}

/* ----------------------------------------------------------------- public */

static dt_status check_opts(const dt_loader_opts *o, int64_t n)
{
    if (o->batch_size < 1)
        return dt_fail(DT_ERR_ARG, "batch_size must be >= 1, got %lld", (long long)o->batch_size);
    if (o->workers < 0 || o->workers > DT_LOADER_MAX_WORKERS)
        return dt_fail(DT_ERR_ARG, "workers must be 0..%d, got %d", DT_LOADER_MAX_WORKERS,
                       o->workers);
    if (o->prefetch < 0 || o->prefetch > DT_LOADER_MAX_PREFETCH)
        return dt_fail(DT_ERR_ARG, "prefetch must be 0..%d batches, got %d",
                       DT_LOADER_MAX_PREFETCH, o->prefetch);
    if (n < 0)
        return dt_fail(DT_ERR_ARG, "negative dataset size");
    if (o->shards < 0 || (o->shards > 1 && (o->shard < 0 || o->shard >= o->shards)))
        return dt_fail(DT_ERR_ARG, "shard %d of %d: expected a share between 1 and the number "
                       "of shares", o->shard + 1, o->shards);
    if (o->shards > 1 && o->batch_size < o->shards)
        return dt_fail(DT_ERR_ARG, "a batch of %lld cannot be shared by %d processes (the "
                       "batch size is the global one: make it at least the number of ranks)",
                       (long long)o->batch_size, o->shards);
    return DT_OK;
}

static dt_status finish_new(dt_loader *l, dt_loader **out)
{
    const dt_loader_opts *o = &l->opts;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    l->sync_ready = true;
    int64_t sample[3] = {l->c, l->out_h, l->out_w}, numel;
    dt_status st = dt_shape_numel("loader: sample shape", 3, sample, &numel);
    if (st) {
        dt_loader_free(l);
        return st;
    }
    l->nbatches = l->n / o->batch_size + (!o->drop_last && l->n % o->batch_size != 0);
    if (o->shards > 1 && l->nbatches > 0) {
        int64_t last = l->n - (l->nbatches - 1) * o->batch_size;
        bool mine = o->shard < last;   /* this process's share of it is not empty */
        if (last < o->shards && !(o->keep_short && mine))
            l->nbatches--;   /* a last batch too small to give every process a sample */
    }
    l->sample_bytes = (size_t)numel * (l->is_float ? 4 : 1);
    /* check_opts bounds workers and prefetch, so none of this overflows */
    l->nslots = o->prefetch > 0 ? o->prefetch : o->workers * 2 > 2 ? o->workers * 2 : 2;
    l->nthreads = o->workers;
    l->order = malloc(sizeof(int64_t) * (size_t)(l->n > 0 ? l->n : 1));
    l->slots = calloc((size_t)l->nslots, sizeof(slot));
    l->pool = calloc((size_t)(l->nslots + POOL_EXTRA), sizeof(batch_bufs));
    l->ctx = calloc((size_t)l->nthreads + 1, sizeof(worker_ctx));
    l->threads = calloc((size_t)l->nthreads + 1, sizeof(pthread_t));
    if (!l->order || !l->slots || !l->pool || !l->ctx || !l->threads) {
        dt_loader_free(l);
        return dt_fail(DT_ERR_NOMEM, "out of memory creating a loader");
    }
    for (int i = 0; i <= l->nthreads; i++) {
        dt_status st = l->paths ? dt_jpeg_decoder_new(&l->ctx[i].jpeg) : DT_OK;
        if (st) {
            l->nthreads = 0;
            dt_loader_free(l);
            return st;
        }
    }
    for (int i = 0; i < l->nthreads; i++) {
        void **args = malloc(2 * sizeof(void *));
        if (args) {
            args[0] = l;
            args[1] = &l->ctx[i];
        }
        if (!args || pthread_create(&l->threads[i], NULL, worker_main, args) != 0) {
            free(args);
            l->nthreads = i;
            dt_loader_free(l);
            return dt_fail(DT_ERR_STATE, "cannot start loader worker thread %d", i + 1);
        }
    }
    *out = l;
    return DT_OK;
}

dt_status dt_loader_new_tensor(dt_tensor *images, dt_tensor *labels, const dt_transform *tf,
                               const dt_loader_opts *opts, dt_loader **out)
{
    *out = NULL;
    if (images->dtype != DT_UINT8 || images->ndim != 4)
        return dt_fail(DT_ERR_ARG, "images must be an N x C x H x W uint8 tensor");
    if (images->shape[1] < 1 || images->shape[1] > DT_TF_MAX_CHANNELS)
        return dt_fail(DT_ERR_ARG, "images have %lld channels; 1 to %d are supported",
                       (long long)images->shape[1], DT_TF_MAX_CHANNELS);
    if (labels && (labels->dtype != DT_INT64 || labels->ndim != 1 ||
                   labels->shape[0] != images->shape[0]))
        return dt_fail(DT_ERR_ARG, "labels must be an int64 tensor of %lld entries",
                       (long long)images->shape[0]);
    dt_status st = check_opts(opts, images->shape[0]);
    if (st == DT_OK)
        st = dt_transform_validate(tf);
    dt_tf_plan probe;
    if (st == DT_OK && images->shape[2] > 0 && images->shape[3] > 0)
        st = dt_transform_plan(tf, (int)images->shape[1], images->shape[2], images->shape[3], 0,
                               &probe);
    if (st)
        return st;
    dt_loader *l = calloc(1, sizeof *l);
    if (!l)
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    l->images = images;
    dt_tensor_retain(images);
    l->labels = labels;
    if (labels)
        dt_tensor_retain(labels);
    l->n = images->shape[0];
    l->c = (int)images->shape[1];
    l->tf = *tf;
    l->opts = *opts;
    dt_transform_out_size(tf, images->shape[2], images->shape[3], &l->out_h, &l->out_w,
                          &l->is_float);
    return finish_new(l, out);
}

dt_status dt_loader_new_files(int64_t n, const char *const *paths, dt_tensor *labels,
                              const dt_transform *tf, const dt_loader_opts *opts,
                              dt_loader **out)
{
    *out = NULL;
    if (labels && (labels->dtype != DT_INT64 || labels->ndim != 1 || labels->shape[0] != n))
        return dt_fail(DT_ERR_ARG, "labels must be an int64 tensor of %lld entries", (long long)n);
    dt_status st = check_opts(opts, n);
    if (st == DT_OK)
        st = dt_transform_validate(tf);
    if (st)
        return st;
    int64_t oh, ow;
    bool is_float;
    dt_transform_out_size(tf, -1, -1, &oh, &ow, &is_float);
    if (oh <= 0 || ow <= 0)
        return dt_fail(DT_ERR_ARG, "images of a folder vary in size: the transform must end "
                       "in a fixed size (random_resized_crop, center_crop, random_crop or "
                       "resize{h, w})");
    dt_loader *l = calloc(1, sizeof *l);
    if (!l || !(l->paths = calloc((size_t)(n > 0 ? n : 1), sizeof(char *)))) {
        free(l);
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    }
    l->n = n;
    for (int64_t i = 0; i < n; i++)
        if (!(l->paths[i] = strdup(paths[i]))) {
            dt_loader_free(l);
            return dt_fail(DT_ERR_NOMEM, "out of memory");
        }
    l->labels = labels;
    if (labels)
        dt_tensor_retain(labels);
    l->c = 3;
    l->tf = *tf;
    l->opts = *opts;
    l->out_h = oh;
    l->out_w = ow;
    l->is_float = is_float;
    return finish_new(l, out);
}

int64_t dt_loader_num_batches(const dt_loader *l) { return l->nbatches; }
int64_t dt_loader_size(const dt_loader *l) { return l->n; }
int64_t dt_loader_skipped(const dt_loader *l) { return atomic_load(&l->skipped); }

int dt_loader_spare_buffers(const dt_loader *l)
{
    int spare = l->nslots + POOL_EXTRA - l->npool;
    for (int i = 0; i < l->npool; i++) {
        const batch_bufs *b = &l->pool[i];
        if (!b->busy && b->input && b->input->refcount == 1 && b->input->storage->refcount == 1)
            spare++;
    }
    return spare;
}

void dt_loader_stop(dt_loader *l)
{
    if (!l->slots || !l->sync_ready)
        return;
    atomic_store(&l->cancel, true);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        bool busy = false;
        for (int i = 0; i < l->nslots; i++) {
            if (l->slots[i].state == SLOT_QUEUED)
                release_slot(&l->slots[i]);
            busy = busy || l->slots[i].state == SLOT_FILLING;
        }
        if (!busy)
            break;
        pthread_cond_wait(&l->done_cv, &l->mu);
    }
    for (int i = 0; i < l->nslots; i++)
        release_slot(&l->slots[i]);
    l->active = false;
    atomic_store(&l->cancel, false);
    pthread_mutex_unlock(&l->mu);
}

void dt_data_epoch_order(uint64_t seed, int64_t epoch, int64_t n, int64_t *order)
{
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    uint64_t key = dt_rng_word(seed ^ 0xD1B54A32D192ED03ULL, (uint64_t)epoch);
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t w = dt_rng_word(key, (uint64_t)(n - 1 - i));
        int64_t j = (int64_t)(((unsigned __int128)w * (uint64_t)(i + 1)) >> 64);
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static void make_order(dt_loader *l, int64_t epoch)
{
    if (l->opts.shuffle) {
        dt_data_epoch_order(l->opts.seed, epoch, l->n, l->order);
        return;
    }
    for (int64_t i = 0; i < l->n; i++)
        l->order[i] = i;
}

dt_status dt_loader_start(dt_loader *l, int64_t epoch)
{
    dt_loader_stop(l);
    make_order(l, epoch);
    l->epoch = epoch;
    l->next_dispatch = l->next_take = 0;
    l->active = true;
    if (l->nthreads == 0)
        return DT_OK;
    pthread_mutex_lock(&l->mu);
    dt_status st = dispatch(l);
    pthread_mutex_unlock(&l->mu);
    if (st)
        dt_loader_stop(l);
    return st;
}

/* Hand the slot's tensors to the caller (new references). */
static void take(slot *s, dt_tensor **input, dt_tensor **target, dt_tensor **index)
{
    batch_bufs *b = s->bufs;
    dt_tensor_retain(b->input);
    dt_tensor_retain(b->target);
    dt_tensor_retain(b->index);
    *input = b->input;
    *target = b->target;
    *index = b->index;
    release_slot(s);
}

dt_status dt_loader_next(dt_loader *l, dt_tensor **input, dt_tensor **target, dt_tensor **index)
{
    *input = *target = *index = NULL;
    if (!l->active)
        return dt_fail(DT_ERR_STATE, "no epoch is running (start one first)");
    if (l->next_take >= l->nbatches) {
        l->active = false;
        return DT_OK;
    }
    if (l->nthreads == 0) {
        slot *s = &l->slots[0];
        dt_status st = prepare_slot(l, s, l->next_take);
        if (st)
            return st;
        fill_slot(l, &l->ctx[0], s);
        if (s->status) {
            release_slot(s);
            return dt_fail(s->status, "%s", s->error);
        }
        l->next_take++;
        take(s, input, target, index);
        return DT_OK;
    }
    pthread_mutex_lock(&l->mu);
    slot *s = &l->slots[l->next_take % l->nslots];
    while (s->state != SLOT_DONE)
        pthread_cond_wait(&l->done_cv, &l->mu);
    dt_status st = s->status;
    if (st) {
        pthread_mutex_unlock(&l->mu);
        dt_loader_stop(l);
        return dt_fail(st, "%s", s->error);
    }
    take(s, input, target, index);
    l->next_take++;
    st = dispatch(l);
    pthread_mutex_unlock(&l->mu);
    if (st) {
        dt_tensor_release(*input);
        dt_tensor_release(*target);
        dt_tensor_release(*index);
        *input = *target = *index = NULL;
        dt_loader_stop(l);
    }
    return st;
}

void dt_loader_free(dt_loader *l)
{
    if (!l)
        return;
    if (l->threads && l->nthreads > 0) {
        dt_loader_stop(l);
        pthread_mutex_lock(&l->mu);
        l->shutdown = true;
        pthread_cond_broadcast(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nthreads; i++)
            pthread_join(l->threads[i], NULL);
    }
    if (l->pool)
        for (int i = 0; i < l->npool; i++)
            bufs_release(&l->pool[i]);
    free(l->pool);
    if (l->ctx)
        for (int i = 0; i <= l->nthreads; i++)
            dt_jpeg_decoder_free(l->ctx[i].jpeg);
    if (l->paths)
        for (int64_t i = 0; i < l->n; i++)
            free(l->paths[i]);
    dt_tensor_release(l->images);
    dt_tensor_release(l->labels);
    free(l->paths);
    free(l->order);
    free(l->slots);
    free(l->ctx);
    free(l->threads);
    if (l->sync_ready) {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->work_cv);
        pthread_cond_destroy(&l->done_cv);
    }
    free(l);
}

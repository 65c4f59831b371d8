/* storage.c - reference-counted, 64-byte aligned buffers over a caching
 * allocator.
 *
 * A training step allocates the same activation and gradient sizes every
 * step. Freed data blocks therefore go to size-class free lists instead of
 * back to malloc (which hands large blocks back to the kernel with munmap,
 * so every step paid mmap + page faults + zeroing again). Size classes are
 * 64-byte multiples up to 4 KiB, then 8 per power of two (at most 12.5 %
 * slack). A request takes the most recently freed block of its class (warm
 * in cache). The cache is bounded: by DISTILL_CACHE_MB when set (0 disables
 * it), else by the larger of 512 MiB and 1.25 times the most bytes that were
 * ever live at once (blocks round up to their class), so that a workload
 * whose step frees more than 512 MiB still gets its blocks back the next
 * step instead of page faults and zeroing. A block that would push the
 * cache over the bound is freed at once.
 *
 * A block that stays unused while CACHE_MAX_AGE_FACTOR times the bound has
 * been handed out is stale (its size belonged to an earlier phase: another
 * model, batch size or test) and is freed, so the cache holds what the
 * current workload reuses rather than filling up to its bound over time.
 * The factor is 8: a training step's demand alternates between steps (one
 * step's graph is still alive at the next step's peak until a major
 * collection frees it), and at 2 the blocks only every other step needs
 * aged out and came back as page faults.
 *
 * dt_storage_live_bytes counts the bytes requested by live storages only,
 * not the cached or the slack bytes. One mutex guards the lists (storages
 * can be released from data-loader threads); it is uncontended in a step. */
#include "distill.h"
#include "autograd/op.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_size_t live_bytes, peak_live_bytes;

/* ------------------------------------------------------------ size classes */

#define NCLASSES 512
#define SMALL_LIMIT 4096   /* 64-byte classes 1..64 below this */

/* The class of a (64-byte multiple) size, and the size of a class. */
static int size_class(size_t padded)
{
    if (padded <= SMALL_LIMIT)
        return (int)(padded / 64) - 1;                          /* 0..63 */
    /* 2^e < padded <= 2^(e+1), e >= 12; classes 2^e + k 2^(e-3), k = 1..8 */
    int e = 63 - __builtin_clzll((unsigned long long)(padded - 1));
    size_t step = (size_t)1 << (e - 3);
    size_t k = (padded - ((size_t)1 << e) + step - 1) / step;  /* 1..8 */
    int c = 64 + (e - 12) * 8 + (int)k - 1;
    return c < NCLASSES ? c : -1;                               /* -1: not cached */
}

static size_t class_size(int c)
{
    if (c < 64)
        return (size_t)(c + 1) * 64;
    int e = (c - 64) / 8 + 12, k = (c - 64) % 8 + 1;
    return ((size_t)1 << e) + (size_t)k * ((size_t)1 << (e - 3));
}

/* ------------------------------------------------------------------ cache */

/* Hidden header in the 64 bytes before each data block. */
typedef struct block_hdr {
    void *raw;          /* what malloc returned */
    size_t capacity;    /* usable bytes from data on */
    void *next;         /* free-list link (data pointer of the next block) */
    size_t stamp;       /* handed_out when the block entered the cache */
} block_hdr;

#define CACHE_MAX_AGE_FACTOR 8
/* A request whose class has no cached block takes one of the next classes,
 * up to 2x its size (8 classes per doubling, from 4 KiB on). A forward
 * pass frees big early activations and then asks for smaller ones: served
 * from the idle big blocks, the peak RSS drops (docs/performance.md);
 * going up to 4x raised it again. */
#define LARGER_CLASSES 8

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static void *free_list[NCLASSES];
static size_t cached_bytes, cache_limit = (size_t)-1;
static size_t cache_hits, cache_misses;
static size_t handed_out;    /* bytes of cacheable sizes handed out, ever */
static size_t next_sweep;    /* handed_out at which stale blocks are looked for */

static block_hdr *hdr_of(void *data) { return (block_hdr *)data - 1; }

#define DEFAULT_LIMIT ((size_t)512 << 20)

/* The bound: DISTILL_CACHE_MB as read at the first allocation, else
 * grown with the peak of live bytes. */
static size_t limit_bytes(void)
{
    if (cache_limit == (size_t)-1) {
        const char *e = getenv("DISTILL_CACHE_MB");
        long mb = e && *e ? strtol(e, NULL, 10) : -1;
        cache_limit = mb > 0 ? (size_t)mb << 20 : mb == 0 ? 0 : (size_t)-2;
    }
    if (cache_limit != (size_t)-2)
        return cache_limit;
    size_t peak = atomic_load(&peak_live_bytes), grown = peak + peak / 4;   /* + class slack */
    return grown > DEFAULT_LIMIT ? grown : DEFAULT_LIMIT;
}

/* Unlinks the blocks of every list that entered the cache more than
 * max_age bytes of hand-outs ago; returns them as a chain for the caller to
 * free outside the lock. Lists are LIFO, so the stale blocks are a tail. */
static void *unlink_stale(size_t max_age)
{
    void *stale = NULL;
    for (int c = 0; c < NCLASSES; c++) {
        void **link = &free_list[c];
        while (*link && handed_out - hdr_of(*link)->stamp <= max_age)
            link = &hdr_of(*link)->next;
        while (*link) {
            void *d = *link;
            *link = hdr_of(d)->next;
            cached_bytes -= hdr_of(d)->capacity;
            hdr_of(d)->next = stale;
            stale = d;
        }
    }
    return stale;
}

static void free_chain(void *d)
{
    while (d) {
        void *next = hdr_of(d)->next;
        free(hdr_of(d)->raw);
        d = next;
    }
}

/* A block of at least `padded` bytes, 64-byte aligned; NULL when out of memory. */
static void *block_get(size_t padded)
{
    int c = size_class(padded);
    if (c >= 0) {
        size_t limit = limit_bytes(), max_age = CACHE_MAX_AGE_FACTOR * limit;
        void *stale = NULL;
        pthread_mutex_lock(&cache_lock);
        /* the request's class, else a cached block up to LARGER_CLASSES
         * classes bigger (it goes back to its own class when freed) */
        int from = c, last = c < 64 ? c : c + LARGER_CLASSES;
        while (from <= last && from < NCLASSES && !free_list[from])
            from++;
        void *d = from <= last && from < NCLASSES ? free_list[from] : NULL;
        if (d) {
            free_list[from] = hdr_of(d)->next;
            cached_bytes -= hdr_of(d)->capacity;
            cache_hits++;
        } else {
            cache_misses++;
        }
        handed_out += class_size(c);
        if (handed_out >= next_sweep && limit > 0) {
            stale = unlink_stale(max_age);
            next_sweep = handed_out + max_age / 4;
        }
        pthread_mutex_unlock(&cache_lock);
        free_chain(stale);
        if (d)
            return d;
        padded = class_size(c);
    }
    /* 64 bytes of room: the header sits right before the aligned data. */
    void *raw = malloc(padded + 64 + sizeof(block_hdr));
    if (!raw)
        return NULL;
    void *data = (void *)(((uintptr_t)raw + sizeof(block_hdr) + 63) & ~(uintptr_t)63);
    block_hdr *h = hdr_of(data);
    h->raw = raw;
    h->capacity = padded;
    h->next = NULL;
    return data;
}

static void block_put(void *data)
{
    block_hdr *h = hdr_of(data);
    int c = size_class(h->capacity);
    if (c >= 0 && class_size(c) == h->capacity) {
        size_t limit = limit_bytes();
        pthread_mutex_lock(&cache_lock);
        if (cached_bytes + h->capacity <= limit) {
            h->stamp = handed_out;
            h->next = free_list[c];
            free_list[c] = data;
            cached_bytes += h->capacity;
            pthread_mutex_unlock(&cache_lock);
            return;
        }
        pthread_mutex_unlock(&cache_lock);
    }
    free(h->raw);
}

void dt_storage_cache_trim(void)
{
    pthread_mutex_lock(&cache_lock);
    for (int c = 0; c < NCLASSES; c++) {
        free_chain(free_list[c]);
        free_list[c] = NULL;
    }
    cached_bytes = 0;
    pthread_mutex_unlock(&cache_lock);
}

void dt_storage_cache_stats(size_t *cached, size_t *hits, size_t *misses, size_t *limit)
{
    pthread_mutex_lock(&cache_lock);
    *cached = cached_bytes, *hits = cache_hits, *misses = cache_misses;
    *limit = limit_bytes();
    pthread_mutex_unlock(&cache_lock);
}

/* --------------------------------------------------------------- storages */

static dt_status storage_alloc(size_t nbytes, bool zero, dt_storage **out)
{
    *out = NULL;
    dt_storage *s = malloc(sizeof *s);
    if (!s)
        return dt_fail(DT_ERR_NOMEM, "out of memory allocating a storage header");
    /* zero-size tensors still get a valid (non-NULL) pointer. */
    size_t padded = (nbytes + 63) & ~(size_t)63;
    if (padded == 0)
        padded = 64;
    if (padded < nbytes) {
        free(s);
        return dt_fail(DT_ERR_NOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    s->data = block_get(padded);
    if (!s->data) {
        free(s);
        return dt_fail(DT_ERR_NOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    if (zero)
        memset(s->data, 0, padded);
    s->nbytes = nbytes;
    s->refcount = 1;
    s->version = 0;
    size_t now = atomic_fetch_add(&live_bytes, nbytes) + nbytes;
    size_t peak = atomic_load(&peak_live_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_live_bytes, &peak, now)) {
    }
    *out = s;
    return DT_OK;
}

dt_status dt_storage_new(size_t nbytes, dt_storage **out) { return storage_alloc(nbytes, true, out); }

dt_status dt_storage_new_uninit(size_t nbytes, dt_storage **out)
{
    return storage_alloc(nbytes, false, out);
}

void dt_storage_retain(dt_storage *s) { s->refcount++; }

void dt_storage_release(dt_storage *s)
{
    if (!s || --s->refcount > 0)
        return;
    atomic_fetch_sub(&live_bytes, s->nbytes);
    block_put(s->data);
    free(s);
}

size_t dt_storage_live_bytes(void) { return atomic_load(&live_bytes); }

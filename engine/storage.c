/* storage.c - reference-counted, 64-byte aligned buffers. */
#include "distill.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_size_t live_bytes;

dt_status dt_storage_new(size_t nbytes, dt_storage **out)
{
    *out = NULL;
    dt_storage *s = malloc(sizeof *s);
    if (!s)
        return dt_fail(DT_ERR_NOMEM, "out of memory allocating a storage header");
    /* aligned_alloc needs a size that is a multiple of the alignment;
     * zero-size tensors still get a valid (non-NULL) pointer. */
    size_t padded = (nbytes + 63) & ~(size_t)63;
    if (padded == 0)
        padded = 64;
    s->data = aligned_alloc(64, padded);
    if (!s->data) {
        free(s);
        return dt_fail(DT_ERR_NOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    memset(s->data, 0, padded);
    s->nbytes = nbytes;
    s->refcount = 1;
    s->version = 0;
    atomic_fetch_add(&live_bytes, nbytes);
    *out = s;
    return DT_OK;
}

void dt_storage_retain(dt_storage *s) { s->refcount++; }

void dt_storage_release(dt_storage *s)
{
    if (!s || --s->refcount > 0)
        return;
    atomic_fetch_sub(&live_bytes, s->nbytes);
    free(s->data);
    free(s);
}

size_t dt_storage_live_bytes(void) { return atomic_load(&live_bytes); }

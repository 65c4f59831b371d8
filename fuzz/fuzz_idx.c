/* fuzz_idx.c - the IDX reader, plain and gzip. The first input byte picks
 * the mode: bit 0 gzips the rest before the reader sees it (so mutations
 * reach the header and data behind a valid deflate stream; unwrapped
 * inputs cover corrupt gzip streams, as the reader detects gzip by its
 * magic); bit 1 reads an image/label pair (dt_read_idx_pair with 10
 * classes), the rest split at the position given by the next two bytes. */
#include "common.h"
#include "distill.h"

#include <stdlib.h>
#include <zlib.h>

/* data gzipped into a malloc'd buffer (NULL when it does not fit). One
 * deflate stream serves every run: setting one up costs more than the
 * reader under test. */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *out_len)
{
    static z_stream z;
    static int ready;
    if (!ready && deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    ready = 1;
    deflateReset(&z);
    size_t cap = deflateBound(&z, size);
    uint8_t *buf = malloc(cap);
    z.next_in = (uint8_t *)data;
    z.avail_in = (uInt)size;
    z.next_out = buf;
    z.avail_out = (uInt)cap;
    if (!buf || deflate(&z, Z_FINISH) != Z_STREAM_END) {
        free(buf);
        buf = NULL;
    }
    *out_len = z.total_out;
    return buf;
}

static const char *scratch(int slot, const uint8_t *data, size_t size, int wrap)
{
    if (!wrap)
        return fuzz_file(slot, data, size);
    size_t len = 0;
    uint8_t *gz = gzip(data, size, &len);
    const char *path = fuzz_file(slot, gz ? gz : data, gz ? len : size);
    free(gz);
    return path;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20))
        return 0;
    int mode = data[0];
    data++, size--;
    dt_tensor *a = NULL, *b = NULL;
    if (mode & 2) {
        if (size < 2)
            return 0;
        size_t cut = ((size_t)data[0] << 8 | data[1]) % (size - 1);
        data += 2, size -= 2;
        const char *images = scratch(0, data, cut, mode & 1);
        const char *labels = scratch(1, data + cut, size - cut, mode & 1);
        if (dt_read_idx_pair(images, labels, 10, &a, &b) == DT_OK) {
            for (int64_t i = 0; i < b->shape[0]; i++)
                if (dt_i64(b)[i] < 0 || dt_i64(b)[i] >= 10)
                    abort();
        }
    } else if (dt_read_idx(scratch(0, data, size, mode & 1), &a) == DT_OK) {
        if ((size_t)dt_numel(a) > size * 1032 + 64)   /* deflate expands at most ~1032x */
            abort();
    }
    dt_tensor_release(a);
    dt_tensor_release(b);
    return 0;
}

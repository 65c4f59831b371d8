/* data_idx.c - IDX files (MNIST, Fashion-MNIST), plain or gzip.
 *
 * Header: a big-endian magic 0x0000TTNN (TT: data type, 0x08 = unsigned
 * byte; NN: number of dims), NN big-endian 32-bit dims, then the data in
 * row-major order. zlib's gzread reads plain files transparently, so one
 * path serves both; the data size must match the dims exactly. */
#include "distill.h"
#include "core/size.h"
#include "io/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_MAX_DIMS 4
#define IDX_MAX_BYTES ((int64_t)1 << 34)
#define READ_CHUNK (1u << 20)

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read exactly len bytes (in chunks, as gzread takes an unsigned int);
 * *got receives how many arrived. */
static dt_status read_exact(gzFile f, const char *path, uint8_t *dst, int64_t len, int64_t *got)
{
    *got = 0;
    while (*got < len) {
        int64_t want = len - *got < READ_CHUNK ? len - *got : READ_CHUNK;
        int r = gzread(f, dst + *got, (unsigned)want);
        if (r < 0) {
            int errnum;
            const char *msg = gzerror(f, &errnum);
            return dt_fail(DT_ERR_FORMAT, "%s: read error after %lld bytes (%s)", path,
                           (long long)*got, errnum == Z_ERRNO ? strerror(errno) : msg);
        }
        if (r == 0)
            break;
        *got += r;
    }
    return DT_OK;
}

static dt_status read_header(gzFile f, const char *path, bool gz, int *ndim, int64_t *dims,
                             int64_t *total)
{
    uint8_t head[4 + 4 * IDX_MAX_DIMS];
    int64_t got;
    dt_status st = read_exact(f, path, head, 4, &got);
    if (st)
        return st;
    if (got < 4)
        return dt_fail(DT_ERR_FORMAT, "%s: truncated IDX header (%lld bytes%s)", path,
                       (long long)got, gz ? " after gunzip" : "");
    uint32_t magic = be32(head);
    if (head[0] != 0 || head[1] != 0 || head[3] == 0 || head[3] > IDX_MAX_DIMS)
        return dt_fail(DT_ERR_FORMAT, "%s: wrong IDX magic 0x%08x (expected 0x000008NN with "
                       "1 to %d dims, e.g. 0x00000803 for images, 0x00000801 for labels)",
                       path, magic, IDX_MAX_DIMS);
    if (head[2] != 0x08)
        return dt_fail(DT_ERR_FORMAT, "%s: IDX data type 0x%02x is not supported (magic "
                       "0x%08x; only unsigned bytes, type 0x08)", path, head[2], magic);
    *ndim = head[3];
    st = read_exact(f, path, head + 4, 4 * *ndim, &got);
    if (st)
        return st;
    if (got < 4 * *ndim)
        return dt_fail(DT_ERR_FORMAT, "%s: truncated IDX header (%d dims announced, file ends "
                       "after %lld of their %d bytes)", path, *ndim, (long long)got, 4 * *ndim);
    bool big = false;
    *total = 1;
    for (int d = 0; d < *ndim; d++) {
        dims[d] = be32(head + 4 + 4 * d);
        *total = dt_size_mul(*total, dims[d], &big);
    }
    if (big || *total > IDX_MAX_BYTES) {
        char buf[96];
        return dt_fail(DT_ERR_FORMAT, "%s: IDX dims %s are implausibly large (over %lld bytes)",
                       path, dt_shape_str(dims, *ndim, buf, sizeof buf),
                       (long long)IDX_MAX_BYTES);
    }
    return DT_OK;
}

/* A gzip stream's dims are only a claim until its data arrives (a few
 * hundred compressed bytes may announce gigabytes): the buffer grows with
 * what the stream delivers, and the tensor is made once all of it came. */
static dt_status read_gzip_data(gzFile f, const char *path, int ndim, const int64_t *dims,
                                int64_t total, dt_tensor **out, int64_t *got)
{
    uint8_t *buf = NULL;
    int64_t cap = 0, n = 0;
    dt_status st = DT_OK;
    *got = 0;
    while (st == DT_OK && *got < total) {
        if (*got == cap) {
            cap = cap < (1 << 16) ? (1 << 16) : 2 * cap;
            cap = cap < total ? cap : total;
            uint8_t *p = realloc(buf, (size_t)cap);
            if (!p) {
                st = dt_fail(DT_ERR_NOMEM, "%s: out of memory after %lld bytes", path,
                             (long long)*got);
                break;
            }
            buf = p;
        }
        st = read_exact(f, path, buf + *got, cap - *got, &n);
        *got += n;
        if (n < cap - (*got - n))
            break;   /* the stream ended */
    }
    if (st == DT_OK && *got == total && (st = dt_empty(DT_UINT8, ndim, dims, out)) == DT_OK &&
        total > 0)
        memcpy(dt_u8(*out), buf, (size_t)total);
    free(buf);
    return st;
}

dt_status dt_read_idx(const char *path, dt_tensor **out)
{
    *out = NULL;
    int fd;
    uint64_t size;
    dt_status st = dt_file_open_regular_fd(path, &fd, &size);
    if (st)
        return st;
    gzFile f = gzdopen(fd, "rb");
    if (!f) {
        close(fd);
        return dt_fail(DT_ERR_NOMEM, "%s: cannot start reading (out of memory)", path);
    }
    /* large reads for the real files, but not 384 KiB of buffers for a small one */
    gzbuffer(f, size < (1u << 17) ? 8192u : 1u << 17);
    bool gz = !gzdirect(f);   /* zlib passes plain files through */
    int ndim = 0;
    int64_t dims[IDX_MAX_DIMS], total = 0, got = 0;
    st = read_header(f, path, gz, &ndim, dims, &total);
    if (st == DT_OK && !gz && (uint64_t)total > size - (uint64_t)(4 + 4 * ndim))
        got = (int64_t)(size - (uint64_t)(4 + 4 * ndim));   /* truncated: no need to read */
    else if (st == DT_OK && !gz && (st = dt_empty(DT_UINT8, ndim, dims, out)) == DT_OK)
        st = read_exact(f, path, dt_u8(*out), total, &got);
    else if (st == DT_OK)
        st = read_gzip_data(f, path, ndim, dims, total, out, &got);
    if (st == DT_OK && got < total) {
        char buf[96];
        st = dt_fail(DT_ERR_FORMAT, "%s: truncated: dims %s need %lld data bytes, the file%s "
                     "has %lld", path, dt_shape_str(dims, ndim, buf, sizeof buf),
                     (long long)total, gz ? " (after gunzip)" : "", (long long)got);
    }
    if (st == DT_OK) {
        uint8_t extra[64];
        int64_t more = 0;
        st = read_exact(f, path, extra, sizeof extra, &more);
        if (st == DT_OK && more > 0) {
            char buf[96];
            st = dt_fail(DT_ERR_FORMAT, "%s: dims %s need %lld data bytes but the file%s has "
                         "more (oversized, or dims inconsistent with the file size)", path,
                         dt_shape_str(dims, ndim, buf, sizeof buf), (long long)total,
                         gz ? " (after gunzip)" : "");
        }
    }
    gzclose(f);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

dt_status dt_read_idx_pair(const char *images_path, const char *labels_path,
                           int64_t num_classes, dt_tensor **images, dt_tensor **labels)
{
    *images = *labels = NULL;
    dt_tensor *img = NULL, *lab = NULL;
    dt_status st = dt_read_idx(images_path, &img);
    if (st == DT_OK && img->ndim != 3)
        st = dt_fail(DT_ERR_FORMAT, "%s: expected an IDX image file (magic 0x00000803, "
                     "N x H x W), got %d dims", images_path, img->ndim);
    if (st == DT_OK)
        st = dt_read_idx(labels_path, &lab);
    if (st == DT_OK && lab->ndim != 1)
        st = dt_fail(DT_ERR_FORMAT, "%s: expected an IDX label file (magic 0x00000801, N), "
                     "got %d dims", labels_path, lab->ndim);
    if (st == DT_OK && lab->shape[0] != img->shape[0])
        st = dt_fail(DT_ERR_FORMAT, "%s has %lld labels but %s has %lld images", labels_path,
                     (long long)lab->shape[0], images_path, (long long)img->shape[0]);
    for (int64_t i = 0; st == DT_OK && num_classes > 0 && i < lab->shape[0]; i++)
        if (dt_u8(lab)[i] >= num_classes)
            st = dt_fail(DT_ERR_FORMAT, "%s: label %d of item %lld is out of range for %lld "
                         "classes (labels are stored 0..%lld)", labels_path, dt_u8(lab)[i],
                         (long long)i + 1, (long long)num_classes, (long long)num_classes - 1);
    if (st == DT_OK) {
        int64_t shape[4] = {img->shape[0], 1, img->shape[1], img->shape[2]};
        st = dt_view(img, 4, shape, images);
    }
    if (st == DT_OK)
        st = dt_empty(DT_INT64, 1, lab->shape, labels);
    if (st == DT_OK) {
        const uint8_t *src = dt_u8(lab);
        int64_t *dst = dt_i64(*labels);
        for (int64_t i = 0; i < lab->shape[0]; i++)
            dst[i] = src[i];
    }
    dt_tensor_release(img);
    dt_tensor_release(lab);
    if (st) {
        dt_tensor_release(*images);
        *images = NULL;
    }
    return st;
}

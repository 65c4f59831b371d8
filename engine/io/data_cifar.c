/* data_cifar.c - the CIFAR-10 / CIFAR-100 binary format.
 *
 * A file is a sequence of records: `label_bytes` label bytes (CIFAR-10: the
 * class; CIFAR-100: coarse then fine class) followed by 3072 pixel bytes,
 * the R, G and B planes of a 32 x 32 image, row-major. */
#include "distill.h"
#include "file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS_PER_READ 1024

/* Number of records in path, after checking its size. */
static dt_status count_records(const char *path, size_t record, int64_t *n)
{
    FILE *f;
    uint64_t fsize;
    dt_status st = dt_file_open_regular(path, &f, &fsize);
    if (st)
        return st;
    fclose(f);
    size_t size = (size_t)fsize;
    if (size == 0)
        return dt_fail(DT_ERR_FORMAT, "%s: empty file (expected records of %zu bytes)", path,
                       record);
    if (size % record != 0)
        return dt_fail(DT_ERR_FORMAT, "%s: size %zu bytes is not a multiple of the %zu-byte "
                       "CIFAR record (truncated or not a CIFAR%s file?)", path, size, record,
                       record == 1 + DT_CIFAR_PIXELS ? "-10" : "-100");
    *n = (int64_t)(size / record);
    return DT_OK;
}

static dt_status check_label(const char *path, int64_t rec, int which, int label_bytes, int v)
{
    int limit = label_bytes == 1 ? 10 : which == 0 ? 20 : 100;
    if (v >= limit)
        return dt_fail(DT_ERR_FORMAT, "%s: record %lld has %slabel %d (expected 0..%d)", path,
                       (long long)rec + 1,
                       label_bytes == 1 ? "" : which == 0 ? "coarse " : "fine ", v, limit - 1);
    return DT_OK;
}

/* Read `n` records of path into img/lab. */
static dt_status read_file(const char *path, int64_t n, int label_bytes, int label_pick,
                           uint8_t *img, int64_t *lab, uint8_t *buf)
{
    size_t record = (size_t)label_bytes + DT_CIFAR_PIXELS;
    FILE *f;
    uint64_t size;
    dt_status st = dt_file_open_regular(path, &f, &size);
    if (st)
        return st;
    for (int64_t done = 0; done < n && st == DT_OK;) {
        int64_t k = n - done < RECORDS_PER_READ ? n - done : RECORDS_PER_READ;
        if (fread(buf, record, (size_t)k, f) != (size_t)k) {
            st = dt_fail(DT_ERR_IO, "%s: read failed after %lld records (file changed?)", path,
                         (long long)done);
            break;
        }
        for (int64_t r = 0; r < k && st == DT_OK; r++) {
            const uint8_t *rec = buf + (size_t)r * record;
            for (int b = 0; b < label_bytes && st == DT_OK; b++)
                st = check_label(path, done + r, b, label_bytes, rec[b]);
            lab[done + r] = rec[label_pick];
            memcpy(img + (size_t)(done + r) * DT_CIFAR_PIXELS, rec + label_bytes,
                   DT_CIFAR_PIXELS);
        }
        done += k;
    }
    fclose(f);
    return st;
}

dt_status dt_read_cifar(int npaths, const char *const *paths, int label_bytes, int label_pick,
                        dt_tensor **images, dt_tensor **labels)
{
    *images = NULL;
    *labels = NULL;
    if (label_bytes != 1 && label_bytes != 2)
        return dt_fail(DT_ERR_ARG, "CIFAR records have 1 or 2 label bytes, got %d", label_bytes);
    if (label_pick < 0 || label_pick >= label_bytes)
        return dt_fail(DT_ERR_ARG, "label byte %d out of range", label_pick);
    if (npaths <= 0)
        return dt_fail(DT_ERR_ARG, "no CIFAR files given");
    size_t record = (size_t)label_bytes + DT_CIFAR_PIXELS;
    int64_t total = 0;
    int64_t *counts = malloc((size_t)npaths * sizeof *counts);
    if (!counts)
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    dt_status st = DT_OK;
    for (int i = 0; i < npaths && st == DT_OK; i++) {
        st = count_records(paths[i], record, &counts[i]);
        total += st == DT_OK ? counts[i] : 0;
    }
    uint8_t *buf = NULL;
    if (st == DT_OK) {
        int64_t ishape[4] = {total, 3, 32, 32};
        st = dt_empty(DT_UINT8, 4, ishape, images);
    }
    if (st == DT_OK)
        st = dt_empty(DT_INT64, 1, &total, labels);
    if (st == DT_OK && !(buf = malloc(record * RECORDS_PER_READ)))
        st = dt_fail(DT_ERR_NOMEM, "out of memory");
    int64_t at = 0;
    for (int i = 0; i < npaths && st == DT_OK; i++) {
        st = read_file(paths[i], counts[i], label_bytes, label_pick,
                       dt_u8(*images) + (size_t)at * DT_CIFAR_PIXELS, dt_i64(*labels) + at, buf);
        at += counts[i];
    }
    free(buf);
    free(counts);
    if (st) {
        dt_tensor_release(*images);
        dt_tensor_release(*labels);
        *images = *labels = NULL;
    }
    return st;
}

/* data_cifar_python.c - CIFAR-10 / CIFAR-100 in their "python version"
 * (torchvision's cifar-10-batches-py and cifar-100-python folders).
 *
 * Each batch file is a pickled dict (pickle.h reads it without running
 * anything): b'data' is a NumPy uint8 array of N x 3072 (the R, G and B
 * planes of a 32 x 32 image, row-major, as in the binary version) and the
 * labels are a list of N ints under b'labels' (CIFAR-10: 10 classes) or
 * b'fine_labels' (100) and b'coarse_labels' (20) (CIFAR-100). The other
 * keys (batch_label, filenames) are ignored. */
#include "distill.h"
#include "file.h"
#include "pickle.h"

#include <stdlib.h>
#include <string.h>

/* The published files are 31 MB (CIFAR-10) and 155 MB (CIFAR-100 train). */
#define MAX_BATCH_BYTES ((size_t)1 << 30)

static int64_t classes_of(const char *label_key)
{
    return strcmp(label_key, "labels") == 0          ? 10
           : strcmp(label_key, "fine_labels") == 0   ? 100
           : strcmp(label_key, "coarse_labels") == 0 ? 20
                                                      : 0;
}

dt_status dt_decode_cifar_python(const uint8_t *buf, size_t len, const char *name,
                                 const char *label_key, dt_tensor **images, dt_tensor **labels)
{
    *images = *labels = NULL;
    int64_t classes = classes_of(label_key);
    if (classes == 0)
        return dt_fail(DT_ERR_ARG, "CIFAR label key must be \"labels\", \"fine_labels\" or "
                       "\"coarse_labels\", got \"%s\"", label_key);
    dt_pickle pk;
    dt_status st = dt_pickle_read(buf, len, name, &pk);
    if (st)
        return st;
    const dt_pk_obj *data = dt_pk_dict_get(pk.root, "data");
    const dt_pk_obj *lab = dt_pk_dict_get(pk.root, label_key);
    if (!pk.root || pk.root->kind != DT_PK_DICT)
        st = dt_fail(DT_ERR_FORMAT, "%s: not a pickled CIFAR batch: the pickle is not a dict",
                     name);
    else if (!data)
        st = dt_fail(DT_ERR_FORMAT, "%s: not a pickled CIFAR batch: no 'data' entry", name);
    else if (!lab)
        st = dt_fail(DT_ERR_FORMAT, "%s: no '%s' entry (a CIFAR-%s batch?)", name, label_key,
                     classes == 10 ? "100" : "10");
    else if (!dt_pk_array_is(data, "u1") || data->ndim != 2 ||
             data->shape[1] != DT_CIFAR_PIXELS || data->fortran)
        st = dt_fail(DT_ERR_FORMAT, "%s: 'data' is not a C-ordered uint8 array of N x %d",
                     name, DT_CIFAR_PIXELS);
    else if (lab->kind != DT_PK_LIST || (int64_t)lab->n != data->shape[0])
        st = dt_fail(DT_ERR_FORMAT, "%s: '%s' is not a list of %lld labels (one per image)",
                     name, label_key, (long long)data->shape[0]);
    for (size_t k = 0; st == DT_OK && k < lab->n; k++) {
        const dt_pk_obj *v = lab->items[k];
        if (v->kind != DT_PK_INT || v->i < 0 || v->i >= classes)
            st = dt_fail(DT_ERR_FORMAT, "%s: label %zu is %s (expected 0..%lld)", name, k + 1,
                         v->kind == DT_PK_INT ? "out of range" : "not an integer",
                         (long long)classes - 1);
    }
    int64_t n = st == DT_OK ? data->shape[0] : 0;
    int64_t ishape[4] = {n, 3, 32, 32};
    if (st == DT_OK)
        st = dt_empty(DT_UINT8, 4, ishape, images);
    if (st == DT_OK)
        st = dt_empty(DT_INT64, 1, &n, labels);
    if (st == DT_OK) {
        memcpy(dt_u8(*images), data->s, data->len);
        for (int64_t k = 0; k < n; k++)
            dt_i64(*labels)[k] = lab->items[k]->i;
    }
    dt_pickle_free(&pk);
    if (st) {
        dt_tensor_release(*images);
        dt_tensor_release(*labels);
        *images = *labels = NULL;
    }
    return st;
}

dt_status dt_read_cifar_python(int npaths, const char *const *paths, const char *label_key,
                               dt_tensor **images, dt_tensor **labels)
{
    *images = *labels = NULL;
    if (npaths <= 0)
        return dt_fail(DT_ERR_ARG, "no CIFAR files given");
    dt_tensor **parts = calloc((size_t)npaths * 2, sizeof *parts);
    if (!parts)
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    dt_status st = DT_OK;
    for (int i = 0; i < npaths && st == DT_OK; i++) {
        uint8_t *buf;
        size_t len;
        st = dt_read_file(paths[i], MAX_BATCH_BYTES, &buf, &len);
        if (st == DT_OK) {
            st = dt_decode_cifar_python(buf, len, paths[i], label_key, &parts[i],
                                        &parts[npaths + i]);
            free(buf);
        }
    }
    if (st == DT_OK)
        st = dt_cat(npaths, (const dt_tensor *const *)parts, 0, images);
    if (st == DT_OK)
        st = dt_cat(npaths, (const dt_tensor *const *)parts + npaths, 0, labels);
    for (int i = 0; i < 2 * npaths; i++)
        dt_tensor_release(parts[i]);
    free(parts);
    if (st) {
        dt_tensor_release(*images);
        *images = NULL;
    }
    return st;
}

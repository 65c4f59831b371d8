/* safetensors.c - reading and writing safetensors files.
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of JSON,
 * then the data region. The JSON maps each tensor name to
 * {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} (offsets
 * relative to the data region) and may hold "__metadata__", an object of
 * strings.
 *
 * Loading is three steps: read and parse the header (json.h), validate all
 * of it (every entry, no name twice, no overlap, everything inside the
 * file), and only then read the data. Saving builds the header, then
 * writes header and data through an atomic file (file.h). */
#include "distill.h"
#include "file.h"
#include "json.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADER (100u * 1024u * 1024u)

/* ================================================================ dtypes */

typedef struct file_dtype {
    const char *name;
    size_t size;
    dt_dtype to;
} file_dtype;

static const file_dtype file_dtypes[] = {
    {"F32", 4, DT_FLOAT32}, {"I64", 8, DT_INT64}, {"U8", 1, DT_UINT8},
    {"F64", 8, DT_FLOAT32}, {"F16", 2, DT_FLOAT32}, {"BF16", 2, DT_FLOAT32},
    {"I32", 4, DT_INT64}, {"I16", 2, DT_INT64}, {"I8", 1, DT_INT64},
    {"U16", 2, DT_INT64}, {"U32", 4, DT_INT64}, {"BOOL", 1, DT_UINT8},
};
#define N_FILE_DTYPES ((int)(sizeof file_dtypes / sizeof file_dtypes[0]))

static const char *file_dtype_name(dt_dtype d)
{
    switch (d) {
    case DT_FLOAT32: return "F32";
    case DT_INT64: return "I64";
    case DT_UINT8: return "U8";
    }
    return "?";
}

static bool little_endian(void)
{
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static uint64_t rd_le(const unsigned char *b, int n)
{
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--)
        v = (v << 8) | b[k];
    return v;
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (ex == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);
    } else if (ex == 0) {
        if (man == 0) {
            bits = sign;
        } else {   /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else {
        bits = sign | ((ex + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Convert n elements of file dtype `fd` in `src` into tensor data `dst`. */
static void convert(const file_dtype *fd, const unsigned char *src, void *dst, int64_t n)
{
    const char *nm = fd->name;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *b = src + (size_t)i * fd->size;
        if (!strcmp(nm, "F64")) {
            uint64_t u = rd_le(b, 8);
            double d;
            memcpy(&d, &u, 8);
            ((float *)dst)[i] = (float)d;
        } else if (!strcmp(nm, "F16")) {
            ((float *)dst)[i] = half_to_float((uint16_t)rd_le(b, 2));
        } else if (!strcmp(nm, "BF16")) {
            uint32_t u = (uint32_t)rd_le(b, 2) << 16;
            memcpy(&((float *)dst)[i], &u, 4);
        } else if (!strcmp(nm, "I32")) {
            ((int64_t *)dst)[i] = (int32_t)(uint32_t)rd_le(b, 4);
        } else if (!strcmp(nm, "I16")) {
            ((int64_t *)dst)[i] = (int16_t)(uint16_t)rd_le(b, 2);
        } else if (!strcmp(nm, "I8")) {
            ((int64_t *)dst)[i] = (int8_t)b[0];
        } else if (!strcmp(nm, "U16") || !strcmp(nm, "U32")) {
            ((int64_t *)dst)[i] = (int64_t)rd_le(b, (int)fd->size);
        } else if (!strcmp(nm, "BOOL")) {
            ((uint8_t *)dst)[i] = b[0] != 0;
        }
    }
}

/* ================================================================ loading */

typedef struct entry {
    const char *name;
    const file_dtype *fd;
    int ndim;
    int64_t shape[DT_MAX_DIMS];
    uint64_t begin, end;
} entry;

static int cmp_entry_begin(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

void dt_safetensors_free(dt_safetensors *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->ntensors; i++) {
        free(st->names[i]);
        dt_tensor_release(st->tensors[i]);
    }
    for (int i = 0; i < st->nmeta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->names);
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st);
}

/* Check one tensor description; msg receives the reason on failure. */
static bool check_entry(const char *name, const dt_json *v, entry *e, char *msg, size_t msglen)
{
    e->name = name;
    if (v->type != DT_JSON_OBJ) {
        snprintf(msg, msglen, "tensor '%s': expected an object with dtype, shape and "
                 "data_offsets", name);
        return false;
    }
    const dt_json *dt = dt_json_get(v, "dtype"), *sh = dt_json_get(v, "shape"), *off = dt_json_get(v, "data_offsets");
    if (!dt || !sh || !off) {
        snprintf(msg, msglen, "tensor '%s': missing '%s'", name,
                 !dt ? "dtype" : !sh ? "shape" : "data_offsets");
        return false;
    }
    if (dt->type != DT_JSON_STR) {
        snprintf(msg, msglen, "tensor '%s': dtype must be a string", name);
        return false;
    }
    e->fd = NULL;
    for (int k = 0; k < N_FILE_DTYPES; k++)
        if (!strcmp(dt->s, file_dtypes[k].name))
            e->fd = &file_dtypes[k];
    if (!e->fd) {
        snprintf(msg, msglen, "tensor '%s': unsupported dtype \"%.32s\" (supported: F32, I64, U8, "
                 "and F64/F16/BF16 -> float32, I32/I16/I8/U16/U32 -> int64, BOOL -> uint8)",
                 name, dt->s);
        return false;
    }
    if (sh->type != DT_JSON_ARR) {
        snprintf(msg, msglen, "tensor '%s': shape must be an array of integers", name);
        return false;
    }
    if (sh->n > DT_MAX_DIMS) {
        snprintf(msg, msglen, "tensor '%s': %d dims; at most %d are supported", name, sh->n,
                 DT_MAX_DIMS);
        return false;
    }
    e->ndim = sh->n;
    uint64_t numel = 1;
    bool huge = false;
    for (int d = 0; d < sh->n; d++) {
        if (sh->items[d].type != DT_JSON_INT || sh->items[d].i < 0) {
            snprintf(msg, msglen, "tensor '%s': shape entries must be non-negative integers",
                     name);
            return false;
        }
        e->shape[d] = sh->items[d].i;
        uint64_t s = (uint64_t)sh->items[d].i;
        if (s && numel > (UINT64_MAX / 16) / s)
            huge = true;
        else
            numel *= s;
    }
    if (off->type != DT_JSON_ARR || off->n != 2 || off->items[0].type != DT_JSON_INT ||
        off->items[1].type != DT_JSON_INT || off->items[0].i < 0 || off->items[1].i < 0) {
        snprintf(msg, msglen, "tensor '%s': data_offsets must be two non-negative integers "
                 "[begin, end]", name);
        return false;
    }
    e->begin = (uint64_t)off->items[0].i;
    e->end = (uint64_t)off->items[1].i;
    if (e->end < e->begin) {
        snprintf(msg, msglen, "tensor '%s': data_offsets [%llu, %llu] end before they begin",
                 name, (unsigned long long)e->begin, (unsigned long long)e->end);
        return false;
    }
    uint64_t nbytes = numel * e->fd->size;
    if (huge || nbytes != e->end - e->begin) {
        char dt_strbuf[160];
        dt_shape_str(e->shape, e->ndim, dt_strbuf, sizeof dt_strbuf);
        snprintf(msg, msglen, "tensor '%s': shape %s of %s needs %llu bytes but data_offsets "
                 "[%llu, %llu] hold %llu", name, dt_strbuf, e->fd->name,
                 huge ? 0ULL : (unsigned long long)nbytes, (unsigned long long)e->begin,
                 (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
        return false;
    }
    return true;
}

/* A load in progress: what each step leaves for the next, released by
 * load_end. */
typedef struct load_state {
    const char *path;
    FILE *f;
    uint64_t fsize, data_start;
    dt_json root;
    const dt_json *meta;     /* __metadata__ or NULL */
    entry *entries;          /* sorted by data offset after validate_header */
    int nentries;
    dt_safetensors *st;
    char msg[512];
} load_state;

static dt_status load_fail(load_state *ls, dt_status code, const char *msg)
{
    return dt_fail(code, "%s: %s", ls->path, msg);
}

static void load_end(load_state *ls)
{
    if (ls->f)
        fclose(ls->f);
    dt_json_free(&ls->root);
    free(ls->entries);
    dt_safetensors_free(ls->st);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Step 1: the length prefix and the JSON header. */
static dt_status read_header(load_state *ls)
{
    dt_status st = dt_file_open_regular(ls->path, &ls->f, &ls->fsize);
    if (st)
        return st;
    unsigned char lenbuf[8];
    if (ls->fsize < 8) {
        snprintf(ls->msg, sizeof ls->msg, "truncated: the file has %llu bytes, fewer than the 8 "
                 "of the header length%s", (unsigned long long)ls->fsize,
                 ls->fsize == 0 ? " (empty file)" : "");
        return load_fail(ls, DT_ERR_FORMAT, ls->msg);
    }
    if (fread(lenbuf, 1, 8, ls->f) != 8)
        return load_fail(ls, DT_ERR_IO, "read error");
    uint64_t hlen = rd_le(lenbuf, 8);
    if (hlen > ls->fsize - 8) {
        snprintf(ls->msg, sizeof ls->msg, "truncated: header says %llu bytes but the file has "
                 "%llu", (unsigned long long)hlen, (unsigned long long)ls->fsize);
        return load_fail(ls, DT_ERR_FORMAT, ls->msg);
    }
    if (hlen > MAX_HEADER || hlen < 2) {
        snprintf(ls->msg, sizeof ls->msg, "header length %llu is not plausible (2 bytes to %u "
                 "MB); not a safetensors file?", (unsigned long long)hlen, MAX_HEADER >> 20);
        return load_fail(ls, DT_ERR_FORMAT, ls->msg);
    }
    char *hdr = malloc(hlen);
    if (!hdr)
        return load_fail(ls, DT_ERR_NOMEM, "out of memory for the header");
    if (fread(hdr, 1, hlen, ls->f) != hlen) {
        free(hdr);
        return load_fail(ls, DT_ERR_IO, "read error in the header");
    }
    ls->data_start = 8 + hlen;
    char err[200];
    bool ok = dt_json_parse(hdr, hlen, &ls->root, err, sizeof err);
    free(hdr);
    if (!ok) {
        snprintf(ls->msg, sizeof ls->msg, "malformed JSON header: %s of the header", err);
        return load_fail(ls, DT_ERR_FORMAT, ls->msg);
    }
    if (ls->root.type != DT_JSON_OBJ)
        return load_fail(ls, DT_ERR_FORMAT, "the header must be a JSON object");
    return DT_OK;
}

/* Step 2: every entry, the metadata, names, overlaps and the file's size,
 * before any data is read. */
static dt_status validate_header(load_state *ls)
{
    const dt_json *root = &ls->root;
    ls->entries = calloc((size_t)root->n + 1, sizeof *ls->entries);
    ls->st = calloc(1, sizeof *ls->st);
    if (!ls->entries || !ls->st)
        return load_fail(ls, DT_ERR_NOMEM, "out of memory");
    bool oom;
    const char *twice = dt_json_duplicate_key(root, &oom);
    if (oom)
        return load_fail(ls, DT_ERR_NOMEM, "out of memory");
    if (twice) {
        snprintf(ls->msg, sizeof ls->msg, "the header names '%.200s' twice", twice);
        return load_fail(ls, DT_ERR_FORMAT, ls->msg);
    }
    for (int k = 0; k < root->n; k++) {
        if (strlen(root->keys[k]) != root->keylens[k])
            return load_fail(ls, DT_ERR_FORMAT, "a tensor name contains a NUL character");
        if (!strcmp(root->keys[k], "__metadata__")) {
            ls->meta = &root->items[k];
            continue;
        }
        if (!check_entry(root->keys[k], &root->items[k], &ls->entries[ls->nentries], ls->msg,
                         sizeof ls->msg))
            return load_fail(ls, DT_ERR_FORMAT, ls->msg);
        ls->nentries++;
    }
    const dt_json *meta = ls->meta;
    if (meta) {
        if (meta->type != DT_JSON_OBJ)
            return load_fail(ls, DT_ERR_FORMAT, "__metadata__ must be an object of strings");
        for (int k = 0; k < meta->n; k++)
            if (meta->items[k].type != DT_JSON_STR || strlen(meta->keys[k]) != meta->keylens[k] ||
                strlen(meta->items[k].s) != meta->items[k].slen) {
                snprintf(ls->msg, sizeof ls->msg, "__metadata__ entry '%.200s' must be a string "
                         "(without NUL characters)", meta->keys[k]);
                return load_fail(ls, DT_ERR_FORMAT, ls->msg);
            }
    }
    int ne = ls->nentries;
    entry *entries = ls->entries;
    qsort(entries, (size_t)ne, sizeof *entries, cmp_entry_begin);
    uint64_t max_end = 0, data_size = ls->fsize - ls->data_start;
    const entry *last = NULL, *far = NULL;
    for (int k = 0; k < ne; k++) {
        const entry *e = &entries[k];
        if (e->end >= max_end)
            max_end = e->end, far = e;
        if (e->begin == e->end)
            continue;   /* empty ranges overlap nothing */
        if (last && e->begin < last->end) {
            snprintf(ls->msg, sizeof ls->msg, "tensors '%.150s' [%llu, %llu] and '%.150s' "
                     "[%llu, %llu] overlap in the data region", last->name,
                     (unsigned long long)last->begin, (unsigned long long)last->end, e->name,
                     (unsigned long long)e->begin, (unsigned long long)e->end);
            return load_fail(ls, DT_ERR_FORMAT, ls->msg);
        }
        last = e;
    }
    if (max_end > data_size) {
        snprintf(ls->msg, sizeof ls->msg, "truncated: tensor '%.200s' ends at byte %llu of the "
                 "data but the file has %llu data bytes (header says %llu bytes of data, file "
                 "has %llu bytes in all)", far->name, (unsigned long long)max_end,
                 (unsigned long long)data_size, (unsigned long long)(ls->data_start + max_end),
                 (unsigned long long)ls->fsize);
        return load_fail(ls, DT_ERR_FORMAT, ls->msg);
    }
    return DT_OK;
}

/* Step 3: the metadata strings and the tensors, in data order. */
static dt_status read_data(load_state *ls)
{
    dt_safetensors *st = ls->st;
    const dt_json *meta = ls->meta;
    int ne = ls->nentries;
    st->names = calloc((size_t)ne + 1, sizeof *st->names);
    st->tensors = calloc((size_t)ne + 1, sizeof *st->tensors);
    if (meta && meta->n) {
        st->meta_keys = calloc((size_t)meta->n, sizeof *st->meta_keys);
        st->meta_values = calloc((size_t)meta->n, sizeof *st->meta_values);
    }
    if (!st->names || !st->tensors || (meta && meta->n && (!st->meta_keys || !st->meta_values)))
        return load_fail(ls, DT_ERR_NOMEM, "out of memory");
    for (int k = 0; meta && k < meta->n; k++) {
        st->meta_keys[k] = dup_str(meta->keys[k]);
        st->meta_values[k] = dup_str(meta->items[k].s);
        st->nmeta++;
        if (!st->meta_keys[k] || !st->meta_values[k])
            return load_fail(ls, DT_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < ne; k++) {
        const entry *e = &ls->entries[k];
        dt_tensor *t;
        if (dt_zeros(e->fd->to, e->ndim, e->shape, &t)) {
            snprintf(ls->msg, sizeof ls->msg, "tensor '%.200s': %s", e->name, dt_last_error());
            return load_fail(ls, DT_ERR_NOMEM, ls->msg);
        }
        st->names[k] = dup_str(e->name);
        st->tensors[k] = t;
        st->ntensors++;
        if (!st->names[k])
            return load_fail(ls, DT_ERR_NOMEM, "out of memory");
        uint64_t nbytes = e->end - e->begin;
        if (!nbytes)
            continue;
        bool native = !strcmp(e->fd->name, file_dtype_name(e->fd->to));
        unsigned char *buf = native ? dt_data(t) : malloc(nbytes);
        if (!buf)
            return load_fail(ls, DT_ERR_NOMEM, "out of memory");
        if (fseeko(ls->f, (off_t)(ls->data_start + e->begin), SEEK_SET) != 0 ||
            fread(buf, 1, nbytes, ls->f) != nbytes) {
            if (!native)
                free(buf);
            snprintf(ls->msg, sizeof ls->msg, "read error in tensor '%.200s'", e->name);
            return load_fail(ls, DT_ERR_IO, ls->msg);
        }
        if (!native) {
            convert(e->fd, buf, dt_data(t), dt_numel(t));
            free(buf);
        }
    }
    return DT_OK;
}

dt_status dt_safetensors_load(const char *path, dt_safetensors **out)
{
    *out = NULL;
    if (!little_endian())
        return dt_fail(DT_ERR_STATE, "%s: safetensors loading needs a little-endian machine", path);
    load_state ls = {.path = path};
    dt_status st = read_header(&ls);
    if (st == DT_OK)
        st = validate_header(&ls);
    if (st == DT_OK)
        st = read_data(&ls);
    if (st == DT_OK) {
        *out = ls.st;
        ls.st = NULL;
    }
    load_end(&ls);
    return st;
}

/* ================================================================ saving */

typedef struct order_item {
    const char *name;
    size_t elsize;
    int index;
} order_item;

/* As Python's safetensors: larger elements first (keeps data aligned), then
 * by name. */
static int cmp_order(const void *a, const void *b)
{
    const order_item *x = a, *y = b;
    if (x->elsize != y->elsize)
        return x->elsize > y->elsize ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the arguments of a save; the order to write the tensors in. */
static dt_status check_save(const char *path, int ntensors, const char *const *names,
                            const dt_tensor *const *tensors, int nmeta,
                            const char *const *meta_keys, const char *const *meta_values,
                            order_item **order_out)
{
    *order_out = NULL;
    if (ntensors < 0 || nmeta < 0)
        return dt_fail(DT_ERR_ARG, "%s: negative counts", path);
    for (int i = 0; i < ntensors; i++) {
        if (!names[i] || !names[i][0])
            return dt_fail(DT_ERR_ARG, "%s: tensor names must be non-empty strings", path);
        if (!strcmp(names[i], "__metadata__"))
            return dt_fail(DT_ERR_ARG, "%s: '__metadata__' cannot name a tensor", path);
        if (!tensors[i])
            return dt_fail(DT_ERR_ARG, "%s: tensor '%s' is missing", path, names[i]);
    }
    for (int i = 0; i < nmeta; i++)
        if (!meta_keys[i] || !meta_values[i])
            return dt_fail(DT_ERR_ARG, "%s: metadata keys and values must be strings", path);
    order_item *order = calloc((size_t)ntensors + 1, sizeof *order);
    if (!order)
        return dt_fail(DT_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < ntensors; i++)
        order[i] = (order_item){names[i], dt_dtype_size(tensors[i]->dtype), i};
    qsort(order, (size_t)ntensors, sizeof *order, cmp_order);
    /* equal names sort next to each other (same element size, then name)
     * only within one element size: compare by name alone */
    const char **sorted = malloc(((size_t)ntensors + 1) * sizeof *sorted);
    if (!sorted) {
        free(order);
        return dt_fail(DT_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < ntensors; i++)
        sorted[i] = names[i];
    qsort(sorted, (size_t)ntensors, sizeof *sorted, cmp_names);
    for (int i = 1; i < ntensors; i++)
        if (!strcmp(sorted[i - 1], sorted[i])) {
            dt_status r = dt_fail(DT_ERR_ARG, "%s: tensor name '%s' is used twice", path,
                                  sorted[i]);
            free(sorted);
            free(order);
            return r;
        }
    free(sorted);
    *order_out = order;
    return DT_OK;
}

/* The JSON header in write order, padded with spaces to a multiple of 8
 * bytes (so the data that follows stays aligned). */
static void build_header(dt_strbuf *hdr, int ntensors, const dt_tensor *const *tensors,
                         const order_item *order, int nmeta, const char *const *meta_keys,
                         const char *const *meta_values)
{
    dt_strbuf_str(hdr, "{");
    bool first = true;
    if (nmeta > 0) {
        dt_strbuf_str(hdr, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i)
                dt_strbuf_str(hdr, ",");
            dt_strbuf_json_string(hdr, meta_keys[i]);
            dt_strbuf_str(hdr, ":");
            dt_strbuf_json_string(hdr, meta_values[i]);
        }
        dt_strbuf_str(hdr, "}");
        first = false;
    }
    uint64_t offset = 0;
    for (int k = 0; k < ntensors; k++) {
        const dt_tensor *t = tensors[order[k].index];
        char num[64];
        if (!first)
            dt_strbuf_str(hdr, ",");
        first = false;
        dt_strbuf_json_string(hdr, order[k].name);
        dt_strbuf_str(hdr, ":{\"dtype\":\"");
        dt_strbuf_str(hdr, file_dtype_name(t->dtype));
        dt_strbuf_str(hdr, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            dt_strbuf_str(hdr, num);
        }
        uint64_t nb = dt_nbytes(t);
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + nb));
        dt_strbuf_str(hdr, num);
        offset += nb;
    }
    dt_strbuf_str(hdr, "}");
    while (hdr->len % 8)
        dt_strbuf_str(hdr, " ");
}

/* The length prefix, the header and every tensor's bytes, in order. */
static dt_status write_file(dt_atomic_file *af, const dt_strbuf *hdr, int ntensors,
                            const dt_tensor *const *tensors, const order_item *order)
{
    unsigned char lenbuf[8];
    for (int k = 0; k < 8; k++)
        lenbuf[k] = (unsigned char)((uint64_t)hdr->len >> (8 * k));
    dt_status st = dt_atomic_write(af, lenbuf, 8);
    if (st == DT_OK)
        st = dt_atomic_write(af, hdr->p, hdr->len);
    for (int k = 0; k < ntensors && st == DT_OK; k++) {
        const dt_tensor *t = tensors[order[k].index];
        size_t nb = dt_nbytes(t);
        if (!nb)
            continue;
        dt_tensor *c;
        if (dt_contiguous((dt_tensor *)t, &c)) {
            st = dt_fail(DT_ERR_NOMEM, "%s: out of memory packing a tensor", af->path);
            dt_atomic_abort(af);
            break;
        }
        st = dt_atomic_write(af, dt_data(c), nb);
        dt_tensor_release(c);
    }
    return st;
}

dt_status dt_safetensors_save(const char *path, int ntensors, const char *const *names,
                              const dt_tensor *const *tensors, int nmeta,
                              const char *const *meta_keys, const char *const *meta_values)
{
    if (!little_endian())
        return dt_fail(DT_ERR_STATE, "%s: safetensors saving needs a little-endian machine", path);
    order_item *order;
    dt_status st = check_save(path, ntensors, names, tensors, nmeta, meta_keys, meta_values,
                              &order);
    if (st)
        return st;
    dt_strbuf hdr = {0};
    build_header(&hdr, ntensors, tensors, order, nmeta, meta_keys, meta_values);
    if (hdr.oom)
        st = dt_fail(DT_ERR_IO, "%s: out of memory building the header", path);
    else if (hdr.len > MAX_HEADER)
        st = dt_fail(DT_ERR_IO, "%s: header larger than 100 MB", path);
    dt_atomic_file af;
    if (st == DT_OK)
        st = dt_atomic_begin(path, &af);
    if (st == DT_OK)
        st = write_file(&af, &hdr, ntensors, tensors, order);
    if (st == DT_OK)
        st = dt_atomic_commit(&af);
    free(hdr.p);
    free(order);
    return st;
}

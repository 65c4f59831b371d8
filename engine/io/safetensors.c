/* safetensors.c - reading and writing safetensors files.
 *
 * Layout: an unsigned 64-bit little-endian header length N, N bytes of JSON,
 * then the data region. The JSON maps each tensor name to
 * {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]} (offsets
 * relative to the data region) and may hold "__metadata__", an object of
 * strings. The header is parsed by a small strict JSON parser and validated
 * completely before any tensor data is read. */
#include "distill.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u * 1024u * 1024u)
#define MAX_DEPTH 64

/* ================================================================= JSON */

typedef enum { J_NULL, J_BOOL, J_INT, J_REAL, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
    jtype type;
    int64_t i;            /* J_INT, J_BOOL */
    char *s;              /* J_STR (NUL-terminated; slen bytes) */
    size_t slen;
    int n;                /* J_ARR / J_OBJ: number of items */
    struct jval *items;
    char **keys;          /* J_OBJ */
    size_t *keylens;
} jval;

typedef struct jparser {
    const char *p, *end, *start;
    char err[160];
} jparser;

static void jfree(jval *v)
{
    if (v->type == J_STR)
        free(v->s);
    if (v->type == J_ARR || v->type == J_OBJ) {
        for (int k = 0; k < v->n; k++) {
            jfree(&v->items[k]);
            if (v->keys)
                free(v->keys[k]);
        }
        free(v->items);
        free(v->keys);
        free(v->keylens);
    }
    memset(v, 0, sizeof *v);
}

static bool jerr(jparser *ps, const char *what)
{
    if (!ps->err[0])
        snprintf(ps->err, sizeof ps->err, "%s at byte %lld of the header", what,
                 (long long)(ps->p - ps->start));
    return false;
}

static void skip_ws(jparser *ps)
{
    while (ps->p < ps->end &&
           (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool read_hex4(jparser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4)
        return jerr(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(ps->p[k]);
        if (h < 0)
            return jerr(ps, "bad \\u escape");
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* At the opening quote. The decoded string never exceeds the encoded one. */
static bool parse_string(jparser *ps, char **out, size_t *outlen)
{
    ps->p++;
    const char *q = ps->p;
    while (q < ps->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
    }
    if (q >= ps->end)
        return jerr(ps, "unterminated string");
    char *buf = malloc((size_t)(q - ps->p) + 1), *o = buf;
    if (!buf)
        return jerr(ps, "out of memory");
    while (*ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            free(buf);
            return jerr(ps, "control character in a string");
        }
        if (c != '\\') {
            *o++ = (char)c;
            ps->p++;
            continue;
        }
        ps->p++;
        char e = *ps->p++;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp;
            if (!read_hex4(ps, &cp)) {
                free(buf);
                return false;
            }
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    free(buf);
                    return jerr(ps, "unpaired surrogate in a \\u escape");
                }
                ps->p += 2;
                if (!read_hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    free(buf);
                    return jerr(ps, "unpaired surrogate in a \\u escape");
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                free(buf);
                return jerr(ps, "unpaired surrogate in a \\u escape");
            }
            o += put_utf8(o, cp);
            break;
        }
        default:
            free(buf);
            ps->p--;
            return jerr(ps, "bad escape in a string");
        }
    }
    ps->p++;
    *o = '\0';
    *out = buf;
    *outlen = (size_t)(o - buf);
    return true;
}

static bool parse_number(jparser *ps, jval *v)
{
    const char *q = ps->p;
    bool neg = false;
    if (*q == '-') {
        neg = true;
        q++;
    }
    if (q >= ps->end || *q < '0' || *q > '9')
        return jerr(ps, "bad number");
    if (*q == '0' && q + 1 < ps->end && q[1] >= '0' && q[1] <= '9')
        return jerr(ps, "number with a leading zero");
    uint64_t mag = 0;
    bool overflow = false;
    while (q < ps->end && *q >= '0' && *q <= '9') {
        unsigned d = (unsigned)(*q - '0');
        if (mag > (UINT64_MAX - d) / 10)
            overflow = true;
        else
            mag = mag * 10 + d;
        q++;
    }
    bool real = false;
    if (q < ps->end && *q == '.') {
        real = true;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9')
            return jerr(ps, "bad number");
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        real = true;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= ps->end || *q < '0' || *q > '9')
            return jerr(ps, "bad number");
        while (q < ps->end && *q >= '0' && *q <= '9')
            q++;
    }
    ps->p = q;
    if (real) {
        v->type = J_REAL;
        return true;
    }
    if (overflow || mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return jerr(ps, "integer out of the 64-bit range");
    v->type = J_INT;
    v->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return true;
}

static bool parse_value(jparser *ps, jval *v, int depth);

static bool append_item(jparser *ps, jval *v, int *cap, bool with_key)
{
    if (v->n < *cap)
        return true;
    int nc = *cap ? *cap * 2 : 8;
    jval *items = realloc(v->items, (size_t)nc * sizeof *items);
    if (!items)
        return jerr(ps, "out of memory");
    v->items = items;
    if (with_key) {
        char **keys = realloc(v->keys, (size_t)nc * sizeof *keys);
        if (!keys)
            return jerr(ps, "out of memory");
        v->keys = keys;
        size_t *lens = realloc(v->keylens, (size_t)nc * sizeof *lens);
        if (!lens)
            return jerr(ps, "out of memory");
        v->keylens = lens;
    }
    *cap = nc;
    return true;
}

static bool parse_container(jparser *ps, jval *v, int depth, bool object)
{
    v->type = object ? J_OBJ : J_ARR;
    int cap = 0;
    ps->p++;
    skip_ws(ps);
    char close = object ? '}' : ']';
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return true;
    }
    for (;;) {
        if (!append_item(ps, v, &cap, object))
            return false;
        if (object) {
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != '"')
                return jerr(ps, "expected a string key");
            if (!parse_string(ps, &v->keys[v->n], &v->keylens[v->n]))
                return false;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(v->keys[v->n]);
                return jerr(ps, "expected ':'");
            }
            ps->p++;
        }
        memset(&v->items[v->n], 0, sizeof v->items[v->n]);
        bool ok = parse_value(ps, &v->items[v->n], depth + 1);
        v->n++;   /* counted even on failure so that jfree frees it */
        if (!ok)
            return false;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return true;
        }
        return jerr(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool literal(jparser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return jerr(ps, "unexpected character");
    ps->p += n;
    return true;
}

static bool parse_value(jparser *ps, jval *v, int depth)
{
    if (depth > MAX_DEPTH)
        return jerr(ps, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return jerr(ps, "unexpected end");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, depth, true);
    case '[': return parse_container(ps, v, depth, false);
    case '"':
        v->type = J_STR;
        if (!parse_string(ps, &v->s, &v->slen)) {
            v->type = J_NULL;
            return false;
        }
        return true;
    case 't': v->type = J_BOOL; v->i = 1; return literal(ps, "true");
    case 'f': v->type = J_BOOL; v->i = 0; return literal(ps, "false");
    case 'n': v->type = J_NULL; return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, v);
        return jerr(ps, "unexpected character");
    }
}

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

static const jval *obj_get(const jval *o, const char *key)
{
    for (int k = 0; k < o->n; k++)
        if (!strcmp(o->keys[k], key))
            return &o->items[k];
    return NULL;
}

/* Check one tensor description; msg receives the reason on failure. */
static bool check_entry(const char *name, const jval *v, entry *e, char *msg, size_t msglen)
{
    e->name = name;
    if (v->type != J_OBJ) {
        snprintf(msg, msglen, "tensor '%s': expected an object with dtype, shape and "
                 "data_offsets", name);
        return false;
    }
    const jval *dt = obj_get(v, "dtype"), *sh = obj_get(v, "shape"), *off = obj_get(v, "data_offsets");
    if (!dt || !sh || !off) {
        snprintf(msg, msglen, "tensor '%s': missing '%s'", name,
                 !dt ? "dtype" : !sh ? "shape" : "data_offsets");
        return false;
    }
    if (dt->type != J_STR) {
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
    if (sh->type != J_ARR) {
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
        if (sh->items[d].type != J_INT || sh->items[d].i < 0) {
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
    if (off->type != J_ARR || off->n != 2 || off->items[0].type != J_INT ||
        off->items[1].type != J_INT || off->items[0].i < 0 || off->items[1].i < 0) {
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
        char sbuf[160];
        dt_shape_str(e->shape, e->ndim, sbuf, sizeof sbuf);
        snprintf(msg, msglen, "tensor '%s': shape %s of %s needs %llu bytes but data_offsets "
                 "[%llu, %llu] hold %llu", name, sbuf, e->fd->name,
                 huge ? 0ULL : (unsigned long long)nbytes, (unsigned long long)e->begin,
                 (unsigned long long)e->end, (unsigned long long)(e->end - e->begin));
        return false;
    }
    return true;
}

static dt_status load_fail(FILE *f, jval *root, entry *entries, dt_safetensors *st,
                           dt_status code, const char *path, const char *msg)
{
    dt_status r = dt_fail(code, "%s: %s", path, msg);
    if (f)
        fclose(f);
    if (root)
        jfree(root);
    free(entries);
    dt_safetensors_free(st);
    return r;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

dt_status dt_safetensors_load(const char *path, dt_safetensors **out)
{
    *out = NULL;
    char msg[512];
    if (!little_endian())
        return dt_fail(DT_ERR_STATE, "%s: safetensors loading needs a little-endian machine", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return dt_fail(DT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return dt_fail(DT_ERR_IO, "%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    unsigned char lenbuf[8];
    if (fsize < 8) {
        snprintf(msg, sizeof msg, "truncated: the file has %llu bytes, fewer than the 8 of the "
                 "header length%s", (unsigned long long)fsize, fsize == 0 ? " (empty file)" : "");
        return load_fail(f, NULL, NULL, NULL, DT_ERR_FORMAT, path, msg);
    }
    if (fread(lenbuf, 1, 8, f) != 8)
        return load_fail(f, NULL, NULL, NULL, DT_ERR_IO, path, "read error");
    uint64_t hlen = rd_le(lenbuf, 8);
    if (hlen > fsize - 8) {
        snprintf(msg, sizeof msg, "truncated: header says %llu bytes but the file has %llu",
                 (unsigned long long)hlen, (unsigned long long)fsize);
        return load_fail(f, NULL, NULL, NULL, DT_ERR_FORMAT, path, msg);
    }
    if (hlen > MAX_HEADER || hlen < 2) {
        snprintf(msg, sizeof msg, "header length %llu is not plausible (2 bytes to %u MB); not a "
                 "safetensors file?", (unsigned long long)hlen, MAX_HEADER >> 20);
        return load_fail(f, NULL, NULL, NULL, DT_ERR_FORMAT, path, msg);
    }
    char *hdr = malloc(hlen);
    if (!hdr)
        return load_fail(f, NULL, NULL, NULL, DT_ERR_NOMEM, path, "out of memory for the header");
    if (fread(hdr, 1, hlen, f) != hlen) {
        free(hdr);
        return load_fail(f, NULL, NULL, NULL, DT_ERR_IO, path, "read error in the header");
    }
    uint64_t data_start = 8 + hlen, data_size = fsize - data_start;

    jparser ps = {.p = hdr, .end = hdr + hlen, .start = hdr, .err = ""};
    jval root;
    memset(&root, 0, sizeof root);
    bool ok = parse_value(&ps, &root, 0);
    if (ok) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            ok = jerr(&ps, "unexpected data after the JSON value");
    }
    free(hdr);
    if (!ok) {
        snprintf(msg, sizeof msg, "malformed JSON header: %s", ps.err);
        return load_fail(f, &root, NULL, NULL, DT_ERR_FORMAT, path, msg);
    }
    if (root.type != J_OBJ)
        return load_fail(f, &root, NULL, NULL, DT_ERR_FORMAT, path,
                         "the header must be a JSON object");

    /* Validate every entry before reading data. */
    entry *entries = calloc((size_t)root.n + 1, sizeof *entries);
    dt_safetensors *st = calloc(1, sizeof *st);
    if (!entries || !st) {
        free(st);
        return load_fail(f, &root, entries, NULL, DT_ERR_NOMEM, path, "out of memory");
    }
    int ne = 0;
    const jval *meta = NULL;
    for (int k = 0; k < root.n; k++) {
        if (strlen(root.keys[k]) != root.keylens[k])
            return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path,
                             "a tensor name contains a NUL character");
        for (int j = 0; j < k; j++)
            if (!strcmp(root.keys[j], root.keys[k])) {
                snprintf(msg, sizeof msg, "the header names '%.200s' twice", root.keys[k]);
                return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path, msg);
            }
        if (!strcmp(root.keys[k], "__metadata__")) {
            meta = &root.items[k];
            continue;
        }
        if (!check_entry(root.keys[k], &root.items[k], &entries[ne], msg, sizeof msg))
            return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path, msg);
        ne++;
    }
    if (meta) {
        if (meta->type != J_OBJ)
            return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path,
                             "__metadata__ must be an object of strings");
        for (int k = 0; k < meta->n; k++)
            if (meta->items[k].type != J_STR || strlen(meta->keys[k]) != meta->keylens[k] ||
                strlen(meta->items[k].s) != meta->items[k].slen) {
                snprintf(msg, sizeof msg, "__metadata__ entry '%.200s' must be a string (without "
                         "NUL characters)", meta->keys[k]);
                return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path, msg);
            }
    }
    qsort(entries, (size_t)ne, sizeof *entries, cmp_entry_begin);
    uint64_t max_end = 0;
    const entry *last = NULL;
    for (int k = 0; k < ne; k++) {
        const entry *e = &entries[k];
        if (e->end > max_end)
            max_end = e->end;
        if (e->begin == e->end)
            continue;   /* empty ranges overlap nothing */
        if (last && e->begin < last->end) {
            snprintf(msg, sizeof msg, "tensors '%.150s' [%llu, %llu] and '%.150s' [%llu, %llu] "
                     "overlap in the data region", last->name, (unsigned long long)last->begin,
                     (unsigned long long)last->end, e->name, (unsigned long long)e->begin,
                     (unsigned long long)e->end);
            return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path, msg);
        }
        last = e;
    }
    if (max_end > data_size) {
        const entry *far = NULL;
        for (int k = 0; k < ne; k++)
            if (entries[k].end == max_end)
                far = &entries[k];
        snprintf(msg, sizeof msg, "truncated: tensor '%.200s' ends at byte %llu of the data but "
                 "the file has %llu data bytes (header says %llu bytes of data, file has %llu "
                 "bytes in all)", far->name, (unsigned long long)max_end,
                 (unsigned long long)data_size, (unsigned long long)(data_start + max_end),
                 (unsigned long long)fsize);
        return load_fail(f, &root, entries, st, DT_ERR_FORMAT, path, msg);
    }

    /* Read the data. */
    st->names = calloc((size_t)ne + 1, sizeof *st->names);
    st->tensors = calloc((size_t)ne + 1, sizeof *st->tensors);
    if (meta && meta->n) {
        st->meta_keys = calloc((size_t)meta->n, sizeof *st->meta_keys);
        st->meta_values = calloc((size_t)meta->n, sizeof *st->meta_values);
    }
    if (!st->names || !st->tensors || (meta && meta->n && (!st->meta_keys || !st->meta_values)))
        return load_fail(f, &root, entries, st, DT_ERR_NOMEM, path, "out of memory");
    for (int k = 0; meta && k < meta->n; k++) {
        st->meta_keys[k] = dup_str(meta->keys[k]);
        st->meta_values[k] = dup_str(meta->items[k].s);
        st->nmeta++;
        if (!st->meta_keys[k] || !st->meta_values[k])
            return load_fail(f, &root, entries, st, DT_ERR_NOMEM, path, "out of memory");
    }
    for (int k = 0; k < ne; k++) {
        const entry *e = &entries[k];
        dt_tensor *t;
        if (dt_zeros(e->fd->to, e->ndim, e->shape, &t)) {
            snprintf(msg, sizeof msg, "tensor '%.200s': %s", e->name, dt_last_error());
            return load_fail(f, &root, entries, st, DT_ERR_NOMEM, path, msg);
        }
        st->names[k] = dup_str(e->name);
        st->tensors[k] = t;
        st->ntensors++;
        if (!st->names[k])
            return load_fail(f, &root, entries, st, DT_ERR_NOMEM, path, "out of memory");
        uint64_t nbytes = e->end - e->begin;
        if (!nbytes)
            continue;
        bool native = !strcmp(e->fd->name, file_dtype_name(e->fd->to));
        unsigned char *buf = native ? dt_data(t) : malloc(nbytes);
        if (!buf)
            return load_fail(f, &root, entries, st, DT_ERR_NOMEM, path, "out of memory");
        if (fseeko(f, (off_t)(data_start + e->begin), SEEK_SET) != 0 ||
            fread(buf, 1, nbytes, f) != nbytes) {
            if (!native)
                free(buf);
            snprintf(msg, sizeof msg, "read error in tensor '%.200s'", e->name);
            return load_fail(f, &root, entries, st, DT_ERR_IO, path, msg);
        }
        if (!native) {
            convert(e->fd, buf, dt_data(t), dt_numel(t));
            free(buf);
        }
    }
    fclose(f);
    jfree(&root);
    free(entries);
    *out = st;
    return DT_OK;
}

/* ================================================================ saving */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *p = realloc(b->p, nc);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_json_string(sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char tmp[8];
        switch (*c) {
        case '"': sb_add(b, "\\\"", 2); break;
        case '\\': sb_add(b, "\\\\", 2); break;
        case '\n': sb_add(b, "\\n", 2); break;
        case '\r': sb_add(b, "\\r", 2); break;
        case '\t': sb_add(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", *c);
                sb_add(b, tmp, 6);
            } else {
                sb_add(b, (const char *)c, 1);
            }
        }
    }
    sb_add(b, "\"", 1);
}

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

static bool write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n; }

static dt_status save_fail(const char *path, const char *tmp, FILE *f, int fd, sbuf *hdr,
                           order_item *order, const char *what, int err)
{
    dt_status r = err ? dt_fail(DT_ERR_IO, "%s: %s: %s", path, what, strerror(err))
                      : dt_fail(DT_ERR_IO, "%s: %s", path, what);
    if (f)
        fclose(f);
    else if (fd >= 0)
        close(fd);
    if (tmp)
        unlink(tmp);
    if (hdr)
        free(hdr->p);
    free(order);
    return r;
}

dt_status dt_safetensors_save(const char *path, int ntensors, const char *const *names,
                              const dt_tensor *const *tensors, int nmeta,
                              const char *const *meta_keys, const char *const *meta_values)
{
    if (!little_endian())
        return dt_fail(DT_ERR_STATE, "%s: safetensors saving needs a little-endian machine", path);
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
    for (int i = 0; i < ntensors; i++) {
        order[i].name = names[i];
        order[i].elsize = dt_dtype_size(tensors[i]->dtype);
        order[i].index = i;
    }
    qsort(order, (size_t)ntensors, sizeof *order, cmp_order);
    for (int i = 0; i < ntensors; i++)
        for (int j = i + 1; j < ntensors; j++)
            if (!strcmp(names[i], names[j])) {
                dt_status r = dt_fail(DT_ERR_ARG, "%s: tensor name '%s' is used twice", path,
                                      names[i]);
                free(order);
                return r;
            }

    /* Header. */
    sbuf hdr = {0};
    sb_str(&hdr, "{");
    bool first = true;
    if (nmeta > 0) {
        sb_str(&hdr, "\"__metadata__\":{");
        for (int i = 0; i < nmeta; i++) {
            if (i)
                sb_str(&hdr, ",");
            sb_json_string(&hdr, meta_keys[i]);
            sb_str(&hdr, ":");
            sb_json_string(&hdr, meta_values[i]);
        }
        sb_str(&hdr, "}");
        first = false;
    }
    uint64_t offset = 0;
    for (int k = 0; k < ntensors; k++) {
        const dt_tensor *t = tensors[order[k].index];
        char num[64];
        if (!first)
            sb_str(&hdr, ",");
        first = false;
        sb_json_string(&hdr, order[k].name);
        sb_str(&hdr, ":{\"dtype\":\"");
        sb_str(&hdr, file_dtype_name(t->dtype));
        sb_str(&hdr, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)t->shape[d]);
            sb_str(&hdr, num);
        }
        uint64_t nb = dt_nbytes(t);
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                 (unsigned long long)(offset + nb));
        sb_str(&hdr, num);
        offset += nb;
    }
    sb_str(&hdr, "}");
    while (hdr.len % 8)
        sb_str(&hdr, " ");
    if (hdr.oom)
        return save_fail(path, NULL, NULL, -1, &hdr, order, "out of memory building the header", 0);
    if (hdr.len > MAX_HEADER)
        return save_fail(path, NULL, NULL, -1, &hdr, order, "header larger than 100 MB", 0);

    /* Temporary file next to the target. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return save_fail(path, NULL, NULL, -1, &hdr, order, "out of memory", 0);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = errno;
        free(tmp);
        return save_fail(path, NULL, NULL, -1, &hdr, order,
                         "cannot create a temporary file next to it", err);
    }
    dt_status r = DT_OK;
#define SAVE_FAIL(what, err)                                                     \
    do {                                                                         \
        r = save_fail(path, tmp, f, fd, &hdr, order, what, err);                 \
        free(tmp);                                                               \
        return r;                                                                \
    } while (0)
    FILE *f = NULL;
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0)
        SAVE_FAIL("cannot set the permissions of the temporary file", errno);
    f = fdopen(fd, "wb");
    if (!f)
        SAVE_FAIL("cannot open the temporary file", errno);
    unsigned char lenbuf[8];
    for (int k = 0; k < 8; k++)
        lenbuf[k] = (unsigned char)((uint64_t)hdr.len >> (8 * k));
    errno = 0;
    if (!write_all(f, lenbuf, 8) || !write_all(f, hdr.p, hdr.len))
        SAVE_FAIL("write failed", errno);
    for (int k = 0; k < ntensors; k++) {
        const dt_tensor *t = tensors[order[k].index];
        size_t nb = dt_nbytes(t);
        if (!nb)
            continue;
        dt_tensor *c;
        if (dt_contiguous((dt_tensor *)t, &c))
            SAVE_FAIL("out of memory packing a tensor", 0);
        errno = 0;
        bool ok = write_all(f, dt_data(c), nb);
        dt_tensor_release(c);
        if (!ok)
            SAVE_FAIL("write failed", errno);
    }
    errno = 0;
    if (fflush(f) != 0)
        SAVE_FAIL("write failed", errno);
    if (fsync(fileno(f)) != 0)
        SAVE_FAIL("fsync failed", errno);
    FILE *ff = f;
    f = NULL;
    fd = -1;
    if (fclose(ff) != 0)
        SAVE_FAIL("closing the temporary file failed", errno);
    if (rename(tmp, path) != 0)
        SAVE_FAIL("cannot rename the temporary file over it", errno);
#undef SAVE_FAIL
    free(tmp);
    free(hdr.p);
    free(order);

    /* Make the rename durable. */
    char *dir = dup_str(path);
    if (dir) {
        char *slash = strrchr(dir, '/');
        const char *d = ".";
        if (slash) {
            slash[slash == dir ? 1 : 0] = '\0';
            d = dir;
        }
        int dfd = open(d, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return r;
}

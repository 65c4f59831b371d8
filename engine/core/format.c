/* format.c - torch-like text of a tensor:
 *
 *   tensor([[ 0.1234, -1.5000,  2.0000],
 *           [ 3.0000,  4.0000,  5.0000]], dtype=float32, shape={2, 3})
 *
 * Follows torch's printer: one format and width for all printed elements
 * (so columns align), fixed 4 decimals or scientific notation when the
 * magnitudes call for it, rows wrapped at 80 columns, and when the tensor has
 * more than `threshold` elements only the first and last 3 entries of each
 * dim, with "..." between. Shapes print in Lua's brace syntax. */
#include "distill.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EDGE_ITEMS 3
#define LINE_WIDTH 80

/* ------------------------------------------------------- growable string */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_spaces(sbuf *b, int n)
{
    for (int i = 0; i < n; i++)
        sb_add(b, " ", 1);
}

/* -------------------------------------------------------------- elements */

typedef enum { FMT_INT, FMT_FIXED, FMT_SCI } fmt_mode;

typedef struct formatter {
    fmt_mode mode;
    int width;
    /* statistics gathered in the first pass (floats) */
    bool any_finite, all_integral;
    double max_abs, min_abs;   /* over nonzero finite values */
    bool any_nonzero;
} formatter;

/* Text of the element at storage offset `off` (relative to t's data). */
static int format_element(const dt_tensor *t, int64_t off, fmt_mode mode, char *buf, size_t len)
{
    switch (t->dtype) {
    case DT_INT64: return snprintf(buf, len, "%lld", (long long)dt_i64(t)[off]);
    case DT_UINT8: return snprintf(buf, len, "%u", (unsigned)dt_u8(t)[off]);
    case DT_FLOAT32: break;
    }
    double v = dt_f32(t)[off];
    if (isnan(v))   /* printf may write "-nan"; torch prints nan */
        return snprintf(buf, len, "nan");
    if (isinf(v))
        return snprintf(buf, len, v > 0 ? "inf" : "-inf");
    return snprintf(buf, len, mode == FMT_SCI ? "%.4e" : "%.4f", v);
}

/* Visit the printed elements (all of them, or the summary's edges) in
 * order, calling fn with each one's storage offset. */
typedef void (*visit_fn)(const dt_tensor *t, int64_t off, void *ctx);

static void visit(const dt_tensor *t, int dim, int64_t off, bool summarize, visit_fn fn, void *ctx)
{
    if (dim == t->ndim) {
        fn(t, off, ctx);
        return;
    }
    int64_t n = t->shape[dim];
    bool cut = summarize && n > 2 * EDGE_ITEMS;
    for (int64_t i = 0; i < n; i++) {
        if (cut && i == EDGE_ITEMS)
            i = n - EDGE_ITEMS;
        visit(t, dim + 1, off + i * t->stride[dim], summarize, fn, ctx);
    }
}

static void gather_stats(const dt_tensor *t, int64_t off, void *ctx)
{
    formatter *f = ctx;
    if (t->dtype != DT_FLOAT32)
        return;
    double v = dt_f32(t)[off];
    if (!isfinite(v))
        return;
    f->any_finite = true;
    if (v != floor(v))
        f->all_integral = false;
    double a = fabs(v);
    if (a == 0)
        return;
    if (!f->any_nonzero || a > f->max_abs)
        f->max_abs = a;
    if (!f->any_nonzero || a < f->min_abs)
        f->min_abs = a;
    f->any_nonzero = true;
}

static void measure_width(const dt_tensor *t, int64_t off, void *ctx)
{
    formatter *f = ctx;
    char buf[64];
    int n = format_element(t, off, f->mode, buf, sizeof buf);
    if (n > f->width)
        f->width = n;
}

/* Pick the mode as torch does: integral floats switch to scientific only
 * past 1e8; others also when the magnitudes span more than 3 decades or go
 * below 1e-4 (where 4 decimals would show nothing). */
static void setup_formatter(const dt_tensor *t, bool summarize, formatter *f)
{
    memset(f, 0, sizeof *f);
    f->all_integral = true;
    if (t->dtype != DT_FLOAT32) {
        f->mode = FMT_INT;
    } else {
        visit(t, 0, 0, summarize, gather_stats, f);
        f->mode = FMT_FIXED;
        if (f->any_nonzero) {
            if (f->all_integral)
                f->mode = f->max_abs > 1e8 ? FMT_SCI : FMT_FIXED;
            else if (f->max_abs / f->min_abs > 1000 || f->max_abs > 1e8 || f->min_abs < 1e-4)
                f->mode = FMT_SCI;
        }
    }
    visit(t, 0, 0, summarize, measure_width, f);
}

/* --------------------------------------------------------------- layout */

static void put_element(sbuf *b, const dt_tensor *t, int64_t off, const formatter *f)
{
    char buf[64];
    int n = format_element(t, off, f->mode, buf, sizeof buf);
    sb_spaces(b, f->width - n);
    sb_add(b, buf, (size_t)n);
}

/* The last dim: elements separated by ", ", wrapped so that lines stay
 * within LINE_WIDTH; "..." takes the place of the middle when summarised. */
static void put_vector(sbuf *b, const dt_tensor *t, int64_t off, int indent, bool summarize,
                       const formatter *f)
{
    int dim = t->ndim - 1;
    int64_t n = t->shape[dim];
    bool cut = summarize && n > 2 * EDGE_ITEMS;
    int per_line = (LINE_WIDTH - indent) / (f->width + 2);
    if (per_line < 1)
        per_line = 1;
    sb_str(b, "[");
    int64_t item = 0;   /* printed items so far, "..." counting as one */
    for (int64_t i = 0; i < n; i++, item++) {
        if (item > 0) {
            if (item % per_line == 0) {
                sb_str(b, ",\n");
                sb_spaces(b, indent + 1);
            } else {
                sb_str(b, ", ");
            }
        }
        if (cut && i == EDGE_ITEMS) {
            sb_str(b, " ...");
            i = n - EDGE_ITEMS - 1;
            continue;
        }
        put_element(b, t, off + i * t->stride[dim], f);
    }
    sb_str(b, "]");
}

static void put_tensor(sbuf *b, const dt_tensor *t, int dim, int64_t off, int indent,
                       bool summarize, const formatter *f)
{
    if (dim == t->ndim - 1) {
        put_vector(b, t, off, indent, summarize, f);
        return;
    }
    int64_t n = t->shape[dim];
    bool cut = summarize && n > 2 * EDGE_ITEMS;
    int sub_dims = t->ndim - dim;   /* dims of the slice printed here */
    sb_str(b, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i > 0) {
            /* one more blank line between blocks for each dim above a row */
            sb_str(b, ",");
            for (int k = 0; k < sub_dims - 1; k++)
                sb_str(b, "\n");
            sb_spaces(b, indent + 1);
        }
        if (cut && i == EDGE_ITEMS) {
            sb_str(b, "...");
            i = n - EDGE_ITEMS - 1;
            continue;
        }
        put_tensor(b, t, dim + 1, off + i * t->stride[dim], indent + 1, summarize, f);
    }
    sb_str(b, "]");
}

char *dt_format(const dt_tensor *t, int64_t threshold)
{
    sbuf b = {0};
    const char *prefix = "tensor(";
    sb_str(&b, prefix);
    int64_t numel = dt_numel(t);
    if (numel == 0) {
        sb_str(&b, "[]");
    } else {
        bool summarize = numel > threshold;
        formatter f;
        setup_formatter(t, summarize, &f);
        if (t->ndim == 0)
            put_element(&b, t, 0, &f);
        else
            put_tensor(&b, t, 0, 0, (int)strlen(prefix), summarize, &f);
    }
    sb_str(&b, ", dtype=");
    sb_str(&b, dt_dtype_name(t->dtype));
    sb_str(&b, ", shape={");
    for (int d = 0; d < t->ndim; d++) {
        char num[32];
        snprintf(num, sizeof num, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        sb_str(&b, num);
    }
    sb_str(&b, "})");
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

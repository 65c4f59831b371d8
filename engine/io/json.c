/* json.c - the strict JSON reader and the string builder of json.h. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct json_parser {
    const char *p, *end, *start;
    char err[160];
} json_parser;

void dt_json_free(dt_json *v)
{
    if (v->type == DT_JSON_STR)
        free(v->s);
    if (v->type == DT_JSON_ARR || v->type == DT_JSON_OBJ) {
        for (int k = 0; k < v->n; k++) {
            dt_json_free(&v->items[k]);
            if (v->keys)
                free(v->keys[k]);
        }
        free(v->items);
        free(v->keys);
        free(v->keylens);
    }
    memset(v, 0, sizeof *v);
}

static bool jerr(json_parser *ps, const char *what)
{
    if (!ps->err[0])
        snprintf(ps->err, sizeof ps->err, "%s at byte %lld", what,
                 (long long)(ps->p - ps->start));
    return false;
}

static void skip_ws(json_parser *ps)
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

static bool read_hex4(json_parser *ps, unsigned *out)
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
static bool parse_string(json_parser *ps, char **out, size_t *outlen)
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

static bool parse_number(json_parser *ps, dt_json *v)
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
        v->type = DT_JSON_REAL;
        return true;
    }
    if (overflow || mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
        return jerr(ps, "integer out of the 64-bit range");
    v->type = DT_JSON_INT;
    v->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return true;
}

static bool parse_value(json_parser *ps, dt_json *v, int depth);

static bool append_item(json_parser *ps, dt_json *v, int *cap, bool with_key)
{
    if (v->n < *cap)
        return true;
    int nc = *cap ? *cap * 2 : 8;
    dt_json *items = realloc(v->items, (size_t)nc * sizeof *items);
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

static bool parse_container(json_parser *ps, dt_json *v, int depth, bool object)
{
    v->type = object ? DT_JSON_OBJ : DT_JSON_ARR;
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
        v->n++;   /* counted even on failure so that dt_json_free frees it */
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

static bool literal(json_parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return jerr(ps, "unexpected character");
    ps->p += n;
    return true;
}

static bool parse_value(json_parser *ps, dt_json *v, int depth)
{
    if (depth > DT_JSON_MAX_DEPTH)
        return jerr(ps, "nesting too deep");
    skip_ws(ps);
    if (ps->p >= ps->end)
        return jerr(ps, "unexpected end");
    switch (*ps->p) {
    case '{': return parse_container(ps, v, depth, true);
    case '[': return parse_container(ps, v, depth, false);
    case '"':
        v->type = DT_JSON_STR;
        if (!parse_string(ps, &v->s, &v->slen)) {
            v->type = DT_JSON_NULL;
            return false;
        }
        return true;
    case 't': v->type = DT_JSON_BOOL; v->i = 1; return literal(ps, "true");
    case 'f': v->type = DT_JSON_BOOL; v->i = 0; return literal(ps, "false");
    case 'n': v->type = DT_JSON_NULL; return literal(ps, "null");
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
            return parse_number(ps, v);
        return jerr(ps, "unexpected character");
    }
}

bool dt_json_parse(const char *text, size_t len, dt_json *out, char *err, size_t errlen)
{
    json_parser ps = {.p = text, .end = text + len, .start = text, .err = ""};
    memset(out, 0, sizeof *out);
    bool ok = parse_value(&ps, out, 0);
    if (ok) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            ok = jerr(&ps, "unexpected data after the JSON value");
    }
    if (!ok)
        snprintf(err, errlen, "%s", ps.err);
    return ok;
}

const dt_json *dt_json_get(const dt_json *o, const char *key)
{
    for (int k = 0; k < o->n; k++)
        if (!strcmp(o->keys[k], key))
            return &o->items[k];
    return NULL;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char *dt_json_duplicate_key(const dt_json *o, bool *oom)
{
    *oom = false;
    if (o->type != DT_JSON_OBJ || o->n < 2)
        return NULL;
    const char **keys = malloc((size_t)o->n * sizeof *keys);
    if (!keys) {
        *oom = true;
        return NULL;
    }
    for (int k = 0; k < o->n; k++)
        keys[k] = o->keys[k];
    qsort(keys, (size_t)o->n, sizeof *keys, cmp_keys);
    const char *dup = NULL;
    for (int k = 1; k < o->n && !dup; k++)
        if (!strcmp(keys[k - 1], keys[k]))
            dup = keys[k];
    free(keys);
    return dup;
}

/* ------------------------------------------------------------ writing */

void dt_strbuf_add(dt_strbuf *b, const char *s, size_t n)
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

void dt_strbuf_str(dt_strbuf *b, const char *s) { dt_strbuf_add(b, s, strlen(s)); }

void dt_strbuf_json_string(dt_strbuf *b, const char *s)
{
    dt_strbuf_add(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char tmp[8];
        switch (*c) {
        case '"': dt_strbuf_add(b, "\\\"", 2); break;
        case '\\': dt_strbuf_add(b, "\\\\", 2); break;
        case '\n': dt_strbuf_add(b, "\\n", 2); break;
        case '\r': dt_strbuf_add(b, "\\r", 2); break;
        case '\t': dt_strbuf_add(b, "\\t", 2); break;
        default:
            if (*c < 0x20) {
                snprintf(tmp, sizeof tmp, "\\u%04x", *c);
                dt_strbuf_add(b, tmp, 6);
            } else {
                dt_strbuf_add(b, (const char *)c, 1);
            }
        }
    }
    dt_strbuf_add(b, "\"", 1);
}

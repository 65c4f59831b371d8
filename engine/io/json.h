/* json.h - a small strict JSON reader and a string builder for writing it
 * (internal: io/). The reader takes one whole value (RFC 8259: no trailing
 * commas, comments or NaN; strings decoded to UTF-8, \u escapes and
 * surrogate pairs checked; integers kept exactly when they fit 64 bits),
 * nesting at most DT_JSON_MAX_DEPTH deep, and says where it stopped on
 * malformed input. Object keys keep their order; duplicates are the
 * caller's to check (dt_json_duplicate_key). */
#ifndef DISTILL_IO_JSON_H
#define DISTILL_IO_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DT_JSON_MAX_DEPTH 64

typedef enum { DT_JSON_NULL, DT_JSON_BOOL, DT_JSON_INT, DT_JSON_REAL, DT_JSON_STR, DT_JSON_ARR, DT_JSON_OBJ } dt_json_type;

typedef struct dt_json {
    dt_json_type type;
    int64_t i;            /* DT_JSON_INT, DT_JSON_BOOL */
    char *s;              /* DT_JSON_STR (NUL-terminated; slen bytes) */
    size_t slen;
    int n;                /* DT_JSON_ARR / DT_JSON_OBJ: number of items */
    struct dt_json *items;
    char **keys;          /* DT_JSON_OBJ */
    size_t *keylens;
} dt_json;

/* Parses text[0 .. len) as one JSON value into *out (free it with
 * dt_json_free, also after a failure). On failure err receives the reason
 * and the byte where parsing stopped. */
bool dt_json_parse(const char *text, size_t len, dt_json *out, char *err, size_t errlen);
void dt_json_free(dt_json *v);
/* The value of `key` in object o, or NULL (the first, if repeated). */
const dt_json *dt_json_get(const dt_json *o, const char *key);
/* A key of object o that occurs more than once, or NULL: sorts a copy of
 * the keys, so it is linear-logarithmic in their number. NULL too when out
 * of memory (*oom set). */
const char *dt_json_duplicate_key(const dt_json *o, bool *oom);

/* A growing NUL-terminated string; after an allocation failure it stops
 * growing and `oom` stays set (check it once at the end). */
typedef struct dt_strbuf {
    char *p;
    size_t len, cap;
    bool oom;
} dt_strbuf;

void dt_strbuf_add(dt_strbuf *b, const char *s, size_t n);
void dt_strbuf_str(dt_strbuf *b, const char *s);
/* s as a JSON string, quoted and escaped. */
void dt_strbuf_json_string(dt_strbuf *b, const char *s);

#endif

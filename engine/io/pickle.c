/* pickle.c - the restricted pickle reader (pickle.h).
 *
 * A stack machine over the opcodes of protocols 2 to 4 that build plain
 * values. GLOBAL may name only NumPy's array reconstructor, ndarray and
 * dtype; REDUCE and BUILD accept exactly the shapes NumPy's __reduce__ and
 * __setstate__ produce for them and build an array description (shape,
 * element type, a pointer to the raw bytes) instead of calling anything.
 * Any other opcode, global or shape is refused with its byte offset.
 * Memo references may make the result share values or even contain itself,
 * so its users look values up (dt_pk_dict_get) and never walk it whole. */
#include "pickle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on what one file may make the reader hold: the CIFAR-100 training
 * batch, the largest published, needs about 150 000 objects. */
#define MAX_OBJECTS ((int64_t)1 << 21)
#define MAX_STACK ((size_t)1 << 21)
#define MAX_MEMO ((size_t)1 << 21)

enum { G_RECONSTRUCT = 1, G_NDARRAY, G_DTYPE };

typedef struct reader {
    const uint8_t *buf;
    size_t len, pos, op_pos;
    const char *name;
    dt_pickle *out;
    dt_pk_obj **stack;
    size_t sp, stack_cap;
    dt_pk_obj **memo;
    size_t memo_len, memo_cap;
} reader;

static dt_status bad(reader *r, const char *what)
{
    return dt_fail(DT_ERR_FORMAT, "%s: not a pickled CIFAR batch: %s (at byte %zu)", r->name,
                   what, r->op_pos);
}

/* ----------------------------------------------------------------- objects */

static dt_status new_obj(reader *r, dt_pk_kind kind, dt_pk_obj **out)
{
    if (r->out->nobjects >= MAX_OBJECTS)
        return bad(r, "too many objects");
    dt_pk_obj *o = calloc(1, sizeof *o);
    if (!o)
        return dt_fail(DT_ERR_NOMEM, "%s: out of memory reading the pickle", r->name);
    o->kind = kind;
    o->next_alloc = r->out->objects;
    r->out->objects = o;
    r->out->nobjects++;
    *out = o;
    return DT_OK;
}

static dt_status add_item(reader *r, dt_pk_obj *c, dt_pk_obj *item)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        dt_pk_obj **p = realloc(c->items, cap * sizeof *p);
        if (!p)
            return dt_fail(DT_ERR_NOMEM, "%s: out of memory reading the pickle", r->name);
        c->items = p;
        c->cap = cap;
    }
    c->items[c->n++] = item;
    return DT_OK;
}

void dt_pickle_free(dt_pickle *p)
{
    for (dt_pk_obj *o = p->objects, *next; o; o = next) {
        next = o->next_alloc;
        free(o->items);
        free(o);
    }
    p->objects = p->root = NULL;
    p->nobjects = 0;
}

/* ------------------------------------------------------------------- stack */

static dt_status push(reader *r, dt_pk_obj *o)
{
    if (r->sp == r->stack_cap) {
        if (r->stack_cap >= MAX_STACK)
            return bad(r, "stack too deep");
        size_t cap = r->stack_cap ? 2 * r->stack_cap : 64;
        dt_pk_obj **p = realloc(r->stack, cap * sizeof *p);
        if (!p)
            return dt_fail(DT_ERR_NOMEM, "%s: out of memory reading the pickle", r->name);
        r->stack = p;
        r->stack_cap = cap;
    }
    r->stack[r->sp++] = o;
    return DT_OK;
}

static dt_status push_new(reader *r, dt_pk_kind kind, dt_pk_obj **out)
{
    dt_status st = new_obj(r, kind, out);
    return st ? st : push(r, *out);
}

/* The top of the stack (not a mark), popped. */
static dt_status pop(reader *r, dt_pk_obj **out)
{
    if (r->sp == 0 || r->stack[r->sp - 1]->kind == DT_PK_MARK)
        return bad(r, "stack underflow");
    *out = r->stack[--r->sp];
    return DT_OK;
}

/* The position just above the topmost mark. */
static dt_status find_mark(reader *r, size_t *at)
{
    for (size_t k = r->sp; k > 0; k--)
        if (r->stack[k - 1]->kind == DT_PK_MARK) {
            *at = k;
            return DT_OK;
        }
    return bad(r, "no mark on the stack");
}

/* -------------------------------------------------------------------- memo */

static dt_status memo_put(reader *r, size_t idx)
{
    if (r->sp == 0 || r->stack[r->sp - 1]->kind == DT_PK_MARK)
        return bad(r, "memoizing an empty stack");
    if (idx >= MAX_MEMO)
        return bad(r, "memo index too large");
    if (idx >= r->memo_cap) {
        size_t cap = r->memo_cap ? r->memo_cap : 64;
        while (cap <= idx)
            cap *= 2;
        dt_pk_obj **p = realloc(r->memo, cap * sizeof *p);
        if (!p)
            return dt_fail(DT_ERR_NOMEM, "%s: out of memory reading the pickle", r->name);
        memset(p + r->memo_cap, 0, (cap - r->memo_cap) * sizeof *p);
        r->memo = p;
        r->memo_cap = cap;
    }
    r->memo[idx] = r->stack[r->sp - 1];
    if (idx >= r->memo_len)
        r->memo_len = idx + 1;
    return DT_OK;
}

static dt_status memo_get(reader *r, size_t idx)
{
    if (idx >= r->memo_len || !r->memo[idx])
        return bad(r, "memo entry never stored");
    return push(r, r->memo[idx]);
}

/* ------------------------------------------------------------------- bytes */

static dt_status take(reader *r, size_t n, const uint8_t **p)
{
    if (n > r->len - r->pos)
        return bad(r, "truncated");
    *p = r->buf + r->pos;
    r->pos += n;
    return DT_OK;
}

static dt_status take_le(reader *r, int n, uint64_t *v)
{
    const uint8_t *p = NULL;
    dt_status st = take(r, (size_t)n, &p);
    *v = 0;
    for (int k = n - 1; st == DT_OK && k >= 0; k--)
        *v = *v << 8 | p[k];
    return st;
}

static dt_status push_int(reader *r, int64_t v)
{
    dt_pk_obj *o = NULL;
    dt_status st = push_new(r, DT_PK_INT, &o);
    if (st == DT_OK)
        o->i = v;
    return st;
}

/* A string of n bytes (the length read as `len_bytes` little-endian). */
static dt_status push_string(reader *r, dt_pk_kind kind, int len_bytes)
{
    uint64_t n = 0;
    const uint8_t *p = NULL;
    dt_status st = take_le(r, len_bytes, &n);
    if (st == DT_OK && n > r->len - r->pos)
        return bad(r, "string longer than the file");
    if (st == DT_OK)
        st = take(r, (size_t)n, &p);
    dt_pk_obj *o = NULL;
    if (st == DT_OK)
        st = push_new(r, kind, &o);
    if (st == DT_OK) {
        o->s = p;
        o->len = (size_t)n;
    }
    return st;
}

/* ----------------------------------------------------------------- globals */

static bool str_is(const dt_pk_obj *o, const char *s)
{
    size_t n = strlen(s);
    return (o->kind == DT_PK_BYTES || o->kind == DT_PK_TEXT) && o->len == n &&
           memcmp(o->s, s, n) == 0;
}

static dt_status push_global(reader *r, const uint8_t *mod, size_t mlen, const uint8_t *name,
                             size_t nlen)
{
    struct { const char *mod, *name; int id; } allowed[] = {
        {"numpy.core.multiarray", "_reconstruct", G_RECONSTRUCT},
        {"numpy._core.multiarray", "_reconstruct", G_RECONSTRUCT},
        {"numpy", "ndarray", G_NDARRAY},
        {"numpy", "dtype", G_DTYPE},
    };
    for (size_t k = 0; k < sizeof allowed / sizeof allowed[0]; k++)
        if (strlen(allowed[k].mod) == mlen && memcmp(allowed[k].mod, mod, mlen) == 0 &&
            strlen(allowed[k].name) == nlen && memcmp(allowed[k].name, name, nlen) == 0) {
            dt_pk_obj *o = NULL;
            dt_status st = push_new(r, DT_PK_GLOBAL, &o);
            if (st == DT_OK)
                o->i = allowed[k].id;
            return st;
        }
    return bad(r, "a global other than NumPy's array and dtype");
}

/* GLOBAL: "module\nname\n". */
static dt_status op_global(reader *r)
{
    const uint8_t *start = r->buf + r->pos, *end = r->buf + r->len;
    const uint8_t *nl1 = memchr(start, '\n', (size_t)(end - start));
    const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    if (!nl2)
        return bad(r, "truncated global name");
    r->pos = (size_t)(nl2 + 1 - r->buf);
    return push_global(r, start, (size_t)(nl1 - start), nl1 + 1, (size_t)(nl2 - nl1 - 1));
}

static dt_status op_stack_global(reader *r)
{
    dt_pk_obj *mod = NULL, *name = NULL;
    dt_status st = pop(r, &name);
    if (st == DT_OK)
        st = pop(r, &mod);
    if (st == DT_OK && (mod->kind != DT_PK_TEXT || name->kind != DT_PK_TEXT))
        st = bad(r, "a global named by non-strings");
    return st ? st : push_global(r, mod->s, mod->len, name->s, name->len);
}

/* ---------------------------------------------------------- containers */

static dt_status tuple_of(reader *r, size_t from)
{
    dt_pk_obj *t = NULL;
    dt_status st = new_obj(r, DT_PK_TUPLE, &t);
    for (size_t k = from; st == DT_OK && k < r->sp; k++)
        st = add_item(r, t, r->stack[k]);
    if (st)
        return st;
    r->sp = from;
    return push(r, t);
}

/* TUPLE1..3: the top n items. */
static dt_status op_tuple_n(reader *r, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (r->sp <= k || r->stack[r->sp - 1 - k]->kind == DT_PK_MARK)
            return bad(r, "stack underflow");
    return tuple_of(r, r->sp - n);
}

static dt_status op_tuple_mark(reader *r)
{
    size_t at = 0;
    dt_status st = find_mark(r, &at);
    if (st)
        return st;
    st = tuple_of(r, at);
    if (st)
        return st;
    /* drop the mark under the new tuple */
    r->stack[at - 1] = r->stack[at];
    r->sp--;
    return DT_OK;
}

/* APPEND(S), SETITEM(S): the items above the mark (or the top 1 or 2) into
 * the list or dict just below them. */
static dt_status op_fill(reader *r, bool marked, size_t count, dt_pk_kind want)
{
    size_t from = 0;
    if (marked) {
        dt_status st = find_mark(r, &from);
        if (st)
            return st;
        if (from < 2)
            return bad(r, "nothing to add to");
    } else {
        if (r->sp < count + 1)
            return bad(r, "stack underflow");
        from = r->sp - count;
    }
    size_t target_at = marked ? from - 2 : from - 1;
    dt_pk_obj *target = r->stack[target_at];
    if (target->kind != want)
        return bad(r, want == DT_PK_LIST ? "append to a non-list" : "setitem on a non-dict");
    if (want == DT_PK_DICT && (r->sp - from) % 2)
        return bad(r, "a key without a value");
    for (size_t k = from; k < r->sp; k++) {
        if (r->stack[k]->kind == DT_PK_MARK)
            return bad(r, "stray mark");
        dt_status st = add_item(r, target, r->stack[k]);
        if (st)
            return st;
    }
    r->sp = target_at + 1;
    return DT_OK;
}

/* --------------------------------------------------------- numpy objects */

static bool tuple_len(const dt_pk_obj *o, size_t n) { return o->kind == DT_PK_TUPLE && o->n == n; }

/* REDUCE: _reconstruct(ndarray, (0,), b'b') -> an empty array;
 * dtype(code, align, copy) -> a dtype. */
static dt_status op_reduce(reader *r)
{
    dt_pk_obj *args = NULL, *fn = NULL, *o = NULL;
    dt_status st = pop(r, &args);
    if (st == DT_OK)
        st = pop(r, &fn);
    if (st)
        return st;
    if (fn->kind != DT_PK_GLOBAL || args->kind != DT_PK_TUPLE)
        return bad(r, "a call of something other than NumPy's array or dtype");
    if (fn->i == G_RECONSTRUCT) {
        if (!tuple_len(args, 3) || args->items[0]->kind != DT_PK_GLOBAL ||
            args->items[0]->i != G_NDARRAY)
            return bad(r, "an array reconstructed from unexpected arguments");
        return push_new(r, DT_PK_ARRAY, &o);
    }
    if (fn->i == G_DTYPE) {
        const dt_pk_obj *code = args->n >= 1 ? args->items[0] : NULL;
        if (!code || (code->kind != DT_PK_BYTES && code->kind != DT_PK_TEXT) || code->len < 2 ||
            code->len > 4)
            return bad(r, "a dtype without a type code");
        st = push_new(r, DT_PK_DTYPE, &o);
        if (st == DT_OK) {
            o->s = code->s;
            o->len = code->len;
            o->byteorder = '=';
            int64_t size = 0;
            for (size_t k = 1; k < code->len; k++) {
                if (code->s[k] < '0' || code->s[k] > '9')
                    return bad(r, "a dtype code that is not a letter and a size");
                size = size * 10 + (code->s[k] - '0');
            }
            o->i = size;
        }
        return st;
    }
    return bad(r, "a call of ndarray itself");
}

static dt_status build_dtype(reader *r, dt_pk_obj *d, const dt_pk_obj *state)
{
    /* (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]) */
    if (state->kind != DT_PK_TUPLE || state->n < 8 || state->n > 9 ||
        (state->items[1]->kind != DT_PK_BYTES && state->items[1]->kind != DT_PK_TEXT) ||
        state->items[1]->len != 1 || state->items[2]->kind != DT_PK_NONE)
        return bad(r, "a dtype state of an unexpected shape");
    d->byteorder = (char)state->items[1]->s[0];
    return DT_OK;
}

static dt_status build_array(reader *r, dt_pk_obj *a, const dt_pk_obj *state)
{
    /* (version, shape, dtype, is_fortran, data) or without the version */
    if (state->kind != DT_PK_TUPLE || (state->n != 5 && state->n != 4))
        return bad(r, "an array state of an unexpected shape");
    dt_pk_obj *const *s = state->items + (state->n == 5 ? 1 : 0);
    const dt_pk_obj *shape = s[0], *dtype = s[1], *fortran = s[2], *data = s[3];
    if (shape->kind != DT_PK_TUPLE || shape->n > 4 || dtype->kind != DT_PK_DTYPE ||
        (fortran->kind != DT_PK_BOOL && fortran->kind != DT_PK_INT) ||
        (data->kind != DT_PK_BYTES && data->kind != DT_PK_TEXT))
        return bad(r, "an array state of an unexpected shape");
    bool big = false;
    int64_t n = dtype->i;
    for (size_t k = 0; k < shape->n; k++) {
        if (shape->items[k]->kind != DT_PK_INT || shape->items[k]->i < 0)
            return bad(r, "an array shape that is not a tuple of sizes");
        a->shape[k] = shape->items[k]->i;
        if (__builtin_mul_overflow(n, a->shape[k], &n))
            big = true;
    }
    if (big || (uint64_t)n != data->len)
        return bad(r, "an array whose data size does not match its shape");
    a->ndim = (int)shape->n;
    a->dtype = (dt_pk_obj *)dtype;
    a->fortran = fortran->i != 0;
    a->s = data->s;
    a->len = data->len;
    return DT_OK;
}

static dt_status op_build(reader *r)
{
    dt_pk_obj *state = NULL, *obj = NULL;
    dt_status st = pop(r, &state);
    if (st == DT_OK)
        st = pop(r, &obj);
    if (st)
        return st;
    if (obj->kind == DT_PK_DTYPE)
        st = build_dtype(r, obj, state);
    else if (obj->kind == DT_PK_ARRAY && !obj->dtype)
        st = build_array(r, obj, state);
    else
        return bad(r, "a state set on something other than a new array or dtype");
    return st ? st : push(r, obj);
}

/* -------------------------------------------------------------- the loop */

static dt_status step(reader *r, bool *done)
{
    r->op_pos = r->pos;
    const uint8_t *p = NULL;
    dt_status st = take(r, 1, &p);
    if (st)
        return st;
    uint64_t v = 0;
    dt_pk_obj *o = NULL;
    switch (*p) {
    case 0x80: /* PROTO */
        st = take_le(r, 1, &v);
        return st ? st : v >= 2 && v <= 4 ? DT_OK : bad(r, "an unsupported protocol");
    case 0x95: /* FRAME: a hint only */
        return take_le(r, 8, &v);
    case '.': /* STOP */
        *done = true;
        return DT_OK;
    case '(': return push_new(r, DT_PK_MARK, &o);
    case '}': return push_new(r, DT_PK_DICT, &o);
    case ']': return push_new(r, DT_PK_LIST, &o);
    case ')': return push_new(r, DT_PK_TUPLE, &o);
    case 'N': return push_new(r, DT_PK_NONE, &o);
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
        st = push_new(r, DT_PK_BOOL, &o);
        if (st == DT_OK)
            o->i = *p == 0x88;
        return st;
    case 'K': return (st = take_le(r, 1, &v)) ? st : push_int(r, (int64_t)v);
    case 'M': return (st = take_le(r, 2, &v)) ? st : push_int(r, (int64_t)v);
    case 'J': return (st = take_le(r, 4, &v)) ? st : push_int(r, (int32_t)(uint32_t)v);
    case 0x8a: { /* LONG1: n little-endian two's complement bytes */
        uint64_t n = 0;
        if ((st = take_le(r, 1, &n)))
            return st;
        if (n > 8)
            return bad(r, "an integer wider than 64 bits");
        if ((st = take_le(r, (int)n, &v)))
            return st;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1)
            v |= ~(uint64_t)0 << (8 * n);
        return push_int(r, (int64_t)v);
    }
    case 'U': return push_string(r, DT_PK_BYTES, 1);   /* SHORT_BINSTRING (Python 2 str) */
    case 'T': return push_string(r, DT_PK_BYTES, 4);   /* BINSTRING */
    case 'C': return push_string(r, DT_PK_BYTES, 1);   /* SHORT_BINBYTES */
    case 'B': return push_string(r, DT_PK_BYTES, 4);   /* BINBYTES */
    case 0x8e: return push_string(r, DT_PK_BYTES, 8);  /* BINBYTES8 */
    case 0x8c: return push_string(r, DT_PK_TEXT, 1);   /* SHORT_BINUNICODE */
    case 'X': return push_string(r, DT_PK_TEXT, 4);    /* BINUNICODE */
    case 'q': return (st = take_le(r, 1, &v)) ? st : memo_put(r, (size_t)v);
    case 'r': return (st = take_le(r, 4, &v)) ? st : memo_put(r, (size_t)v);
    case 0x94: return memo_put(r, r->memo_len);        /* MEMOIZE */
    case 'h': return (st = take_le(r, 1, &v)) ? st : memo_get(r, (size_t)v);
    case 'j': return (st = take_le(r, 4, &v)) ? st : memo_get(r, (size_t)v);
    case 'c': return op_global(r);
    case 0x93: return op_stack_global(r);
    case 0x85: return op_tuple_n(r, 1);
    case 0x86: return op_tuple_n(r, 2);
    case 0x87: return op_tuple_n(r, 3);
    case 't': return op_tuple_mark(r);
    case 'a': return op_fill(r, false, 1, DT_PK_LIST);
    case 'e': return op_fill(r, true, 0, DT_PK_LIST);
    case 's': return op_fill(r, false, 2, DT_PK_DICT);
    case 'u': return op_fill(r, true, 0, DT_PK_DICT);
    case 'R': return op_reduce(r);
    case 'b': return op_build(r);
    default: {
        char what[48];
        snprintf(what, sizeof what, "unsupported opcode 0x%02x", *p);
        return bad(r, what);
    }
    }
}

dt_status dt_pickle_read(const uint8_t *buf, size_t len, const char *name, dt_pickle *out)
{
    memset(out, 0, sizeof *out);
    reader r = {.buf = buf, .len = len, .name = name, .out = out};
    if (len < 2 || buf[0] != 0x80)
        return dt_fail(DT_ERR_FORMAT, "%s: not a pickle file (no protocol 2+ header)", name);
    bool done = false;
    dt_status st = DT_OK;
    while (st == DT_OK && !done)
        st = step(&r, &done);
    if (st == DT_OK && (r.sp != 1 || r.stack[0]->kind == DT_PK_MARK))
        st = bad(&r, "the stack does not end with one value");
    if (st == DT_OK)
        out->root = r.stack[0];
    free(r.stack);
    free(r.memo);
    if (st)
        dt_pickle_free(out);
    return st;
}

const dt_pk_obj *dt_pk_dict_get(const dt_pk_obj *d, const char *key)
{
    if (!d || d->kind != DT_PK_DICT)
        return NULL;
    for (size_t k = 0; k + 1 < d->n; k += 2)
        if (str_is(d->items[k], key))
            return d->items[k + 1];
    return NULL;
}

bool dt_pk_array_is(const dt_pk_obj *a, const char *code)
{
    const dt_pk_obj *d = a && a->kind == DT_PK_ARRAY ? a->dtype : NULL;
    return d && strlen(code) == d->len && memcmp(d->s, code, d->len) == 0;
}

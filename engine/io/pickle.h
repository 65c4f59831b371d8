/* pickle.h - a restricted reader of Python pickles (internal: io/).
 *
 * Only what the pickled CIFAR batches hold (data_cifar_python.c): dicts,
 * lists, tuples, byte and text strings, integers, None and booleans, and
 * NumPy arrays as NumPy writes them (numpy.core.multiarray._reconstruct
 * of numpy.ndarray, with a numpy.dtype, then the array's state). No other
 * global can be named and nothing is ever called: the reader builds a tree
 * of plain values, so a hostile file can at worst be refused. It may share
 * values or contain itself (memo references): look values up, never walk
 * it whole. Every length
 * is checked against the bytes left, the stack, memo and object count are
 * bounded, and strings and array data point into the caller's buffer (no
 * copies). Protocols 2 to 4 (Python 2's cPickle writes 2). */
#ifndef DISTILL_IO_PICKLE_H
#define DISTILL_IO_PICKLE_H

#include "distill.h"

typedef enum dt_pk_kind {
    DT_PK_NONE, DT_PK_BOOL, DT_PK_INT, DT_PK_BYTES, DT_PK_TEXT, DT_PK_TUPLE, DT_PK_LIST,
    DT_PK_DICT, DT_PK_ARRAY,
    /* the reader's own: a result may still hold a global, a dtype or an
     * array never given its state (dtype NULL); users check kinds */
    DT_PK_MARK, DT_PK_GLOBAL, DT_PK_DTYPE
} dt_pk_kind;

typedef struct dt_pk_obj dt_pk_obj;
struct dt_pk_obj {
    dt_pk_kind kind;
    int64_t i;                 /* INT, BOOL; GLOBAL: which; DTYPE: item size */
    const uint8_t *s;          /* BYTES, TEXT (UTF-8), ARRAY data; DTYPE: its code */
    size_t len;                /* bytes of s */
    dt_pk_obj **items;         /* TUPLE, LIST; DICT: key, value, key, value... */
    size_t n, cap;
    /* ARRAY */
    int ndim;
    int64_t shape[4];
    bool fortran;
    dt_pk_obj *dtype;          /* ARRAY: its DTYPE */
    char byteorder;            /* DTYPE: '|', '<', '>' or '=' */
    dt_pk_obj *next_alloc;
};

typedef struct dt_pickle {
    dt_pk_obj *root;
    dt_pk_obj *objects;        /* every object, for dt_pickle_free */
    int64_t nobjects;
} dt_pickle;

/* Reads the pickle in buf[0..len) (which must outlive the result). Errors
 * start with `name` (the file) and give the byte offset. */
dt_status dt_pickle_read(const uint8_t *buf, size_t len, const char *name, dt_pickle *out);
void dt_pickle_free(dt_pickle *p);

/* The value of dict d under a byte or text string key, or NULL. */
const dt_pk_obj *dt_pk_dict_get(const dt_pk_obj *d, const char *key);
/* A NumPy array's element type: "u1", "i8", ... (the dtype's code). */
bool dt_pk_array_is(const dt_pk_obj *a, const char *code);

#endif

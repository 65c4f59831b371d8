/* data.c - core.dataio (distill.data is the Lua package): dataset readers, JPEG codec, transforms, the loader.
 *
 * Labels and indices cross into Lua 1-based (files store 0-based labels);
 * epochs are passed through unchanged. Loader workers never see the Lua
 * state: the loader userdata only wraps the engine's dt_loader. */
#include "bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LT_LOADER_MT "distill.data.Loader"

/* --------------------------------------------------------------- readers */

/* The file names of the list at index 1, kept alive by that list (the
 * array itself is Lua's, so a later error frees it). */
static const char **path_list(lua_State *L, const char *fn, int *n)
{
    *n = (int)luaL_len(L, 1);
    if (*n < 1 || *n > 1024)
        lt_error(L, fn, "expected 1 to 1024 file names, got %d", *n);
    const char **paths = lua_newuserdatauv(L, sizeof(char *) * (size_t)*n, 0);
    for (int i = 0; i < *n; i++) {
        lua_geti(L, 1, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            lt_error(L, fn, "file name %d is a %s, not a string", i + 1, lt_typename(L, -1));
        paths[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    return paths;
}

/* A reader's results: the images and the labels, made 1-based. */
static int push_dataset(lua_State *L, dt_tensor *images, dt_tensor *labels)
{
    lt_positions_to_lua(labels);
    lt_push(L, images);
    lt_push(L, labels);
    return 2;
}

/* read_cifar({paths}, label_bytes, label_pick) -> images, labels */
static int l_read_cifar(lua_State *L)
{
    const char *fn = "dataio.read_cifar";
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t label_bytes = lt_check_int(L, 2, fn, "label_bytes");
    int64_t pick = lt_opt_int(L, 3, fn, "label_pick", label_bytes);
    if (label_bytes != 1 && label_bytes != 2)
        return lt_error(L, fn, "label_bytes must be 1 (CIFAR-10) or 2 (CIFAR-100), got %lld",
                        (long long)label_bytes);
    if (pick < 1 || pick > label_bytes)
        return lt_error(L, fn, "label_pick must be 1..%lld", (long long)label_bytes);
    int n;
    const char **paths = path_list(L, fn, &n);
    dt_tensor *images, *labels;
    LT_TRY(L, fn, dt_read_cifar(n, paths, (int)label_bytes, (int)pick - 1, &images, &labels));
    return push_dataset(L, images, labels);
}

/* read_cifar_python({paths}, label_key) -> images, labels (1-based); label_key:
 * "labels" (CIFAR-10), "fine_labels" or "coarse_labels" (CIFAR-100). */
static int l_read_cifar_python(lua_State *L)
{
    const char *fn = "dataio.read_cifar_python";
    if (!lua_istable(L, 1))
        return lt_error(L, fn, "argument #1: expected a list of file names, got %s",
                        lt_typename(L, 1));
    if (lua_type(L, 2) != LUA_TSTRING)
        return lt_error(L, fn, "argument #2: expected the label key (\"labels\", "
                        "\"fine_labels\" or \"coarse_labels\"), got %s", lt_typename(L, 2));
    const char *key = lua_tostring(L, 2);
    int n;
    const char **paths = path_list(L, fn, &n);
    dt_tensor *images, *labels;
    LT_TRY(L, fn, dt_read_cifar_python(n, paths, key, &images, &labels));
    return push_dataset(L, images, labels);
}

static int l_read_idx(lua_State *L)
{
    const char *fn = "dataio.read_idx";
    const char *path = luaL_checkstring(L, 1);
    dt_tensor *t;
    LT_TRY(L, fn, dt_read_idx(path, &t));
    lt_push(L, t);
    return 1;
}

/* read_idx_pair(images_path, labels_path [, num_classes]) -> N x 1 x H x W uint8,
 * N int64 (1-based); with num_classes every stored label must be below it. */
static int l_read_idx_pair(lua_State *L)
{
    const char *fn = "dataio.read_idx_pair";
    const char *ip = luaL_checkstring(L, 1), *lp = luaL_checkstring(L, 2);
    int64_t classes = lt_opt_int(L, 3, fn, "num_classes", 0);
    if (lua_gettop(L) >= 3 && !lua_isnil(L, 3) && (classes < 1 || classes > 256))
        return lt_error(L, fn, "num_classes must be 1..256 (labels are bytes), got %lld",
                        (long long)classes);
    dt_tensor *images, *labels;
    LT_TRY(L, fn, dt_read_idx_pair(ip, lp, classes, &images, &labels));
    return push_dataset(L, images, labels);
}

/* ------------------------------------------------------------------ JPEG */

static int l_decode_jpeg(lua_State *L)
{
    const char *fn = "dataio.decode_jpeg";
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    int64_t min_h = lt_opt_field_int(L, 2, fn, "min_h", 0);
    int64_t min_w = lt_opt_field_int(L, 2, fn, "min_w", 0);
    dt_tensor *t;
    LT_TRY(L, fn, dt_jpeg_decode((const uint8_t *)buf, len, min_h, min_w, &t));
    lt_push(L, t);
    return 1;
}

/* read_jpeg(path [, {min_h=, min_w=}]) -> 3 x H x W uint8 */
static int l_read_jpeg(lua_State *L)
{
    const char *fn = "dataio.read_jpeg";
    const char *path = luaL_checkstring(L, 1);
    int64_t min_h = lt_opt_field_int(L, 2, fn, "min_h", 0);
    int64_t min_w = lt_opt_field_int(L, 2, fn, "min_w", 0);
    uint8_t *buf;
    size_t len;
    LT_TRY(L, fn, dt_read_file(path, (size_t)1 << 28, &buf, &len));
    dt_tensor *t;
    dt_status st = dt_jpeg_decode(buf, len, min_h, min_w, &t);
    free(buf);
    if (st)
        return lt_error(L, fn, "%s: %s", path, dt_last_error());
    lt_push(L, t);
    return 1;
}

/* check_jpeg(path) -> true | nil, "path: reason" (reads the header only) */
static int l_check_jpeg(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uint8_t *buf;
    size_t len;
    dt_status st = dt_read_file(path, (size_t)1 << 28, &buf, &len);
    if (st == DT_OK) {
        dt_jpeg_decoder *d;
        int64_t h, w;
        st = dt_jpeg_decoder_new(&d);
        if (st == DT_OK) {
            st = dt_jpeg_header(d, buf, len, &h, &w);
            dt_jpeg_decoder_free(d);
        }
        free(buf);
        if (st) {
            char why[512];
            snprintf(why, sizeof why, "%s", dt_last_error());
            dt_fail(st, "%s: %s", path, why);
        }
    }
    if (st) {
        lua_pushnil(L);
        lua_pushstring(L, dt_last_error());
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_encode_jpeg(lua_State *L)
{
    const char *fn = "dataio.encode_jpeg";
    dt_tensor *img = lt_check(L, 1, fn);
    int64_t q = lt_opt_int(L, 2, fn, "quality", 90);
    if (q < 1 || q > 100)
        return lt_error(L, fn, "quality must be 1..100, got %lld", (long long)q);
    uint8_t *buf;
    size_t len;
    LT_TRY(L, fn, dt_jpeg_encode(img, (int)q, &buf, &len));
    lua_pushlstring(L, (const char *)buf, len);
    free(buf);
    return 1;
}

/* ------------------------------------------------------------ transforms */

/* A size field: a number n (n x n) or {h, w}. */
static void size_field(lua_State *L, int op, const char *fn, const char *key, int64_t *h,
                       int64_t *w, int square)
{
    int t = lua_getfield(L, op, key);
    if (t == LUA_TNUMBER) {
        *h = lt_check_int(L, -1, fn, key);
        *w = square ? *h : 0;
    } else if (t == LUA_TTABLE && luaL_len(L, -1) == 2) {
        lua_geti(L, -1, 1);
        *h = lt_check_int(L, -1, fn, key);
        lua_geti(L, -2, 2);
        *w = lt_check_int(L, -1, fn, key);
        lua_pop(L, 2);
        if (*w <= 0)
            lt_error(L, fn, "%s: sizes must be positive", key);
    } else {
        lt_error(L, fn, "'%s' must be a number or {h, w}, got %s", key, lt_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* A pair field {lo, hi} with a default. */
static void pair_field(lua_State *L, int op, const char *fn, const char *key, double *v,
                       double d0, double d1)
{
    int t = lua_getfield(L, op, key);
    v[0] = d0;
    v[1] = d1;
    if (t == LUA_TTABLE && luaL_len(L, -1) == 2) {
        lua_geti(L, -1, 1);
        v[0] = lt_check_num(L, -1, fn, key);
        lua_geti(L, -2, 2);
        v[1] = lt_check_num(L, -1, fn, key);
        lua_pop(L, 2);
    } else if (t != LUA_TNIL) {
        lt_error(L, fn, "'%s' must be a pair {lo, hi}, got %s", key, lt_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* A list of numbers (or one number) into v; returns its length. */
static int list_field(lua_State *L, int op, const char *fn, const char *key, double *v)
{
    int t = lua_getfield(L, op, key), n = 0;
    if (t == LUA_TNUMBER) {
        v[0] = lua_tonumber(L, -1);
        n = 1;
    } else if (t == LUA_TTABLE) {
        n = (int)luaL_len(L, -1);
        if (n < 1 || n > DT_TF_MAX_CHANNELS)
            lt_error(L, fn, "'%s' needs 1 to %d numbers, got %d", key, DT_TF_MAX_CHANNELS, n);
        for (int i = 0; i < n; i++) {
            lua_geti(L, -1, i + 1);
            v[i] = lt_check_num(L, -1, fn, key);
            lua_pop(L, 1);
        }
    } else {
        lt_error(L, fn, "normalize needs '%s' (a number or a list), got %s", key,
                 lt_typename(L, -1));
    }
    lua_pop(L, 1);
    return n;
}

/* A list of op tables {op = "random_crop", size = 32, padding = 4}, ... */
static void check_transform(lua_State *L, int idx, const char *fn, dt_transform *tf)
{
    memset(tf, 0, sizeof *tf);
    if (lua_isnoneornil(L, idx))
        return;
    idx = lua_absindex(L, idx);
    if (!lua_istable(L, idx))
        lt_error(L, fn, "transform must be a list of ops, got %s", lt_typename(L, idx));
    int n = (int)luaL_len(L, idx);
    if (n > DT_TF_MAX_OPS)
        lt_error(L, fn, "a transform has at most %d ops, got %d", DT_TF_MAX_OPS, n);
    for (int i = 0; i < n; i++) {
        lua_geti(L, idx, i + 1);
        int op = lua_gettop(L);
        if (!lua_istable(L, op) || lua_getfield(L, op, "op") != LUA_TSTRING)
            lt_error(L, fn, "transform op %d must be a table with a string field 'op'", i + 1);
        const char *name = lua_tostring(L, -1);
        dt_tf_op *o = &tf->ops[i];
        o->p = 0.5;
        if (strcmp(name, "random_crop") == 0) {
            o->kind = DT_TF_RANDOM_CROP;
            size_field(L, op, fn, "size", &o->h, &o->w, 1);
            o->padding = lt_opt_field_int(L, op, fn, "padding", 0);
        } else if (strcmp(name, "horizontal_flip") == 0) {
            o->kind = DT_TF_HFLIP;
            o->p = lt_opt_field_num(L, op, fn, "p", 0.5);
        } else if (strcmp(name, "to_float") == 0) {
            o->kind = DT_TF_TO_FLOAT;
        } else if (strcmp(name, "normalize") == 0) {
            o->kind = DT_TF_NORMALIZE;
            o->nmean = list_field(L, op, fn, "mean", o->mean);
            o->nstd = list_field(L, op, fn, "std", o->std);
        } else if (strcmp(name, "random_resized_crop") == 0) {
            o->kind = DT_TF_RANDOM_RESIZED_CROP;
            size_field(L, op, fn, "size", &o->h, &o->w, 1);
            pair_field(L, op, fn, "scale", o->scale, 0.08, 1.0);
            pair_field(L, op, fn, "ratio", o->ratio, 3.0 / 4.0, 4.0 / 3.0);
        } else if (strcmp(name, "resize") == 0) {
            o->kind = DT_TF_RESIZE;
            size_field(L, op, fn, "size", &o->h, &o->w, 0);
        } else if (strcmp(name, "center_crop") == 0) {
            o->kind = DT_TF_CENTER_CROP;
            size_field(L, op, fn, "size", &o->h, &o->w, 1);
        } else {
            lt_error(L, fn, "unknown transform op '%s'", name);
        }
        lua_settop(L, op - 1);
        tf->nops = i + 1;
    }
    if (dt_transform_validate(tf))
        lt_fail(L, fn);
}

/* transform(ops, image, seed, epoch, position) -> tensor (position 1-based) */
static int l_transform(lua_State *L)
{
    const char *fn = "dataio.transform";
    dt_transform tf;
    check_transform(L, 1, fn, &tf);
    dt_tensor *img = lt_check(L, 2, fn);
    int64_t seed = lt_opt_int(L, 3, fn, "seed", 0);
    int64_t epoch = lt_opt_int(L, 4, fn, "epoch", 1);
    int64_t pos = lt_opt_int(L, 5, fn, "position", 1);
    if (img->dtype != DT_UINT8 || img->ndim != 3 || img->shape[0] > DT_TF_MAX_CHANNELS)
        return lt_error(L, fn, "expected a C x H x W uint8 image (C <= %d)", DT_TF_MAX_CHANNELS);
    dt_tensor *out;
    LT_TRY(L, fn, dt_transform_image(&tf, img, dt_data_sample_key((uint64_t)seed, epoch, pos - 1),
                                     &out));
    lt_push(L, out);
    return 1;
}

/* transform_batch(ops, {images}, seed, epoch, first_position) -> N x C x H x W */
static int l_transform_batch(lua_State *L)
{
    const char *fn = "dataio.transform_batch";
    dt_transform tf;
    check_transform(L, 1, fn, &tf);
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t seed = lt_opt_int(L, 3, fn, "seed", 0);
    int64_t epoch = lt_opt_int(L, 4, fn, "epoch", 1);
    int64_t first = lt_opt_int(L, 5, fn, "position", 1);
    int64_t n = (int64_t)luaL_len(L, 2);
    if (n < 1)
        return lt_error(L, fn, "expected a non-empty list of images");
    /* the images stay referenced by the list while the engine reads them */
    const dt_tensor **images = lua_newuserdatauv(L, (size_t)n * sizeof *images, 0);
    for (int64_t i = 0; i < n; i++) {
        lua_geti(L, 2, i + 1);
        images[i] = lt_to(L, -1);
        lua_pop(L, 1);
        if (!images[i])
            return lt_error(L, fn, "sample %lld: expected a C x H x W uint8 image tensor",
                            (long long)i + 1);
    }
    dt_tensor *out;
    LT_TRY(L, fn, dt_transform_batch(&tf, n, images, (uint64_t)seed, epoch, first - 1, &out));
    lt_push(L, out);
    return 1;
}

/* ----------------------------------------------------------------- loader */

typedef struct lt_loader {
    dt_loader *l;
} lt_loader;

static dt_loader *check_loader(lua_State *L, const char *fn)
{
    lt_loader *u = luaL_testudata(L, 1, LT_LOADER_MT);
    if (!u)
        lt_error(L, fn, "expected a loader, got %s", lt_typename(L, 1));
    if (!u->l)
        lt_error(L, fn, "the loader was closed");
    return u->l;
}

static const char *const loader_keys[] = {
    "images", "labels", "paths", "transform", "batch_size", "shuffle", "drop_last",
    "workers", "seed", "prefetch", "on_error", "shard", "shards", "keep_short", NULL,
};

/* loader_new{images= | paths=, labels=, transform=, batch_size=, ...} */
static int l_loader_new(lua_State *L)
{
    const char *fn = "dataio.loader";
    luaL_checktype(L, 1, LUA_TTABLE);
    lt_check_option_keys(L, 1, fn, loader_keys);
    dt_loader_opts o;
    memset(&o, 0, sizeof o);
    o.batch_size = lt_opt_field_int(L, 1, fn, "batch_size", 1);
    o.shuffle = lt_opt_field_bool(L, 1, fn, "shuffle", 0);
    o.drop_last = lt_opt_field_bool(L, 1, fn, "drop_last", 0);
    int64_t workers = lt_opt_field_int(L, 1, fn, "workers", 0);
    o.seed = (uint64_t)lt_opt_field_int(L, 1, fn, "seed", 0);
    int64_t prefetch = lt_opt_field_int(L, 1, fn, "prefetch", 0);
    const char *on_error = lt_opt_field_str(L, 1, fn, "on_error", "error");
    if (workers < 0 || workers > DT_LOADER_MAX_WORKERS)
        return lt_error(L, fn, "workers must be 0..%d, got %lld", DT_LOADER_MAX_WORKERS,
                        (long long)workers);
    if (prefetch < 0 || prefetch > DT_LOADER_MAX_PREFETCH)
        return lt_error(L, fn, "prefetch must be 0..%d batches, got %lld",
                        DT_LOADER_MAX_PREFETCH, (long long)prefetch);
    o.workers = (int)workers;
    o.prefetch = (int)prefetch;
    if (strcmp(on_error, "error") != 0 && strcmp(on_error, "skip") != 0)
        return lt_error(L, fn, "on_error must be \"error\" or \"skip\", got \"%s\"", on_error);
    o.skip_errors = strcmp(on_error, "skip") == 0;
    /* this process's share of each batch: shard (1-based) of shards */
    int64_t shards = lt_opt_field_int(L, 1, fn, "shards", 1);
    int64_t shard = lt_opt_field_int(L, 1, fn, "shard", 1);
    if (shards < 1 || shards > 1 << 20 || shard < 1 || shard > shards)
        return lt_error(L, fn, "shard %lld of %lld: expected 1 <= shard <= shards",
                        (long long)shard, (long long)shards);
    o.shards = (int)shards;
    o.shard = (int)shard - 1;
    o.keep_short = lt_opt_field_bool(L, 1, fn, "keep_short", 0);
    dt_transform tf;
    lua_getfield(L, 1, "transform");
    check_transform(L, -1, fn, &tf);
    lua_pop(L, 1);
    lua_getfield(L, 1, "labels");   /* stays on the stack while used */
    dt_tensor *labels = lua_isnil(L, -1) ? NULL : lt_check(L, lua_gettop(L), fn);
    lt_loader *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->l = NULL;
    luaL_setmetatable(L, LT_LOADER_MT);
    int ud = lua_gettop(L);
    dt_status st;
    if (lua_getfield(L, 1, "images") != LUA_TNIL) {
        dt_tensor *images = lt_check(L, lua_gettop(L), fn);
        st = dt_loader_new_tensor(images, labels, &tf, &o, &u->l);
    } else if (lua_getfield(L, 1, "paths") == LUA_TTABLE) {
        int paths_idx = lua_gettop(L);
        int64_t n = (int64_t)luaL_len(L, paths_idx);
        const char **paths = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n > 0 ? n : 1), 0);
        for (int64_t i = 0; i < n; i++) {
            lua_geti(L, paths_idx, i + 1);
            if (lua_type(L, -1) != LUA_TSTRING)
                return lt_error(L, fn, "paths[%lld] is a %s, not a string", (long long)i + 1,
                                lt_typename(L, -1));
            paths[i] = lua_tostring(L, -1);
            lua_pop(L, 1);
        }
        st = dt_loader_new_files(n, paths, labels, &tf, &o, &u->l);
    } else {
        return lt_error(L, fn, "needs images (an N x C x H x W uint8 tensor) or paths (a list "
                        "of JPEG files)");
    }
    if (st)
        return lt_fail(L, fn);
    lua_settop(L, ud);
    return 1;
}

static int m_start(lua_State *L)
{
    const char *fn = "Loader:start";
    dt_loader *l = check_loader(L, fn);
    LT_TRY(L, fn, dt_loader_start(l, lt_opt_int(L, 2, fn, "epoch", 1)));
    return 0;
}

/* next() -> input, target, index (1-based), or nothing at the end */
static int m_next(lua_State *L)
{
    const char *fn = "Loader:next";
    dt_loader *l = check_loader(L, fn);
    dt_tensor *input, *target, *index;
    /* The loader reuses a batch's buffers once Lua has dropped the batch.
     * Lua does not see the buffers' weight (and in generational mode keeps
     * aged userdata until a major collection), so when no buffer is free,
     * collect now rather than allocate and fault in fresh memory. */
    if (dt_loader_spare_buffers(l) == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    LT_TRY(L, fn, dt_loader_next(l, &input, &target, &index));
    if (!input)
        return 0;
    lt_positions_to_lua(index);
    lt_push(L, input);
    lt_push(L, target);
    lt_push(L, index);
    return 3;
}

static int m_stop(lua_State *L)
{
    dt_loader_stop(check_loader(L, "Loader:stop"));
    return 0;
}

static int m_len(lua_State *L)
{
    lua_pushinteger(L, dt_loader_num_batches(check_loader(L, "Loader:__len")));
    return 1;
}

static int m_size(lua_State *L)
{
    lua_pushinteger(L, dt_loader_size(check_loader(L, "Loader:size")));
    return 1;
}

static int m_skipped(lua_State *L)
{
    lua_pushinteger(L, dt_loader_skipped(check_loader(L, "Loader:skipped")));
    return 1;
}

static int m_gc(lua_State *L)
{
    lt_loader *u = luaL_checkudata(L, 1, LT_LOADER_MT);
    dt_loader_free(u->l);   /* stops and joins the workers */
    u->l = NULL;
    return 0;
}

static int m_tostring(lua_State *L)
{
    lt_loader *u = luaL_checkudata(L, 1, LT_LOADER_MT);
    if (!u->l)
        lua_pushliteral(L, "Loader(<closed>)");
    else
        lua_pushfstring(L, "Loader(%d samples, %d batches)", (int)dt_loader_size(u->l),
                        (int)dt_loader_num_batches(u->l));
    return 1;
}

static const luaL_Reg loader_methods[] = {
    {"start", m_start}, {"next", m_next}, {"stop", m_stop}, {"size", m_size},
    {"num_batches", m_len}, {"skipped", m_skipped}, {"close", m_gc}, {NULL, NULL},
};

static const luaL_Reg loader_meta[] = {
    {"__gc", m_gc}, {"__close", m_gc}, {"__len", m_len}, {"__tostring", m_tostring},
    {NULL, NULL},
};

/* epoch_order(n, seed, epoch) -> int64 tensor of 1-based positions */
static int l_epoch_order(lua_State *L)
{
    const char *fn = "dataio.epoch_order";
    int64_t n = lt_check_int(L, 1, fn, "n");
    int64_t seed = lt_opt_int(L, 2, fn, "seed", 0), epoch = lt_opt_int(L, 3, fn, "epoch", 1);
    if (n < 0)
        return lt_error(L, fn, "n must be >= 0, got %lld", (long long)n);
    dt_tensor *t;
    LT_TRY(L, fn, dt_empty(DT_INT64, 1, &n, &t));
    dt_data_epoch_order((uint64_t)seed, epoch, n, dt_i64(t));
    lt_positions_to_lua(t);
    lt_push(L, t);
    return 1;
}

static int l_wallclock(lua_State *L)
{
    lua_pushnumber(L, dt_wallclock());
    return 1;
}

static const luaL_Reg data_funcs[] = {
    {"read_cifar", l_read_cifar}, {"read_cifar_python", l_read_cifar_python},
    {"read_idx", l_read_idx}, {"read_idx_pair", l_read_idx_pair},
    {"decode_jpeg", l_decode_jpeg}, {"read_jpeg", l_read_jpeg}, {"check_jpeg", l_check_jpeg},
    {"encode_jpeg", l_encode_jpeg}, {"transform", l_transform},
    {"transform_batch", l_transform_batch}, {"loader_new", l_loader_new},
    {"epoch_order", l_epoch_order}, {"wallclock", l_wallclock}, {NULL, NULL},
};

void lt_open_data(lua_State *L, int mod_idx)
{
    mod_idx = lua_absindex(L, mod_idx);
    luaL_newmetatable(L, LT_LOADER_MT);
    luaL_setfuncs(L, loader_meta, 0);
    luaL_newlib(L, loader_methods);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "Loader");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newlib(L, data_funcs);
    lua_setfield(L, mod_idx, "dataio");
}

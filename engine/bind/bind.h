/*
 * bind.h - shared helpers of the Lua binding (internal to engine/bind/).
 *
 * Conventions:
 *  - Every Lua-visible function has a name like "distill.zeros" or
 *    "Tensor:view"; error messages start with it.
 *  - Lua counts from 1. lt_check_dim() converts a dim, lt_to_engine_positions()
 *    every index-like tensor (indices, class labels, bank rows) to the
 *    engine's 0-based numbering; lt_positions_to_lua() converts results
 *    back. Nothing else shifts by one.
 *  - A binding never raises while holding a temporary engine reference:
 *    release first, then call lt_fail()/luaL_error().
 */
#ifndef DISTILL_BIND_H
#define DISTILL_BIND_H

#include <lauxlib.h>
#include <lua.h>

#include "../distill.h"

#define LT_TENSOR_MT "distill.Tensor"
#define LT_METHODS_KEY "distill.Tensor.methods"
#define LT_GETTERS_KEY "distill.Tensor.getters"
#define LT_SETTERS_KEY "distill.Tensor.setters"

typedef struct lt_tensor {
    dt_tensor *t;   /* NULL after :free() */
} lt_tensor;

/* Push a tensor, taking over the caller's reference (t must not be NULL). */
void lt_push(lua_State *L, dt_tensor *t);
/* The tensor at idx, or a Lua error "fn: argument #arg: expected a tensor, got T". */
dt_tensor *lt_check(lua_State *L, int idx, const char *fn);
/* lt_check for the tensor an in-place op writes: also lt_check_inplace. */
dt_tensor *lt_check_mutable(lua_State *L, int idx, const char *fn);
/* The type of the value at idx for messages: "tensor", "freed tensor
 * (...)" for a tensor whose :free() was called, else Lua's type name. */
const char *lt_typename(lua_State *L, int idx);
/* The tensor at idx, or NULL when idx is not a tensor or was freed (no error). */
dt_tensor *lt_to(lua_State *L, int idx);
/* A tensor from idx: tensors as they are (retained), numbers as 0-d tensors
 * of `dtype_for_numbers`. Caller releases. */
dt_tensor *lt_check_tensor_or_number(lua_State *L, int idx, const char *fn, dt_dtype dtype_for_numbers);

/* Raise "fn: <engine's last error>". */
int lt_fail(lua_State *L, const char *fn);
/* Raise "fn: <formatted message>". */
int lt_error(lua_State *L, const char *fn, const char *fmt, ...);
/* Push the result *out and return 1, or raise fn's engine error when st
 * failed. `out` is passed by address so that a call may compute st in the
 * same expression that fills *out. */
int lt_push_or_fail(lua_State *L, const char *fn, dt_status st, dt_tensor **out);
/* A method fn of the tensor at index 1 that returns op's new tensor. */
typedef dt_status (*lt_tensor_op)(dt_tensor *t, dt_tensor **out);
int lt_tensor_method(lua_State *L, const char *fn, lt_tensor_op op);
#define LT_TRY(L, fn, call)                      \
    do {                                         \
        if ((call) != DT_OK)                     \
            return lt_fail((L), (fn));           \
    } while (0)

/* Integers with messages naming fn. */
int64_t lt_check_int(lua_State *L, int idx, const char *fn, const char *what);
int64_t lt_opt_int(lua_State *L, int idx, const char *fn, const char *what, int64_t def);
double lt_check_num(lua_State *L, int idx, const char *fn, const char *what);
/* A 1-based Lua dim (negative counts from the end) -> 0-based engine dim,
 * range-checked against ndim (use ndim+1 for unsqueeze-like insertions). */
int lt_check_dim(lua_State *L, int idx, const char *fn, int ndim);
int lt_dim_from_lua(lua_State *L, int64_t d, const char *fn, int ndim);
/* A shape given as a table {2, 3} or as integers from idx to the top.
 * Returns ndim; sizes may be -1 only if allow_infer. */
int lt_check_shape(lua_State *L, int idx, const char *fn, int64_t *shape, int allow_infer);
/* "float32"/"int64"/"uint8" (and aliases) at idx, or def when nil/none. */
dt_dtype lt_opt_dtype(lua_State *L, int idx, const char *fn, dt_dtype def);

/* How the values of an index-like argument are checked on their way to the
 * engine: 1..size are valid (no upper bound when size < 0), and `skip`
 * (when has_skip) passes unchecked, shifted like the rest (ignore_index).
 * describe() writes the message for the first bad value v, at 0-based
 * element i; with describe NULL nothing is checked (the engine does). */
typedef struct lt_positions {
    int64_t size;
    bool has_skip;
    int64_t skip;
    void (*describe)(char *buf, size_t len, int64_t v, int64_t i, const void *ctx);
    const void *ctx;
} lt_positions;

/* A new contiguous 0-based int64 tensor of the 1-based values at idx: an
 * int64 tensor (the caller has checked the dtype), or a Lua list of
 * integers. Raises "fn: <describe's message>" for a bad value. */
dt_tensor *lt_to_engine_positions(lua_State *L, int idx, const char *fn, const lt_positions *p);
/* 0-based engine positions -> Lua's 1-based, in place on a fresh contiguous
 * int64 tensor. */
void lt_positions_to_lua(dt_tensor *t);

/* Fields of an options table at idx (nil/none idx means no options). */
double lt_opt_field_num(lua_State *L, int idx, const char *fn, const char *key, double def);
int64_t lt_opt_field_int(lua_State *L, int idx, const char *fn, const char *key, int64_t def);
int lt_opt_field_bool(lua_State *L, int idx, const char *fn, const char *key, int def);
const char *lt_opt_field_str(lua_State *L, int idx, const char *fn, const char *key, const char *def);
/* Reject keys of an options table that are not in `valid` (NULL-terminated). */
void lt_check_option_keys(lua_State *L, int idx, const char *fn, const char *const *valid);

/* Raise unless an in-place write to t is safe for autograd (grad mode off,
 * or t outside the graph). Every in-place binding calls it first. */
void lt_check_inplace(lua_State *L, dt_tensor *t, const char *fn);

/* Register C functions: `funcs` into the module table at mod_idx and
 * `methods` into the Tensor methods table (both may be NULL). */
void lt_register(lua_State *L, int mod_idx, const luaL_Reg *funcs, const luaL_Reg *methods);
/* Property getter/setter for t.name (autograd's requires_grad, grad...). */
void lt_register_property(lua_State *L, const char *name, lua_CFunction getter, lua_CFunction setter);

/* Per-area registration, called by luaopen_distill_core. */
void lt_open_core(lua_State *L, int mod_idx);     /* Tensor userdata, memory (core.c) */
void lt_open_tensor(lua_State *L, int mod_idx);   /* creation, views, access */
void lt_open_math(lua_State *L, int mod_idx);     /* elementwise, reductions */
void lt_open_linalg(lua_State *L, int mod_idx);   /* mm, bmm, matmul */
void lt_open_index(lua_State *L, int mod_idx);    /* gather, cat, split... */
void lt_open_random(lua_State *L, int mod_idx);   /* seeds and random fills */
void lt_open_data(lua_State *L, int mod_idx);     /* dataset readers, transforms, loader */
void lt_open_autograd(lua_State *L, int mod_idx); /* requires_grad, backward, no_grad */
void lt_open_nn(lua_State *L, int mod_idx);       /* conv, pooling, batch norm */
void lt_open_functional(lua_State *L, int mod_idx); /* activations, losses, distances */
void lt_open_optim(lua_State *L, int mod_idx);    /* fused optimizer steps */
void lt_open_checkpoint(lua_State *L, int mod_idx); /* safetensors files */
void lt_open_contrast(lua_State *L, int mod_idx); /* FSECD loss, CRD memory-bank ops */
void lt_open_profile(lua_State *L, int mod_idx);  /* per-op-kind timers */
void lt_open_gemm(lua_State *L, int mod_idx);     /* gemm_f32: the internal GEMM, for specs */
void lt_open_cpu(lua_State *L, int mod_idx);      /* isa, set_isa, cpu_info */
void lt_open_dist(lua_State *L, int mod_idx);     /* MPI collectives, DDP */
void lt_open_process(lua_State *L, int mod_idx);  /* child processes, stop signals */
void lt_open_interrupt(lua_State *L, int mod_idx); /* Ctrl-C as a Lua error */

#endif /* DISTILL_BIND_H */

/* init.c - luaopen_distill_core: the engine started and every part of the
 * binding opened into one module table (as Lua's linit.c lists its
 * libraries). A later part may add to what an earlier one registered. */
#include "bind.h"

typedef void (*lt_opener)(lua_State *L, int mod);

static const lt_opener openers[] = {
    lt_open_core,       /* Tensor userdata, memory */
    lt_open_tensor,     /* creation, views, access */
    lt_open_random,     /* seeds and random fills */
    lt_open_math,       /* elementwise, reductions */
    lt_open_linalg,     /* mm, bmm, matmul */
    lt_open_index,      /* gather, cat, split... */
    lt_open_data,       /* dataset readers, transforms, loader */
    lt_open_autograd,   /* requires_grad, backward, no_grad */
    lt_open_nn,         /* conv, pooling, batch norm */
    lt_open_functional, /* activations, losses, distances */
    lt_open_optim,      /* fused optimizer steps */
    lt_open_checkpoint, /* safetensors files */
    lt_open_contrast,   /* FSECD loss, CRD memory-bank ops */
    lt_open_profile,    /* per-op-kind timers */
    lt_open_gemm,       /* gemm_f32: the internal GEMM, for specs */
    lt_open_cpu,        /* isa, set_isa, cpu_info */
    lt_open_dist,       /* MPI collectives, DDP */
    lt_open_process,    /* child processes, stop signals (the sweep runner) */
    lt_open_interrupt,  /* Ctrl-C as a Lua error */
};

int luaopen_distill_core(lua_State *L)
{
    if (dt_engine_init() != DT_OK)
        return luaL_error(L, "distill: %s", dt_last_error());
    lua_newtable(L);
    int mod = lua_gettop(L);
    for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++)
        openers[i](L, mod);
    /* The pacing (core.c) relies on generational mode's cheap minor
     * collections; lua5.4 (lua.c) starts in it, an embedding host may not. */
    lua_gc(L, LUA_GCGEN, 0, 0);
    /* The methods table, so Lua code can add methods (nn helpers...). */
    lua_getfield(L, LUA_REGISTRYINDEX, LT_METHODS_KEY);
    lua_setfield(L, mod, "Tensor");
    return 1;
}

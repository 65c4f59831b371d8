/* bind/cpu.c - which vector kernels run (engine/cpu/, distill.h):
 *
 *   distill.isa()            -> "generic" | "avx2" | "avx512", the set in use
 *   distill.set_isa(name)    -> the previous name; name "auto" (or nil) is
 *                               the best the CPU runs; an ISA the CPU lacks
 *                               is an error naming it and the CPU
 *   distill.cpu_info()       -> {model = "AMD EPYC ...", isa = "avx2",
 *                               isas = {"generic", "avx2"}, blas = "OpenBLAS
 *                               0.3.21 ..."}: isas lists what this CPU and
 *                               build run, generic first */
#include "bind.h"

static int l_isa(lua_State *L)
{
    lua_pushstring(L, dt_isa_name());
    return 1;
}

static int l_set_isa(lua_State *L)
{
    const char *fn = "distill.set_isa";
    if (!lua_isnoneornil(L, 1) && lua_type(L, 1) != LUA_TSTRING)
        return lt_error(L, fn, "argument #1: expected an ISA name (\"auto\", \"generic\", "
                        "\"avx2\" or \"avx512\"), got %s", lt_typename(L, 1));
    const char *before = dt_isa_name();
    LT_TRY(L, fn, dt_isa_set(lua_tostring(L, 1)));
    lua_pushstring(L, before);
    return 1;
}

static int l_cpu_info(lua_State *L)
{
    const char *names[8];
    int n = dt_isa_list(names, 8);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, dt_cpu_model());
    lua_setfield(L, -2, "model");
    lua_pushstring(L, dt_blas_info());
    lua_setfield(L, -2, "blas");
    lua_pushstring(L, dt_isa_name());
    lua_setfield(L, -2, "isa");
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "isas");
    return 1;
}

static const luaL_Reg funcs[] = {
    {"isa", l_isa},
    {"set_isa", l_set_isa},
    {"cpu_info", l_cpu_info},
    {NULL, NULL},
};

void lt_open_cpu(lua_State *L, int mod_idx) { lt_register(L, mod_idx, funcs, NULL); }

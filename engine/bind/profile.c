/* bind/profile.c - distill.profile: start(), stop(), report(), enabled(), now(). */
#include "bind.h"


static int l_start(lua_State *L)
{
    (void)L;
    dt_prof_start();
    return 0;
}

static int l_stop(lua_State *L)
{
    (void)L;
    dt_prof_stop();
    return 0;
}

/* now() -> seconds on CLOCK_MONOTONIC (for wall-clock benchmarks). */
static int l_now(lua_State *L)
{
    lua_pushnumber(L, dt_wallclock());
    return 1;
}

static int l_enabled(lua_State *L)
{
    lua_pushboolean(L, dt_prof_on());
    return 1;
}

/* report() -> {kind = {calls =, seconds =}, ..., untimed = {calls = 0, seconds =},
 *              wall = seconds}. untimed: wall time outside every timed kernel
 *              (Lua, autograd bookkeeping, allocation, views). */
static int l_report(lua_State *L)
{
    lua_newtable(L);
    double total = 0.0;
    for (int k = 0; k < DT_PROF_NKINDS; k++) {
        int64_t calls;
        double secs;
        dt_prof_get((dt_prof_kind)k, &calls, &secs);
        total += secs;
        lua_createtable(L, 0, 2);
        lua_pushinteger(L, (lua_Integer)calls);
        lua_setfield(L, -2, "calls");
        lua_pushnumber(L, secs);
        lua_setfield(L, -2, "seconds");
        lua_setfield(L, -2, dt_prof_kind_name((dt_prof_kind)k));
    }
    double wall = dt_prof_wall();
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "calls");
    lua_pushnumber(L, wall > total ? wall - total : 0.0);
    lua_setfield(L, -2, "seconds");
    lua_setfield(L, -2, "untimed");
    lua_pushnumber(L, wall);
    lua_setfield(L, -2, "wall");
    return 1;
}

void lt_open_profile(lua_State *L, int mod_idx)
{
    static const luaL_Reg fns[] = {
        {"start", l_start}, {"stop", l_stop}, {"report", l_report}, {"enabled", l_enabled}, {"now", l_now},
        {NULL, NULL},
    };
    lua_createtable(L, 0, 4);
    luaL_setfuncs(L, fns, 0);
    lua_setfield(L, mod_idx, "profile");
}

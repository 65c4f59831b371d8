/* bind/process.c - distill.core.process, child processes for the sweep
 * runner (engine/tools/process.c):
 *
 *   process.spawn(argv, {output = path, env = {KEY = "value"}}) -> pid
 *   process.wait(pids, timeout) -> pid, "exit" | "signal", code   (nil: none ended)
 *   process.signal(pid, "INT" | "TERM" | "KILL" | "HUP" | "USR1")
 *   process.watch_stop_signals(on)   -- SIGINT/SIGTERM counted instead of handled
 *   process.stop_signals() -> count, last ("INT" | "TERM" | nil)
 *   process.cpu_count(), process.getpid() */
#include "bind.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct {
    const char *name;
    int number;
} SIGNALS[] = {
    {"INT", SIGINT}, {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"HUP", SIGHUP}, {"USR1", SIGUSR1},
};

static const char *signal_name(int number)
{
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++)
        if (SIGNALS[i].number == number)
            return SIGNALS[i].name;
    return NULL;
}

/* A Lua list of strings at idx as a NULL-terminated array of borrowed
 * pointers (kept alive by the list); malloc'd. Checked before anything is
 * allocated, so that the error leaves nothing behind. */
static const char **string_list(lua_State *L, int idx, const char *fn, const char *what, int *n_out)
{
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        int type = lua_geti(L, idx, i);
        lua_pop(L, 1);
        if (type != LUA_TSTRING)
            lt_error(L, fn, "%s[%d]: expected a string, got %s", what, (int)i, lua_typename(L, type));
    }
    const char **list = malloc(((size_t)n + 1) * sizeof *list);
    if (!list)
        return NULL;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, idx, i);
        list[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    list[n] = NULL;
    *n_out = (int)n;
    return list;
}

static int l_spawn(lua_State *L)
{
    const char *fn = "process.spawn";
    if (lua_type(L, 1) != LUA_TTABLE)
        return lt_error(L, fn, "argument #1: expected argv, a list of strings, got %s",
                        luaL_typename(L, 1));
    if (lua_type(L, 2) != LUA_TTABLE)
        return lt_error(L, fn, "argument #2: expected options {output =, env =}, got %s",
                        luaL_typename(L, 2));
    lua_getfield(L, 2, "output");
    if (lua_type(L, -1) != LUA_TSTRING)
        return lt_error(L, fn, "options.output: expected a file path, got %s", luaL_typename(L, -1));
    const char *output = lua_tostring(L, -1);
    /* env {KEY = "value"} becomes a list of "KEY=value" strings on the stack */
    lua_newtable(L);
    int env_idx = lua_gettop(L);
    lua_getfield(L, 2, "env");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TTABLE)
            return lt_error(L, fn, "options.env: expected a table {KEY = \"value\"}, got %s",
                            luaL_typename(L, -1));
        int k = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                return lt_error(L, fn, "options.env: keys and values must be strings");
            lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
            lua_rawseti(L, env_idx, ++k);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    int argc = 0, envc = 0;
    const char **argv = string_list(L, 1, fn, "argv", &argc);
    if (!argv)
        return lt_error(L, fn, "out of memory");
    if (argc == 0) {
        free(argv);
        return lt_error(L, fn, "argv is empty: expected the program and its arguments");
    }
    const char **env = string_list(L, env_idx, fn, "env", &envc);
    if (!env) {
        free(argv);
        return lt_error(L, fn, "out of memory");
    }
    int pid = 0;
    dt_status st = dt_process_spawn(argv, env, output, &pid);
    free(argv);
    free(env);
    if (st != DT_OK)
        return lt_fail(L, fn);
    lua_pushinteger(L, pid);
    return 1;
}

static int l_wait(lua_State *L)
{
    const char *fn = "process.wait";
    if (lua_type(L, 1) != LUA_TTABLE)
        return lt_error(L, fn, "argument #1: expected a list of process ids, got %s",
                        luaL_typename(L, 1));
    double timeout = lt_check_num(L, 2, fn, "timeout");
    lua_Integer n = luaL_len(L, 1);
    int *pids = malloc(((size_t)n + 1) * sizeof *pids);
    if (!pids)
        return lt_error(L, fn, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        int ok = 0;
        lua_Integer pid = lua_tointegerx(L, -1, &ok);
        lua_pop(L, 1);
        if (!ok || pid <= 0) {
            free(pids);
            return lt_error(L, fn, "pids[%d]: expected a process id > 0", (int)i);
        }
        pids[i - 1] = (int)pid;
    }
    dt_process_end end;
    dt_status st = dt_process_wait(pids, (int)n, timeout, &end);
    free(pids);
    if (st != DT_OK)
        return lt_fail(L, fn);
    if (end.pid == 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushinteger(L, end.pid);
    lua_pushstring(L, end.exited ? "exit" : "signal");
    const char *name = end.exited ? NULL : signal_name(end.code);
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushinteger(L, end.code);
    return 3;
}

static int l_signal(lua_State *L)
{
    const char *fn = "process.signal";
    lua_Integer pid = lt_check_int(L, 1, fn, "pid");
    const char *name = luaL_checkstring(L, 2);
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
        if (strcmp(SIGNALS[i].name, name) == 0) {
            LT_TRY(L, fn, dt_process_signal((int)pid, SIGNALS[i].number));
            return 0;
        }
    }
    return lt_error(L, fn, "unknown signal '%s' (valid: INT, TERM, KILL, HUP, USR1)", name);
}

static int l_watch_stop_signals(lua_State *L)
{
    LT_TRY(L, "process.watch_stop_signals", dt_stop_signals_watch(lua_toboolean(L, 1)));
    return 0;
}

static int l_stop_signals(lua_State *L)
{
    int last = 0;
    lua_pushinteger(L, dt_stop_signal_count(&last));
    const char *name = signal_name(last);
    if (name)
        lua_pushstring(L, name);
    else
        lua_pushnil(L);
    return 2;
}

static int l_cpu_count(lua_State *L)
{
    lua_pushinteger(L, dt_cpu_count());
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

void lt_open_process(lua_State *L, int mod_idx)
{
    static const luaL_Reg fns[] = {
        {"spawn", l_spawn}, {"wait", l_wait}, {"signal", l_signal},
        {"watch_stop_signals", l_watch_stop_signals}, {"stop_signals", l_stop_signals},
        {"cpu_count", l_cpu_count}, {"getpid", l_getpid}, {NULL, NULL},
    };
    lua_createtable(L, 0, 7);
    luaL_setfuncs(L, fns, 0);
    lua_setfield(L, mod_idx, "process");
}

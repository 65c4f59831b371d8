/* bind/interrupt.c - distill.core.interrupt: Ctrl-C (SIGINT) as a Lua error.
 *
 *   interrupt.install()     -- from now on each SIGINT raises "interrupted"
 *   interrupt.uninstall()   -- the disposition from before install()
 *   interrupt.installed()   -- boolean
 *   interrupt.pending()     -- SIGINTs received since the last clear()
 *   interrupt.clear()       -- forgets them (and an error not raised yet); returns the count
 *   interrupt.hold(on)      -- on: count SIGINTs without raising; off: raise now if one
 *                              came meanwhile; returns the previous setting, so holds nest
 *   interrupt.MESSAGE       -- "interrupted", the error raised
 *
 * Like lua.c's handler, the signal handler only sets a hook; the hook raises
 * the error at the next Lua instruction of the main thread (a long C call
 * finishes first). Unlike lua.c's, the handler stays installed: lua.c resets
 * SIGINT to the default after the first one, so a second Ctrl-C kills the
 * process (and a REPL with everything typed in it). */
#include "bind.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

#define INTERRUPT_MESSAGE "interrupted"

static lua_State *main_state;          /* the Lua thread the hook goes on */
static pthread_t main_thread;          /* the OS thread that runs it */
static struct sigaction before;        /* restored by uninstall() */
static int installed;
static volatile sig_atomic_t received; /* SIGINTs since the last clear() */
static volatile sig_atomic_t held;     /* count without raising */
static volatile sig_atomic_t deferred; /* one came while held, not raised yet */
static volatile sig_atomic_t armed;    /* our hook is set and has not fired */

/* The hook that was set before ours (a debugger's, a coverage tool's), put
 * back once ours has fired or is cleared. */
static lua_Hook saved_hook;
static int saved_mask, saved_count;

static void restore_hook(lua_State *L)
{
    armed = 0;
    lua_sethook(L, saved_hook, saved_mask, saved_count);
}

static void raise_interrupt(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    restore_hook(L);
    lua_pushliteral(L, INTERRUPT_MESSAGE);
    lua_error(L);
}

/* Sets the hook (from the handler, or from hold(false)). lua_sethook may be
 * called from a signal handler (lua.c does). */
static void arm(void)
{
    if (armed || !main_state)
        return;
    lua_Hook current = lua_gethook(main_state);
    if (current != raise_interrupt) {
        saved_hook = current;
        saved_mask = lua_gethookmask(main_state);
        saved_count = lua_gethookcount(main_state);
    }
    armed = 1;
    lua_sethook(main_state, raise_interrupt, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

static void on_sigint(int sig)
{
    /* A loader or OpenMP thread may take the signal: the Lua thread must
     * see it, and only it touches the Lua state. */
    if (!pthread_equal(pthread_self(), main_thread)) {
        pthread_kill(main_thread, sig);
        return;
    }
    received = received + 1;
    if (held)
        deferred = 1;
    else
        arm();
}

static int l_install(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    main_state = lua_tothread(L, -1);
    lua_pop(L, 1);
    main_thread = pthread_self();
    if (installed)
        return 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigint;
    sigemptyset(&action.sa_mask);
    /* restart interrupted reads and waits: the hook reports the interrupt,
     * a failed system call would only hide it behind another error */
    action.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &action, &before) != 0)
        return lt_error(L, "interrupt.install", "cannot install the SIGINT handler");
    installed = 1;
    return 0;
}

static int l_uninstall(lua_State *L)
{
    if (installed) {
        sigaction(SIGINT, &before, NULL);
        installed = 0;
    }
    if (armed && main_state)
        restore_hook(main_state);
    (void)L;
    return 0;
}

static int l_installed(lua_State *L)
{
    lua_pushboolean(L, installed);
    return 1;
}

static int l_pending(lua_State *L)
{
    lua_pushinteger(L, received);
    return 1;
}

static int l_clear(lua_State *L)
{
    /* with the signal blocked, a Ctrl-C cannot arm the hook between the
     * count's reset and the hook's removal */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    lua_Integer count = received;
    received = 0;
    deferred = 0;
    if (armed && main_state)
        restore_hook(main_state);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    lua_pushinteger(L, count);
    return 1;
}

static int l_hold(lua_State *L)
{
    if (lua_gettop(L) < 1 || !lua_isboolean(L, 1))
        return lt_error(L, "interrupt.hold", "argument #1: expected true or false, got %s",
                        luaL_typename(L, 1));
    int was = held;
    held = lua_toboolean(L, 1);
    if (held && armed && main_state) {
        /* a Ctrl-C just before the hold: it waits for the hold's end too */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        restore_hook(main_state);
        deferred = 1;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (!held && deferred) {
        deferred = 0;
        arm();   /* the Ctrl-C that came meanwhile: raised at the next instruction */
    }
    lua_pushboolean(L, was);
    return 1;
}

void lt_open_interrupt(lua_State *L, int mod_idx)
{
    static const luaL_Reg fns[] = {
        {"install", l_install}, {"uninstall", l_uninstall}, {"installed", l_installed},
        {"pending", l_pending}, {"clear", l_clear},         {"hold", l_hold},
        {NULL, NULL},
    };
    lua_createtable(L, 0, 7);
    luaL_setfuncs(L, fns, 0);
    lua_pushliteral(L, INTERRUPT_MESSAGE);
    lua_setfield(L, -2, "MESSAGE");
    lua_setfield(L, mod_idx, "interrupt");
}

/* process.c - child processes and stop signals, for the sweep runner
 * (lua/distill/sweep.lua): Lua itself can start a shell command but not
 * run several at once, wait for whichever ends first, or signal one. */
#define _GNU_SOURCE   /* sched_getaffinity, CPU_COUNT */
#include "distill.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------- spawning */

/* Does the "KEY=value" entry `entry` set one of the keys of `set`? */
static bool overridden(const char *entry, const char *const *set)
{
    const char *eq = strchr(entry, '=');
    size_t len = eq ? (size_t)(eq - entry) : strlen(entry);
    for (const char *const *s = set; s && *s; s++)
        if (strncmp(*s, entry, len) == 0 && (*s)[len] == '=')
            return true;
    return false;
}

/* The current environment with `set` replacing or adding entries; a malloc'd
 * NULL-terminated array of borrowed strings. */
static char **child_environment(const char *const *set)
{
    size_t n = 0, extra = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    for (const char *const *s = set; s && *s; s++)
        extra++;
    char **env = malloc((n + extra + 1) * sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        if (!overridden(*e, set))
            env[k++] = *e;
    for (const char *const *s = set; s && *s; s++)
        env[k++] = (char *)*s;
    env[k] = NULL;
    return env;
}

dt_status dt_process_spawn(const char *const *argv, const char *const *env_set,
                           const char *output_path, int *pid_out)
{
    if (!argv || !argv[0] || !argv[0][0])
        return dt_fail(DT_ERR_ARG, "expected a program to run (argv[0])");
    if (!output_path || !output_path[0])
        return dt_fail(DT_ERR_ARG, "expected an output file");
    for (const char *const *s = env_set; s && *s; s++)
        if (!strchr(*s, '=') || **s == '=')
            return dt_fail(DT_ERR_ARG, "environment entries are KEY=value, got '%s'", *s);
    char **env = child_environment(env_set);
    if (!env)
        return dt_fail(DT_ERR_NOMEM, "out of memory building the environment");

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, output_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    /* Its own process group: a Ctrl-C on the terminal reaches the runner
     * alone, which passes it on once, to the child and what it started. */
    sigset_t defaults, empty;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGPIPE);
    sigemptyset(&empty);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF
                                        | POSIX_SPAWN_SETSIGMASK);
    pid_t pid = 0;
    int err = posix_spawnp(&pid, argv[0], &actions, &attr, (char *const *)argv, env);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    free(env);
    if (err != 0)
        return dt_fail(DT_ERR_IO, "cannot start '%s' (output to %s): %s", argv[0], output_path,
                       strerror(err));
    *pid_out = (int)pid;
    return DT_OK;
}

/* -------------------------------------------------------- stop signals */

static volatile sig_atomic_t stop_count = 0;
static volatile sig_atomic_t stop_last = 0;
static struct sigaction saved_int, saved_term;
static bool watching = false;

static void on_stop_signal(int sig)
{
    stop_count++;
    stop_last = sig;
}

dt_status dt_stop_signals_watch(bool on)
{
    if (on == watching)
        return DT_OK;
    if (on) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGINT, &sa, &saved_int) != 0 || sigaction(SIGTERM, &sa, &saved_term) != 0)
            return dt_fail(DT_ERR_STATE, "cannot watch SIGINT/SIGTERM: %s", strerror(errno));
        stop_count = 0;
        stop_last = 0;
    } else {
        sigaction(SIGINT, &saved_int, NULL);
        sigaction(SIGTERM, &saved_term, NULL);
    }
    watching = on;
    return DT_OK;
}

int dt_stop_signal_count(int *last_signal)
{
    if (last_signal)
        *last_signal = stop_last;
    return stop_count;
}

/* -------------------------------------------------------------- waiting */

/* Polls only the given children, so that the runner never reaps a process
 * someone else in this process waits for (io.popen, os.execute). */
dt_status dt_process_wait(const int *pids, int n, double timeout, dt_process_end *end)
{
    if (n < 0 || (n > 0 && !pids))
        return dt_fail(DT_ERR_ARG, "expected a list of process ids");
    if (!(timeout >= 0))
        return dt_fail(DT_ERR_ARG, "timeout must be >= 0 seconds, got %g", timeout);
    memset(end, 0, sizeof *end);
    int signals_at_start = stop_count;
    double deadline = dt_wallclock() + timeout;
    for (;;) {
        for (int i = 0; i < n; i++) {
            int status = 0;
            pid_t r = waitpid((pid_t)pids[i], &status, WNOHANG);
            if (r < 0)
                return dt_fail(DT_ERR_ARG, "process %d is not a child of this process: %s", pids[i],
                               strerror(errno));
            if (r == 0)
                continue;
            end->pid = pids[i];
            if (WIFEXITED(status)) {
                end->exited = true;
                end->code = WEXITSTATUS(status);
            } else {
                end->exited = false;
                end->code = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
            }
            return DT_OK;
        }
        double left = deadline - dt_wallclock();
        if (left <= 0 || stop_count != signals_at_start)
            return DT_OK;   /* end->pid == 0: nothing ended */
        double step = left < 0.02 ? left : 0.02;
        struct timespec ts = {0, (long)(step * 1e9)};
        nanosleep(&ts, NULL);   /* a signal cuts it short */
    }
}

dt_status dt_process_signal(int pid, int sig)
{
    if (pid <= 0)
        return dt_fail(DT_ERR_ARG, "expected a process id > 0, got %d", pid);
    /* the child's group first (it leads one: dt_process_spawn), then the
     * process alone for one started elsewhere */
    if (kill(-(pid_t)pid, sig) == 0)
        return DT_OK;
    if (kill((pid_t)pid, sig) == 0)
        return DT_OK;
    if (errno == ESRCH)
        return DT_OK;   /* it has already ended */
    return dt_fail(DT_ERR_STATE, "cannot signal process %d: %s", pid, strerror(errno));
}

int dt_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

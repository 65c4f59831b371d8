/* common.c - scratch files for the harnesses (common.h). */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char paths[2][64];
static int fds[2] = {-1, -1};
static int registered;

static void remove_files(void)
{
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            unlink(paths[i]);
}

const char *fuzz_file(int slot, const uint8_t *data, size_t size)
{
    if (fds[slot] < 0) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(paths[slot], sizeof paths[slot], "%s/distill-fuzz-XXXXXX", dir);
        fds[slot] = mkstemp(paths[slot]);
        if (fds[slot] < 0) {
            perror("fuzz: mkstemp");
            abort();
        }
        if (!registered++)
            atexit(remove_files);
    }
    if (ftruncate(fds[slot], 0) != 0 ||
        (size && pwrite(fds[slot], data, size, 0) != (ssize_t)size)) {
        perror("fuzz: writing the scratch file");
        abort();
    }
    return paths[slot];
}

/* The engine caches freed tensor storage for reuse. In a harness that would
 * look like a leak after every run (libFuzzer then runs a full leak check
 * each time) and hide real leaks: storage goes straight back to malloc. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    setenv("DISTILL_CACHE_MB", "0", 1);
    return 0;
}

/* file.h - opening files to read and writing them whole (internal: io/).
 *
 * Every reader opens through dt_file_open_regular, so a path naming a
 * FIFO, a device or a directory is refused at once instead of blocking or
 * reading garbage. Every writer of a file that must never be seen half
 * written (checkpoints) goes through dt_atomic_file: the data goes to a
 * temporary file next to the target, which is flushed, fsynced and renamed
 * over the target, and then the directory is fsynced, so a crash or a full
 * disk leaves the old file or the new one, never a mix. Error messages
 * start with the path. */
#ifndef DISTILL_IO_FILE_H
#define DISTILL_IO_FILE_H

#include "distill.h"

#include <stdio.h>

/* Opens path for reading if it is a regular file (checked before any
 * blocking open); *size gets its size in bytes. */
dt_status dt_file_open_regular(const char *path, FILE **f, uint64_t *size);
/* The same as a file descriptor (for readers such as zlib's gzdopen). */
dt_status dt_file_open_regular_fd(const char *path, int *fd, uint64_t *size);

typedef struct dt_atomic_file {
    const char *path;   /* the target (borrowed) */
    char *tmp;          /* the temporary file's path */
    FILE *f;
} dt_atomic_file;

/* Creates the temporary file next to path (with the permissions a new file
 * would get). */
dt_status dt_atomic_begin(const char *path, dt_atomic_file *af);
dt_status dt_atomic_write(dt_atomic_file *af, const void *data, size_t n);
/* Flushes, fsyncs and renames the temporary over the target, then fsyncs
 * the directory. On failure the temporary is removed and the target left
 * as it was. */
dt_status dt_atomic_commit(dt_atomic_file *af);
/* Removes the temporary (after a failure of the caller's own). */
void dt_atomic_abort(dt_atomic_file *af);

#endif

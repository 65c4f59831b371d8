/* file.c - reading whole files, and writing them atomically (file.h). */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

dt_status dt_file_open_regular_fd(const char *path, int *fd, uint64_t *size)
{
    *fd = -1;
    /* Non-blocking, so opening a FIFO without a writer returns at once. */
    int d = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (d < 0)
        return dt_fail(DT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(d, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(d);
        return dt_fail(DT_ERR_IO, "%s: not a regular file", path);
    }
    int flags = fcntl(d, F_GETFL);
    if (flags < 0 || fcntl(d, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int err = errno;
        close(d);
        return dt_fail(DT_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    *fd = d;
    *size = (uint64_t)sb.st_size;
    return DT_OK;
}

dt_status dt_file_open_regular(const char *path, FILE **f, uint64_t *size)
{
    *f = NULL;
    int fd;
    dt_status st = dt_file_open_regular_fd(path, &fd, size);
    if (st)
        return st;
    if (!(*f = fdopen(fd, "rb"))) {
        int err = errno;
        close(fd);
        return dt_fail(DT_ERR_IO, "%s: cannot open: %s", path, strerror(err));
    }
    return DT_OK;
}

dt_status dt_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f;
    uint64_t fsize;
    dt_status st = dt_file_open_regular(path, &f, &fsize);
    if (st)
        return st;
    if (fsize > max_bytes) {
        fclose(f);
        return dt_fail(DT_ERR_IO, "%s: file of %llu bytes is larger than the %zu allowed", path,
                       (unsigned long long)fsize, max_bytes);
    }
    size_t size = (size_t)fsize;
    uint8_t *buf = malloc(size > 0 ? size : 1);
    if (!buf) {
        fclose(f);
        return dt_fail(DT_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    if (got != size) {
        free(buf);
        return dt_fail(DT_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    *data = buf;
    *len = size;
    return DT_OK;
}

/* ----------------------------------------------------------- atomic write */

static dt_status atomic_fail(dt_atomic_file *af, const char *what, int err)
{
    dt_status r = err ? dt_fail(DT_ERR_IO, "%s: %s: %s", af->path, what, strerror(err))
                      : dt_fail(DT_ERR_IO, "%s: %s", af->path, what);
    dt_atomic_abort(af);
    return r;
}

dt_status dt_atomic_begin(const char *path, dt_atomic_file *af)
{
    *af = (dt_atomic_file){.path = path};
    size_t plen = strlen(path);
    af->tmp = malloc(plen + 16);
    if (!af->tmp)
        return dt_fail(DT_ERR_NOMEM, "%s: out of memory", path);
    memcpy(af->tmp, path, plen);
    memcpy(af->tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(af->tmp);
    if (fd < 0) {
        int err = errno;
        free(af->tmp);
        af->tmp = NULL;
        return dt_fail(DT_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                       strerror(err));
    }
    /* mkstemp makes the file 0600; give it what a new file would get */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) != 0 || !(af->f = fdopen(fd, "wb"))) {
        int err = errno;
        close(fd);
        return atomic_fail(af, "cannot prepare the temporary file", err);
    }
    return DT_OK;
}

dt_status dt_atomic_write(dt_atomic_file *af, const void *data, size_t n)
{
    errno = 0;
    if (n && fwrite(data, 1, n, af->f) != n)
        return atomic_fail(af, "write failed", errno);
    return DT_OK;
}

/* fsync of the directory holding path, so the rename survives a crash. */
static void sync_directory(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = ".";
    if (slash) {
        slash[slash == dir ? 1 : 0] = '\0';
        d = dir;
    }
    int dfd = open(d, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dir);
}

dt_status dt_atomic_commit(dt_atomic_file *af)
{
    errno = 0;
    if (fflush(af->f) != 0)
        return atomic_fail(af, "write failed", errno);
    if (fsync(fileno(af->f)) != 0)
        return atomic_fail(af, "fsync failed", errno);
    FILE *f = af->f;
    af->f = NULL;
    if (fclose(f) != 0)
        return atomic_fail(af, "closing the temporary file failed", errno);
    if (rename(af->tmp, af->path) != 0)
        return atomic_fail(af, "cannot rename the temporary file over it", errno);
    free(af->tmp);
    af->tmp = NULL;
    sync_directory(af->path);
    return DT_OK;
}

void dt_atomic_abort(dt_atomic_file *af)
{
    if (af->f)
        fclose(af->f);
    af->f = NULL;
    if (af->tmp)
        unlink(af->tmp);
    free(af->tmp);
    af->tmp = NULL;
}

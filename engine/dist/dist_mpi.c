/* dist_mpi.c - data-parallel collectives over MPI (distill.h, dist.h).
 *
 * One communicator, MPI_COMM_WORLD, with MPI_ERRORS_RETURN so a failed call
 * comes back as a dt_status naming the rank and the call instead of
 * killing the process from inside MPI. Only the thread that initialised
 * MPI calls it (MPI_THREAD_FUNNELED): the OpenMP workers never do.
 *
 * The Lua module is loaded with dlopen's private symbol scope, which would
 * hide libmpi's symbols from the components MPI itself loads at init; the
 * library holding MPI_Init is made global first.
 *
 * MPI counts are ints: payloads go in pieces of at most 2^30 elements. */
#define _GNU_SOURCE   /* dladdr */
#include "dist.h"

#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECE ((int64_t)1 << 30)

static int initialised, finalised;
static int rank_, size_ = 1;

bool dt_dist_available(const char **reason)
{
    if (reason)
        *reason = NULL;
    return true;
}

static dt_status mpi_fail(int rc, const char *call)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", rc);
    return dt_fail(DT_ERR_IO, "rank %d of %d: %s failed: %s", rank_ + 1, size_, call, text);
}

static void finalize_at_exit(void)
{
    int done = 0;
    if (initialised && !finalised && MPI_Finalized(&done) == MPI_SUCCESS && !done) {
        finalised = 1;
        MPI_Finalize();
    }
}

dt_status dt_dist_init(void)
{
    if (initialised)
        return DT_OK;
    int already = 0;
    MPI_Initialized(&already);
    if (!already) {
        Dl_info info;
        if (dladdr((void *)MPI_Init, &info) && info.dli_fname)
            dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS)
            return dt_fail(DT_ERR_IO, "MPI_Init failed (error %d): is this process started by "
                           "mpirun or srun with a working MPI?", rc);
        atexit(finalize_at_exit);
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    initialised = 1;
    return DT_OK;
}

bool dt_dist_active(void) { return initialised && !finalised; }
int dt_dist_rank(void) { return dt_dist_active() ? rank_ : 0; }
int dt_dist_size(void) { return dt_dist_active() ? size_ : 1; }

void dt_dist_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (dt_dist_active())
        MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

static MPI_Datatype mpi_type(dt_dtype dtype)
{
    return dtype == DT_FLOAT32 ? MPI_FLOAT : dtype == DT_INT64 ? MPI_INT64_T : MPI_UINT8_T;
}

/* The contiguous tensor the collective works on: t itself, or a copy
 * (*copied) whose result the caller copies back. */
static dt_status dense(dt_tensor *t, dt_tensor **d, bool *copied)
{
    *copied = !dt_is_contiguous(t);
    if (!*copied) {
        *d = t;
        return DT_OK;
    }
    return dt_clone(t, d);
}

static dt_status finish_dense(dt_tensor *t, dt_tensor *d, bool copied, dt_status st)
{
    if (copied) {
        if (st == DT_OK)
            st = dt_copy_(t, d);
        dt_tensor_release(d);
    }
    if (st == DT_OK)
        t->storage->version++;
    return st;
}

/* A sum over all ranks (root < 0) or a broadcast from root of n elements at
 * p, in pieces whose counts fit MPI's int. */
static dt_status in_pieces(char *p, int64_t n, MPI_Datatype type, size_t esize, int root)
{
    for (int64_t off = 0; off < n; off += PIECE) {
        int count = (int)(n - off < PIECE ? n - off : PIECE);
        void *at = p + off * (int64_t)esize;
        int rc = root < 0 ? MPI_Allreduce(MPI_IN_PLACE, at, count, type, MPI_SUM, MPI_COMM_WORLD)
                          : MPI_Bcast(at, count, type, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            return mpi_fail(rc, root < 0 ? "MPI_Allreduce" : "MPI_Bcast");
    }
    return DT_OK;
}

/* in_pieces over a tensor's elements (through a dense copy when needed). */
static dt_status tensor_in_pieces(dt_tensor *t, int root)
{
    dt_tensor *d;
    bool copied;
    dt_status st = dense(t, &d, &copied);
    if (st)
        return st;
    st = in_pieces(dt_data(d), dt_numel(d), mpi_type(d->dtype), dt_dtype_size(d->dtype), root);
    return finish_dense(t, d, copied, st);
}

dt_status dt_dist_allreduce_(dt_tensor *t)
{
    if (!dt_dist_active() || size_ == 1)
        return DT_OK;
    return tensor_in_pieces(t, -1);
}

dt_status dt_dist_sum_doubles(double *v, int64_t n)
{
    if (!dt_dist_active() || size_ == 1)
        return DT_OK;
    return in_pieces((char *)v, n, MPI_DOUBLE, sizeof(double), -1);
}

dt_status dt_dist_broadcast_(dt_tensor *t, int root)
{
    if (!dt_dist_active() || size_ == 1)
        return DT_OK;
    if (root < 0 || root >= size_)
        return dt_fail(DT_ERR_ARG, "broadcast: root rank %d is not one of the %d ranks", root + 1,
                       size_);
    return tensor_in_pieces(t, root);
}

/* Every rank's dim-0 length and the product of its other dims (which must
 * agree), for an all-gather along dim 0. */
static dt_status gather_sizes(const dt_tensor *t, int64_t *rows)
{
    int64_t mine[2 + DT_MAX_DIMS] = {t->ndim, t->ndim ? t->shape[0] : 1};
    for (int d = 1; d < t->ndim; d++)
        mine[1 + d] = t->shape[d];
    int64_t *all = malloc((size_t)size_ * sizeof mine);
    if (!all)
        return dt_fail(DT_ERR_NOMEM, "all_gather: out of memory");
    int rc = MPI_Allgather(mine, 2 + DT_MAX_DIMS, MPI_INT64_T, all, 2 + DT_MAX_DIMS,
                           MPI_INT64_T, MPI_COMM_WORLD);
    dt_status st = rc == MPI_SUCCESS ? DT_OK : mpi_fail(rc, "MPI_Allgather");
    for (int r = 0; r < size_ && st == DT_OK; r++) {
        const int64_t *o = all + r * (2 + DT_MAX_DIMS);
        bool same = o[0] == mine[0];
        for (int d = 1; same && d < t->ndim; d++)
            same = o[1 + d] == mine[1 + d];
        if (!same) {
            char a[128];
            st = dt_fail(DT_ERR_SHAPE, "all_gather: the tensors of ranks %d and %d differ in "
                         "their dims after the first (rank %d's is %s)", rank_ + 1, r + 1,
                         rank_ + 1, dt_shape_str(t->shape, t->ndim, a, sizeof a));
        }
        rows[r] = o[1];
    }
    free(all);
    return st;
}

dt_status dt_dist_allgather(const dt_tensor *t, dt_tensor **out)
{
    *out = NULL;
    if (!dt_dist_active() || size_ == 1)
        return dt_clone(t, out);
    if (t->ndim == 0)
        return dt_fail(DT_ERR_SHAPE, "all_gather: needs a tensor of at least 1 dim");
    int64_t *rows = malloc((size_t)size_ * sizeof *rows);
    int *counts = malloc((size_t)size_ * sizeof *counts), *displs = malloc((size_t)size_ * sizeof *displs);
    dt_tensor *src = NULL, *r = NULL;
    dt_status st = rows && counts && displs ? DT_OK : dt_fail(DT_ERR_NOMEM, "all_gather: out of memory");
    if (st == DT_OK)
        st = gather_sizes(t, rows);
    int64_t row_bytes = (int64_t)dt_dtype_size(t->dtype), total = 0;
    for (int d = 1; d < t->ndim; d++)
        row_bytes *= t->shape[d];
    for (int k = 0; st == DT_OK && k < size_; k++) {
        if (rows[k] * row_bytes > INT_MAX || total * row_bytes > INT_MAX)
            st = dt_fail(DT_ERR_ARG, "all_gather: more than 2 GB gathered");
        else
            counts[k] = (int)(rows[k] * row_bytes), displs[k] = (int)(total * row_bytes);
        total += rows[k];
    }
    if (st == DT_OK)
        st = dt_contiguous((dt_tensor *)t, &src);
    int64_t shape[DT_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = total;
    if (st == DT_OK)
        st = dt_empty(t->dtype, t->ndim, shape, &r);
    if (st == DT_OK) {
        int rc = MPI_Allgatherv(dt_data(src), counts[rank_], MPI_BYTE, dt_data(r), counts,
                                displs, MPI_BYTE, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS)
            st = mpi_fail(rc, "MPI_Allgatherv");
    }
    free(rows);
    free(counts);
    free(displs);
    dt_tensor_release(src);
    if (st) {
        dt_tensor_release(r);
        return st;
    }
    *out = r;
    return DT_OK;
}

dt_status dt_dist_barrier(void)
{
    if (!dt_dist_active() || size_ == 1)
        return DT_OK;
    int rc = MPI_Barrier(MPI_COMM_WORLD);
    return rc == MPI_SUCCESS ? DT_OK : mpi_fail(rc, "MPI_Barrier");
}

/* ------------------------------------------------------ non-blocking sums */

dt_status dt_dist_isum_floats(float *buf, int64_t n, dt_dist_request *req)
{
    req->impl = NULL;
    if (!dt_dist_active() || size_ == 1 || n == 0)
        return DT_OK;
    if (n > INT_MAX)
        return dt_fail(DT_ERR_ARG, "gradient bucket of %lld floats is too large for one MPI call",
                       (long long)n);
    MPI_Request *r = malloc(sizeof *r);
    if (!r)
        return dt_fail(DT_ERR_NOMEM, "out of memory for an MPI request");
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, r);
    if (rc != MPI_SUCCESS) {
        free(r);
        return mpi_fail(rc, "MPI_Iallreduce");
    }
    req->impl = r;
    return DT_OK;
}

dt_status dt_dist_test(dt_dist_request *req, bool *done)
{
    *done = true;
    if (!req->impl)
        return DT_OK;
    int flag = 0;
    int rc = MPI_Test(req->impl, &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS)
        return mpi_fail(rc, "MPI_Test");
    *done = flag != 0;
    if (flag) {
        free(req->impl);
        req->impl = NULL;
    }
    return DT_OK;
}

dt_status dt_dist_wait(dt_dist_request *req)
{
    if (!req->impl)
        return DT_OK;
    int rc = MPI_Wait(req->impl, MPI_STATUS_IGNORE);
    free(req->impl);
    req->impl = NULL;
    return rc == MPI_SUCCESS ? DT_OK : mpi_fail(rc, "MPI_Wait");
}

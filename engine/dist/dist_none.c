/* dist_none.c - the distributed functions of a build without MPI: one
 * process, rank 0 of 1; collectives are identities (distill.h). */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>

bool dt_dist_available(const char **reason)
{
    if (reason)
        *reason = "this build of distill has no MPI (install libopenmpi-dev and openmpi-bin, "
                  "then build again)";
    return false;
}

dt_status dt_dist_init(void)
{
    const char *why;
    dt_dist_available(&why);
    return dt_fail(DT_ERR_STATE, "distributed training: %s", why);
}

bool dt_dist_active(void) { return false; }
int dt_dist_rank(void) { return 0; }
int dt_dist_size(void) { return 1; }

void dt_dist_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    exit(code);
}

dt_status dt_dist_allreduce_(dt_tensor *t)
{
    (void)t;
    return DT_OK;
}

dt_status dt_dist_sum_doubles(double *v, int64_t n)
{
    (void)v, (void)n;
    return DT_OK;
}

dt_status dt_dist_broadcast_(dt_tensor *t, int root)
{
    (void)t;
    return root == 0 ? DT_OK
                     : dt_fail(DT_ERR_ARG, "broadcast: root rank %d is not one of the 1 ranks",
                               root + 1);
}

dt_status dt_dist_allgather(const dt_tensor *t, dt_tensor **out) { return dt_clone(t, out); }

dt_status dt_dist_barrier(void) { return DT_OK; }

dt_status dt_dist_isum_floats(float *buf, int64_t n, dt_dist_request *req)
{
    (void)buf, (void)n;
    req->impl = NULL;
    return DT_OK;
}

dt_status dt_dist_test(dt_dist_request *req, bool *done)
{
    (void)req;
    *done = true;
    return DT_OK;
}

dt_status dt_dist_wait(dt_dist_request *req)
{
    (void)req;
    return DT_OK;
}

/* dist.h - the MPI layer's internals shared by engine/dist/ (internal).
 * distill.h declares the public functions; dist_mpi.c implements them over
 * MPI and dist_none.c as a single process (builds without MPI). */
#ifndef DISTILL_DIST_DIST_H
#define DISTILL_DIST_DIST_H

#include "distill.h"

/* A non-blocking sum over ranks of n floats in place. */
typedef struct dt_dist_request {
    void *impl;   /* MPI_Request, or NULL when done / single process */
} dt_dist_request;

dt_status dt_dist_isum_floats(float *buf, int64_t n, dt_dist_request *req);
/* Lets started requests progress; *done when req has finished. */
dt_status dt_dist_test(dt_dist_request *req, bool *done);
dt_status dt_dist_wait(dt_dist_request *req);

#endif

/* allgather_grad.c - all-gather on the tape (distill.h: dt_f_dist_allgather).
 *
 * Forward: every rank's rows in rank order. Backward: the gathered
 * gradient summed over the ranks (every rank's loss may use every rank's
 * rows), this rank's slice of it back to the input. Every rank runs the
 * backward of its gather at the same point of its graph, so the sums pair
 * up across ranks. */
#include "autograd/op.h"
#include "dist.h"

/* iarg[0]: this rank's first row in the gathered tensor; iarg[1]: its rows. */
static dt_status allgather_backward(dt_node *n, const dt_tensor *g, dt_tensor **gi)
{
    dt_tensor *sum = NULL, *rows = NULL;
    dt_status st = dt_clone(g, &sum);
    if (st == DT_OK)
        st = dt_dist_allreduce_(sum);
    if (st == DT_OK)
        st = dt_narrow(sum, 0, n->iarg[0], n->iarg[1], &rows);
    if (st == DT_OK && n->needs_grad[0])
        st = dt_contiguous(rows, &gi[0]);
    dt_tensor_release(rows);
    dt_tensor_release(sum);
    return st;
}

dt_status dt_f_dist_allgather(const dt_tensor *t, dt_tensor **out)
{
    *out = NULL;
    if (t->ndim == 0)
        return dt_fail(DT_ERR_SHAPE, "all_gather: needs a tensor of at least 1 dim");
    /* this rank's first row: the rows of the ranks before it */
    dt_tensor *mine = NULL, *counts = NULL, *y = NULL;
    dt_status st = dt_full(DT_INT64, 1, (int64_t[]){1}, (double)t->shape[0], &mine);
    if (st == DT_OK)
        st = dt_dist_allgather(mine, &counts);
    int64_t first = 0;
    for (int r = 0; st == DT_OK && r < dt_dist_rank(); r++)
        first += dt_i64(counts)[r];
    dt_tensor_release(mine);
    dt_tensor_release(counts);
    if (st == DT_OK)
        st = dt_dist_allgather(t, &y);
    dt_node *node = NULL;
    if (st == DT_OK && t->dtype == DT_FLOAT32)
        st = dt_record("AllGatherBackward", allgather_backward, 1, (const dt_tensor *[]){t}, 0,
                       NULL, y, &node);
    if (st) {
        dt_tensor_release(y);
        return st;
    }
    if (node) {
        node->iarg[0] = first;
        node->iarg[1] = t->shape[0];
    }
    *out = y;
    return DT_OK;
}

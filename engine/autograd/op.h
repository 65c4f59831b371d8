/* op.h - what a differentiable op's writer needs (internal, not part of
 * distill.h): the tape node's layout, recording, and the profiler's timers.
 *
 * Pattern of a differentiable op:
 *
 *     dt_status dt_f_relu(const dt_tensor *x, dt_tensor **out)
 *     {
 *         DT_PROF_SCOPE(DT_PROF_ELEMENTWISE);        // times the call, outermost only
 *         dt_tensor *y;
 *         dt_status st = kernel_forward(x, &y);      // no autograd inside
 *         dt_node *node = NULL;
 *         if (st == DT_OK)
 *             st = dt_record("ReluBackward", relu_backward, 1, (const dt_tensor *[]){x},
 *                            1, (const dt_tensor *[]){x}, y, &node);
 *         if (st) { dt_tensor_release(y); return st; }
 *         *out = y;                                  // node (if any) can take iarg/darg/ctx
 *         return DT_OK;
 *     }
 *
 * and its backward, written next to it, computes the gradient of each input
 * from the output's. */
#ifndef DISTILL_AUTOGRAD_OP_H
#define DISTILL_AUTOGRAD_OP_H

#include "distill.h"

/* A node of the dynamic tape: made by a differentiable op for its output,
 * it holds what the backward function needs (saved tensors, op arguments)
 * and edges to the nodes (or leaf tensors) of the op's inputs. */
typedef struct dt_node dt_node;

/* Computes the gradient for each input i with node->needs_grad[i] set, from
 * the gradient of the node's output. grad_inputs[i] starts NULL; leave it
 * NULL for a zero gradient. Must return tensors of the input's shape. */
typedef dt_status (*dt_backward_fn)(dt_node *node, const dt_tensor *grad_out,
                                    dt_tensor **grad_inputs);

#define DT_NODE_MAX_SAVED 6
#define DT_NODE_MAX_ARGS 16

struct dt_node {
    const char *name;                 /* e.g. "MulBackward" */
    dt_backward_fn backward;
    int refcount;
    int ninputs;
    dt_node **input_nodes;            /* per input: its grad_fn (retained), or NULL */
    dt_tensor **input_leaves;         /* per input: the leaf needing a grad (retained), or NULL */
    bool *needs_grad;                 /* per input */
    int64_t (*input_shapes)[DT_MAX_DIMS];
    int *input_ndims;
    dt_dtype *input_dtypes;
    int nsaved;
    dt_tensor *saved[DT_NODE_MAX_SAVED];     /* detached aliases */
    uint64_t saved_version[DT_NODE_MAX_SAVED];
    int64_t iarg[DT_NODE_MAX_ARGS];          /* op arguments for backward */
    double darg[DT_NODE_MAX_ARGS];
    void *ctx;                               /* op-specific data, freed by free_ctx */
    void (*free_ctx)(void *ctx);
    bool released;                           /* saved tensors freed after backward */
    /* backward pass bookkeeping */
    dt_tensor *grad_acc;
    bool grad_owned;
    int pending;
    int64_t out_shape[DT_MAX_DIMS];
    int out_ndim;
    uint64_t visit_mark;
};

/* For an op writer: make the node for `out` from its inputs. Returns DT_OK
 * with *node NULL when nothing needs recording (no-grad mode or no input
 * requires grad); the caller then simply returns `out`. */
dt_status dt_node_new(const char *name, dt_backward_fn backward, int ninputs,
                      const dt_tensor *const *inputs, dt_node **node);
/* Save a tensor for backward (stored as a detached alias; in-place writes
 * to it afterwards make backward fail with a clear error). */
dt_status dt_node_save(dt_node *node, const dt_tensor *t);
/* The i-th saved tensor, after checking it was not modified in place. */
dt_status dt_node_saved(dt_node *node, int i, dt_tensor **t);
/* Attach the node to its output: out->grad_fn = node (takes the caller's
 * reference to node). */
void dt_node_attach(dt_node *node, dt_tensor *out);
void dt_node_retain(dt_node *node);
/* The usual recording in one call: if any input needs grad, make the node,
 * save `nsave` tensors, attach it to `out`, and return it in *node (so the
 * caller can fill iarg/darg/ctx); otherwise *node = NULL. On failure the
 * node is released and `out` is left untouched (the caller releases it).
 * Pattern of a differentiable op:
 *     st = kernel_forward(x, &y);                       // no autograd inside
 *     if (st == DT_OK)
 *         st = dt_record("ReluBackward", relu_backward, 1, (const dt_tensor *[]){x},
 *                        1, (const dt_tensor *[]){x}, y, &node);
 *     if (st) { dt_tensor_release(y); return st; }
 *     *out = y;                                         */
dt_status dt_record(const char *name, dt_backward_fn backward, int ninputs,
                    const dt_tensor *const *inputs, int nsave, const dt_tensor *const *save,
                    dt_tensor *out, dt_node **node);

/* dt_record that, when recording fails, also releases *out and sets it to
 * NULL: the op then just returns the status. */
dt_status dt_record_or_drop(const char *name, dt_backward_fn backward, int ninputs,
                            const dt_tensor *const *inputs, int nsave,
                            const dt_tensor *const *save, dt_tensor **out, dt_node **node);

/* dst += src (same shape, float32), any strides, broadcast (stride-0) dst
 * views included: how gradients are summed. Bumps dst's storage version. */
dt_status dt_grad_add_into(dt_tensor *dst, const dt_tensor *src);

/* Backward with hooks on the leaves (engine/dist/ddp.c): before any node
 * runs, edge() once per node-to-leaf edge that may carry a gradient; after
 * each gradient is added into a leaf's .grad, arrived(). A leaf's gradient
 * is final when as many have arrived as edges were announced (an edge can
 * also carry none: a node whose output got no gradient never runs). */
typedef struct dt_leaf_hooks {
    void (*edge)(dt_tensor *leaf, void *ctx);
    dt_status (*arrived)(dt_tensor *leaf, void *ctx);
    void *ctx;
} dt_leaf_hooks;

dt_status dt_backward_hooked(dt_tensor *root, const dt_tensor *grad, bool retain_graph,
                             const dt_leaf_hooks *hooks);

/* ------------------------------------------------------------- timers */

extern volatile int dt_prof_enabled;
double dt_prof_begin_(void);                 /* < 0: not timed */
void dt_prof_end_(dt_prof_kind kind, double t0);

#define DT_PROF_BEGIN(var) double var = dt_prof_enabled ? dt_prof_begin_() : -1.0
#define DT_PROF_END(kind, var) do { if ((var) != -1.0) dt_prof_end_((kind), (var)); } while (0)

/* Times the rest of the enclosing block (a whole op) under `kind`: the
 * timer ends when the block is left, by any return. */
typedef struct dt_prof_scope_ {
    dt_prof_kind kind;
    double t0;
} dt_prof_scope_;

static inline void dt_prof_scope_end_(const dt_prof_scope_ *s) { DT_PROF_END(s->kind, s->t0); }

#define DT_PROF_SCOPE(kind)                                                              \
    __attribute__((cleanup(dt_prof_scope_end_), unused))                                 \
    dt_prof_scope_ dt_prof_scope_var_ = {(kind), dt_prof_enabled ? dt_prof_begin_() : -1.0}

/* ---------------------------------------------------------- allocation */

/* Like dt_storage_new without the zero fill, for outputs that are fully
 * overwritten (dt_empty). */
dt_status dt_storage_new_uninit(size_t nbytes, dt_storage **out);

#endif

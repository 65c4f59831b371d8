/* autograd.c - the dynamic tape: nodes, grad mode and the backward pass.
 *
 * A recorded op attaches a node to its output. The node keeps edges to the
 * nodes of its inputs (or, for leaves, to the leaf tensors themselves) and
 * detached aliases of the tensors its backward needs, so a saved tensor
 * never keeps a graph alive and outputs saved by their own node make no
 * reference cycle. Backward visits nodes in an order where every node runs
 * after all the nodes that consume it (Kahn's algorithm on edge counts). */
#include "distill.h"
#include "autograd/op.h"

#include <stdlib.h>
#include <string.h>

static _Thread_local bool grad_enabled = true;

bool dt_grad_enabled(void) { return grad_enabled; }
void dt_set_grad_enabled(bool enabled) { grad_enabled = enabled; }

bool dt_needs_grad(const dt_tensor *t)
{
    return grad_enabled && t && (t->requires_grad || t->grad_fn != NULL);
}

bool dt_any_needs_grad(int n, const dt_tensor *const *ts)
{
    for (int i = 0; i < n; i++)
        if (dt_needs_grad(ts[i]))
            return true;
    return false;
}

/* ------------------------------------------------------------------- nodes */

static void free_saved(dt_node *n)
{
    for (int i = 0; i < n->nsaved; i++) {
        dt_tensor_release(n->saved[i]);
        n->saved[i] = NULL;
    }
    if (n->ctx && n->free_ctx)
        n->free_ctx(n->ctx);
    n->ctx = NULL;
}

/* A node and its per-input arrays in one zeroed allocation (a step records
 * hundreds of nodes; seven allocations each showed up in small models'
 * step times). Arrays of 8-byte items come first, so each is aligned. */
static dt_node *node_alloc(int ninputs)
{
    size_t n = (size_t)ninputs;
    size_t bytes = sizeof(dt_node) + n * sizeof(int64_t[DT_MAX_DIMS]) + n * sizeof(dt_node *) +
                   n * sizeof(dt_tensor *) + n * sizeof(int) + n * sizeof(dt_dtype) +
                   n * sizeof(bool);
    char *p = calloc(1, bytes);
    if (!p)
        return NULL;
    dt_node *node = (dt_node *)p;
    p += sizeof(dt_node);
    node->input_shapes = (int64_t(*)[DT_MAX_DIMS])p;
    p += n * sizeof(int64_t[DT_MAX_DIMS]);
    node->input_nodes = (dt_node **)p;
    p += n * sizeof(dt_node *);
    node->input_leaves = (dt_tensor **)p;
    p += n * sizeof(dt_tensor *);
    node->input_ndims = (int *)p;
    p += n * sizeof(int);
    node->input_dtypes = (dt_dtype *)p;
    p += n * sizeof(dt_dtype);
    node->needs_grad = (bool *)p;
    return node;
}

dt_status dt_node_new(const char *name, dt_backward_fn backward, int ninputs,
                      const dt_tensor *const *inputs, dt_node **out)
{
    *out = NULL;
    if (!dt_any_needs_grad(ninputs, inputs))
        return DT_OK;
    dt_node *n = node_alloc(ninputs);
    if (!n)
        return dt_fail(DT_ERR_NOMEM, "out of memory recording %s", name);
    n->name = name;
    n->backward = backward;
    n->refcount = 1;
    n->ninputs = ninputs;
    for (int i = 0; i < ninputs; i++) {
        const dt_tensor *t = inputs[i];
        if (!t)
            continue;
        n->input_ndims[i] = t->ndim;
        n->input_dtypes[i] = t->dtype;
        memcpy(n->input_shapes[i], t->shape, sizeof t->shape);
        if (!dt_needs_grad(t))
            continue;
        n->needs_grad[i] = true;
        if (t->grad_fn) {
            n->input_nodes[i] = t->grad_fn;
            dt_node_retain(t->grad_fn);
        } else {
            n->input_leaves[i] = (dt_tensor *)t;
            dt_tensor_retain((dt_tensor *)t);
        }
    }
    *out = n;
    return DT_OK;
}

dt_status dt_node_save(dt_node *n, const dt_tensor *t)
{
    if (n->nsaved >= DT_NODE_MAX_SAVED)
        return dt_fail(DT_ERR_STATE, "%s saves more than %d tensors", n->name, DT_NODE_MAX_SAVED);
    dt_tensor *alias;
    dt_status st = dt_alias((dt_tensor *)t, &alias);
    if (st)
        return st;
    n->saved[n->nsaved] = alias;
    n->saved_version[n->nsaved] = t->storage->version;
    n->nsaved++;
    return DT_OK;
}

dt_status dt_node_saved(dt_node *n, int i, dt_tensor **t)
{
    *t = NULL;
    if (n->released)
        return dt_fail(DT_ERR_STATE, "trying to backward through %s a second time: its saved "
                       "tensors were freed after the first backward (use retain_graph)", n->name);
    if (i < 0 || i >= n->nsaved)
        return dt_fail(DT_ERR_STATE, "%s has no saved tensor %d", n->name, i);
    if (n->saved[i]->storage->version != n->saved_version[i])
        return dt_fail(DT_ERR_STATE, "a tensor saved by %s for backward was modified by an "
                       "in-place operation (version %llu, expected %llu)", n->name,
                       (unsigned long long)n->saved[i]->storage->version,
                       (unsigned long long)n->saved_version[i]);
    *t = n->saved[i];
    return DT_OK;
}

void dt_node_attach(dt_node *n, dt_tensor *out)
{
    n->out_ndim = out->ndim;
    memcpy(n->out_shape, out->shape, sizeof out->shape);
    dt_node_release(out->grad_fn);
    out->grad_fn = n;
}

void dt_node_retain(dt_node *n) { n->refcount++; }

const char *dt_node_name(const dt_node *n) { return n->name; }

dt_status dt_record(const char *name, dt_backward_fn backward, int ninputs,
                    const dt_tensor *const *inputs, int nsave, const dt_tensor *const *save,
                    dt_tensor *out, dt_node **node)
{
    dt_node *n = NULL;
    if (node)
        *node = NULL;
    dt_status st = dt_node_new(name, backward, ninputs, inputs, &n);
    if (st || !n)
        return st;
    for (int i = 0; i < nsave && st == DT_OK; i++)
        st = dt_node_save(n, save[i]);
    if (st) {
        dt_node_release(n);
        return st;
    }
    dt_node_attach(n, out);
    if (node)
        *node = n;
    return DT_OK;
}

/* Iterative, so that releasing a long chain of nodes cannot overflow the C
 * stack. The work stack starts on the C stack: most releases free one node
 * or none, and this runs for every tensor with a grad_fn. */
#define RELEASE_STACK 32

void dt_node_release(dt_node *n)
{
    if (!n)
        return;
    dt_node *local[RELEASE_STACK];
    dt_node **stack = local;
    size_t cap = RELEASE_STACK, top = 0;
    stack[top++] = n;
    while (top > 0) {
        dt_node *m = stack[--top];
        if (--m->refcount > 0)
            continue;
        for (int i = 0; i < m->ninputs; i++) {
            if (m->input_leaves[i])
                dt_tensor_release(m->input_leaves[i]);
            dt_node *child = m->input_nodes[i];
            if (!child)
                continue;
            if (top == cap) {
                dt_node **grown = stack == local ? malloc(2 * cap * sizeof *grown)
                                                 : realloc(stack, 2 * cap * sizeof *grown);
                if (grown) {
                    if (stack == local)
                        memcpy(grown, local, sizeof local);
                    stack = grown;
                    cap *= 2;
                }
            }
            if (top < cap)
                stack[top++] = child;
            else
                dt_node_release(child);   /* out of memory: recurse rather than leak */
        }
        free_saved(m);
        dt_tensor_release(m->grad_acc);
        free(m);   /* the per-input arrays share the node's allocation */
    }
    if (stack != local)
        free(stack);
}

dt_status dt_detach(dt_tensor *t, dt_tensor **out) { return dt_alias(t, out); }

dt_status dt_record_or_drop(const char *name, dt_backward_fn backward, int ninputs,
                            const dt_tensor *const *inputs, int nsave,
                            const dt_tensor *const *save, dt_tensor **out, dt_node **node)
{
    dt_status st = dt_record(name, backward, ninputs, inputs, nsave, save, *out, node);
    if (st) {
        dt_tensor_release(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------------------------------------------------------- backward */

/* Gradients are added with this instead of the general maths so the tape
 * depends on the core only. */
dt_status dt_grad_add_into(dt_tensor *dst, const dt_tensor *src)
{
    if (!dt_same_shape(dst, src) || dst->dtype != DT_FLOAT32 || src->dtype != DT_FLOAT32)
        return dt_fail(DT_ERR_STATE, "internal error: accumulating mismatched gradients");
    dt_iter it;
    const dt_tensor *ts[2] = {dst, src};
    dt_iter_init(&it, 2, ts);
    float *d = dt_f32(dst);
    const float *s = dt_f32(src);
    while (dt_iter_next(&it)) {
        float *dp = d + it.offset[0];
        const float *sp = s + it.offset[1];
        int64_t ds = it.inner_stride[0], ss = it.inner_stride[1];
        for (int64_t k = 0; k < it.inner; k++)
            dp[k * ds] += sp[k * ss];
    }
    dst->storage->version++;
    return DT_OK;
}

/* grad of a leaf: the first arrival is copied (the leaf's .grad must not
 * alias a tensor the user or another node holds); later ones add in place. */
static dt_status accumulate_leaf(dt_tensor *leaf, const dt_tensor *g)
{
    if (!leaf->grad)
        return dt_to_dtype(g, DT_FLOAT32, &leaf->grad);
    return dt_grad_add_into(leaf->grad, g);
}

/* grad of an inner node: keep the first arrival as is (no copy), add later
 * ones into a buffer this node owns. */
static dt_status accumulate_node(dt_node *n, dt_tensor *g)
{
    if (!n->grad_acc) {
        dt_tensor_retain(g);
        n->grad_acc = g;
        n->grad_owned = false;
        return DT_OK;
    }
    if (!n->grad_owned) {
        /* the second arrival: one fresh sum (vectorised, threaded) rather
         * than a copy of the first and a serial add into it */
        dt_tensor *own;
        dt_status st = dt_same_shape(n->grad_acc, g) && n->grad_acc->dtype == DT_FLOAT32 &&
                               g->dtype == DT_FLOAT32
                           ? dt_binary(DT_ADD, n->grad_acc, g, &own)
                           : dt_fail(DT_ERR_STATE, "internal error: accumulating mismatched "
                                     "gradients");
        if (st)
            return st;
        dt_tensor_release(n->grad_acc);
        n->grad_acc = own;
        n->grad_owned = true;
        return DT_OK;
    }
    return dt_grad_add_into(n->grad_acc, g);
}

typedef struct node_list {
    dt_node **items;
    size_t len, cap;
} node_list;

static dt_status list_push(node_list *l, dt_node *n)
{
    if (l->len == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        dt_node **grown = realloc(l->items, cap * sizeof *grown);
        if (!grown)
            return dt_fail(DT_ERR_NOMEM, "out of memory in backward");
        l->items = grown;
        l->cap = cap;
    }
    l->items[l->len++] = n;
    return DT_OK;
}

/* Every node reachable from root, each once; pending = number of edges from
 * reachable nodes into it. */
static dt_status collect_nodes(dt_node *root, node_list *all)
{
    static uint64_t mark_counter;
    uint64_t mark = ++mark_counter;
    node_list stack = {0};
    root->visit_mark = mark;
    root->pending = 0;
    dt_status st = list_push(all, root);
    if (st == DT_OK)
        st = list_push(&stack, root);
    while (st == DT_OK && stack.len > 0) {
        dt_node *n = stack.items[--stack.len];
        for (int i = 0; i < n->ninputs && st == DT_OK; i++) {
            dt_node *child = n->input_nodes[i];
            if (!child)
                continue;
            if (child->visit_mark != mark) {
                child->visit_mark = mark;
                child->pending = 0;
                st = list_push(all, child);
                if (st == DT_OK)
                    st = list_push(&stack, child);
            }
            child->pending++;
        }
    }
    free(stack.items);
    return st;
}

static dt_status check_grad_shape(const dt_node *n, int i, const dt_tensor *g)
{
    bool ok = g->ndim == n->input_ndims[i] && g->dtype == DT_FLOAT32;
    for (int d = 0; ok && d < g->ndim; d++)
        ok = g->shape[d] == n->input_shapes[i][d];
    if (ok)
        return DT_OK;
    char a[128], b[128];
    return dt_fail(DT_ERR_STATE, "internal error: %s returned a %s gradient of shape %s for "
                   "input %d of shape %s", n->name, dt_dtype_name(g->dtype), dt_shape_str(g->shape, g->ndim, a, sizeof a), i + 1,
                   dt_shape_str(n->input_shapes[i], n->input_ndims[i], b, sizeof b));
}

/* Run one node: compute its input gradients and hand them on. */
#define RUN_NODE_LOCAL 8

static dt_status run_node(dt_node *n, node_list *ready, bool retain_graph,
                          const dt_leaf_hooks *hooks)
{
    dt_status st = DT_OK;
    dt_tensor *local[RUN_NODE_LOCAL] = {NULL};
    dt_tensor **gi = NULL;
    if (n->grad_acc) {
        if (n->released)
            return dt_fail(DT_ERR_STATE, "trying to backward through %s a second time: its saved "
                           "tensors were freed after the first backward (use retain_graph)",
                           n->name);
        gi = n->ninputs <= RUN_NODE_LOCAL ? local : calloc((size_t)n->ninputs, sizeof *gi);
        if (!gi)
            return dt_fail(DT_ERR_NOMEM, "out of memory in backward of %s", n->name);
        st = n->backward(n, n->grad_acc, gi);
        dt_tensor_release(n->grad_acc);
        n->grad_acc = NULL;
    }
    for (int i = 0; i < n->ninputs; i++) {
        dt_tensor *g = gi ? gi[i] : NULL;
        if (st == DT_OK && g && n->needs_grad[i]) {
            st = check_grad_shape(n, i, g);
            if (st == DT_OK && n->input_nodes[i])
                st = accumulate_node(n->input_nodes[i], g);
            else if (st == DT_OK && n->input_leaves[i]) {
                st = accumulate_leaf(n->input_leaves[i], g);
                if (st == DT_OK && hooks)
                    st = hooks->arrived(n->input_leaves[i], hooks->ctx);
            }
        }
        dt_tensor_release(g);
        dt_node *child = n->input_nodes[i];
        if (child && --child->pending == 0 && st == DT_OK)
            st = list_push(ready, child);
    }
    if (gi != local)
        free(gi);
    if (!retain_graph) {
        free_saved(n);
        n->released = true;
    }
    return st;
}

/* Tells the hooks about every node-to-leaf edge that may carry a gradient. */
static void announce_edges(const node_list *all, const dt_leaf_hooks *hooks)
{
    for (size_t k = 0; k < all->len; k++) {
        const dt_node *n = all->items[k];
        for (int i = 0; i < n->ninputs; i++)
            if (n->input_leaves[i] && n->needs_grad[i])
                hooks->edge(n->input_leaves[i], hooks->ctx);
    }
}

dt_status dt_backward(dt_tensor *root, const dt_tensor *grad, bool retain_graph)
{
    return dt_backward_hooked(root, grad, retain_graph, NULL);
}

dt_status dt_backward_hooked(dt_tensor *root, const dt_tensor *grad, bool retain_graph,
                             const dt_leaf_hooks *hooks)
{
    dt_tensor *g0 = NULL;
    dt_status st;
    char a[128], b[128];
    if (grad) {
        if (!dt_same_shape(grad, root))
            return dt_fail(DT_ERR_SHAPE, "gradient of shape %s given for a tensor of shape %s",
                           dt_shape_str(grad->shape, grad->ndim, a, sizeof a),
                           dt_shape_str(root->shape, root->ndim, b, sizeof b));
        st = dt_to_dtype(grad, DT_FLOAT32, &g0);
    } else {
        if (dt_numel(root) != 1)
            return dt_fail(DT_ERR_SHAPE, "a gradient can be implied only for a one-element "
                           "tensor; this one has shape %s (pass the gradient explicitly)",
                           dt_shape_str(root->shape, root->ndim, a, sizeof a));
        st = dt_full(DT_FLOAT32, root->ndim, root->shape, 1.0, &g0);
    }
    if (st)
        return st;
    if (!root->grad_fn) {
        st = root->requires_grad
            ? accumulate_leaf(root, g0)
            : dt_fail(DT_ERR_STATE, "the tensor does not require grad and has no grad_fn");
        dt_tensor_release(g0);
        if (st == DT_OK && hooks) {
            hooks->edge(root, hooks->ctx);
            st = hooks->arrived(root, hooks->ctx);
        }
        return st;
    }
    node_list all = {0}, ready = {0};
    st = collect_nodes(root->grad_fn, &all);
    if (st == DT_OK && hooks)
        announce_edges(&all, hooks);
    if (st == DT_OK) {
        root->grad_fn->grad_acc = g0;
        root->grad_fn->grad_owned = true;
        g0 = NULL;
        st = list_push(&ready, root->grad_fn);
    }
    while (st == DT_OK && ready.len > 0) {
        dt_node *n = ready.items[--ready.len];
        st = run_node(n, &ready, retain_graph, hooks);
    }
    /* After a failure some nodes still hold partial gradients; drop them so
     * a later backward starts clean. */
    for (size_t i = 0; i < all.len; i++) {
        dt_tensor_release(all.items[i]->grad_acc);
        all.items[i]->grad_acc = NULL;
        all.items[i]->pending = 0;
    }
    dt_tensor_release(g0);
    free(all.items);
    free(ready.items);
    return st;
}

/* overlap.h - what an in-place write may not read or write twice
 * (internal to the engine).
 *
 * An in-place op walks its destination and its sources in one pass. A
 * source that lays out part of the destination's memory differently (x and
 * x:t(), or two narrows of one storage) is then read after some of its
 * elements were overwritten, and a destination with repeated elements (an
 * expanded view, stride 0) is written several times per element. Every
 * in-place writer checks its destination with dt_check_writable and reads
 * each source through dt_source_for_write, which copies it first when it
 * overlaps the destination (as PyTorch does) and passes it through
 * otherwise, so exact aliases (a:add_(a)) stay free. */
#ifndef DISTILL_CORE_OVERLAP_H
#define DISTILL_CORE_OVERLAP_H

#include "distill.h"

/* The lowest and highest element offsets t addresses in its storage;
 * false for an empty tensor or when the span leaves int64_t. */
bool dt_extent(int ndim, const int64_t *shape, const int64_t *stride, int64_t offset,
               int64_t *lo, int64_t *hi);
/* Refuses a destination whose elements repeat (an expanded view). */
dt_status dt_check_writable(const dt_tensor *t);
/* Whether a and b may address a common element of one storage: their
 * extents intersect. Conservative (two interleaved columns count), never
 * missing a real overlap. */
bool dt_share_memory(const dt_tensor *a, const dt_tensor *b);
/* Same storage, offset, shape and strides (size-1 dims aside). */
bool dt_same_view(const dt_tensor *a, const dt_tensor *b);
/* *use = src, or a contiguous copy of it (also stored in *tmp, which the
 * caller releases; NULL when no copy was made) when src reads memory that
 * dst writes in another layout. */
dt_status dt_source_for_write(const dt_tensor *dst, const dt_tensor *src, const dt_tensor **use,
                              dt_tensor **tmp);

#endif

/* elementwise_fused.h - fused elementwise kernels the backward formulas
 * can use instead of compositions of plain ops (elementwise.c). Internal:
 * not part of the public API (distill.h). */
#ifndef DISTILL_ELEMENTWISE_FUSED_H
#define DISTILL_ELEMENTWISE_FUSED_H

#include "distill.h"

/* ReLU's gradient from its output: *dx = out > 0 ? grad : 0, one pass
 * (instead of a uint8 mask and a where). out and grad are float32 of one
 * shape, any strides; *dx is a new contiguous float32 tensor. Same values
 * as where(out > 0, grad, 0), NaN outputs included (they pass no
 * gradient). Timed as elementwise. */
dt_status dt_relu_grad(const dt_tensor *out, const dt_tensor *grad, dt_tensor **dx);

#endif

/* format.c - placeholder; replaced by the real torch-like printer. */
#include "distill.h"

#include <stdio.h>
#include <stdlib.h>

char *dt_format(const dt_tensor *t, int64_t threshold)
{
    (void)threshold;
    char shape[128];
    char *s = malloc(256);
    if (s)
        snprintf(s, 256, "tensor(%s, %s)", dt_dtype_name(t->dtype),
                 dt_shape_str(t->shape, t->ndim, shape, sizeof shape));
    return s;
}

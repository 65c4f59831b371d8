/* size.c - the element count of a shape, checked (size.h). */
#include "size.h"

dt_status dt_shape_numel(const char *what, int ndim, const int64_t *shape, int64_t *numel)
{
    bool overflow = false, empty = false;
    int64_t nonzero = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 0)
            empty = true;
        else if (shape[d] > 0)
            nonzero = dt_size_mul(nonzero, shape[d], &overflow);
    }
    if (overflow || nonzero > DT_MAX_NUMEL) {
        char buf[200];
        return dt_fail(DT_ERR_ARG, "%s %s is too large: its sizes multiply to more than 2^59 "
                       "elements", what, dt_shape_str(shape, ndim, buf, sizeof buf));
    }
    *numel = empty ? 0 : nonzero;
    return DT_OK;
}

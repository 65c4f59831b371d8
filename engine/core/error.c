/* error.c - the thread-local "why did it fail" buffer behind dt_fail(). */
#include "distill.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_error[512] = "no error";

const char *dt_last_error(void) { return last_error; }

dt_status dt_fail(dt_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

/* dtype.c - element types: sizes, names, parsing. */
#include "distill.h"

#include <string.h>

size_t dt_dtype_size(dt_dtype dtype)
{
    switch (dtype) {
    case DT_FLOAT32: return 4;
    case DT_INT64: return 8;
    case DT_UINT8: return 1;
    }
    return 0;
}

const char *dt_dtype_name(dt_dtype dtype)
{
    switch (dtype) {
    case DT_FLOAT32: return "float32";
    case DT_INT64: return "int64";
    case DT_UINT8: return "uint8";
    }
    return "?";
}

bool dt_dtype_parse(const char *name, dt_dtype *out)
{
    static const struct { const char *name; dt_dtype dtype; } names[] = {
        {"float32", DT_FLOAT32}, {"float", DT_FLOAT32},
        {"int64", DT_INT64}, {"long", DT_INT64},
        {"uint8", DT_UINT8}, {"byte", DT_UINT8},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].dtype;
            return true;
        }
    }
    return false;
}

/* fuzz_safetensors.c - dt_safetensors_load on arbitrary bytes: the header
 * length, the JSON header, every entry's dtype, shape and offsets, the data
 * region. A load either fails with a message or returns tensors whose
 * sizes match the header; both are fine, a crash or a sanitizer report is
 * not. */
#include "common.h"
#include "distill.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dt_safetensors *st = NULL;
    if (dt_safetensors_load(fuzz_file(0, data, size), &st) == DT_OK) {
        for (int i = 0; i < st->ntensors; i++)
            if (!st->names[i] || !st->tensors[i])
                abort();
        dt_safetensors_free(st);
    }
    return 0;
}

/* fuzz_cifar.c - both CIFAR layouts. The first input byte picks the
 * reader: even, the binary records (label_bytes 1 or 2 by bit 1, the
 * label picked by bit 2) from a file; odd, the pickled "python version"
 * batch from memory (label key by the byte's value). */
#include "common.h"
#include "distill.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 22))
        return 0;
    int mode = data[0];
    data++, size--;
    dt_tensor *images = NULL, *labels = NULL;
    dt_status st;
    if (mode & 1) {
        static const char *const keys[] = {"labels", "fine_labels", "coarse_labels", "data"};
        st = dt_decode_cifar_python(data, size, "batch", keys[(mode >> 1) & 3], &images,
                                    &labels);
    } else {
        int label_bytes = mode & 2 ? 2 : 1;
        int pick = label_bytes == 2 && (mode & 4) ? 1 : 0;
        const char *path = fuzz_file(0, data, size);
        st = dt_read_cifar(1, &path, label_bytes, pick, &images, &labels);
    }
    if (st == DT_OK) {
        if (images->shape[0] != labels->shape[0] || images->shape[1] != 3)
            abort();
        for (int64_t i = 0; i < labels->shape[0]; i++)
            if (dt_i64(labels)[i] < 0 || dt_i64(labels)[i] >= 100)
                abort();
    }
    dt_tensor_release(images);
    dt_tensor_release(labels);
    return 0;
}

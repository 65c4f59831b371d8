/* fuzz_jpeg.c - the JPEG path of the loader: the file read, the header
 * (with its pixel bound), a decode with DCT scaling to a minimum size taken
 * from the input's first bytes, and a random-resized-crop transform of the
 * decoded pixels, as data_loader.c's fill_from_file does. */
#include "common.h"
#include "distill.h"

#include <stdlib.h>

static dt_jpeg_decoder *decoder;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > (1u << 20))
        return 0;
    if (!decoder && dt_jpeg_decoder_new(&decoder) != DT_OK)
        abort();
    int64_t min_side = data[0] % 64, crop = 1 + data[1] % 48;
    data += 2, size -= 2;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (dt_read_file(fuzz_file(0, data, size), 1u << 20, &buf, &len) != DT_OK)
        abort();
    int64_t h, w, sh, sw;
    const uint8_t *px;
    dt_transform tf = {.nops = 1};
    tf.ops[0] = (dt_tf_op){.kind = DT_TF_RANDOM_RESIZED_CROP, .h = crop, .w = crop,
                           .scale = {0.08, 1.0}, .ratio = {0.75, 4.0 / 3.0}};
    dt_tf_plan plan;
    if (dt_jpeg_header(decoder, buf, len, &h, &w) == DT_OK &&
        dt_transform_plan(&tf, 3, h, w, size, &plan) == DT_OK &&
        dt_jpeg_decode_scaled(decoder, buf, len, min_side, min_side, &px, &sh, &sw) == DT_OK) {
        if (sh > h || sw > w || sh <= 0 || sw <= 0)
            abort();
        if (sh != h || sw != w)
            dt_tf_plan_rescale(&plan, sh, sw);
        uint8_t *out = malloc((size_t)(3 * crop * crop));
        if (!out || dt_tf_apply(&plan, px, 1, 3 * sw, 3, out) != DT_OK)
            abort();
        free(out);
    }
    free(buf);
    return 0;
}

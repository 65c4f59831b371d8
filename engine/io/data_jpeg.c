/* data_jpeg.c - JPEG decode/encode through libjpeg-turbo's TurboJPEG API. */
#include "distill.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

struct dt_jpeg_decoder {
    tjhandle tj;
    uint8_t *pixels;
    size_t capacity;
};

dt_status dt_jpeg_decoder_new(dt_jpeg_decoder **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    (*out)->tj = tjInitDecompress();
    if (!(*out)->tj) {
        free(*out);
        *out = NULL;
        return dt_fail(DT_ERR_STATE, "cannot initialise a TurboJPEG decompressor: %s",
                       tjGetErrorStr2(NULL));
    }
    return DT_OK;
}

void dt_jpeg_decoder_free(dt_jpeg_decoder *d)
{
    if (!d)
        return;
    tjDestroy(d->tj);
    free(d->pixels);
    free(d);
}

/* After a failed call TurboJPEG's handle can stay in its error state: the
 * next header read on it reports 0 x 0 pixels, so one damaged file would
 * make the loader skip the good file after it. A failure therefore gets a
 * fresh handle (the message is taken before). */
static void renew(dt_jpeg_decoder *d)
{
    tjhandle fresh = tjInitDecompress();
    if (fresh) {
        tjDestroy(d->tj);
        d->tj = fresh;
    }
}

static dt_status fail_and_renew(dt_jpeg_decoder *d, const char *what)
{
    char why[256];
    snprintf(why, sizeof why, "%s", tjGetErrorStr2(d->tj));
    renew(d);
    return dt_fail(DT_ERR_FORMAT, "%s (%s)", what, why);
}

static bool looks_like_jpeg(const uint8_t *buf, size_t len)
{
    return len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF;
}

/* Is the frame arithmetic-coded (SOF9-SOF11, SOF13-SOF15)? Walks the marker
 * segments before the first scan; a walk that goes wrong answers true, so
 * that the size bound below only refuses what it is sure of. */
static bool arithmetic_coded(const uint8_t *buf, size_t len)
{
    size_t i = 2;
    while (i + 4 <= len) {
        if (buf[i] != 0xFF)
            return true;
        uint8_t m = buf[i + 1];
        if (m == 0xFF) { /* fill byte */
            i++;
            continue;
        }
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC)
            return m >= 0xC9;
        if (m == 0xDA || m == 0xD9)
            return true;
        i += 2 + ((size_t)buf[i + 2] << 8 | buf[i + 3]);
    }
    return true;
}

/* Huffman coding spends at least one bit on every 8 x 8 block of the
 * full-resolution component (its DC code, in every mode), so a file of len
 * bytes holds at most 512 * len pixels. A header that claims more is a
 * truncated or corrupt file, refused before its pixel buffer is allocated
 * (a 300-byte file could otherwise cost a 200 MB buffer). */
#define PIXELS_PER_BYTE 512

dt_status dt_jpeg_header(dt_jpeg_decoder *d, const uint8_t *buf, size_t len, int64_t *h,
                         int64_t *w)
{
    if (!looks_like_jpeg(buf, len))
        return dt_fail(DT_ERR_FORMAT, "not a JPEG file (no SOI marker FF D8 FF)");
    if (len > (size_t)0xFFFFFFFFu)
        return dt_fail(DT_ERR_FORMAT, "JPEG data of %zu bytes is too large", len);
    int width = 0, height = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(d->tj, buf, (unsigned long)len, &width, &height, &subsamp,
                            &colorspace) != 0)
        return fail_and_renew(d, "corrupt JPEG header");
    if (width <= 0 || height <= 0) {
        renew(d);
        return dt_fail(DT_ERR_FORMAT, "corrupt JPEG header (image size %d x %d; truncated file?)", width,
                       height);
    }
    if ((int64_t)width * height > DT_JPEG_MAX_PIXELS)
        return dt_fail(DT_ERR_FORMAT, "JPEG header claims %d x %d pixels, more than the %lld "
                       "allowed (corrupt, or too large to decode)", width, height,
                       (long long)DT_JPEG_MAX_PIXELS);
    if ((int64_t)width * height > (int64_t)len * PIXELS_PER_BYTE && !arithmetic_coded(buf, len))
        return dt_fail(DT_ERR_FORMAT, "JPEG header claims %d x %d pixels, more than a file of %zu "
                       "bytes can hold (truncated or corrupt)", width, height, len);
    *h = height;
    *w = width;
    return DT_OK;
}

/* The smallest TurboJPEG scaling factor <= 1 keeping (w, h) >= (min_w, min_h). */
static tjscalingfactor pick_scale(int w, int h, int64_t min_w, int64_t min_h)
{
    tjscalingfactor best = {1, 1};
    if (min_w <= 0)
        min_w = w;
    if (min_h <= 0)
        min_h = h;
    int n = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&n);
    for (int i = 0; sf && i < n; i++) {
        if (sf[i].num > sf[i].denom)
            continue;
        int sw = TJSCALED(w, sf[i]), sh = TJSCALED(h, sf[i]);
        if (sw < min_w || sh < min_h)
            continue;
        if ((double)sf[i].num / sf[i].denom < (double)best.num / best.denom)
            best = sf[i];
    }
    return best;
}

dt_status dt_jpeg_decode_scaled(dt_jpeg_decoder *d, const uint8_t *buf, size_t len,
                                int64_t min_h, int64_t min_w, const uint8_t **pixels,
                                int64_t *h, int64_t *w)
{
    int64_t fh, fw;
    dt_status st = dt_jpeg_header(d, buf, len, &fh, &fw);
    if (st)
        return st;
    tjscalingfactor sf = pick_scale((int)fw, (int)fh, min_w, min_h);
    int sw = TJSCALED((int)fw, sf), sh = TJSCALED((int)fh, sf);
    size_t need = (size_t)sw * (size_t)sh * 3;
    if (need > d->capacity) {
        uint8_t *p = realloc(d->pixels, need);
        if (!p)
            return dt_fail(DT_ERR_NOMEM, "out of memory for a %d x %d image", sw, sh);
        d->pixels = p;
        d->capacity = need;
    }
    /* libjpeg-turbo reports truncated or corrupt entropy data as warnings
     * and fills what is missing with grey: stop at a warning and refuse
     * the image rather than hand out silently damaged pixels. */
    if (tjDecompress2(d->tj, buf, (unsigned long)len, d->pixels, sw, sw * 3, sh, TJPF_RGB,
                      TJFLAG_FASTDCT | TJFLAG_STOPONWARNING) != 0)
        return fail_and_renew(d, "corrupt JPEG data");
    *pixels = d->pixels;
    *h = sh;
    *w = sw;
    return DT_OK;
}

dt_status dt_jpeg_decode(const uint8_t *buf, size_t len, int64_t min_h, int64_t min_w,
                         dt_tensor **out)
{
    *out = NULL;
    dt_jpeg_decoder *d;
    dt_status st = dt_jpeg_decoder_new(&d);
    if (st)
        return st;
    const uint8_t *px;
    int64_t h = 0, w = 0;
    st = dt_jpeg_decode_scaled(d, buf, len, min_h, min_w, &px, &h, &w);
    if (st == DT_OK) {
        int64_t shape[3] = {3, h, w};
        st = dt_empty(DT_UINT8, 3, shape, out);
    }
    if (st == DT_OK) {
        uint8_t *dst = dt_u8(*out);
        int64_t plane = h * w;
        for (int64_t i = 0; i < plane; i++) {
            dst[i] = px[3 * i];
            dst[plane + i] = px[3 * i + 1];
            dst[2 * plane + i] = px[3 * i + 2];
        }
    }
    dt_jpeg_decoder_free(d);
    return st;
}

dt_status dt_jpeg_encode(const dt_tensor *image, int quality, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (image->dtype != DT_UINT8 || image->ndim != 3 ||
        (image->shape[0] != 1 && image->shape[0] != 3))
        return dt_fail(DT_ERR_ARG, "expected a 1 x H x W or 3 x H x W uint8 image");
    if (quality < 1 || quality > 100)
        return dt_fail(DT_ERR_ARG, "JPEG quality must be 1..100, got %d", quality);
    int64_t c = image->shape[0], h = image->shape[1], w = image->shape[2];
    if (h <= 0 || w <= 0 || h > 65500 || w > 65500)
        return dt_fail(DT_ERR_ARG, "cannot encode a %lld x %lld image as JPEG", (long long)h,
                       (long long)w);
    uint8_t *packed = malloc((size_t)(h * w * c));
    if (!packed)
        return dt_fail(DT_ERR_NOMEM, "out of memory");
    const uint8_t *src = dt_u8(image);
    for (int64_t k = 0; k < c; k++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                packed[(y * w + x) * c + k] =
                    src[k * image->stride[0] + y * image->stride[1] + x * image->stride[2]];
    tjhandle tj = tjInitCompress();
    dt_status st = DT_OK;
    unsigned char *jpeg = NULL;
    unsigned long jlen = 0;
    if (!tj)
        st = dt_fail(DT_ERR_STATE, "cannot initialise a TurboJPEG compressor");
    else if (tjCompress2(tj, packed, (int)w, (int)(w * c), (int)h, c == 3 ? TJPF_RGB : TJPF_GRAY,
                         &jpeg, &jlen, c == 3 ? TJSAMP_420 : TJSAMP_GRAY, quality, 0) != 0)
        st = dt_fail(DT_ERR_FORMAT, "JPEG encoding failed (%s)", tjGetErrorStr2(tj));
    if (st == DT_OK) {
        *buf = malloc(jlen);
        if (!*buf)
            st = dt_fail(DT_ERR_NOMEM, "out of memory");
        else {
            memcpy(*buf, jpeg, jlen);
            *len = jlen;
        }
    }
    if (jpeg)
        tjFree(jpeg);
    if (tj)
        tjDestroy(tj);
    free(packed);
    return st;
}

/* checkpoints/h5zstd.c: the zstd HDF5 filter, registered in-process under zstd's registered
 * filter id 32015 (CKPT_H5Z_ZSTD_ID).
 *
 * Convention (the one hdf5plugin's Zstd filter and h5py use): cd_values[0] is the compression
 * level, read as a signed int (absent: 3); every chunk is one zstd frame that records its content
 * size. Our set_local callback appends cd_values[1] = the uncompressed chunk size in bytes, which
 * readers that follow the convention ignore (they only read cd_values[0]).
 *
 * Decoding trusts nothing in the chunk: the frame must declare its content size, the size must fit
 * HDF5's 32-bit chunk limit and, when cd_values[1] is present, equal it exactly (HDF5 1.10 copies a
 * whole chunk out of whatever the pipeline returns, so a short frame must never get through), and
 * ZSTD_decompress must produce exactly that many bytes. A failing filter pushes a "zstd: ..." entry
 * onto HDF5's error stack and returns 0, which is how an HDF5 filter reports failure. Buffers go
 * through H5allocate_memory/H5free_memory because the library owns the pipeline's buffers.
 */
#include "checkpoints/h5io.h"

#include <hdf5.h>
#include <stdint.h>
#include <zstd.h>

#include "core/error.h"

#define H5ZSTD_DEFAULT_LEVEL 3

/* Record why the filter failed, as the innermost entry of HDF5's error stack. */
#define H5ZSTD_FAIL(...)                                                                           \
    do {                                                                                           \
        H5Epush2(H5E_DEFAULT, __FILE__, __func__, __LINE__, H5E_ERR_CLS, H5E_PLINE, H5E_CANTFILTER, \
                 __VA_ARGS__);                                                                     \
        return 0;                                                                                  \
    } while (0)

static size_t zstd_encode(size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    int level = cd_nelmts > 0 ? (int)cd_values[0] : H5ZSTD_DEFAULT_LEVEL;
    size_t cap = ZSTD_compressBound(nbytes);
    if (ZSTD_isError(cap) || cap == 0) H5ZSTD_FAIL("zstd: no compress bound for %zu bytes", nbytes);
    void *out = H5allocate_memory(cap, 0);
    if (!out) H5ZSTD_FAIL("zstd: cannot allocate %zu bytes", cap);
    size_t n = ZSTD_compress(out, cap, *buf, nbytes, level);
    if (ZSTD_isError(n)) {
        H5free_memory(out);
        H5ZSTD_FAIL("zstd: compress failed: %s", ZSTD_getErrorName(n));
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = cap;
    return n;
}

static size_t zstd_decode(size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    unsigned long long content = ZSTD_getFrameContentSize(*buf, nbytes);
    if (content == ZSTD_CONTENTSIZE_ERROR) H5ZSTD_FAIL("zstd: not a zstd frame (%zu bytes)", nbytes);
    if (content == ZSTD_CONTENTSIZE_UNKNOWN) H5ZSTD_FAIL("zstd: frame does not record its content size");
    if (content == 0 || content > UINT32_MAX)
        H5ZSTD_FAIL("zstd: frame content size %llu outside 1..2^32-1", content);
    if (cd_nelmts >= 2 && content != (unsigned long long)cd_values[1])
        H5ZSTD_FAIL("zstd: frame content size %llu, expected the chunk size %u", content, cd_values[1]);
    void *out = H5allocate_memory((size_t)content, 0);
    if (!out) H5ZSTD_FAIL("zstd: cannot allocate %llu bytes", content);
    size_t n = ZSTD_decompress(out, (size_t)content, *buf, nbytes);
    if (ZSTD_isError(n) || n != (size_t)content) {
        H5free_memory(out);
        if (ZSTD_isError(n)) H5ZSTD_FAIL("zstd: decompress failed: %s", ZSTD_getErrorName(n));
        H5ZSTD_FAIL("zstd: decompressed %zu bytes, frame declared %llu", n, content);
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = (size_t)content;
    return (size_t)content;
}

/* H5Z_func_t: returns the number of valid bytes in *buf, or 0 on failure. */
static size_t zstd_filter(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf) {
    if (!buf || !*buf || !buf_size || nbytes == 0) H5ZSTD_FAIL("zstd: empty buffer");
    if (flags & H5Z_FLAG_REVERSE) return zstd_decode(cd_nelmts, cd_values, nbytes, buf_size, buf);
    return zstd_encode(cd_nelmts, cd_values, nbytes, buf_size, buf);
}

/* H5Z_set_local_func_t: keep cd_values[0] (the level) and set cd_values[1] = chunk bytes. */
static herr_t zstd_set_local(hid_t dcpl, hid_t type, hid_t space) {
    (void)space;
    unsigned flags = 0, vals[2] = {H5ZSTD_DEFAULT_LEVEL, 0};
    size_t nvals = 2;
    if (H5Pget_filter_by_id2(dcpl, CKPT_H5Z_ZSTD_ID, &flags, &nvals, vals, 0, NULL, NULL) < 0) return -1;
    if (nvals == 0) vals[0] = H5ZSTD_DEFAULT_LEVEL;
    hsize_t chunk[H5S_MAX_RANK];
    int nd = H5Pget_chunk(dcpl, H5S_MAX_RANK, chunk);
    size_t elem = H5Tget_size(type);
    if (nd <= 0 || elem == 0) return -1;
    uint64_t bytes = elem;
    for (int i = 0; i < nd; i++) {
        if (chunk[i] == 0 || bytes > UINT32_MAX / chunk[i]) return -1;
        bytes *= chunk[i];
    }
    vals[1] = (unsigned)bytes;
    return H5Pmodify_filter(dcpl, CKPT_H5Z_ZSTD_ID, flags, 2, vals);
}

int h5zstd_register(void) {
    /* Registering the same id again replaces the class, so repeated calls are harmless. */
    static const H5Z_class2_t cls = {
        .version = H5Z_CLASS_T_VERS,
        .id = CKPT_H5Z_ZSTD_ID,
        .encoder_present = 1,
        .decoder_present = 1,
        .name = "zstd (cispo, id 32015)",
        .can_apply = NULL,
        .set_local = zstd_set_local,
        .filter = zstd_filter,
    };
    H5E_auto2_t old_fn = NULL;
    void *old_data = NULL;
    int saved = H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data) >= 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    herr_t st = H5Zregister(&cls);
    if (st < 0) H5Eclear2(H5E_DEFAULT);
    if (saved) H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    if (st < 0) return err_set(ERR_UNSUPPORTED, "h5zstd: H5Zregister(%d) failed", CKPT_H5Z_ZSTD_ID);
    return 0;
}

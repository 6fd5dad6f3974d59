/* fuzz/fuzz_h5_checkpoint.c: the checkpoint reader (checkpoints/h5io.c) on mutated HDF5 files:
 * open, walk every dataset, read and verify them all (checksums, zstd), and the typed reads the
 * resume path uses (f32 tensor, i64 counters, JSON bytes) with the shapes the walk reported. */
#include <string.h>

#include "checkpoints/h5io.h"
#include "fuzz/fuzz_util.h"

typedef struct {
    H5File *f;
} WalkCtx;

static int visit(const char *name, int ndim, const int64_t *dims, uint64_t stored, uint64_t raw, void *ctx) {
    (void)stored;
    WalkCtx *w = ctx;
    if (raw > (64u << 20)) return 0;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= dims[i];
    void *buf = malloc((size_t)(n > 0 ? n : 1) * 8);
    if (buf == NULL) return 0;
    (void)h5_read_f32(w->f, name, buf, ndim, dims);
    (void)h5_read_i64(w->f, name, buf, ndim, dims);
    (void)h5_read_i32(w->f, name, buf, ndim, dims);
    free(buf);
    char *bytes = NULL;
    size_t len = 0;
    if (h5_read_bytes(w->f, name, &bytes, &len) == 0) free(bytes);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    H5File f;
    if (h5zstd_register() != 0) abort();
    if (h5_open(&f, fuzz_file(data, size)) != 0) return 0;
    WalkCtx w = {&f};
    (void)h5_walk(&f, visit, &w);
    (void)h5_verify_all(&f);
    (void)h5_exists(&f, "params/x");
    h5_close(&f);
    return 0;
}

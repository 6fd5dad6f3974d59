/* fuzz/fuzz_safetensors.c: the safetensors reader (model/safetensors.c): header parsing and
 * validation by st_open, then every accepted tensor read back as f32 (offsets, dtypes, sizes). */
#include "fuzz/fuzz_util.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    StArchive a;
    if (st_open(&a, fuzz_file(data, size)) != 0) return 0;
    for (int i = 0; i < a.n; i++) {
        int64_t n = st_numel(&a.t[i]);
        if (n < 0 || n > (1 << 20)) continue; /* the reader's own bound is the file size */
        float *dst = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (dst == NULL) break;
        (void)st_read_f32(&a, &a.t[i], dst, n);
        free(dst);
    }
    st_close(&a);
    return 0;
}

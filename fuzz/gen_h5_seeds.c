/* fuzz/gen_h5_seeds.c: writes the seed corpus of the checkpoint-reader harness with our own
 * writer (checkpoints/h5io.c): small files shaped like checkpoint files (a few f32 tensors, i64
 * counters, a JSON blob, a scalar, an empty tensor, a multi-chunk tensor).
 * Usage: fuzz_gen_h5_seeds OUT_DIR  (the committed seeds in fuzz/corpus/h5_checkpoint came from it) */
#include <stdio.h>
#include <string.h>

#include "checkpoints/h5io.h"
#include "core/error.h"

static int one(const char *dir, const char *name, int variant) {
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    H5File f;
    int rc = h5_create(&f, path);
    if (rc != 0) return rc;
    float w[24];
    for (int i = 0; i < 24; i++) w[i] = 0.5f * (float)i - 3.0f;
    int64_t d2[2] = {4, 6}, d1[1] = {3}, d0[1] = {0};
    int64_t counters[3] = {7, 1234567, -1};
    const char *json = "{\"step\": 7, \"rng\": [1, 2, 3]}";
    if (rc == 0) rc = h5_write_f32(&f, "params/x", w, 2, d2);
    if (rc == 0 && variant >= 1) rc = h5_write_i64(&f, "state/counters", counters, 1, d1);
    if (rc == 0 && variant >= 1) rc = h5_write_bytes(&f, "meta/config_json", json, strlen(json));
    if (rc == 0 && variant >= 2) rc = h5_write_f32(&f, "moments/m/x", w, 0, d0);
    if (rc == 0 && variant >= 2) rc = h5_write_f32(&f, "empty", w, 1, d0);
    if (rc == 0 && variant >= 3) {
        static float big[300000];
        int64_t db[2] = {1000, 300};
        for (int i = 0; i < 300000; i++) big[i] = (float)(i % 97);
        rc = h5_write_f32(&f, "params/big", big, 2, db);
    }
    int rc2 = h5_close(&f);
    return rc ? rc : rc2;
}

int main(int argc, char **argv) {
    if (argc != 2) return fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]), 2;
    static const char *names[] = {"one_tensor.h5", "counters_json.h5", "scalar_empty.h5", "chunked.h5"};
    for (int v = 0; v < 4; v++)
        if (one(argv[1], names[v], v) != 0) return fprintf(stderr, "%s\n", err_msg()), 1;
    return 0;
}

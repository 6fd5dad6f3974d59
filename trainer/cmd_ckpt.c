/* trainer/cmd_ckpt.c: checkpoint tools.
 *   cispo ckpt verify PATH     every checksum and the manifest; exit 0 only when all is well.
 *   cispo ckpt inspect PATH    step, phase, config, tensors with shapes and compression.
 *   cispo export-hf PATH OUT   the checkpoint's model as a Hugging Face directory (config.json +
 *                              model.safetensors) that our loader and transformers read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "trainer/commands.h"
#include "trainer/train_ckpt.h"

typedef struct {
    uint64_t stored, raw;
    int n;
} WalkTotals;

static int print_dataset(const char *name, int ndim, const int64_t *dims, uint64_t stored, uint64_t raw, void *ctx) {
    WalkTotals *t = ctx;
    char shape[96] = "[";
    for (int i = 0; i < ndim; i++)
        snprintf(shape + strlen(shape), sizeof shape - strlen(shape), i ? ", %lld" : "%lld", (long long)dims[i]);
    strncat(shape, "]", sizeof shape - strlen(shape) - 1);
    printf("    %-60s %-18s %10llu -> %10llu bytes\n", name, shape, (unsigned long long)raw, (unsigned long long)stored);
    t->stored += stored;
    t->raw += raw;
    t->n++;
    return 0;
}

static int inspect(const char *dir) {
    TrainState ts;
    char *yaml = NULL;
    int err = train_ckpt_read_state(dir, &ts, &yaml);
    if (err) return err;
    printf("checkpoint %s\n  phase %s, %ld steps done in it", dir, ts.phase == PHASE_SFT ? "SFT" : "RL", ts.step);
    if (ts.have_eval_before) printf("; held-out pass@1 before RL %.3f", ts.eval_before.pass1);
    printf("\n");
    const char *files[] = {"model.h5", "optim.h5", "ref.h5", "state.h5"};
    for (int i = 0; i < 4; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        H5File f;
        if (h5_open(&f, path)) continue;
        WalkTotals t = {0, 0, 0};
        printf("  %s\n", files[i]);
        err = h5_walk(&f, print_dataset, &t);
        h5_close(&f);
        if (err) break;
        printf("    %d datasets, %llu bytes raw, %llu stored (ratio %.2f)\n", t.n, (unsigned long long)t.raw,
               (unsigned long long)t.stored, t.stored ? (double)t.raw / t.stored : 0.0);
    }
    printf("  config:\n%s", yaml);
    free(yaml);
    return err;
}

int cmd_ckpt(int argc, char **argv) {
    if (argc != 2 || (strcmp(argv[0], "verify") && strcmp(argv[0], "inspect"))) {
        fprintf(stderr, "usage: cispo ckpt verify PATH | cispo ckpt inspect PATH\n");
        return 2;
    }
    int err = !strcmp(argv[0], "verify") ? ckpt_verify(argv[1]) : inspect(argv[1]);
    if (err) {
        fprintf(stderr, "cispo ckpt %s: %s\n", argv[0], err_msg());
        return 1;
    }
    if (!strcmp(argv[0], "verify")) printf("%s: ok\n", argv[1]);
    return 0;
}

int cmd_export_hf(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cispo export-hf CHECKPOINT_DIR OUT_DIR\n");
        return 2;
    }
    const char *dir = argv[0], *out = argv[1];
    char path[1100];
    ModelConfig cfg;
    int err = ckpt_verify(dir);
    if (!err) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        err = model_config_load_hf(&cfg, path);
    }
    KernelCtx ctx;
    Model m;
    memset(&m, 0, sizeof m);
    if (!err) {
        kernel_ctx_init(&ctx, kernels_cpu(), model_ws_bytes(&cfg, kernels_cpu(), 1));
        err = model_init(&m, &cfg, &ctx, 1, 1);
    }
    if (!err) {
        H5File f;
        snprintf(path, sizeof path, "%s/model.h5", dir);
        if (!(err = h5_open(&f, path))) {
            char name[TENSOR_NAME_MAX + 16];
            for (int i = 0; i < m.params.n && !err; i++) {
                TensorSpec *t = &m.params.t[i];
                snprintf(name, sizeof name, "params/%s", t->name);
                err = h5_read_f32(&f, name, t->data, t->ndim, t->shape);
            }
            h5_close(&f);
        }
    }
    if (!err) err = model_save_hf(&m, out, ST_F32);
    if (m.ctx) {
        model_free(&m);
        kernel_ctx_free(&ctx);
    }
    if (err) {
        fprintf(stderr, "cispo export-hf: %s\n", err_msg());
        return 1;
    }
    printf("wrote %s (config.json, model.safetensors)\n", out);
    return 0;
}

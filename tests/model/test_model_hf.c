/* tests/model/test_model_hf.c: saving and loading Hugging Face model directories through the
 * model's parameter table: F32 round trips are exact, BF16 ones round, sharded directories load,
 * and broken directories (missing tensor, wrong shape, unknown layer type, truncated weights,
 * missing config) give clear errors and leave no model behind.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include "core/error.h"
#include "model_fixtures.h"

static char tmpdir[256];

static int setup(void **state) {
    (void)state;
    return tmpdir_make(tmpdir, sizeof tmpdir, "cispo_test_hf");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

static void path(char *buf, const char *sub) { snprintf(buf, 512, "%s/%s", tmpdir, sub); }

/* All parameters of `m` as write descriptors (pointing into the model). */
static StWriteTensor *tensors_of(const Model *m) {
    StWriteTensor *t = calloc((size_t)m->params.n, sizeof(StWriteTensor));
    for (int i = 0; i < m->params.n; i++) {
        const TensorSpec *s = &m->params.t[i];
        t[i].name = s->name;
        t[i].data = s->data;
        t[i].ndim = s->ndim;
        for (int d = 0; d < s->ndim; d++) t[i].shape[d] = s->shape[d];
    }
    return t;
}

static void forward_logits(Model *m, float *logits) {
    int tok[9] = {1, 5, 7, 2, 9, 11, 3, 4, 6}, start[3] = {0, 6, 9};
    SeqPack pack = {2, start, NULL};
    model_forward(m, tok, NULL, &pack, NULL, logits);
}

static void test_f32_round_trip_exact(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    Model a, b;
    KernelCtx ca, cb;
    assert_int_equal(fixture_model(&a, &ca, &c, 16, 2, 3, 0.2f), 0);
    char dir[512];
    path(dir, "f32");
    assert_int_equal(model_save_hf(&a, dir, ST_F32), 0);
    kernel_ctx_init(&cb, kernels_cpu(), model_ws_bytes(&c, kernels_cpu(), 16));
    assert_int_equal(model_load_hf(&b, dir, &cb, 16, 2), 0);
    assert_int_equal(b.params.n, a.params.n);
    assert_memory_equal(a.param_mem, b.param_mem, a.params.total_bytes);
    float la[9 * 23], lb[9 * 23];
    forward_logits(&a, la);
    forward_logits(&b, lb);
    assert_memory_equal(la, lb, sizeof la);
    model_free(&a);
    model_free(&b);
    kernel_ctx_free(&ca);
    kernel_ctx_free(&cb);
}

static void test_bf16_and_sharded(void **state) {
    (void)state;
    ModelConfig c = fixture_qwen2();
    Model a, b;
    KernelCtx ca, cb;
    assert_int_equal(fixture_model(&a, &ca, &c, 16, 2, 4, 0.2f), 0);
    char dir[512], cfgp[600];
    path(dir, "bf16");
    assert_int_equal(model_save_hf(&a, dir, ST_BF16), 0);
    kernel_ctx_init(&cb, kernels_cpu(), model_ws_bytes(&c, kernels_cpu(), 16));
    assert_int_equal(model_load_hf(&b, dir, &cb, 16, 2), 0);
    const float *pa = a.param_mem, *pb = b.param_mem;
    size_t n = a.params.total_bytes / sizeof(float);
    for (size_t i = 0; i < n; i++) {
        float d = pa[i] - pb[i];
        assert_true(d * d <= (pa[i] * pa[i]) * (1.0f / 128 / 128) + 1e-30f); /* bf16: 8 mantissa bits */
    }
    model_free(&b);
    /* a sharded directory: same tensors in several files plus the index */
    path(dir, "sharded");
    StWriteTensor *t = tensors_of(&a);
    assert_int_equal(st_write_dir(dir, t, a.params.n, ST_F32, 2000), 0);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    assert_int_equal(model_config_save_hf(&a.cfg, cfgp), 0);
    char idx[600];
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    assert_int_equal(access(idx, F_OK), 0);
    assert_int_equal(model_load_hf(&b, dir, &cb, 16, 2), 0);
    assert_memory_equal(a.param_mem, b.param_mem, a.params.total_bytes);
    free(t);
    model_free(&a);
    model_free(&b);
    kernel_ctx_free(&ca);
    kernel_ctx_free(&cb);
}

/* Write `m`'s tensors except `skip` (and with `bad_shape` tensor's first dim halved) to dir. */
static void write_broken(const Model *m, const char *dir, const char *skip, const char *bad_shape) {
    StWriteTensor *t = tensors_of(m);
    int n = 0;
    for (int i = 0; i < m->params.n; i++) {
        if (skip && strcmp(t[i].name, skip) == 0) continue;
        t[n] = t[i];
        if (bad_shape && strcmp(t[n].name, bad_shape) == 0) t[n].shape[0] /= 2;
        n++;
    }
    assert_int_equal(st_write_dir(dir, t, n, ST_F32, 0), 0);
    char cfgp[600];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    assert_int_equal(model_config_save_hf(&m->cfg, cfgp), 0);
    free(t);
}

static void expect_load_error(const char *dir, int code, const char *needle1, const char *needle2) {
    Model b;
    KernelCtx cb;
    kernel_ctx_init(&cb, kernels_cpu(), 1 << 20);
    int rc = model_load_hf(&b, dir, &cb, 16, 2);
    fprintf(stderr, "  expected error: %s\n", err_msg());
    assert_int_equal(rc, code);
    assert_non_null(strstr(err_msg(), needle1));
    if (needle2) assert_non_null(strstr(err_msg(), needle2));
    assert_null(b.param_mem); /* nothing left allocated */
    kernel_ctx_free(&cb);
}

static void test_broken_directories(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    Model a;
    KernelCtx ca;
    assert_int_equal(fixture_model(&a, &ca, &c, 16, 2, 5, 0.2f), 0);
    char dir[512];

    path(dir, "missing");
    write_broken(&a, dir, "model.layers.1.self_attn.out_proj.weight", NULL);
    expect_load_error(dir, ERR_NOTFOUND, "model.layers.1.self_attn.out_proj.weight", "missing");

    path(dir, "shape");
    write_broken(&a, dir, NULL, "model.layers.2.self_attn.q_proj.weight");
    expect_load_error(dir, ERR_SHAPE, "model.layers.2.self_attn.q_proj.weight", "[8, 16]");

    path(dir, "layertype");
    write_broken(&a, dir, NULL, NULL);
    char cfgp[600], cmd[1400];
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    snprintf(cmd, sizeof cmd, "sed -i 's/\"full_attention\"/\"sliding_attention\"/' '%s'", cfgp);
    assert_int_equal(system(cmd), 0);
    expect_load_error(dir, ERR_UNSUPPORTED, "sliding_attention", "config.json");

    path(dir, "truncated");
    write_broken(&a, dir, NULL, NULL);
    snprintf(cmd, sizeof cmd, "truncate -s -100 '%s/model.safetensors'", dir);
    assert_int_equal(system(cmd), 0);
    expect_load_error(dir, ERR_FORMAT, "model.safetensors", NULL);

    path(dir, "noconfig");
    write_broken(&a, dir, NULL, NULL);
    snprintf(cmd, sizeof cmd, "rm '%s/config.json'", dir);
    assert_int_equal(system(cmd), 0);
    expect_load_error(dir, ERR_NOTFOUND, "config.json", NULL);

    model_free(&a);
    kernel_ctx_free(&ca);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_round_trip_exact),
        cmocka_unit_test(test_bf16_and_sharded),
        cmocka_unit_test(test_broken_directories),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

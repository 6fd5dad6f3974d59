/* tests/model/test_cuda_model.c: the whole model on the CUDA backend against the CPU backend.
 * labels: gpu
 *
 * The tiny MiniMax hybrid of model_fixtures.h (lightning and softmax layers, MoE with the auxiliary
 * loss, alpha/beta residuals) and the dense Qwen2 fixture (biases, GQA, tied embeddings) are built
 * on both backends with the same weights (the CPU parameter block copied to the device), run
 * through model_forward and model_backward on a packed batch of variable-length sequences (one
 * without a target position), and compared: the MoE routing must be identical, the log-probs, the
 * auxiliary loss and every parameter gradient within 1e-4 relative (per tensor, float64 norms).
 * Without a CUDA device the test prints "skipped" and passes (CISPO_REQUIRE_GPU=1: fails).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/decode.h"
#include "model/model_internal.h"
#include "model_fixtures.h"
#include "tests/test_gpu_skip.h"

#define TOL 1e-4
#define NSEQ 3
#define MAX_TOKENS 64

static double rel_err(const float *a, const float *ref, size_t n) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) && isfinite(ref[i])) return INFINITY;
        num += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num) / (den > 0.0 ? sqrt(den) : 1e-30);
}

/* 1 when every MoE layer chose the same experts on both backends */
static int same_routing(const Model *cm, const Model *gm, int N) {
    const ModelConfig *c = &cm->cfg;
    if (!model_is_moe(c)) return 1;
    size_t nk = (size_t)N * c->num_experts_per_tok;
    int *h = malloc(nk * sizeof(int)), same = 1;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        gm->ctx->ops->copy_d2h(gm->ctx, h, gm->acts->layer[l].topk_idx, nk * sizeof(int));
        if (memcmp(h, cm->acts->layer[l].topk_idx, nk * sizeof(int)) != 0) {
            fprintf(stderr, "  layer %d: the CUDA model routed tokens to other experts than the CPU model\n", l);
            same = 0;
        }
    }
    free(h);
    return same;
}

static void run_compare(const ModelConfig *cfg, const int *lens, float daux) {
    const KernelOps *g = kernels_cuda();
    Model cm, gm;
    KernelCtx cctx, gctx;
    assert_int_equal(fixture_model(&cm, &cctx, cfg, MAX_TOKENS, NSEQ, 11, 0.3f), 0);
    kernel_ctx_init(&gctx, g, model_ws_bytes(cfg, g, MAX_TOKENS));
    assert_int_equal(model_init(&gm, cfg, &gctx, MAX_TOKENS, NSEQ), 0);
    assert_int_equal((long)gm.params.total_bytes, (long)cm.params.total_bytes);
    g->copy_h2d(&gctx, gm.param_mem, cm.param_mem, cm.params.total_bytes);

    int start[NSEQ + 1] = {0}, tokens[MAX_TOKENS], targets[MAX_TOKENS];
    for (int b = 0; b < NSEQ; b++) start[b + 1] = start[b] + lens[b];
    const int N = start[NSEQ];
    assert_true(N <= MAX_TOKENS);
    fixture_tokens(tokens, N, cfg->vocab_size, 5);
    fixture_tokens(targets, N, cfg->vocab_size, 6);
    targets[3] = -1;
    SeqPack pack = {NSEQ, start, NULL};
    float logp_c[MAX_TOKENS], logp_g[MAX_TOKENS], dlogp[MAX_TOKENS];
    model_forward(&cm, tokens, targets, &pack, logp_c, NULL);
    model_forward(&gm, tokens, targets, &pack, logp_g, NULL);
    assert_true(same_routing(&cm, &gm, N));
    int ok = 1;
    double e = rel_err(logp_g, logp_c, (size_t)N);
    printf("%s: logp rel err %.3e\n", model_family_name(cfg->family), e);
    ok &= e < TOL;
    double ea = fabs((double)gm.aux_loss - cm.aux_loss) / (fabs((double)cm.aux_loss) + 1e-30);
    if (model_is_moe(cfg)) printf("  aux loss %.6f vs %.6f, rel err %.3e\n", gm.aux_loss, cm.aux_loss, ea);
    ok &= !model_is_moe(cfg) || ea < TOL;

    for (int n = 0; n < N; n++) dlogp[n] = (float)rng_normal(3, 1, (uint64_t)n);
    model_zero_grad(&cm);
    model_zero_grad(&gm);
    model_backward(&cm, dlogp, daux);
    model_backward(&gm, dlogp, daux);
    float *gh = malloc(gm.grads.total_bytes);
    g->copy_d2h(&gctx, gh, gm.grad_mem, gm.grads.total_bytes);
    double worst = 0.0;
    const char *worst_name = "";
    for (int i = 0; i < cm.grads.n; i++) {
        const TensorSpec *t = &cm.grads.t[i];
        const float *a = (const float *)((const char *)gh + gm.grads.t[i].offset_bytes);
        double r = rel_err(a, (const float *)t->data, (size_t)t->numel);
        if (r > worst) worst = r, worst_name = t->name;
        if (r >= TOL) printf("  %-56s rel err %.3e  FAIL\n", t->name, r);
        ok &= r < TOL;
    }
    printf("  %d gradient tensors, worst rel err %.3e (%s)\n", cm.grads.n, worst, worst_name);
    free(gh);
    model_free(&gm);
    kernel_ctx_free(&gctx);
    model_free(&cm);
    kernel_ctx_free(&cctx);
    assert_true(ok);
}

/* Prefill two prompts and decode 6 tokens on both backends: logits must agree. */
static void decode_compare(const ModelConfig *cfg) {
    const KernelOps *g = kernels_cuda();
    Model cm, gm;
    KernelCtx cctx, gctx;
    assert_int_equal(fixture_model(&cm, &cctx, cfg, MAX_TOKENS, 4, 21, 0.3f), 0);
    kernel_ctx_init(&gctx, g, model_ws_bytes(cfg, g, MAX_TOKENS));
    assert_int_equal(model_init(&gm, cfg, &gctx, MAX_TOKENS, 4), 0);
    g->copy_h2d(&gctx, gm.param_mem, cm.param_mem, cm.params.total_bytes);
    DecodeState cs, gs;
    assert_int_equal(decode_state_init(&cs, &cm, 2, 40), 0);
    assert_int_equal(decode_state_init(&gs, &gm, 2, 40), 0);
    int prompts[20], start[3] = {0, 13, 20}, tok[2];
    fixture_tokens(prompts, 20, cfg->vocab_size, 8);
    SeqPack pack = {2, start, NULL};
    const int V = cfg->vocab_size;
    float *lc = calloc((size_t)2 * V, sizeof(float)), *lg = calloc((size_t)2 * V, sizeof(float));
    model_prefill(&cm, &cs, prompts, &pack, lc);
    model_prefill(&gm, &gs, prompts, &pack, lg);
    double worst = rel_err(lg, lc, (size_t)2 * V);
    for (int t = 0; t < 6; t++) {
        tok[0] = (t * 7 + 3) % V;
        tok[1] = (t * 5 + 1) % V;
        model_decode_step(&cm, &cs, tok, lc);
        model_decode_step(&gm, &gs, tok, lg);
        double e = rel_err(lg, lc, (size_t)2 * V);
        if (e > worst) worst = e;
    }
    printf("%s decode: prefill + 6 steps, worst logits rel err %.3e\n", model_family_name(cfg->family), worst);
    assert_true(worst < TOL);
    free(lc);
    free(lg);
    decode_state_free(&cs, &cm);
    decode_state_free(&gs, &gm);
    model_free(&gm);
    kernel_ctx_free(&gctx);
    model_free(&cm);
    kernel_ctx_free(&cctx);
}

static void test_decode(void **state) {
    (void)state;
    ModelConfig a = fixture_minimax(), b = fixture_qwen2();
    decode_compare(&a);
    decode_compare(&b);
}

static void test_minimax(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    const int lens[NSEQ] = {9, 37, 1}; /* several lightning blocks (block_size 4), a ragged last one */
    run_compare(&c, lens, c.router_aux_loss_coef * 10);
}

static void test_qwen2(void **state) {
    (void)state;
    ModelConfig c = fixture_qwen2();
    const int lens[NSEQ] = {9, 6, 30};
    run_compare(&c, lens, 0.0f);
}

int main(void) {
    int skip = gpu_skip_status("test_cuda_model");
    if (skip >= 0) return skip;
    /* FP32 tolerances: pin the exact naive lightning kernels (the TF32 chunked ones: test_cuda_lightning) */
    setenv("CISPO_CUDA_NAIVE_LIGHTNING", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimax),
        cmocka_unit_test(test_qwen2),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

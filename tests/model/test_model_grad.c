/* tests/model/test_model_grad.c: finite-difference check of the whole model's backward, for the
 * MiniMax hybrid (lightning + softmax layers, MoE with the auxiliary loss, alpha/beta residuals,
 * sequences crossing several lightning blocks with a ragged last block) and dense Qwen2 (biases,
 * tied embeddings). Loss L = sum_n w_n logp_n + coef * aux over a packed batch of 3 sequences.
 * For every parameter tensor a few elements are perturbed (central differences, loss in double);
 * samples whose perturbation changes an MoE top-k choice are skipped (the loss is not smooth there).
 * labels: unit grad
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "model/model_internal.h"
#include "model_fixtures.h"

#define NSEQ 3
static const int lens[NSEQ] = {9, 6, 1};

typedef struct {
    Model m;
    KernelCtx ctx;
    int tokens[32], targets[32], start[NSEQ + 1], N;
    float w[32], logp[32];
    float coef;
    int topk_ref[8 * 64 * 2];
} Fx;

static double loss_of(Fx *f) {
    SeqPack pack = {NSEQ, f->start, NULL};
    model_forward(&f->m, f->tokens, f->targets, &pack, f->logp, NULL);
    double L = 0;
    for (int n = 0; n < f->N; n++) L += (double)f->w[n] * f->logp[n];
    return L + (double)f->coef * f->m.aux_loss;
}

/* Snapshot (or compare with) the top-k choices of every MoE layer; returns 1 if they match. */
static int routing_same(Fx *f, int save) {
    const ModelConfig *c = &f->m.cfg;
    if (!model_is_moe(c)) return 1;
    int K = c->num_experts_per_tok, off = 0, same = 1;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const int *t = f->m.acts->layer[l].topk_idx;
        for (int i = 0; i < f->N * K; i++, off++) {
            if (save) f->topk_ref[off] = t[i];
            else if (f->topk_ref[off] != t[i]) same = 0;
        }
    }
    return same;
}

static void run_check(const ModelConfig *cfg, float coef) {
    Fx *f = calloc(1, sizeof(Fx));
    assert_int_equal(fixture_model(&f->m, &f->ctx, cfg, 32, NSEQ, 11, 0.3f), 0);
    assert_int_equal(model_config_num_params(cfg), (long long)f->m.n_params);
    f->coef = coef;
    f->start[0] = 0;
    for (int b = 0; b < NSEQ; b++) f->start[b + 1] = f->start[b] + lens[b];
    f->N = f->start[NSEQ];
    fixture_tokens(f->tokens, f->N, cfg->vocab_size, 5);
    fixture_tokens(f->targets, f->N, cfg->vocab_size, 6);
    f->targets[3] = -1; /* a position without a target */
    for (int n = 0; n < f->N; n++) f->w[n] = (float)rng_normal(3, 1, (uint64_t)n);

    double L0 = loss_of(f);
    routing_same(f, 1);
    model_zero_grad(&f->m);
    model_backward(&f->m, f->w, coef);

    int checked = 0, skipped = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < f->m.params.n; i++) {
        TensorSpec *t = &f->m.params.t[i];
        float *p = t->data, *g = f->m.grads.t[i].data;
        double num2 = 0, den2 = 0;
        for (int s = 0; s < 5; s++) {
            int64_t j = (int64_t)(rng_uniform(17, (uint64_t)i, (uint64_t)s) * t->numel) % t->numel;
            float keep = p[j];
            const float eps = 1e-2f;
            p[j] = keep + eps;
            double Lp = loss_of(f);
            int ok = routing_same(f, 0);
            p[j] = keep - eps;
            double Lm = loss_of(f);
            ok = ok && routing_same(f, 0);
            p[j] = keep;
            if (!ok) {
                skipped++;
                continue;
            }
            double fd = (Lp - Lm) / (2.0 * eps);
            num2 += (fd - g[j]) * (fd - g[j]);
            den2 += fd * fd + (double)g[j] * g[j];
            checked++;
        }
        double rel = sqrt(num2) / (sqrt(den2) + 1e-6);
        if (rel > worst) {
            worst = rel;
            worst_name = t->name;
        }
        if (rel > 2e-2) fprintf(stderr, "  %-52s rel err %.3e\n", t->name, rel);
    }
    fprintf(stderr, "%s: loss %.6f, %d samples checked, %d skipped (routing flip), worst %.2e (%s)\n",
            model_family_name(cfg->family), L0, checked, skipped, worst, worst_name);
    assert_true(checked > 5 * f->m.params.n / 2);
    assert_true(worst < 2e-2);
    model_free(&f->m);
    kernel_ctx_free(&f->ctx);
    free(f);
}

static void test_minimax_grad(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    run_check(&c, c.router_aux_loss_coef * 10);
}

static void test_qwen2_grad(void **state) {
    (void)state;
    ModelConfig c = fixture_qwen2();
    run_check(&c, 0.0f);
}

static void test_llama_untied_grad(void **state) {
    (void)state;
    ModelConfig c = fixture_qwen2();
    c.family = MODEL_LLAMA;
    c.attention_bias = 0;
    c.tie_word_embeddings = 0;
    run_check(&c, 0.0f);
    c.attention_bias = 1; /* llama's attention_bias adds q/k/v and o_proj biases */
    run_check(&c, 0.0f);
}

/* Same seed, same weights: two inits are bit-identical; another seed differs. */
static void test_init_deterministic(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    Model a, b;
    KernelCtx ca, cb;
    assert_int_equal(fixture_model(&a, &ca, &c, 16, 2, 42, 0.02f), 0);
    assert_int_equal(fixture_model(&b, &cb, &c, 16, 2, 42, 0.02f), 0);
    assert_memory_equal(a.param_mem, b.param_mem, a.params.total_bytes);
    model_init_weights(&b, 43, 0.02f);
    assert_true(memcmp(a.param_mem, b.param_mem, a.params.total_bytes) != 0);
    model_free(&a);
    model_free(&b);
    kernel_ctx_free(&ca);
    kernel_ctx_free(&cb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimax_grad),
        cmocka_unit_test(test_qwen2_grad),
        cmocka_unit_test(test_llama_untied_grad),
        cmocka_unit_test(test_init_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

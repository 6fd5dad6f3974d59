/* tests/rollout/test_generate.c: the sampler (temperature, top-p, greedy ties, reproducible
 * draws, behaviour log-probs) and the generation loop's stop rules: EOS, the output budget and
 * M1's repetition stop (K consecutive tokens each with probability above tau), each reported as
 * the stop reason; the CPU sample op against sampler_draw (bit for bit); retiring finished sequences
 * from the decode batch against generating each sequence alone (token for token).
 * labels: unit
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../model/model_fixtures.h"
#include "rollout/generate.h"
#include "rollout/sampler.h"
#include "core/rng.h"

static void test_top_p_and_logprob(void **state) {
    (void)state;
    Sampler s;
    sampler_init(&s, 4);
    const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.15f), logf(0.05f)};
    int count[4] = {0};
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        float lp, pr;
        int t = sampler_draw(&s, logits, 1.0f, 0.7f, 42, 1, (uint64_t)i, &lp, &pr);
        count[t]++;
        if (t == 0) {
            assert_float_equal(lp, logf(0.5f / 0.8f), 1e-5); /* renormalised over the nucleus {0, 1} */
            assert_float_equal(pr, 0.5f, 1e-5);              /* raw probability before top-p */
        }
    }
    assert_int_equal(count[2] + count[3], 0); /* outside the nucleus */
    assert_float_equal((double)count[0] / n, 0.625, 0.015);
    /* same (seed, stream, counter) -> same token; temperature sharpens */
    assert_int_equal(sampler_draw(&s, logits, 1.0f, 1.0f, 9, 3, 77, NULL, NULL),
                     sampler_draw(&s, logits, 1.0f, 1.0f, 9, 3, 77, NULL, NULL));
    int hot = 0;
    for (int i = 0; i < 2000; i++) hot += sampler_draw(&s, logits, 0.1f, 1.0f, 5, 2, (uint64_t)i, NULL, NULL) == 0;
    assert_true(hot > 1960); /* p(token 0) = 0.5^10 / sum p^10 = 0.994 at T = 0.1 */
    /* greedy: argmax, ties to the lowest id, log-prob 0 */
    const float tie[4] = {1, 3, 3, 2};
    float lp = -1;
    assert_int_equal(sampler_draw(&s, tie, 0.0f, 1.0f, 1, 1, 1, &lp, NULL), 1);
    assert_float_equal(lp, 0.0f, 0);
    sampler_free(&s);
}

typedef struct {
    Model m;
    KernelCtx ctx;
    Generator g;
} Gx;

static void gx_init(Gx *x) {
    ModelConfig c = fixture_minimax();
    assert_int_equal(fixture_model(&x->m, &x->ctx, &c, 64, 8, 3, 0.3f), 0);
    assert_int_equal(generator_init(&x->g, &x->m, 4, 8, 40), 0);
}

static void gx_free(Gx *x) {
    generator_free(&x->g);
    model_free(&x->m);
    kernel_ctx_free(&x->ctx);
}

static long gen(Gx *x, const GenParams *p) {
    int prompts[8] = {1, 2, 3, 4, 5, 6, 7, 8}, start[3] = {0, 5, 8};
    SeqPack pack = {2, start, NULL};
    return rollout_generate(&x->g, prompts, &pack, p, 11);
}

static void test_stop_rules(void **state) {
    (void)state;
    Gx x;
    gx_init(&x);
    /* greedy: every token has probability 1 > 0.99, so the repetition stop fires after 5 tokens */
    GenParams p = {0.0f, 1.0f, 40, -1, 1, 5, 0.99f, 0};
    assert_int_equal(gen(&x, &p), 10);
    for (int b = 0; b < 2; b++) {
        assert_int_equal(x.g.stop[b], STOP_REPETITION);
        assert_int_equal(x.g.n_gen[b], 5);
    }
    /* repetition stop off: the budget ends both */
    p.rep_count = 0;
    p.max_new_tokens = 12;
    assert_int_equal(gen(&x, &p), 24);
    assert_int_equal(x.g.stop[0], STOP_BUDGET);
    assert_int_equal(x.g.stop[1], STOP_BUDGET);
    /* EOS: make the first greedy token of sequence 0 the EOS id */
    int first0 = x.g.tokens[0], first1 = x.g.tokens[x.g.max_new];
    p.eos_id = first0;
    gen(&x, &p);
    assert_int_equal(x.g.stop[0], STOP_EOS);
    assert_int_equal(x.g.n_gen[0], 1);
    if (first1 != first0) assert_int_not_equal(x.g.stop[1], STOP_EOS);
    /* sampling at temperature 1 from a near-uniform random model: no run of p > 0.99 tokens */
    GenParams q = {1.0f, 1.0f, 30, -1, 1, 3, 0.99f, 0};
    gen(&x, &q);
    assert_int_equal(x.g.stop[0], STOP_BUDGET);
    assert_int_equal(x.g.n_gen[0], 30);
    for (int t = 0; t < 30; t++) assert_true(x.g.logprobs[t] < 0.0f);
    /* the same seed and stream reproduce the samples */
    int keep[30];
    memcpy(keep, x.g.tokens, sizeof keep);
    gen(&x, &q);
    assert_memory_equal(keep, x.g.tokens, sizeof keep);
    gx_free(&x);
}

/* The CPU backend's sample op is sampler_draw bit for bit (token, log-prob, raw prob, entropy), on
 * random rows with ties and zeros, greedy, nucleus and full sampling. */
static void test_sample_op_is_sampler_draw(void **state) {
    (void)state;
    enum { B = 6, V = 300 };
    KernelCtx ctx;
    kernel_ctx_init(&ctx, kernels_cpu(), kernels_cpu()->sample_ws_bytes(B, V));
    Sampler smp;
    sampler_init(&smp, V);
    static float logits[B * V];
    uint64_t stream[B], counter[B];
    const float temps[] = {0.0f, 0.7f, 1.0f}, tops[] = {1.0f, 0.9f, 0.3f};
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < B * V; i++) {
            float x = 3.0f * (float)rng_normal(5, (uint64_t)rep, (uint64_t)i);
            logits[i] = (i % 7 == 0) ? roundf(x) : x; /* exact ties */
        }
        for (int b = 0; b < B; b++) stream[b] = rng_stream(3, (uint64_t)rep, (uint64_t)b, 0), counter[b] = 17 + b;
        for (int it = 0; it < 3; it++)
            for (int ip = 0; ip < 3; ip++) {
                int tok[B];
                float lp[B], pr[B], ent[B];
                kernels_cpu()->sample(&ctx, tok, lp, pr, ent, logits, stream, counter, B, V, temps[it], tops[ip], 77);
                for (int b = 0; b < B; b++) {
                    float lp0, pr0;
                    int t0 = sampler_draw(&smp, logits + (size_t)b * V, temps[it], tops[ip], 77, stream[b], counter[b],
                                          &lp0, &pr0);
                    assert_int_equal(tok[b], t0);
                    assert_memory_equal(&lp[b], &lp0, sizeof(float));
                    assert_memory_equal(&pr[b], &pr0, sizeof(float));
                    assert_memory_equal(&ent[b], &smp.last_entropy, sizeof(float));
                }
            }
    }
    sampler_free(&smp);
    kernel_ctx_free(&ctx);
}

/* Retiring finished sequences from the decode batch: a batch of four prompts of different lengths,
 * stopping at different steps (EOS at random), gives every sequence the tokens and stop reason it
 * gets when generated alone (same stream: seq_base) and when nothing retires, token for token.
 * Log-probs agree to 1e-5 (seen: 3e-6), not bitwise: OpenBLAS rounds a GEMM row differently depending on the
 * batch's row count and the row's place (hence retire = 0 by default on the CPU, generate.h). */
static void test_retire_equals_alone(void **state) {
    (void)state;
    Gx x;
    gx_init(&x);
    assert_int_equal(x.g.retire, 0); /* the CPU default */
    int prompts[18], start[5] = {0, 5, 8, 16, 18};
    fixture_tokens(prompts, 18, 23, 4);
    SeqPack pack = {4, start, NULL};
    const float tops[] = {1.0f, 0.8f};
    for (int ip = 0; ip < 2; ip++) {
        GenParams p = {1.0f, tops[ip], 40, 5, 3, 0, 0.99f, 0};
        x.g.retire = 0;
        long kept = rollout_generate(&x.g, prompts, &pack, &p, 21);
        int tok_keep[4][40];
        for (int b = 0; b < 4; b++) memcpy(tok_keep[b], x.g.tokens + (size_t)b * x.g.max_new, sizeof tok_keep[b]);
        x.g.retire = 1;
        long total = rollout_generate(&x.g, prompts, &pack, &p, 21);
        assert_int_equal(total, kept);
        int n[4], tok[4][40], stop[4], distinct = 0;
        float lp[4][40];
        for (int b = 0; b < 4; b++) {
            n[b] = x.g.n_gen[b], stop[b] = x.g.stop[b];
            memcpy(tok[b], x.g.tokens + (size_t)b * x.g.max_new, sizeof tok[b]);
            memcpy(lp[b], x.g.logprobs + (size_t)b * x.g.max_new, sizeof lp[b]);
            assert_memory_equal(tok[b], tok_keep[b], (size_t)n[b] * sizeof(int));
            distinct += b > 0 && n[b] != n[0];
        }
        assert_true(distinct > 0); /* the sequences really stop at different steps */
        long alone = 0;
        for (int b = 0; b < 4; b++) {
            int s1[2] = {0, start[b + 1] - start[b]};
            SeqPack one = {1, s1, NULL};
            alone += rollout_generate_at(&x.g, prompts + start[b], &one, &p, 21, b);
            assert_int_equal(x.g.n_gen[0], n[b]);
            assert_int_equal(x.g.stop[0], stop[b]);
            assert_memory_equal(x.g.tokens, tok[b], (size_t)n[b] * sizeof(int));
            for (int t = 0; t < n[b]; t++) assert_float_equal(x.g.logprobs[t], lp[b][t], 1e-5);
        }
        assert_int_equal(alone, total);
    }
    gx_free(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_p_and_logprob),
        cmocka_unit_test(test_stop_rules),
        cmocka_unit_test(test_sample_op_is_sampler_draw),
        cmocka_unit_test(test_retire_equals_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/model/test_decode.c: incremental decoding equals the full forward. Two prompts of
 * different lengths (below and above block_size, so the prefill crosses lightning blocks) are
 * prefilled together, then N tokens are decoded one step at a time; every step's logits must
 * match the logits of one forward over prompt + decoded tokens at the same position.
 * labels: unit
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "model/decode.h"
#include "model_fixtures.h"

enum { NDEC = 7, MAXT = 64 };

static double rel_err(const float *a, const float *b, int n) {
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den + 1e-30));
}

/* Logits at every position of one sequence, by a full forward. */
static void full_logits(Model *m, const int *tok, int T, float *out) {
    int start[2] = {0, T};
    SeqPack pack = {1, start, NULL};
    model_forward(m, tok, NULL, &pack, NULL, out);
}

static void run_decode(const ModelConfig *cfg, int P0, int P1) {
    Model m;
    KernelCtx ctx;
    assert_int_equal(fixture_model(&m, &ctx, cfg, MAXT, 4, 21, 0.3f), 0);
    const int V = cfg->vocab_size, P[2] = {P0, P1};
    int seq[2][MAXT];
    for (int b = 0; b < 2; b++) fixture_tokens(seq[b], P[b] + NDEC, V, 100 + b);
    int packed[MAXT], start[3] = {0, P0, P0 + P1};
    for (int i = 0; i < P0; i++) packed[i] = seq[0][i];
    for (int i = 0; i < P1; i++) packed[P0 + i] = seq[1][i];

    DecodeState s;
    assert_int_equal(decode_state_init(&s, &m, 2, MAXT), 0);
    float *step = calloc((size_t)2 * V, sizeof(float));
    float (*dec)[NDEC + 1][64] = calloc(2, sizeof(*dec)); /* [b][step][V] */
    SeqPack pack = {2, start, NULL};
    model_prefill(&m, &s, packed, &pack, step);
    for (int b = 0; b < 2; b++) memcpy(dec[b][0], step + b * V, (size_t)V * sizeof(float));
    for (int t = 0; t < NDEC; t++) {
        int tok[2] = {seq[0][P0 + t], seq[1][P1 + t]};
        model_decode_step(&m, &s, tok, step);
        for (int b = 0; b < 2; b++) memcpy(dec[b][t + 1], step + b * V, (size_t)V * sizeof(float));
    }
    assert_int_equal(s.len[0], P0 + NDEC);
    float *ref = calloc((size_t)MAXT * V, sizeof(float));
    double worst = 0;
    for (int b = 0; b < 2; b++) {
        full_logits(&m, seq[b], P[b] + NDEC, ref);
        for (int t = 0; t <= NDEC; t++) {
            double e = rel_err(dec[b][t], ref + (size_t)(P[b] - 1 + t) * V, V);
            if (e > worst) worst = e;
        }
    }
    fprintf(stderr, "%s P=(%d,%d) block %d: worst rel err %.2e over %d steps\n", model_family_name(cfg->family), P0,
            P1, cfg->block_size, worst, NDEC + 1);
    assert_true(worst < 2e-5);
    free(ref);
    free(dec);
    free(step);
    decode_state_free(&s, &m);
    model_free(&m);
    kernel_ctx_free(&ctx);
}

static void test_minimax_decode_short_and_long(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax(); /* block_size 4 */
    run_decode(&c, 3, 13);              /* below and above the block, ragged */
    run_decode(&c, 8, 1);               /* exactly two blocks; a one-token prompt */
}

static void test_minimax_decode_layer0_full(void **state) {
    (void)state;
    ModelConfig c = fixture_minimax();
    c.layer_types[0] = LAYER_FULL_ATTENTION;
    c.block_size = 16;
    run_decode(&c, 5, 21);
}

static void test_qwen2_decode(void **state) {
    (void)state;
    ModelConfig c = fixture_qwen2();
    run_decode(&c, 6, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimax_decode_short_and_long),
        cmocka_unit_test(test_minimax_decode_layer0_full),
        cmocka_unit_test(test_qwen2_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* tests/rewards/test_genrm.c: the GenRM pieces that do not need a trained judge: the judge prompt
 * (exact text, both positions), verdict parsing (both modes, bad outputs rejected), combining the
 * position-swapped verdicts into a score and reward, the length-bias statistics on hand-worked
 * values, the judge task family, and genrm_score end to end on a tiny random judge (two generations
 * per item with the swap, one without; deterministic; prompts too long are clear errors).
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

#include "core/error.h"
#include "curricula/task.h"
#include "rewards/genrm.h"

static void test_prompt(void **state) {
    (void)state;
    char buf[256];
    int n = genrm_build_prompt(buf, sizeof buf, GENRM_PAIRWISE, "12+30=", "42", "41", 0);
    assert_string_equal(buf, "Compare.\nQ: 12+30=\nReference: 42\nResponse: 41");
    assert_int_equal(n, (int)strlen(buf));
    genrm_build_prompt(buf, sizeof buf, GENRM_PAIRWISE, "12+30=", "42", "41", 1);
    assert_string_equal(buf, "Compare.\nQ: 12+30=\nResponse: 41\nReference: 42");
    genrm_build_prompt(buf, sizeof buf, GENRM_GRADE, "q", "t", "r", 0);
    assert_string_equal(buf, "Grade 1-5.\nQ: q\nTruth: t\nResponse: r");
    assert_int_equal(genrm_build_prompt(buf, 20, GENRM_PAIRWISE, "12+30=", "42", "41", 0), -1);
}

static void test_parse(void **state) {
    (void)state;
    float s = 9;
    assert_true(genrm_parse_verdict(GENRM_PAIRWISE, "<answer>better</answer>", &s) && s == 1.0f);
    assert_true(genrm_parse_verdict(GENRM_PAIRWISE, "<think>41 vs 42</think><answer> Worse </answer>", &s) && s == -1.0f);
    assert_true(genrm_parse_verdict(GENRM_PAIRWISE, "<answer>same</answer>\n", &s) && s == 0.0f);
    assert_false(genrm_parse_verdict(GENRM_PAIRWISE, "<answer>similar</answer>", &s));
    assert_false(genrm_parse_verdict(GENRM_PAIRWISE, "better", &s));              /* no answer tags */
    assert_false(genrm_parse_verdict(GENRM_PAIRWISE, "<answer>same</answer> x", &s)); /* trailing text */
    assert_false(genrm_parse_verdict(GENRM_PAIRWISE, "<answer>3</answer>", &s));
    assert_true(genrm_parse_verdict(GENRM_GRADE, "<answer>5</answer>", &s) && s == 1.0f);
    assert_true(genrm_parse_verdict(GENRM_GRADE, "<answer>1</answer>", &s) && s == -1.0f);
    assert_true(genrm_parse_verdict(GENRM_GRADE, "<answer>4</answer>", &s) && s == 0.5f);
    assert_false(genrm_parse_verdict(GENRM_GRADE, "<answer>6</answer>", &s));
    assert_false(genrm_parse_verdict(GENRM_GRADE, "<answer>45</answer>", &s));
    assert_false(genrm_parse_verdict(GENRM_GRADE, "<answer>same</answer>", &s));
}

static void test_combine_swap(void **state) {
    (void)state;
    GenrmConfig pw = {GENRM_PAIRWISE, 1, 8, 1.0f, 0.0f}, gr = {GENRM_GRADE, 1, 8, 1.0f, -1.0f};
    GenrmVerdict v;
    float s[2] = {1.0f, -1.0f};
    int ok[2] = {1, 1};
    genrm_combine(&pw, s, ok, 2, &v); /* order-dependent verdicts cancel */
    assert_true(v.score == 0.0f && v.reward == 0.0f && v.n_parsed == 2 && !v.consistent);
    s[1] = 1.0f;
    genrm_combine(&pw, s, ok, 2, &v);
    assert_true(v.score == 1.0f && v.consistent);
    ok[0] = 0; /* an unparsed verdict is left out, not counted as "same" */
    s[1] = -1.0f;
    genrm_combine(&pw, s, ok, 2, &v);
    assert_true(v.score == -1.0f && v.n_parsed == 1 && !v.consistent);
    ok[1] = 0;
    genrm_combine(&pw, s, ok, 2, &v);
    assert_true(v.score == 0.0f && v.n_parsed == 0);
    float g[2] = {0.5f, 1.0f}; /* grades 4 and 5: score 0.75, reward -1 + 2 * 0.875 */
    int ok2[2] = {1, 1};
    genrm_combine(&gr, g, ok2, 2, &v);
    assert_float_equal(v.score, 0.75f, 1e-6);
    assert_float_equal(v.reward, 0.75f, 1e-6);
    genrm_combine(&gr, g, ok2, 1, &v); /* no swap: one verdict */
    assert_float_equal(v.reward, 0.5f, 1e-6);
}

static void test_length_bias(void **state) {
    (void)state;
    /* correct: lens 10 20 30 40 rewards 0 0 1 1 -> median 20, long mean 1, short mean 0: gap 1
     * wrong:   lens 5 50 rewards -1 -1            -> gap 0; weighted (4 * 1 + 2 * 0) / 6 */
    const float rw[6] = {0, 0, 1, 1, -1, -1};
    const int len[6] = {10, 20, 30, 40, 5, 50}, cor[6] = {1, 1, 1, 1, 0, 0};
    double corr, gap;
    genrm_length_bias(rw, len, cor, 6, &corr, &gap);
    assert_float_equal(gap, 4.0 / 6.0, 1e-12);
    /* Pearson by hand: mean r 0, mean l 25.833...; computed in double below */
    double mr = 0, ml = 0, sxy = 0, sxx = 0, syy = 0;
    for (int i = 0; i < 6; i++) mr += rw[i] / 6.0, ml += len[i] / 6.0;
    for (int i = 0; i < 6; i++)
        sxy += (rw[i] - mr) * (len[i] - ml), sxx += (rw[i] - mr) * (rw[i] - mr), syy += (len[i] - ml) * (len[i] - ml);
    assert_float_equal(corr, sxy / sqrt(sxx * syy), 1e-9);
    const float flat[3] = {1, 1, 1};
    const int l3[3] = {1, 2, 3}, c3[3] = {1, 1, 1};
    genrm_length_bias(flat, l3, c3, 3, &corr, &gap);
    assert_true(corr == 0.0 && gap == 0.0);
}

static void test_judge_task(void **state) {
    (void)state;
    const TaskFamily *f = task_family_find("judge");
    assert_non_null(f);
    int n_same = 0, n_swapped = 0;
    for (uint64_t i = 0; i < 200; i++) {
        Problem p;
        assert_int_equal(f->generate(&p, 3, 7, i, 0.0), 0);
        const int same = strcmp(p.answer, "same") == 0;
        n_same += same;
        n_swapped += strstr(p.prompt, "Response:") < strstr(p.prompt, "Reference:");
        char want[512]; /* the prompt is exactly the GenRM's for the same texts */
        const char *q0 = p.prompt + strlen("Compare.\nQ: ");
        char q[64];
        snprintf(q, sizeof q, "%.*s", (int)(strchr(q0, '\n') - q0), q0);
        const int sw = strstr(p.prompt, "Response:") < strstr(p.prompt, "Reference:");
        const char *ref = strstr(p.prompt, "Reference: ") + strlen("Reference: ");
        char refs[32];
        snprintf(refs, sizeof refs, "%.*s", (int)strcspn(ref, "\n"), ref);
        genrm_build_prompt(want, sizeof want, GENRM_PAIRWISE, q, refs, p.data, sw);
        assert_string_equal(p.prompt, want);
        assert_int_equal(same, strcmp(p.data, refs) == 0);
        assert_true(f->verify(&p, p.answer) && !f->verify(&p, same ? "worse" : "same"));
        char sol[160];
        snprintf(sol, sizeof sol, "<answer>%s</answer>", p.answer);
        assert_non_null(strstr(p.solution, sol));
    }
    assert_true(n_same > 70 && n_same < 130);
    assert_true(n_swapped > 70 && n_swapped < 130);
}

static void test_score_tiny_judge(void **state) {
    (void)state;
    ModelConfig c;
    model_config_defaults(&c, MODEL_MINIMAX);
    c.vocab_size = TOK_BYTE_VOCAB, c.hidden_size = 16, c.intermediate_size = 16, c.num_hidden_layers = 2;
    c.num_attention_heads = 2, c.num_key_value_heads = 1, c.head_dim = 8, c.rotary_dim = 8, c.block_size = 16;
    c.num_local_experts = 2, c.num_experts_per_tok = 1, c.max_position_embeddings = 256;
    c.layer_types[0] = LAYER_LINEAR_ATTENTION, c.layer_types[1] = LAYER_FULL_ATTENTION;
    Tokenizer tok;
    tokenizer_byte_init(&tok);
    const int B = 4, P = 64;
    KernelCtx ctx;
    Model m;
    kernel_ctx_init(&ctx, kernels_cpu(), model_ws_bytes(&c, kernels_cpu(), genrm_model_tokens(B, P)));
    assert_int_equal(model_init(&m, &c, &ctx, genrm_model_tokens(B, P), B), 0);
    model_init_weights(&m, 3, 0.5f);
    GenrmConfig gc = {GENRM_PAIRWISE, 1, 6, 1.0f, 0.0f};
    Genrm g;
    assert_int_equal(genrm_init(&g, &m, &tok, &gc, B, P), 0);
    const char *q[3] = {"1+2=", "3+4=", "5+5="}, *ref[3] = {"3", "7", "10"}, *resp[3] = {"3", "8", "10"};
    GenrmVerdict v1[3], v2[3];
    assert_int_equal(genrm_score(&g, 3, q, ref, resp, v1), 0);
    assert_int_equal(g.n_judgements, 6); /* both orders of every item, in chunks of B / 2 items */
    assert_int_equal(genrm_score(&g, 3, q, ref, resp, v2), 0);
    assert_memory_equal(v1, v2, sizeof v1); /* greedy: deterministic */
    for (int i = 0; i < 3; i++) assert_true(v1[i].score >= -1 && v1[i].score <= 1 && v1[i].n_parsed <= 2);
    assert_int_equal(g.n_parse_fail, 12 - 2 * (v1[0].n_parsed + v1[1].n_parsed + v1[2].n_parsed));
    char longq[200];
    memset(longq, 'x', sizeof longq - 1), longq[sizeof longq - 1] = '\0';
    const char *ql[1] = {longq};
    assert_int_equal(genrm_score(&g, 1, ql, ref, resp, v1), ERR_RANGE);
    assert_non_null(strstr(err_msg(), "judge holds 64"));
    genrm_free(&g);
    gc.swap = 0;
    assert_int_equal(genrm_init(&g, &m, &tok, &gc, B, P), 0);
    assert_int_equal(genrm_score(&g, 3, q, ref, resp, v1), 0);
    assert_int_equal(g.n_judgements, 3);
    genrm_free(&g);
    genrm_free(&g); /* idempotent */
    model_free(&m);
    kernel_ctx_free(&ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt),          cmocka_unit_test(test_parse),      cmocka_unit_test(test_combine_swap),
        cmocka_unit_test(test_length_bias),     cmocka_unit_test(test_judge_task), cmocka_unit_test(test_score_tiny_judge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

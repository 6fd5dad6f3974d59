/* trainer/eval.c: see eval.h. */
#include "trainer/eval.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "trainer/metrics.h"

void score_response(const Run *r, const Problem *p, const int *tok, int n, RewardResult *out) {
    char text[4 * 4096];
    int m = 0;
    while (m < n && tok[m] != r->tok.eos) m++;
    r->tok.decode(&r->tok, tok, m, text, sizeof text);
    RewardConfig rcfg = {.correct_reward = (float)r->rc.reward_correct, .wrong_reward = (float)r->rc.reward_wrong,
                         .format_penalty = (float)r->rc.reward_format, .code = r->code};
    int err = reward_score(&rcfg, p, text, out);
    CHECK(err == 0, "scoring problem of family %s: %s", p->family, err_msg());
}

int eval_run(Run *r, EvalResult *res) {
    const RunConfig *c = &r->rc;
    const int k = c->eval_k, P = r->ps.eval_size, per_call = r->gen_batch / k;
    CHECK(per_call >= 1, "generator batch %d < eval.samples %d", r->gen_batch, k);
    memset(res, 0, sizeof(*res));
    res->n_problems = P;
    res->k = k;
    int *prompts = xmalloc((size_t)r->gen_batch * r->max_prompt * sizeof(int));
    int *start = xmalloc((size_t)(r->gen_batch + 1) * sizeof(int));
    int *lens = xmalloc((size_t)P * k * sizeof(int)), *scratch = xmalloc((size_t)P * k * sizeof(int));
    Problem *probs = xmalloc((size_t)per_call * sizeof(Problem));
    int ptok[4096];
    long n_correct = 0, n_format = 0, solved = 0, tokens = 0, n_masked = 0, n_scored_problems = 0;
    double t0 = time_now_s();
    Progress pr;
    progress_start(&pr, "eval", P);
    for (int p0 = 0; p0 < P; p0 += per_call) {
        int np = P - p0 < per_call ? P - p0 : per_call, B = np * k, N = 0;
        for (int i = 0; i < np; i++) {
            problems_eval(&r->ps, p0 + i, &probs[i]);
            int n = problems_prompt_tokens(&r->tok, &probs[i], ptok, r->max_prompt);
            CHECK(n > 0, "held-out prompt %d longer than %d tokens", p0 + i, r->max_prompt);
            for (int j = 0; j < k; j++) {
                start[i * k + j] = N;
                memcpy(prompts + N, ptok, (size_t)n * sizeof(int));
                N += n;
            }
        }
        start[B] = N;
        SeqPack pack = {B, start, NULL};
        GenParams gp = {(float)c->eval_temperature, (float)c->eval_top_p, c->rl_max_new, r->tok.eos,
                        (uint64_t)c->eval_seed, c->rep_count, (float)c->rep_prob,
                        strcmp(c->lm_head_dtype, "bf16") == 0};
        tokens += rollout_generate(&r->gen, prompts, &pack, &gp, rng_stream(0xe7a1, (uint64_t)p0, 0, 0));
        for (int i = 0; i < np; i++) {
            int any = 0, scored = 0;
            for (int j = 0; j < k; j++) {
                int b = i * k + j;
                RewardResult rr;
                score_response(r, &probs[i], r->gen.tokens + (size_t)b * r->gen.max_new, r->gen.n_gen[b], &rr);
                n_masked += rr.masked;
                scored += !rr.masked;
                n_correct += rr.correct;
                n_format += rr.format_ok;
                any |= rr.correct;
                lens[(p0 + i) * k + j] = r->gen.n_gen[b];
                res->stops[r->gen.stop[b]]++;
            }
            solved += any;
            n_scored_problems += scored > 0;
        }
        progress_update(&pr, p0 + np, NULL);
    }
    progress_end(&pr);
    res->seconds = time_now_s() - t0;
    res->tokens_per_s = tokens / res->seconds;
    double n_scored = (double)P * k - n_masked; /* masked samples are neither right nor wrong */
    res->n_masked = n_masked;
    if (n_masked > 0) log_warn("eval: %ld of %ld samples masked (code sandbox infrastructure failures)", n_masked, (long)P * k);
    res->pass1 = n_scored > 0 ? (double)n_correct / n_scored : 0.0;
    res->passk = n_scored_problems > 0 ? (double)solved / (double)n_scored_problems : 0.0;
    res->format_rate = n_scored > 0 ? (double)n_format / n_scored : 0.0;
    res->len_mean = stats_mean_int(lens, P * k);
    res->len_p50 = stats_percentile_int(lens, P * k, 0.5, scratch);
    res->len_p99 = stats_percentile_int(lens, P * k, 0.99, scratch);
    free(prompts);
    free(start);
    free(lens);
    free(scratch);
    free(probs);
    return 0;
}

void eval_format(const EvalResult *e, char *buf, size_t cap) {
    snprintf(buf, cap, "pass@1 %.3f  pass@%d %.3f  format %.2f  len p50 %.0f p99 %.0f  stops eos/budget/rep %d/%d/%d  (%d problems x %d)",
             e->pass1, e->k, e->passk, e->format_rate, e->len_p50, e->len_p99, e->stops[STOP_EOS],
             e->stops[STOP_BUDGET], e->stops[STOP_REPETITION], e->n_problems, e->k);
}

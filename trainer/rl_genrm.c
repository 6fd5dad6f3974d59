/* trainer/rl_genrm.c: see rl_genrm.h. */
#include "trainer/rl_genrm.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "rewards/reward.h"

int rl_genrm_rewards(const Run *r, GenrmJudge *jd, const Problem *probs, int G, int nq, float *jrew,
                     GenrmStepStats *st) {
    const Generator *g = &r->gen;
    char *ans = xmalloc((size_t)nq * TASK_ANSWER_MAX), *text = xmalloc(4 * 4096);
    const char **q = xmalloc((size_t)nq * sizeof(char *)), **ref = xmalloc((size_t)nq * sizeof(char *));
    const char **resp = xmalloc((size_t)nq * sizeof(char *));
    GenrmVerdict *v = xmalloc((size_t)nq * sizeof(GenrmVerdict));
    for (int i = 0; i < nq; i++) {
        const int *tok = g->tokens + (size_t)i * g->max_new;
        int m = 0;
        while (m < g->n_gen[i] && tok[m] != r->tok.eos) m++;
        r->tok.decode(&r->tok, tok, m, text, 4 * 4096);
        reward_extract_answer(text, ans + (size_t)i * TASK_ANSWER_MAX, TASK_ANSWER_MAX); /* salvaged if broken */
        q[i] = probs[i / G].prompt, ref[i] = probs[i / G].answer, resp[i] = ans + (size_t)i * TASK_ANSWER_MAX;
    }
    int err = genrm_score(&jd->g, nq, q, ref, resp, v);
    for (int i = 0; i < nq && !err; i++) {
        jrew[i] = v[i].reward;
        st->judged++;
        st->consistent += v[i].consistent;
        st->parsed_both += v[i].n_parsed == 2;
    }
    free(ans), free(text), free(q), free(ref), free(resp), free(v);
    return err;
}

void rl_genrm_metrics(MetricsWriter *mw, const GenrmJudge *jd, const GenrmStepStats *st, const float *reward,
                      const int *len, const int *correct, int n) {
    double corr, gap;
    genrm_length_bias(reward, len, correct, n, &corr, &gap);
    metrics_num(mw, "genrm_len_corr", corr);
    metrics_num(mw, "genrm_len_gap", gap);
    metrics_num(mw, "genrm_consistency", st->parsed_both ? (double)st->consistent / st->parsed_both : 0.0);
    metrics_num(mw, "genrm_parse_fail",
                jd->g.n_judgements ? (double)jd->g.n_parse_fail / jd->g.n_judgements : 0.0);
}

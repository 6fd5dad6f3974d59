/* rewards/genrm.c: see genrm.h. Items are judged in chunks of max_batch / (swap ? 2 : 1) so both
 * orders of an item run in the same generate call; prompts are tokenised as the policy's prompts
 * are (BOS + text + "\n", trainer/problems.c), which is how the judge task (curricula/task_judge.c)
 * trained it.
 */
#include "rewards/genrm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/error.h"
#include "rewards/reward.h"

int genrm_mode_parse(const char *s) {
    if (strcmp(s, "off") == 0) return GENRM_OFF;
    if (strcmp(s, "pairwise") == 0) return GENRM_PAIRWISE;
    if (strcmp(s, "grade") == 0) return GENRM_GRADE;
    return -1;
}

int genrm_model_tokens(int max_batch, int max_prompt) { return max_batch * max_prompt; }

int genrm_init(Genrm *g, Model *judge, const Tokenizer *tok, const GenrmConfig *cfg, int max_batch, int max_prompt) {
    memset(g, 0, sizeof(*g));
    if (cfg->mode != GENRM_PAIRWISE && cfg->mode != GENRM_GRADE)
        return err_set(ERR_CONFIG, "genrm: mode %d is neither pairwise nor grade", (int)cfg->mode);
    if (max_batch < (cfg->swap ? 2 : 1))
        return err_set(ERR_RANGE, "genrm: max_batch %d cannot hold both orders of one item", max_batch);
    int rc = generator_init(&g->gen, judge, max_batch, max_prompt, cfg->max_new);
    if (rc) return rc;
    g->cfg = *cfg;
    g->m = judge;
    g->tok = tok;
    g->max_batch = max_batch;
    g->max_prompt = max_prompt;
    g->ptok = xmalloc((size_t)max_batch * max_prompt * sizeof(int));
    g->start = xmalloc((size_t)(max_batch + 1) * sizeof(int));
    g->scores = xmalloc((size_t)max_batch * sizeof(float));
    g->parsed = xmalloc((size_t)max_batch * sizeof(int));
    g->text = xmalloc(GENRM_TEXT_MAX);
    return 0;
}

void genrm_free(Genrm *g) {
    if (!g || !g->m) return;
    generator_free(&g->gen);
    free(g->ptok), free(g->start), free(g->scores), free(g->parsed), free(g->text);
    memset(g, 0, sizeof(*g));
}

int genrm_build_prompt(char *out, size_t cap, GenrmMode mode, const char *question, const char *reference,
                       const char *response, int swapped) {
    CHECK(mode == GENRM_PAIRWISE || mode == GENRM_GRADE, "genrm_build_prompt: mode %d", (int)mode);
    return judge_prompt(out, cap, mode == GENRM_PAIRWISE ? JUDGE_PAIRWISE : JUDGE_GRADE, question, reference, response,
                        swapped);
}

int genrm_parse_verdict(GenrmMode mode, const char *judge_output, float *score) {
    char ans[TASK_ANSWER_MAX];
    if (!reward_extract_answer(judge_output, ans, (int)sizeof ans)) return 0;
    if (mode == GENRM_PAIRWISE) {
        static const char *const words[3] = {"worse", "same", "better"};
        for (int i = 0; i < 3; i++)
            if (strcasecmp(ans, words[i]) == 0) return *score = (float)(i - 1), 1;
        return 0;
    }
    if (ans[0] >= '1' && ans[0] <= '5' && ans[1] == '\0') return *score = (float)(ans[0] - '3') / 2.0f, 1;
    return 0;
}

void genrm_combine(const GenrmConfig *cfg, const float *s, const int *parsed, int n, GenrmVerdict *v) {
    memset(v, 0, sizeof(*v));
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (parsed[i]) sum += s[i], v->n_parsed++;
    v->score = v->n_parsed ? (float)(sum / v->n_parsed) : 0.0f;
    v->consistent = n == 2 && parsed[0] && parsed[1] && s[0] == s[1];
    v->reward = cfg->mode == GENRM_PAIRWISE
                    ? v->score
                    : cfg->wrong_reward + (cfg->correct_reward - cfg->wrong_reward) * (v->score + 1.0f) / 2.0f;
}

/* Tokenise prompt text for job j of this chunk at *N; returns 0 or ERR_RANGE. */
static int add_prompt(Genrm *g, int j, int item, int *N) {
    const Tokenizer *t = g->tok;
    int *dst = g->ptok + *N;
    size_t len = strlen(g->text);
    if (len + 2 > GENRM_TEXT_MAX) return err_set(ERR_RANGE, "genrm: judge prompt of item %d is too long", item);
    g->text[len] = '\n', g->text[len + 1] = '\0';
    dst[0] = t->bos;
    int n = t->encode(t, g->text, dst + 1, g->max_prompt - 1);
    if (n < 0)
        return err_set(ERR_RANGE, "genrm: judge prompt of item %d needs %d tokens, the judge holds %d", item, 1 - n,
                       g->max_prompt);
    g->start[j] = *N;
    *N += n + 1;
    return 0;
}

int genrm_score(Genrm *g, int n, const char *const *question, const char *const *reference,
                const char *const *response, GenrmVerdict *out) {
    const int k = g->cfg.swap ? 2 : 1, per_call = g->max_batch / k;
    GenParams gp = {0.0f, 1.0f, g->cfg.max_new, g->tok->eos, 0, 0, 0.0f, 0};
    for (int i0 = 0; i0 < n; i0 += per_call) {
        const int ni = n - i0 < per_call ? n - i0 : per_call;
        int N = 0;
        for (int i = 0; i < ni; i++)
            for (int o = 0; o < k; o++) {
                const int it = i0 + i;
                if (genrm_build_prompt(g->text, GENRM_TEXT_MAX - 2, g->cfg.mode, question[it], reference[it],
                                       response[it], o) < 0)
                    return err_set(ERR_RANGE, "genrm: judge prompt of item %d is too long", it);
                int rc = add_prompt(g, i * k + o, it, &N);
                if (rc) return rc;
            }
        g->start[ni * k] = N;
        SeqPack pack = {ni * k, g->start, NULL};
        rollout_generate(&g->gen, g->ptok, &pack, &gp, 0);
        for (int j = 0; j < ni * k; j++) {
            const int *ids = g->gen.tokens + (size_t)j * g->gen.max_new;
            int m = 0;
            while (m < g->gen.n_gen[j] && ids[m] != g->tok->eos) m++;
            g->tok->decode(g->tok, ids, m, g->text, GENRM_TEXT_MAX);
            g->parsed[j] = genrm_parse_verdict(g->cfg.mode, g->text, &g->scores[j]);
            g->n_judgements++;
            g->n_parse_fail += !g->parsed[j];
        }
        for (int i = 0; i < ni; i++) genrm_combine(&g->cfg, g->scores + i * k, g->parsed + i * k, k, &out[i0 + i]);
    }
    return 0;
}

/* Lower median of len over the items of class c (O(n^2), no allocation). */
static int class_median(const int *len, const int *correct, int n, int c, int cnt) {
    const int want = (cnt - 1) / 2;
    for (int i = 0; i < n; i++) {
        if ((correct[i] != 0) != c) continue;
        int below = 0, at_or_below = 0;
        for (int j = 0; j < n; j++) {
            if ((correct[j] != 0) != c) continue;
            below += len[j] < len[i];
            at_or_below += len[j] <= len[i];
        }
        if (below <= want && want < at_or_below) return len[i];
    }
    return 0;
}

void genrm_length_bias(const float *reward, const int *len, const int *correct, int n, double *corr, double *gap) {
    double sr = 0, sl = 0, srr = 0, sll = 0, srl = 0;
    for (int i = 0; i < n; i++) {
        sr += reward[i], sl += len[i], srr += (double)reward[i] * reward[i];
        sll += (double)len[i] * len[i], srl += (double)reward[i] * len[i];
    }
    double vr = n ? srr - sr * sr / n : 0, vl = n ? sll - sl * sl / n : 0;
    *corr = vr > 1e-12 && vl > 1e-12 ? (srl - sr * sl / n) / sqrt(vr * vl) : 0.0;
    double gsum = 0;
    long gw = 0;
    for (int c = 0; c <= 1; c++) {
        int cnt = 0;
        for (int i = 0; i < n; i++) cnt += (correct[i] != 0) == c;
        if (cnt < 2) continue;
        const int med = class_median(len, correct, n, c, cnt);
        double s_long = 0, s_short = 0;
        int n_long = 0, n_short = 0;
        for (int i = 0; i < n; i++) {
            if ((correct[i] != 0) != c) continue;
            if (len[i] > med) s_long += reward[i], n_long++;
            else s_short += reward[i], n_short++;
        }
        if (n_long == 0 || n_short == 0) continue;
        gsum += cnt * (s_long / n_long - s_short / n_short);
        gw += cnt;
    }
    *gap = gw ? gsum / gw : 0.0;
}

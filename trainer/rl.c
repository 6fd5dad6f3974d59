/* trainer/rl.c: see rl.h.
 *
 * One step:
 *   1. rounds of rl.prompts_per_step prompts x G responses until prompts_per_step groups are kept
 *      (dynamic sampling drops groups whose rewards are all equal) or rl.max_gen_batches rounds ran;
 *   2. advantages per group; responses shuffled (seeded) into rl.minibatches mini-batches;
 *   3. old log-probs for every response token with the pre-update weights (rl.old_logp: learner),
 *      and the reference policy's for GRPO;
 *   4. per mini-batch: forward, policy loss and dL/dlogp, backward, AdamW step.
 * Prompt i of round k of step s is training problem ((s * max_rounds + k) * prompts_per_step + i),
 * so every draw is a function of (seed, step, round, index). The draw and the step's output budget
 * go through the curricula (trainer/run_curriculum.h; off by default), which each step then feeds
 * with its outcomes. With rl.eval_every, the step's metrics line also holds held-out eval_pass1.
 * Multi-rank runs (trainer/dist.h): rollout ranks generate, learners update; one process is both.
 */
#include "trainer/rl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "checkpoints/traj_dump.h"
#include "trainer/advantage.h"
#include "trainer/dist.h"
#include "trainer/dynamic_sampling.h"
#include "trainer/eval.h"
#include "trainer/masked_groups.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"
#include "trainer/policy_loss.h"
#include "trainer/rl_genrm.h"
#include "trainer/train_ckpt.h"

/* The kept responses of one generation batch, group-major (response j belongs to group j / G). */
typedef struct {
    int G, max_groups, max_new, max_prompt;
    int n_groups;
    Problem *prob;       /* (max_groups) */
    int *prompt, *plen;  /* (max_groups, max_prompt) (max_groups) */
    int *resp, *rlen;    /* (R, max_new) (R) */
    float *beh_logp;     /* (R, max_new) */
    float *beh_prob;     /* (R, max_new) */
    float *reward, *adv; /* (R) */
    int *stop;           /* (R) StopReason */
    float *old_logp, *ref_logp; /* (R, max_new) */
    /* scratch of one generation round (max_groups prompts x G) */
    Problem *round_prob;
    int *round_plen, *round_keep, *round_fam;
    float *round_rew;
    int *round_mask;    /* (max_groups * G) 1: reward masked (trainer/masked_groups.h) */
} RlBatch;

typedef struct {
    /* step statistics over every generated response (before dynamic sampling) */
    long n_resp, n_correct, n_format, gen_tokens;
    long n_masked;    /* responses whose reward was masked: not in n_correct, n_format, reward_sum */
    double reward_sum, logp_sum, ent_sum;
    int stops[4];
    int *lens, n_lens;
    int rounds;
    float *rews;      /* (n_lens) GenRM reward of each response (reward.genrm_mode != off) */
    int *corr;        /* (n_lens) rule verifier's correctness */
    GenrmStepStats js;
} GenStats;

static void batch_alloc(RlBatch *b, int max_groups, int G, int max_prompt, int max_new) {
    memset(b, 0, sizeof(*b));
    b->G = G;
    b->max_groups = max_groups;
    b->max_new = max_new;
    b->max_prompt = max_prompt;
    size_t R = (size_t)max_groups * G;
    b->prob = xcalloc((size_t)max_groups, sizeof(Problem));
    b->prompt = xcalloc((size_t)max_groups * max_prompt, sizeof(int));
    b->plen = xcalloc((size_t)max_groups, sizeof(int));
    b->resp = xcalloc(R * max_new, sizeof(int));
    b->rlen = xcalloc(R, sizeof(int));
    b->beh_logp = xcalloc(R * max_new, sizeof(float));
    b->beh_prob = xcalloc(R * max_new, sizeof(float));
    b->reward = xcalloc(R, sizeof(float));
    b->adv = xcalloc(R, sizeof(float));
    b->stop = xcalloc(R, sizeof(int));
    b->old_logp = xcalloc(R * max_new, sizeof(float));
    b->ref_logp = xcalloc(R * max_new, sizeof(float));
    b->round_prob = xcalloc((size_t)max_groups, sizeof(Problem));
    b->round_plen = xcalloc((size_t)max_groups, sizeof(int));
    b->round_keep = xcalloc((size_t)max_groups, sizeof(int));
    b->round_fam = xcalloc((size_t)max_groups, sizeof(int));
    b->round_rew = xcalloc(R, sizeof(float));
    b->round_mask = xcalloc(R, sizeof(int));
}

static void batch_free(RlBatch *b) {
    free(b->prob);
    free(b->prompt);
    free(b->plen);
    free(b->resp);
    free(b->rlen);
    free(b->beh_logp);
    free(b->beh_prob);
    free(b->reward);
    free(b->adv);
    free(b->stop);
    free(b->old_logp);
    free(b->ref_logp);
    free(b->round_prob);
    free(b->round_plen);
    free(b->round_keep);
    free(b->round_fam);
    free(b->round_rew);
    free(b->round_mask);
}

/* One generation round of n prompts x G with output budget `budget` (the step's, from the curricula);
 * scores every response, appends informative groups to b. */
static void gen_round(Run *r, RlBatch *b, GenStats *gs, int step, int round, int budget, int *ptok, int *start,
                      GenrmJudge *jd) {
    const RunConfig *c = &r->rc;
    const int G = c->group_size, n = c->prompts_per_step;
    Problem *probs = b->round_prob;
    int *plen = b->round_plen, N = 0;
    for (int i = 0; i < n; i++) {
        uint64_t idx = ((uint64_t)step * (c->max_gen_batches > 0 ? c->max_gen_batches : 64) + round) * n + i;
        run_curriculum_draw(&r->cur, &r->ps, step, idx, &probs[i], &b->round_fam[i]);
        int *dst = ptok + N;
        plen[i] = problems_prompt_tokens(&r->tok, &probs[i], dst, r->max_prompt);
        CHECK(plen[i] > 0, "training prompt longer than %d tokens", r->max_prompt);
        for (int j = 0; j < G; j++) {
            start[i * G + j] = N;
            if (j > 0) memcpy(ptok + N, dst, (size_t)plen[i] * sizeof(int));
            N += plen[i];
        }
    }
    start[n * G] = N;
    SeqPack pack = {n * G, start, NULL};
    GenParams gp = {(float)c->rl_temperature, (float)c->rl_top_p, budget, r->tok.eos, (uint64_t)c->seed,
                    c->rep_count, (float)c->rep_prob, strcmp(c->lm_head_dtype, "bf16") == 0};
    gs->gen_tokens += dist_generate(r, ptok, &pack, &gp, rng_stream(0x71, (uint64_t)step, (uint64_t)round, 0));
    gs->rounds++;
    const Generator *g = &r->gen;
    float *rew = b->round_rew;
    int *keep = b->round_keep, *mask = b->round_mask, group_correct = 0;
    float *jrew = jd ? xmalloc((size_t)n * G * sizeof(float)) : NULL; /* GenRM rewards replace the rule's */
    if (jd) CHECK(rl_genrm_rewards(r, jd, probs, G, n * G, jrew, &gs->js) == 0, "genrm: %s", err_msg());
    for (int q = 0; q < n * G; q++) {
        RewardResult rr;
        score_response(r, &probs[q / G], g->tokens + (size_t)q * g->max_new, g->n_gen[q], &rr);
        rew[q] = jd ? jrew[q] + (rr.format_ok ? 0.0f : (float)c->reward_format) : rr.reward;
        gs->rews[gs->n_lens] = jd ? jrew[q] : rew[q];
        gs->corr[gs->n_lens] = rr.correct;
        if (c->overlong) rew[q] += dapo_overlong_penalty(g->n_gen[q], budget, c->overlong_cache);
        group_correct += rr.correct;
        mask[q] = rr.masked;
        if (q % G == G - 1) {
            int scored = G - masked_count(mask + q + 1 - G, G);
            if (scored > 0) run_curriculum_record(&r->cur, &probs[q / G], b->round_fam[q / G], group_correct, scored);
            group_correct = 0;
        }
        gs->n_resp++;
        gs->n_masked += rr.masked;
        if (!rr.masked) {
            gs->n_correct += rr.correct;
            gs->n_format += rr.format_ok;
            gs->reward_sum += rew[q];
        }
        gs->stops[g->stop[q]]++;
        gs->lens[gs->n_lens++] = g->n_gen[q];
        gs->ent_sum += g->ent_sum[q];
        for (int t = 0; t < g->n_gen[q]; t++) gs->logp_sum += g->logprobs[(size_t)q * g->max_new + t];
    }
    free(jrew);
    masked_groups_filter(rew, mask, n, G, c->dynamic_sampling, b->max_groups - b->n_groups, keep);
    for (int i = 0; i < n; i++) {
        if (!keep[i]) continue;
        int k = b->n_groups++;
        b->prob[k] = probs[i];
        b->plen[k] = plen[i];
        memcpy(b->prompt + (size_t)k * b->max_prompt, ptok + start[i * G], (size_t)plen[i] * sizeof(int));
        for (int j = 0; j < G; j++) {
            int q = i * G + j, d = k * G + j;
            b->rlen[d] = g->n_gen[q];
            b->reward[d] = rew[q];
            b->stop[d] = g->stop[q];
            memcpy(b->resp + (size_t)d * b->max_new, g->tokens + (size_t)q * g->max_new, (size_t)g->n_gen[q] * sizeof(int));
            memcpy(b->beh_logp + (size_t)d * b->max_new, g->logprobs + (size_t)q * g->max_new,
                   (size_t)g->n_gen[q] * sizeof(float));
            memcpy(b->beh_prob + (size_t)d * b->max_new, g->probs_raw + (size_t)q * g->max_new,
                   (size_t)g->n_gen[q] * sizeof(float));
        }
    }
}

/* Pack responses ids[0..n) (prompt + response minus its last token) with targets on the response. */
static int pack_responses(const RlBatch *b, const int *ids, int n, int *tokens, int *targets, int *start) {
    int N = 0;
    for (int s = 0; s < n; s++) {
        int d = ids[s], k = d / b->G, P = b->plen[k], L = b->rlen[d];
        const int *pr = b->prompt + (size_t)k * b->max_prompt, *rs = b->resp + (size_t)d * b->max_new;
        start[s] = N;
        for (int t = 0; t < P; t++) {
            tokens[N + t] = pr[t];
            targets[N + t] = t == P - 1 ? rs[0] : -1;
        }
        for (int t = 0; t + 1 < L; t++) {
            tokens[N + P + t] = rs[t];
            targets[N + P + t] = rs[t + 1];
        }
        N += P + L - 1;
    }
    start[n] = N;
    return N;
}

/* logp of every response token of ids[] under model m into dst (R, max_new) layout. */
static void score_tokens(Model *m, const RlBatch *b, const int *ids, int n, int *tokens, int *targets, int *start,
                         float *logp, float *dst) {
    pack_responses(b, ids, n, tokens, targets, start);
    SeqPack pack = {n, start, NULL};
    model_forward(m, tokens, targets, &pack, logp, NULL);
    for (int s = 0; s < n; s++) {
        int d = ids[s], P = b->plen[d / b->G];
        for (int t = 0; t < b->rlen[d]; t++) dst[(size_t)d * b->max_new + t] = logp[start[s] + P - 1 + t];
    }
}

static double pearson(const double *x, const double *y, long n) {
    double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
    for (long i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    for (long i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
        sxy += (x[i] - mx) * (y[i] - my);
    }
    return sxy / sqrt(sxx * syy + 1e-300);
}

static void loss_config(const RunConfig *c, PolicyLossConfig *lc) {
    memset(lc, 0, sizeof(*lc));
    lc->type = !strcmp(c->algo, "ppo") ? LOSS_PPO : !strcmp(c->algo, "grpo") ? LOSS_GRPO
             : !strcmp(c->algo, "dapo") ? LOSS_DAPO : LOSS_CISPO;
    lc->cispo_c_high = c->cispo_c_high;
    lc->cispo_c_low = c->cispo_c_low;
    lc->cispo_mask = c->cispo_mask;
    lc->mask_eps_low = c->eps_low;
    lc->mask_eps_high = c->eps_high;
    lc->eps_low = c->eps_low;
    lc->eps_high = c->eps_high;
    lc->dual_clip_c = c->dual_clip_c;
    lc->kl_beta = lc->type == LOSS_GRPO ? c->kl_beta : 0.0;
    lc->agg = !strcmp(c->agg, "seq-mean-token-mean")       ? AGG_SEQ_MEAN_TOKEN_MEAN
              : !strcmp(c->agg, "seq-mean-token-sum-norm") ? AGG_SEQ_MEAN_TOKEN_SUM_NORM
              : !strcmp(c->agg, "mixed")                   ? AGG_MIXED
                                                           : AGG_TOKEN_MEAN;
    lc->agg_alpha = c->agg_alpha;
    lc->max_len = c->rl_max_new;
}

typedef struct {
    int *dump_i32;   /* (groups * max_prompt + R * max_new + 2R + groups + 2) flat dump scratch */
    float *dump_f32; /* (2 * R * max_new) */
    int *tokens, *targets, *start, *ids, *off, *scratch;
    float *logp, *dlogp, *lp_new, *lp_old, *lp_ref, *adv, *w, *dtok;
    double *mx, *my;
} Work;

static void work_alloc(Work *w, const Run *r, long R) {
    size_t NT = (size_t)r->m.max_tokens, T = (size_t)R * r->rc.rl_max_new;
    w->tokens = xcalloc(NT, sizeof(int));
    w->targets = xcalloc(NT, sizeof(int));
    w->start = xcalloc((size_t)R + 1, sizeof(int));
    w->ids = xcalloc((size_t)R, sizeof(int));
    w->off = xcalloc((size_t)R + 1, sizeof(int));
    w->scratch = xcalloc((size_t)R * 4 + 64, sizeof(int));
    w->logp = xcalloc(NT, sizeof(float));
    w->dlogp = xcalloc(NT, sizeof(float));
    w->lp_new = xcalloc(T, sizeof(float));
    w->lp_old = xcalloc(T, sizeof(float));
    w->lp_ref = xcalloc(T, sizeof(float));
    w->adv = xcalloc((size_t)R, sizeof(float));
    w->w = xcalloc(T, sizeof(float));
    w->dtok = xcalloc(T, sizeof(float));
    w->mx = xcalloc(T, sizeof(double));
    w->my = xcalloc(T, sizeof(double));
    size_t G = (size_t)r->rc.prompts_per_step;
    w->dump_i32 = xcalloc(G * r->max_prompt + T + 2 * (size_t)R + G + 2, sizeof(int));
    w->dump_f32 = xcalloc(2 * T, sizeof(float));
}

static void work_free(Work *w) {
    free(w->tokens), free(w->targets), free(w->start), free(w->ids), free(w->off), free(w->scratch);
    free(w->logp), free(w->dlogp), free(w->lp_new), free(w->lp_old), free(w->lp_ref), free(w->adv);
    free(w->w), free(w->dtok), free(w->mx), free(w->my), free(w->dump_i32), free(w->dump_f32);
}

/* rollout.dump_every: the kept responses of this step, flattened (checkpoints/traj_dump.h). */
static int dump_step(const Run *r, const RlBatch *b, Work *w, long step) {
    const int G = b->n_groups, R = G * b->G;
    int32_t *poff = w->dump_i32, *ptok = poff + G + 1, *roff, *rtok, *stop;
    int np = 0;
    for (int k = 0; k < G; k++) {
        poff[k] = np;
        memcpy(ptok + np, b->prompt + (size_t)k * b->max_prompt, (size_t)b->plen[k] * sizeof(int));
        np += b->plen[k];
    }
    poff[G] = np;
    roff = ptok + np;
    rtok = roff + R + 1;
    float *beh = w->dump_f32, *lrn;
    int nr = 0;
    for (int d = 0; d < R; d++) {
        roff[d] = nr;
        memcpy(rtok + nr, b->resp + (size_t)d * b->max_new, (size_t)b->rlen[d] * sizeof(int));
        memcpy(beh + nr, b->beh_logp + (size_t)d * b->max_new, (size_t)b->rlen[d] * sizeof(float));
        nr += b->rlen[d];
    }
    roff[R] = nr;
    stop = rtok + nr;
    lrn = beh + nr;
    for (int d = 0, o = 0; d < R; o += b->rlen[d], d++) {
        memcpy(lrn + o, b->old_logp + (size_t)d * b->max_new, (size_t)b->rlen[d] * sizeof(float));
        stop[d] = b->stop[d];
    }
    TrajDump td = {step, G, b->G, poff, ptok, roff, rtok, beh, lrn, b->reward, b->adv, stop};
    return traj_dump_write(r->rc.dir, &td);
}

typedef struct {
    double loss, grad_norm, grad_norm_max, clip_frac, kl, ratio_max, mismatch_corr, mismatch_max;
    long learner_tokens;
    int updates;
} LearnStats;

/* Old (and reference) log-probs for all kept responses, in chunks of mb_seqs; the mismatch
 * between the rollout's token probabilities and the learner's. */
static int old_logps(Run *r, Model *ref, RlBatch *b, Work *w, LearnStats *ls) {
    const int R = b->n_groups * b->G;
    int lo, hi, err = 0; /* several learners: each scores its share, then all share the rows */
    dist_shard(r->dist, R, &lo, &hi);
    for (int i = 0; i < R; i++) w->ids[i] = i;
    for (int s = lo; s < hi; s += r->mb_seqs) {
        int n = hi - s < r->mb_seqs ? hi - s : r->mb_seqs;
        score_tokens(&r->m, b, w->ids + s, n, w->tokens, w->targets, w->start, w->logp, b->old_logp);
        if (ref) score_tokens(ref, b, w->ids + s, n, w->tokens, w->targets, w->start, w->logp, b->ref_logp);
        ls->learner_tokens += w->start[n];
    }
    if (dist_n_learners(r->dist) > 1) {
        err = dist_share_rows(r->dist, b->old_logp, R, (size_t)b->max_new * sizeof(float));
        if (!err && ref) err = dist_share_rows(r->dist, b->ref_logp, R, (size_t)b->max_new * sizeof(float));
        if (err) return err;
    }
    long T = 0;
    double mmax = 0;
    for (int d = 0; d < R; d++)
        for (int t = 0; t < b->rlen[d]; t++) {
            size_t i = (size_t)d * b->max_new + t;
            w->mx[T] = b->beh_prob[i];
            w->my[T] = exp(b->old_logp[i]);
            double dl = fabs(log(fmax(b->beh_prob[i], 1e-30)) - b->old_logp[i]);
            if (dl > mmax) mmax = dl;
            T++;
        }
    ls->mismatch_corr = T > 1 ? pearson(w->mx, w->my, T) : 1.0;
    ls->mismatch_max = mmax;
    if (!strcmp(r->rc.old_logp, "rollout")) memcpy(b->old_logp, b->beh_logp, (size_t)R * b->max_new * sizeof(float));
    return 0;
}

/* This learner's part of a mini-batch: loss and dL/dlogp with the mini-batch's normalisers,
 * backward into m->grads (zeroed first). n may be 0 (a learner with no share). */
static PolicyLossStats learn_part(Run *r, const PolicyLossConfig *lc, RlBatch *b, Work *w, const int *ids, int n,
                                  int use_ref, long n_seq_all, long n_tok_all, int *n_packed) {
    PolicyLossStats st;
    memset(&st, 0, sizeof st);
    *n_packed = 0;
    if (n == 0) {
        model_zero_grad(&r->m);
        return st;
    }
    int N = pack_responses(b, ids, n, w->tokens, w->targets, w->start);
    SeqPack pack = {n, w->start, NULL};
    model_forward(&r->m, w->tokens, w->targets, &pack, w->logp, NULL);
    int T = 0;
    for (int s = 0; s < n; s++) {
        int d = ids[s], P = b->plen[d / b->G];
        w->off[s] = T;
        w->adv[s] = b->adv[d];
        for (int t = 0; t < b->rlen[d]; t++, T++) {
            w->lp_new[T] = w->logp[w->start[s] + P - 1 + t];
            w->lp_old[T] = b->old_logp[(size_t)d * b->max_new + t];
            w->lp_ref[T] = b->ref_logp[(size_t)d * b->max_new + t];
        }
    }
    w->off[n] = T;
    PolicyLossBatch pb = {n, w->off, w->lp_new, w->lp_old, use_ref ? w->lp_ref : NULL, w->adv, NULL};
    policy_loss_weights(lc, &pb, n_seq_all, n_tok_all, w->w);
    st = policy_loss_compute(lc, &pb, w->w, w->dtok);
    memset(w->dlogp, 0, (size_t)N * sizeof(float));
    for (int s = 0; s < n; s++) {
        int d = ids[s], P = b->plen[d / b->G];
        for (int t = 0; t < b->rlen[d]; t++) w->dlogp[w->start[s] + P - 1 + t] = w->dtok[w->off[s] + t];
    }
    model_zero_grad(&r->m);
    model_backward(&r->m, w->dlogp, r->m.cfg.router_aux_loss_coef / dist_n_learners(r->dist));
    *n_packed = N;
    return st;
}

/* One optimizer update on responses ids[0..n). With several learners each takes a contiguous share;
 * the token normaliser is the whole mini-batch's (every learner holds the batch) and the gradients
 * are summed over the learners before the (identical) AdamW step. */
static int update(Run *r, Optimizer *opt, const PolicyLossConfig *lc, RlBatch *b, Work *w, const int *ids, int n,
                  int use_ref, LearnStats *ls) {
    const int L = dist_n_learners(r->dist);
    long n_tok = 0;
    for (int s = 0; L > 1 && s < n; s++) n_tok += b->rlen[ids[s]];
    int lo, hi, N;
    dist_shard(r->dist, n, &lo, &hi);
    PolicyLossStats st = learn_part(r, lc, b, w, ids + lo, hi - lo, use_ref, L > 1 ? n : 0, n_tok, &N);
    double learner_tokens = N;
    if (L > 1) {
        double sum[5] = {st.loss, st.clip_frac * st.n_tokens, st.kl * st.n_tokens, st.n_tokens, N}, mx = st.ratio_max;
        int err = dist_allreduce_grads(r->dist, &r->m);
        if (!err) err = dist_reduce_stats(r->dist, sum, 5, &mx, 1);
        if (err) return err;
        st.loss = sum[0];
        st.clip_frac = sum[3] > 0 ? sum[1] / sum[3] : 0;
        st.kl = sum[3] > 0 ? sum[2] / sum[3] : 0;
        st.ratio_max = mx;
        learner_tokens = sum[4];
    }
    double gn = optimizer_step(opt);
    ls->loss += st.loss;
    ls->clip_frac += st.clip_frac;
    ls->kl += st.kl;
    if (st.ratio_max > ls->ratio_max) ls->ratio_max = st.ratio_max;
    ls->grad_norm += isfinite(gn) ? gn : 0;
    if (gn > ls->grad_norm_max || !isfinite(gn)) ls->grad_norm_max = gn;
    ls->learner_tokens += (long)learner_tokens;
    ls->updates++;
    return 0;
}

/* Disaggregated runs: the kept batch and the generation statistics go from the rollout ranks to
 * the learners (trainer/dist.h); a no-op otherwise. Problems stay on the rollout side. */
static int batch_xfer(Run *r, RlBatch *b, GenStats *gs, int step) {
    if (!r->dist || r->dist->colocated) return 0;
    int *lens = gs->lens;
    DistField head[] = {{&b->n_groups, sizeof b->n_groups}, {gs, sizeof *gs}};
    int err = dist_batch_xfer(r->dist, step, 0, head, 2);
    gs->lens = lens; /* the pointer member came from another process */
    if (err) return err;
    const size_t K = (size_t)b->n_groups, R = K * b->G, M = (size_t)b->max_new;
    DistField body[] = {{b->prompt, K * b->max_prompt * sizeof(int)}, {b->plen, K * sizeof(int)},
                        {b->resp, R * M * sizeof(int)},   {b->rlen, R * sizeof(int)},
                        {b->beh_logp, R * M * sizeof(float)}, {b->beh_prob, R * M * sizeof(float)},
                        {b->reward, R * sizeof(float)},    {b->stop, R * sizeof(int)},
                        {gs->lens, (size_t)gs->n_lens * sizeof(int)}};
    err = dist_batch_xfer(r->dist, step, 1, body, (int)(sizeof body / sizeof body[0]));
    return err ? err : dist_weights_after_batch(r->dist, &r->m, step, r->rc.rl_steps); /* GPU: dist.h */
}

static int ckpt_due(const RunConfig *c, int step) {
    return (c->ckpt_every > 0 && (step + 1) % c->ckpt_every == 0) || step + 1 == c->rl_steps;
}

static void write_step_metrics(MetricsWriter *mw, int step, const RunConfig *c, const GenStats *gs, const RlBatch *b,
                               const LearnStats *ls, const Optimizer *opt, double lr, int budget, int *scratch,
                               const GenrmJudge *jd) {
    double n = gs->n_resp - gs->n_masked > 0 ? (double)(gs->n_resp - gs->n_masked) : 1.0; /* scored responses */
    metrics_begin(mw);
    metrics_int(mw, "step", step);
    metrics_num(mw, "reward_mean", gs->reward_sum / n);
    metrics_num(mw, "accuracy", gs->n_correct / n);
    metrics_num(mw, "format_rate", gs->n_format / n);
    metrics_num(mw, "response_len_mean", stats_mean_int(gs->lens, gs->n_lens));
    metrics_num(mw, "response_len_p50", stats_percentile_int(gs->lens, gs->n_lens, 0.5, scratch));
    metrics_num(mw, "response_len_p99", stats_percentile_int(gs->lens, gs->n_lens, 0.99, scratch));
    metrics_int(mw, "budget", budget);
    metrics_int(mw, "stop_eos", gs->stops[STOP_EOS]);
    metrics_int(mw, "stop_budget", gs->stops[STOP_BUDGET]);
    metrics_int(mw, "stop_repetition", gs->stops[STOP_REPETITION]);
    metrics_num(mw, "gen_ppl", exp(-gs->logp_sum / (gs->gen_tokens > 0 ? gs->gen_tokens : 1)));
    metrics_num(mw, "entropy", gs->ent_sum / (gs->gen_tokens > 0 ? gs->gen_tokens : 1));
    metrics_int(mw, "gen_rounds", gs->rounds);
    metrics_int(mw, "groups_kept", b->n_groups);
    metrics_int(mw, "reward_masked", (int)gs->n_masked);
    int u = ls->updates > 0 ? ls->updates : 1;
    metrics_num(mw, "loss", ls->loss / u);
    metrics_num(mw, "grad_norm", ls->grad_norm / u);
    metrics_num(mw, "grad_norm_max", ls->grad_norm_max);
    metrics_num(mw, "clip_frac", ls->clip_frac / u);
    metrics_num(mw, "kl", ls->kl / u);
    metrics_num(mw, "ratio_max", ls->ratio_max);
    metrics_num(mw, "mismatch_corr", ls->mismatch_corr);
    metrics_num(mw, "mismatch_max_dlogp", ls->mismatch_max);
    metrics_num(mw, "lr", lr);
    metrics_int(mw, "updates", ls->updates);
    metrics_int(mw, "skipped_updates", opt->skipped);
    if (jd) rl_genrm_metrics(mw, jd, &gs->js, gs->rews, gs->lens, gs->corr, gs->n_lens);
}

int rl_run(Run *r, RlResult *res, LoopCkpt *lc) {
    const RunConfig *c = &r->rc;
    memset(res, 0, sizeof(*res));
    if (c->rl_steps <= 0) return 0;
    const int G = c->group_size, n = c->prompts_per_step;
    const long R = (long)n * G;
    OptimConfig oc = {.lr = c->lr, .beta1 = c->beta1, .beta2 = c->beta2, .eps = c->adam_eps,
                      .weight_decay = c->weight_decay, .grad_clip = c->grad_clip, .warmup_steps = c->warmup_steps};
    Optimizer opt;
    int err = optimizer_init(&opt, &r->m, &oc);
    if (err) return err;
    PolicyLossConfig lossc;
    loss_config(c, &lossc);
    AdvConfig ac = {!strcmp(c->adv_std, "population") ? ADV_STD_POPULATION
                    : !strcmp(c->adv_std, "none")     ? ADV_STD_NONE
                                                      : ADV_STD_SAMPLE,
                    c->adv_eps};
    const int resuming = lc && lc->resume_dir && lc->ts->phase == PHASE_RL && lc->ts->step > 0;
    const int first = resuming ? (int)lc->ts->step : 0;
    Model ref, *refp = NULL;
    if (lossc.type == LOSS_GRPO && lossc.kl_beta > 0) { /* frozen reference = the policy at the start of RL */
        if ((err = model_init(&ref, &r->m.cfg, &r->ctx, r->m.max_tokens, r->m.max_seqs))) return err;
        r->ctx.ops->copy_d2d(&r->ctx, ref.param_mem, r->m.param_mem, r->m.params.total_bytes);
        refp = &ref;
        if (resuming && (err = train_ckpt_load_ref(lc->resume_dir, refp))) return err;
    }
    if (resuming && (err = train_ckpt_load_optimizer(lc->resume_dir, &opt))) return err;
    if (resuming && (err = run_curriculum_load(&r->cur, lc->resume_dir))) return err;
    RlBatch b;
    batch_alloc(&b, n, G, r->max_prompt, c->rl_max_new);
    Work w;
    work_alloc(&w, r, R);
    int *ptok = xmalloc((size_t)R * r->max_prompt * sizeof(int)), *gstart = xmalloc((size_t)(R + 1) * sizeof(int));
    int max_rounds = c->max_gen_batches > 0 ? c->max_gen_batches : 64;
    GenStats gs = {0};
    gs.lens = xmalloc((size_t)R * max_rounds * sizeof(int));
    float *rews = xmalloc((size_t)R * max_rounds * sizeof(float));
    int *corr = xmalloc((size_t)R * max_rounds * sizeof(int));
    GenrmJudge judge, *jd = NULL;
    if (strcmp(c->genrm_mode, "off") != 0) {
        if ((err = genrm_judge_open(&judge, c, &r->tok, 32, r->max_prompt + 2 * TASK_ANSWER_MAX + 64))) return err;
        jd = &judge;
    }
    int *scratch = xmalloc((size_t)R * max_rounds * sizeof(int));
    MetricsWriter mw, tw;
    char mpath[1024], tpath[1024];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", c->dir);
    snprintf(tpath, sizeof tpath, "%s/timing.jsonl", c->dir);
    const int lead = dist_is_leader(r->dist); /* rank 0 writes the metrics (trainer/dist.h) */
    dist_rl_begin(r->dist, first);
    if (!lead) {
        if (resuming) log_info("RL resumes after step %d", first);
    } else if (resuming) {
        if ((err = train_ckpt_truncate_metrics(mpath, first)) || (err = metrics_open_append(&mw, mpath))) return err;
        (void)train_ckpt_truncate_metrics(tpath, first); /* timings are advisory: a short file is fine */
        if ((err = metrics_open_append(&tw, tpath))) return err;
        log_info("RL resumes after step %d", first);
    } else if ((err = metrics_open(&mw, mpath)) || (err = metrics_open(&tw, tpath))) {
        return err;
    }
    Progress pr;
    progress_start(&pr, "rl", c->rl_steps);
    double t_start = time_now_s(), roll_s = 0, learn_s = 0;
    long roll_tok = 0, learn_tok = 0;
    for (int step = first; step < c->rl_steps && err == 0; step++) {
        double t0 = time_now_s();
        int *lens = gs.lens;
        memset(&gs, 0, sizeof gs);
        gs.lens = lens, gs.rews = rews, gs.corr = corr;
        b.n_groups = 0;
        const int budget = run_curriculum_budget(&r->cur, c);
        run_curriculum_begin_step(&r->cur);
        dist_test_hooks(r->dist, step);
        if (dist_is_rollout(r->dist)) {
            if ((err = dist_rollout_weights(r->dist, &r->m, step))) break;
            for (int round = 0; round < max_rounds && b.n_groups < n; round++)
                gen_round(r, &b, &gs, step, round, budget, ptok, gstart, jd);
        }
        if ((err = batch_xfer(r, &b, &gs, step))) break;
        if (!dist_is_learner(r->dist)) { /* a rollout-only rank: on to the next step */
            if (lc && ckpt_due(c, step)) {
                lc->ts->step = step + 1;
                if ((err = train_ckpt_save(r, lc->ts, NULL, NULL))) break;
            }
            continue;
        }
        double t1 = time_now_s();
        LearnStats ls = {0};
        ls.mismatch_corr = ls.mismatch_max = NAN; /* null in metrics.jsonl when no group was kept */
        double lr = optimizer_lr(&opt);
        const int Rk = b.n_groups * G;
        if (Rk > 0) {
            advantages_compute(&ac, b.reward, b.n_groups, G, b.adv);
            if ((err = old_logps(r, refp, &b, &w, &ls))) break;
            if (lead && c->dump_every > 0 && (step + 1) % c->dump_every == 0 && (err = dump_step(r, &b, &w, step + 1)))
                break;
            for (int i = 0; i < Rk; i++) w.ids[i] = i; /* seeded shuffle into mini-batches */
            for (int i = Rk - 1; i > 0; i--) {
                int j = (int)(rng_uniform((uint64_t)c->seed, rng_stream(0x5f, (uint64_t)step, 0, 0), (uint64_t)i) * (i + 1));
                int t = w.ids[i];
                w.ids[i] = w.ids[j];
                w.ids[j] = t;
            }
            int nmb = c->minibatches < Rk ? c->minibatches : Rk;
            for (int k = 0; k < nmb; k++) {
                int s0 = (int)((long)Rk * k / nmb), s1 = (int)((long)Rk * (k + 1) / nmb);
                if ((err = update(r, &opt, &lossc, &b, &w, w.ids + s0, s1 - s0, refp != NULL, &ls))) break;
            }
        }
        if (err || (err = dist_after_update(r->dist, &r->m, step, c->rl_steps))) break;
        double t2 = time_now_s();
        roll_s += t1 - t0, learn_s += t2 - t1, roll_tok += gs.gen_tokens, learn_tok += ls.learner_tokens;
        run_curriculum_end_step(&r->cur, &r->ps, step + 1, exp(-gs.logp_sum / (gs.gen_tokens > 0 ? gs.gen_tokens : 1)),
                                stats_percentile_int(gs.lens, gs.n_lens, 0.99, scratch));
        EvalResult er;
        const int do_eval = lead && c->eval_every > 0 && (step + 1) % c->eval_every == 0 && step + 1 < c->rl_steps;
        if (!lead) goto ckpt;
        if (do_eval) eval_run(r, &er);
        write_step_metrics(&mw, step + 1, c, &gs, &b, &ls, &opt, lr, budget, scratch, jd);
        run_curriculum_metrics(&r->cur, &r->ps, &mw);
        if (do_eval) { /* held-out pass@1 after this step (same draws at every evaluation) */
            metrics_num(&mw, "eval_pass1", er.pass1);
            metrics_num(&mw, "eval_passk", er.passk);
        }
        if ((err = metrics_commit(&mw))) break;
        metrics_begin(&tw);
        metrics_int(&tw, "step", step + 1);
        metrics_num(&tw, "rollout_tokens_per_s", gs.gen_tokens / (t1 - t0));
        metrics_num(&tw, "learner_tokens_per_s", ls.learner_tokens / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
        metrics_num(&tw, "tokens_per_s", (gs.gen_tokens + ls.learner_tokens) / (t2 - t0));
        metrics_num(&tw, "rollout_s", t1 - t0);
        metrics_num(&tw, "learner_s", t2 - t1);
        metrics_num(&tw, "step_s", t2 - t0);
        if (r->dist && !r->dist->colocated) { /* weight sync to the rollout ranks (trainer/dist.h) */
            double sync_s, sync_bytes;
            dist_sync_take(r->dist, &sync_s, &sync_bytes);
            metrics_num(&tw, "weight_sync_s", sync_s);
            metrics_num(&tw, "weight_sync_bytes", sync_bytes);
        }
        if ((err = metrics_commit(&tw))) break;
        res->last_reward = gs.reward_sum / (gs.n_resp - gs.n_masked > 0 ? gs.n_resp - gs.n_masked : 1);
        res->last_accuracy = (double)gs.n_correct / (gs.n_resp - gs.n_masked > 0 ? gs.n_resp - gs.n_masked : 1);
        char extra[200];
        snprintf(extra, sizeof extra, "reward %.3f acc %.3f len p50/p99 %.0f/%.0f  %.0f tok/s", res->last_reward,
                 res->last_accuracy, stats_percentile_int(gs.lens, gs.n_lens, 0.5, scratch),
                 stats_percentile_int(gs.lens, gs.n_lens, 0.99, scratch),
                 (roll_tok + learn_tok) / (time_now_s() - t_start));
        progress_update(&pr, step + 1, extra);
    ckpt:
        if (lc) {
            lc->ts->step = step + 1;
            if (ckpt_due(c, step) && (err = train_ckpt_save(r, lc->ts, &opt, refp))) break;
        }
        if (do_eval) {
            char line[300];
            eval_format(&er, line, sizeof line);
            log_info("eval after RL step %d: %s", step + 1, line);
        }
    }
    progress_end(&pr);
    res->steps = c->rl_steps - first; /* steps run by this process (a resumed run skips the done ones) */
    res->seconds = time_now_s() - t_start;
    res->rollout_tokens_per_s = roll_tok / (roll_s > 0 ? roll_s : 1);
    res->learner_tokens_per_s = learn_tok / (learn_s > 0 ? learn_s : 1);
    res->skipped_updates = opt.skipped;
    if (lead) {
        metrics_close(&mw);
        metrics_close(&tw);
    }
    free(ptok), free(gstart), free(gs.lens), free(scratch), free(rews), free(corr);
    genrm_judge_close(jd);
    work_free(&w);
    batch_free(&b);
    if (refp) model_free(refp);
    optimizer_free(&opt);
    return err;
}

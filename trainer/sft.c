/* trainer/sft.c: see sft.h. Step s uses training problems [s*B, (s+1)*B), so a run is a pure
 * function of the seed. */
#include "trainer/sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "trainer/metrics.h"
#include "trainer/optimizer.h"
#include "trainer/train_ckpt.h"

/* Mean "loss" of the first and last (up to) 10 lines of an SFT metrics file. */
static void loss_ends(const char *path, int steps, double *first, double *last) {
    *first = *last = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    int i = 0, nf = 0, nl = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\":");
        double v = p ? atof(p + 7) : 0;
        if (i < 10) *first += v, nf++;
        if (i >= steps - 10) *last += v, nl++;
        i++;
    }
    fclose(f);
    if (nf) *first /= nf;
    if (nl) *last /= nl;
}

int sft_run(Run *r, SftResult *res, LoopCkpt *lc) {
    const RunConfig *c = &r->rc;
    const int B = c->sft_batch, cap = r->max_sft;
    memset(res, 0, sizeof(*res));
    if (c->sft_steps <= 0) return 0;
    OptimConfig oc = {.lr = c->sft_lr, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.0,
                      .grad_clip = c->grad_clip, .warmup_steps = c->sft_warmup};
    Optimizer opt;
    int err = optimizer_init(&opt, &r->m, &oc);
    if (err) return err;
    MetricsWriter mw;
    char path[1024];
    snprintf(path, sizeof path, "%s/sft_metrics.jsonl", c->dir);
    int first = 0;
    if (lc && lc->resume_dir && lc->ts->phase == PHASE_SFT && lc->ts->step > 0) {
        first = (int)lc->ts->step;
        if ((err = train_ckpt_load_optimizer(lc->resume_dir, &opt)) ||
            (err = train_ckpt_truncate_metrics(path, first)) || (err = metrics_open_append(&mw, path))) {
            optimizer_free(&opt);
            return err;
        }
        log_info("SFT resumes after step %d", first);
    } else if ((err = metrics_open(&mw, path))) {
        optimizer_free(&opt);
        return err;
    }
    int *tokens = xmalloc((size_t)B * cap * sizeof(int)), *targets = xmalloc((size_t)B * cap * sizeof(int));
    int *start = xmalloc((size_t)(B + 1) * sizeof(int));
    float *logp = xmalloc((size_t)B * cap * sizeof(float)), *dlogp = xmalloc((size_t)B * cap * sizeof(float));
    int *seq = xmalloc((size_t)cap * sizeof(int));
    Progress pr;
    progress_start(&pr, "sft", c->sft_steps);
    double t0 = time_now_s();
    long tok_total = 0;
    for (int s = first; s < c->sft_steps && !err; s++) {
        int N = 0, n_tgt = 0;
        for (int b = 0; b < B; b++) {
            Problem p;
            int np;
            problems_train(&r->ps, (uint64_t)s * B + b, &p);
            int n = problems_sft_tokens(&r->tok, &p, seq, cap, &np);
            CHECK(n > 1, "SFT sequence of problem %d does not fit in %d tokens", s * B + b, cap);
            start[b] = N;
            for (int t = 0; t < n - 1; t++) { /* position t predicts token t+1 */
                tokens[N + t] = seq[t];
                targets[N + t] = t + 1 >= np ? seq[t + 1] : -1;
                n_tgt += t + 1 >= np;
            }
            N += n - 1;
        }
        start[B] = N;
        SeqPack pack = {B, start, NULL};
        model_forward(&r->m, tokens, targets, &pack, logp, NULL);
        double ce = 0;
        for (int n = 0; n < N; n++) {
            if (targets[n] >= 0) ce -= logp[n];
            dlogp[n] = targets[n] >= 0 ? -1.0f / n_tgt : 0.0f;
        }
        ce /= n_tgt;
        model_zero_grad(&r->m);
        model_backward(&r->m, dlogp, r->m.cfg.router_aux_loss_coef);
        double lr = optimizer_lr(&opt), gnorm = optimizer_step(&opt);
        tok_total += N;
        metrics_begin(&mw);
        metrics_int(&mw, "step", s + 1);
        metrics_num(&mw, "loss", ce);
        metrics_num(&mw, "aux_loss", r->m.aux_loss);
        metrics_num(&mw, "grad_norm", gnorm);
        metrics_num(&mw, "lr", lr);
        metrics_int(&mw, "tokens", N);
        if ((err = metrics_commit(&mw))) break;
        char extra[160];
        double el = time_now_s() - t0;
        snprintf(extra, sizeof extra, "loss %.4f  %.0f tok/s", ce, tok_total / (el > 0 ? el : 1));
        progress_update(&pr, s + 1, extra);
        if (lc) {
            lc->ts->step = s + 1;
            if (c->ckpt_every > 0 && (s + 1) % c->ckpt_every == 0 && s + 1 < c->sft_steps)
                err = train_ckpt_save(r, lc->ts, &opt, NULL);
        }
    }
    progress_end(&pr);
    res->steps = c->sft_steps;
    res->seconds = time_now_s() - t0;
    res->tokens_per_s = tok_total / (res->seconds > 0 ? res->seconds : 1);
    metrics_close(&mw);
    loss_ends(path, c->sft_steps, &res->loss_first, &res->loss_last);
    free(tokens);
    free(targets);
    free(start);
    free(logp);
    free(dlogp);
    free(seq);
    optimizer_free(&opt);
    return err;
}

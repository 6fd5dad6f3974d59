/* trainer/train_ckpt.c: see train_ckpt.h. Device tensors are staged through host memory.
 * Multi-rank runs (trainer/dist.h): rank 0 opens the temporary directory and writes the shared
 * files (the learners are identical replicas); every rank writes its own rank_NNNN.h5 there; the
 * ranks agree that all writes succeeded before rank 0 commits, and on the commit's outcome. */
#include "trainer/train_ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/log.h"
#include "core/version.h"
#include "trainer/dist.h"

long train_ckpt_global_step(const RunConfig *rc, TrainPhase phase, long step) {
    return phase == PHASE_SFT ? step : (long)rc->sft_steps + step;
}

/* Write every tensor of `tt` laid out over `base` (backend memory) as prefix + name. */
static int write_table(H5File *f, KernelCtx *ctx, const TensorTable *tt, const void *base, const char *prefix) {
    size_t maxn = 0;
    for (int i = 0; i < tt->n; i++)
        if ((size_t)tt->t[i].numel > maxn) maxn = tt->t[i].numel;
    float *host = xmalloc(maxn * sizeof(float) + 1);
    char name[TENSOR_NAME_MAX + 16];
    int err = 0;
    for (int i = 0; i < tt->n && !err; i++) {
        const TensorSpec *t = &tt->t[i];
        ctx->ops->copy_d2h(ctx, host, (const char *)base + t->offset_bytes, (size_t)t->numel * sizeof(float));
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        err = h5_write_f32(f, name, host, t->ndim, t->shape);
    }
    free(host);
    return err;
}

static int read_table(H5File *f, KernelCtx *ctx, const TensorTable *tt, void *base, const char *prefix) {
    size_t maxn = 0;
    for (int i = 0; i < tt->n; i++)
        if ((size_t)tt->t[i].numel > maxn) maxn = tt->t[i].numel;
    float *host = xmalloc(maxn * sizeof(float) + 1);
    char name[TENSOR_NAME_MAX + 16];
    int err = 0;
    for (int i = 0; i < tt->n && !err; i++) {
        const TensorSpec *t = &tt->t[i];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        err = h5_read_f32(f, name, host, t->ndim, t->shape);
        if (!err) ctx->ops->copy_h2d(ctx, (char *)base + t->offset_bytes, host, (size_t)t->numel * sizeof(float));
    }
    free(host);
    return err;
}

static int write_i64(H5File *f, const char *name, int64_t v) { return h5_write_i64(f, name, &v, 0, NULL); }

static int read_i64(H5File *f, const char *name, int64_t *v) { return h5_read_i64(f, name, v, 0, NULL); }

/* Doubles of the state are stored as their IEEE-754 bit patterns in int64 scalars, so they round-trip
 * exactly (h5io writes float32 and integers only). */
static int write_f64(H5File *f, const char *name, double v) {
    int64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return write_i64(f, name, bits);
}

static int read_f64(H5File *f, const char *name, double *v) {
    int64_t bits;
    int err = read_i64(f, name, &bits);
    if (!err) memcpy(v, &bits, sizeof bits);
    return err;
}

static int write_state(H5File *f, const Run *r, const TrainState *ts) {
    const EvalResult *e = &ts->eval_before;
    const SftResult *s = &ts->sft;
    int err = 0;
    err = err ? err : write_i64(f, "phase", ts->phase);
    err = err ? err : write_i64(f, "step", ts->step);
    err = err ? err : write_i64(f, "seed", r->rc.seed);
    err = err ? err : write_i64(f, "sft/have", ts->have_sft);
    err = err ? err : write_i64(f, "sft/steps", s->steps);
    err = err ? err : write_f64(f, "sft/loss_first", s->loss_first);
    err = err ? err : write_f64(f, "sft/loss_last", s->loss_last);
    err = err ? err : write_f64(f, "sft/tokens_per_s", s->tokens_per_s);
    err = err ? err : write_f64(f, "sft/seconds", s->seconds);
    err = err ? err : write_i64(f, "eval_before/have", ts->have_eval_before);
    err = err ? err : write_i64(f, "eval_before/problems", e->n_problems);
    err = err ? err : write_i64(f, "eval_before/k", e->k);
    err = err ? err : write_f64(f, "eval_before/pass1", e->pass1);
    err = err ? err : write_f64(f, "eval_before/passk", e->passk);
    err = err ? err : write_f64(f, "eval_before/format_rate", e->format_rate);
    err = err ? err : write_f64(f, "eval_before/len_mean", e->len_mean);
    err = err ? err : write_f64(f, "eval_before/len_p50", e->len_p50);
    err = err ? err : write_f64(f, "eval_before/len_p99", e->len_p99);
    int64_t stops[4] = {e->stops[0], e->stops[1], e->stops[2], e->stops[3]}, four = 4;
    err = err ? err : h5_write_i64(f, "eval_before/stops", stops, 1, &four);
    char *yaml = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&yaml, &len);
    if (!mf) return err_set(ERR_NOMEM, "cannot print the config");
    run_config_print(mf, &r->rc);
    fclose(mf);
    err = err ? err : h5_write_bytes(f, "config_yaml", yaml, len);
    free(yaml);
    err = err ? err : run_curriculum_save(&r->cur, f);
    const char *ver = cispo_version();
    err = err ? err : h5_write_bytes(f, "cispo_version", ver, strlen(ver));
    return err;
}

static int write_shared(Run *r, const CkptWriter *w, const TrainState *ts, const Optimizer *opt, const Model *ref);

int train_ckpt_save(Run *r, const TrainState *ts, const Optimizer *opt, const Model *ref) {
    CkptWriter w;
    memset(&w, 0, sizeof w);
    long gstep = train_ckpt_global_step(&r->rc, ts->phase, ts->step);
    const int lead = dist_is_leader(r->dist);
    int err = lead ? ckpt_begin(&w, r->rc.dir, gstep) : 0;
    if ((err = dist_agree(r->dist, err))) return err;
    if (r->dist) {
        if ((err = dist_bcast_str(r->dist, w.tmp_dir, sizeof w.tmp_dir))) return err;
        err = dist_ckpt_write_rank(r->dist, &r->m, w.tmp_dir, gstep);
    }
    if (!err && lead) err = write_shared(r, &w, ts, opt, ref);
    err = dist_agree(r->dist, err);
    if (!err && lead) err = ckpt_commit(&w, r->rc.ckpt_keep_last, r->rc.ckpt_keep_every);
    if (lead && err) ckpt_abort(&w);
    if (r->dist) err = dist_agree(r->dist, err);
    if (err) return err_wrap(err, "checkpoint of step %ld", gstep);
    if (lead) log_info("checkpoint %s", w.final_dir);
    return 0;
}

static int write_shared(Run *r, const CkptWriter *w, const TrainState *ts, const Optimizer *opt, const Model *ref) {
    int err = 0;
    char path[1024];
    H5File f;
    KernelCtx *ctx = &r->ctx;
    /* model */
    if (!(err = ckpt_path(w, "model.h5", path, sizeof path)) && !(err = h5_create(&f, path))) {
        err = write_table(&f, ctx, &r->m.params, r->m.param_mem, "params/");
        int e2 = h5_close(&f);
        err = err ? err : e2;
    }
    if (!err && opt) {
        if (!(err = ckpt_path(w, "optim.h5", path, sizeof path)) && !(err = h5_create(&f, path))) {
            err = write_table(&f, ctx, &r->m.params, opt->mom1, "m/");
            err = err ? err : write_table(&f, ctx, &r->m.params, opt->mom2, "v/");
            err = err ? err : write_i64(&f, "step", opt->step);
            err = err ? err : write_i64(&f, "skipped", opt->skipped);
            int e2 = h5_close(&f);
            err = err ? err : e2;
        }
    }
    if (!err && ref) {
        if (!(err = ckpt_path(w, "ref.h5", path, sizeof path)) && !(err = h5_create(&f, path))) {
            err = write_table(&f, ctx, &ref->params, ref->param_mem, "params/");
            int e2 = h5_close(&f);
            err = err ? err : e2;
        }
    }
    if (!err && !(err = ckpt_path(w, "config.json", path, sizeof path))) err = model_config_save_hf(&r->m.cfg, path);
    if (!err && !(err = ckpt_path(w, "state.h5", path, sizeof path)) && !(err = h5_create(&f, path))) {
        err = write_state(&f, r, ts);
        int e2 = h5_close(&f);
        err = err ? err : e2;
    }
    return err;
}

static int open_in(const char *dir, const char *name, H5File *f) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return h5_open(f, path);
}

int train_ckpt_read_state(const char *dir, TrainState *ts, char **config_yaml) {
    H5File f;
    int err = open_in(dir, "state.h5", &f);
    if (err) return err;
    memset(ts, 0, sizeof(*ts));
    int64_t phase = 0, step = 0, have_sft = 0, sft_steps = 0, have_eval = 0;
    err = err ? err : read_i64(&f, "phase", &phase);
    err = err ? err : read_i64(&f, "step", &step);
    err = err ? err : read_i64(&f, "sft/have", &have_sft);
    err = err ? err : read_i64(&f, "sft/steps", &sft_steps);
    err = err ? err : read_f64(&f, "sft/loss_first", &ts->sft.loss_first);
    err = err ? err : read_f64(&f, "sft/loss_last", &ts->sft.loss_last);
    err = err ? err : read_f64(&f, "sft/tokens_per_s", &ts->sft.tokens_per_s);
    err = err ? err : read_f64(&f, "sft/seconds", &ts->sft.seconds);
    err = err ? err : read_i64(&f, "eval_before/have", &have_eval);
    EvalResult *e = &ts->eval_before;
    int64_t np = 0, k = 0, stops[4] = {0}, four = 4;
    err = err ? err : read_i64(&f, "eval_before/problems", &np);
    err = err ? err : read_i64(&f, "eval_before/k", &k);
    err = err ? err : read_f64(&f, "eval_before/pass1", &e->pass1);
    err = err ? err : read_f64(&f, "eval_before/passk", &e->passk);
    err = err ? err : read_f64(&f, "eval_before/format_rate", &e->format_rate);
    err = err ? err : read_f64(&f, "eval_before/len_mean", &e->len_mean);
    err = err ? err : read_f64(&f, "eval_before/len_p50", &e->len_p50);
    err = err ? err : read_f64(&f, "eval_before/len_p99", &e->len_p99);
    err = err ? err : h5_read_i64(&f, "eval_before/stops", stops, 1, &four);
    e->n_problems = (int)np;
    e->k = (int)k;
    for (int i = 0; i < 4; i++) e->stops[i] = (int)stops[i];
    size_t len = 0;
    if (!err && config_yaml) err = h5_read_bytes(&f, "config_yaml", config_yaml, &len);
    h5_close(&f);
    if (err) return err;
    if (phase < PHASE_SFT || phase > PHASE_DONE || step < 0)
        return err_set(ERR_FORMAT, "%s/state.h5: phase %lld step %lld out of range", dir, (long long)phase,
                       (long long)step);
    ts->phase = (TrainPhase)phase;
    ts->step = step;
    ts->have_sft = (int)have_sft;
    ts->sft.steps = (int)sft_steps;
    ts->have_eval_before = (int)have_eval;
    return 0;
}

int train_ckpt_load_model(Run *r, const char *dir) { return train_ckpt_load_params(dir, &r->ctx, &r->m); }

int train_ckpt_load_params(const char *dir, KernelCtx *ctx, Model *m) {
    H5File f;
    int err = open_in(dir, "model.h5", &f);
    if (err) return err;
    err = read_table(&f, ctx, &m->params, m->param_mem, "params/");
    h5_close(&f);
    return err;
}

int train_ckpt_load_optimizer(const char *dir, Optimizer *opt) {
    H5File f;
    int err = open_in(dir, "optim.h5", &f);
    if (err) return err;
    int64_t step = 0, skipped = 0;
    err = read_table(&f, opt->m->ctx, &opt->m->params, opt->mom1, "m/");
    err = err ? err : read_table(&f, opt->m->ctx, &opt->m->params, opt->mom2, "v/");
    err = err ? err : read_i64(&f, "step", &step);
    err = err ? err : read_i64(&f, "skipped", &skipped);
    h5_close(&f);
    if (!err) {
        opt->step = step;
        opt->skipped = skipped;
    }
    return err;
}

int train_ckpt_load_ref(const char *dir, Model *ref) {
    H5File f;
    int err = open_in(dir, "ref.h5", &f);
    if (err) return err;
    err = read_table(&f, ref->ctx, &ref->params, ref->param_mem, "params/");
    h5_close(&f);
    return err;
}

/* Keys a resumed run may change without breaking the continuation. */
static int key_may_change(const char *key) {
    static const char *ok[] = {"run.log_level", "rl.steps", "rl.eval_every", "ckpt.every", "ckpt.keep_last",
                               "ckpt.keep_every", "dist.timeout_s", NULL};
    for (int i = 0; ok[i]; i++)
        if (!strcmp(key, ok[i])) return 1;
    return 0;
}

/* The "key: value" line of `key` in printed YAML ("section:\n  key: value  # help"). */
static void yaml_value(const char *yaml, const char *key, char *out, size_t cap) {
    const char *dot = strchr(key, '.');
    char sect[64], want[128];
    snprintf(sect, sizeof sect, "%.*s:\n", (int)(dot - key), key);
    snprintf(want, sizeof want, "  %s: ", dot + 1);
    out[0] = '\0';
    const char *s = strstr(yaml, sect);
    if (!s) return;
    const char *next = strstr(s + strlen(sect), "\n\n"), *p = strstr(s, want);
    if (!p || (next && p > next)) return;
    p += strlen(want);
    size_t n = strcspn(p, "\n");
    const char *hash = strstr(p, "  # ");
    if (hash && (size_t)(hash - p) < n) n = (size_t)(hash - p);
    snprintf(out, cap, "%.*s", (int)n, p);
}

int train_ckpt_check_config(const RunConfig *rc, const char *ckpt_yaml, const char *ckpt_dir) {
    char *now = NULL;
    size_t len = 0;
    FILE *mf = open_memstream(&now, &len);
    if (!mf) return err_set(ERR_NOMEM, "cannot print the config");
    run_config_print(mf, rc);
    fclose(mf);
    char diffs[4096] = "";
    int n = 0;
    for (const ConfigField *f = run_config_schema(); f->key; f++) {
        if (key_may_change(f->key) || !strcmp(f->key, "run.dir")) continue;
        char a[600], b[600];
        yaml_value(now, f->key, a, sizeof a);
        yaml_value(ckpt_yaml, f->key, b, sizeof b);
        if (strcmp(a, b) != 0) {
            size_t used = strlen(diffs);
            snprintf(diffs + used, sizeof diffs - used, "\n  %s: checkpoint %s, now %s", f->key, b, a);
            n++;
        }
    }
    free(now);
    if (n == 0) return 0;
    return err_set(ERR_CONFIG,
                   "cannot resume from %s: %d config value%s differ%s:%s\n"
                   "HINT: resume with the checkpoint's config (saved in the run directory's config.yaml); only "
                   "run.log_level, rl.steps, rl.eval_every and ckpt.* may change",
                   ckpt_dir, n, n > 1 ? "s" : "", n > 1 ? "" : "s", diffs);
}

int train_ckpt_truncate_metrics(const char *path, long steps) {
    FILE *f = fopen(path, "r");
    if (!f) return steps == 0 ? 0 : err_set(ERR_IO, "cannot read %s to resume it", path);
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        return err_set(ERR_IO, "cannot write %s", tmp);
    }
    long lines = 0;
    int c;
    while (lines < steps && (c = fgetc(f)) != EOF) {
        fputc(c, o);
        if (c == '\n') lines++;
    }
    fclose(f);
    int bad = fflush(o) != 0 || fsync(fileno(o)) != 0;
    bad |= fclose(o) != 0;
    if (bad || rename(tmp, path) != 0) return err_set(ERR_IO, "cannot rewrite %s", path);
    if (lines < steps) return err_set(ERR_FORMAT, "%s has %ld lines, the checkpoint is at step %ld", path, lines, steps);
    return 0;
}

/* trainer/run_curriculum.c: see run_curriculum.h.
 *
 * A draw picks the family from the mixture at this step and the difficulty uniformly in the
 * family's current range, both from the counter-based generator keyed by (seed, candidate index),
 * then generates; when the pass-rate filter drops the candidate it tries the next candidate index,
 * up to RC_FILTER_TRIES, then takes the last one (a run never stalls on an exhausted pool).
 * Doubles are checkpointed as their IEEE-754 bits in int64 datasets, so the state round-trips exactly.
 */
#include "trainer/run_curriculum.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"

#define RC_FILTER_TRIES 16
#define RC_ENTRY_I32 (2 * TC_RECENT + 2)

static int budget_setup(RunCurriculum *cu, const RunConfig *rc) {
    BudgetConfig bc = {{0}, 0, rc->ppl_window, rc->ppl_tol, rc->p99_frac, rc->min_stage_steps};
    int err = budget_parse_stages(rc->budget_stages, "curriculum.budget_stages", bc.stages, BUDGET_MAX_STAGES,
                                  &bc.n_stages);
    if (err) return err;
    cu->budget_on = bc.n_stages > 0;
    if (cu->budget_on && bc.stages[bc.n_stages - 1] > rc->rl_max_new)
        return err_set(ERR_CONFIG, "curriculum.budget_stages: last stage %d exceeds rollout.max_new_tokens %d\n"
                       "HINT: rollout.max_new_tokens sizes the buffers; set it to the last stage",
                       bc.stages[bc.n_stages - 1], rc->rl_max_new);
    return budget_init(&cu->budget, &bc);
}

int run_curriculum_init(RunCurriculum *cu, const RunConfig *rc, const ProblemSet *ps) {
    memset(cu, 0, sizeof(*cu));
    cu->seed = (uint64_t)rc->seed;
    int err = budget_setup(cu, rc);
    if (err) return err;
    cu->tasks_on = rc->mix_start[0] || rc->mix_end[0] || rc->diff_window > 0 || rc->pass_filter;
    if (!cu->tasks_on) return 0;
    if (ps->jsonl && (rc->mix_start[0] || rc->mix_end[0] || rc->diff_window > 0))
        return err_set(ERR_CONFIG, "curriculum.mix_* and curriculum.difficulty_window need task families (data.tasks), "
                       "not a dataset (data.jsonl); only curriculum.pass_filter applies to a dataset");
    TaskCurriculumConfig tcc;
    memset(&tcc, 0, sizeof tcc);
    tcc.n_fam = ps->jsonl ? 1 : ps->n_fam;
    if ((err = tc_parse_weights(rc->mix_start, "curriculum.mix_start", tcc.n_fam, tcc.mix_start))) return err;
    if ((err = tc_parse_weights(rc->mix_end[0] ? rc->mix_end : rc->mix_start, "curriculum.mix_end", tcc.n_fam,
                                tcc.mix_end)))
        return err;
    tcc.mix_steps = rc->mix_steps;
    tcc.difficulty_min = rc->difficulty_min;
    tcc.difficulty_max = rc->difficulty_max;
    tcc.window = rc->diff_window;
    tcc.master_rate = rc->master_rate;
    tcc.master_samples = rc->master_samples;
    tcc.filter = rc->pass_filter;
    tcc.pass_upper = rc->pass_upper;
    tcc.pass_min_samples = rc->pass_min_samples;
    tcc.capacity = rc->pass_capacity;
    return tc_init(&cu->tc, &tcc);
}

void run_curriculum_free(RunCurriculum *cu) {
    if (!cu) return;
    tc_free(&cu->tc);
}

int run_curriculum_budget(const RunCurriculum *cu, const RunConfig *rc) {
    return cu->budget_on ? budget_current(&cu->budget) : rc->rl_max_new;
}

void run_curriculum_begin_step(RunCurriculum *cu) { cu->step_filtered = 0; }

void run_curriculum_draw(RunCurriculum *cu, const ProblemSet *ps, long step, uint64_t idx, Problem *p, int *fam) {
    *fam = 0;
    if (!cu->tasks_on) {
        problems_train(ps, idx, p);
        return;
    }
    const uint64_t st = rng_stream(0xc0ff1c, 0, 0, 0);
    for (int t = 0; t < RC_FILTER_TRIES; t++) {
        uint64_t j = idx + (uint64_t)t * 0x9e3779b97f4a7c15ull;
        int f = 0, d = 0;
        if (!ps->jsonl) {
            int lo, hi;
            f = tc_pick_family(&cu->tc, step, rng_uniform(cu->seed, st, 2 * j));
            tc_difficulty_range(&cu->tc, f, &lo, &hi);
            d = lo + (int)(rng_uniform(cu->seed, st, 2 * j + 1) * (hi - lo + 1));
            if (d > hi) d = hi;
        }
        problems_train_in(ps, f, d, j, p);
        *fam = f;
        if (tc_keep(&cu->tc, problems_key(p))) return;
        cu->tc.filtered++;
        cu->step_filtered++;
    }
}

void run_curriculum_record(RunCurriculum *cu, const Problem *p, int fam, int correct, int total) {
    if (cu->tasks_on) tc_record(&cu->tc, problems_key(p), fam, p->difficulty, correct, total);
}

void run_curriculum_end_step(RunCurriculum *cu, const ProblemSet *ps, long step, double gen_ppl, double p99_len) {
    if (cu->budget_on) {
        budget_observe(&cu->budget, gen_ppl, p99_len, &cu->last);
        if (cu->last.advanced)
            log_info("budget: %d -> %d tokens after RL step %ld (stage %d of %d): generation perplexity plateaued "
                     "(moving average %.4f -> %.4f, relative change %.4f < %g) and p99 length %.0f >= %g x %d",
                     cu->last.from_budget, cu->last.to_budget, step, cu->budget.st.stage + 1, cu->budget.cfg.n_stages,
                     cu->last.ma_old, cu->last.ma_new, cu->last.rel_change, cu->budget.cfg.tol, p99_len,
                     cu->budget.cfg.p99_frac, cu->last.from_budget);
    }
    cu->n_raised = 0;
    if (cu->tasks_on) {
        cu->n_raised = tc_end_step(&cu->tc, cu->last_raised);
        for (int f = 0; f < cu->tc.cfg.n_fam && !ps->jsonl; f++)
            if (cu->last_raised[f])
                log_info("curriculum: task %s mastered after RL step %ld; difficulty now %d..%d", ps->fam[f]->name, step,
                         cu->tc.lo[f], cu->tc.lo[f] + cu->tc.cfg.window - 1);
    }
}

void run_curriculum_metrics(const RunCurriculum *cu, const ProblemSet *ps, MetricsWriter *mw) {
    if (cu->budget_on) {
        metrics_int(mw, "budget_stage", cu->budget.st.stage);
        metrics_int(mw, "budget_next", budget_current(&cu->budget));
        metrics_int(mw, "budget_transition", cu->last.advanced);
        metrics_num(mw, "gen_ppl_ma_rel_change", cu->last.rel_change);
    }
    if (cu->tasks_on) {
        metrics_int(mw, "filtered", cu->step_filtered);
        metrics_int(mw, "difficulty_raises", cu->n_raised);
        char key[64];
        for (int f = 0; f < cu->tc.cfg.n_fam && !ps->jsonl; f++) {
            snprintf(key, sizeof key, "difficulty_lo_%s", ps->fam[f]->name);
            metrics_int(mw, key, cu->tc.lo[f]);
        }
    }
}

static int put_i64(H5File *f, const char *name, int64_t v) { return h5_write_i64(f, name, &v, 0, NULL); }
static int get_i64(H5File *f, const char *name, int64_t *v) { return h5_read_i64(f, name, v, 0, NULL); }

int run_curriculum_save(const RunCurriculum *cu, H5File *f) {
    int err = 0;
    if (cu->budget_on) {
        const BudgetState *s = &cu->budget.st;
        int64_t bits[2 * BUDGET_MAX_WINDOW], nh = 2 * BUDGET_MAX_WINDOW;
        memcpy(bits, s->hist, sizeof bits);
        err = err ? err : put_i64(f, "curriculum/budget/stage", s->stage);
        err = err ? err : put_i64(f, "curriculum/budget/steps_in_stage", s->steps_in_stage);
        err = err ? err : put_i64(f, "curriculum/budget/transitions", s->transitions);
        err = err ? err : put_i64(f, "curriculum/budget/n_hist", s->n_hist);
        err = err ? err : h5_write_i64(f, "curriculum/budget/hist_bits", bits, 1, &nh);
    }
    if (cu->tasks_on) {
        const TaskCurriculum *tc = &cu->tc;
        int64_t nf = tc->cfg.n_fam, lv[3 * TC_MAX_FAMILIES], cap = tc->cfg.capacity, d2[2] = {cap, RC_ENTRY_I32};
        for (int i = 0; i < nf; i++) lv[i] = tc->lo[i], lv[nf + i] = tc->lvl_correct[i], lv[2 * nf + i] = tc->lvl_total[i];
        int64_t n3 = 3 * nf;
        int64_t *keys = xmalloc((size_t)cap * sizeof(int64_t));
        int32_t *cnt = xmalloc((size_t)cap * RC_ENTRY_I32 * sizeof(int32_t));
        for (int64_t i = 0; i < cap; i++) {
            const PassEntry *e = &tc->table[i];
            memcpy(&keys[i], &e->key, sizeof(int64_t));
            int32_t *c = cnt + i * RC_ENTRY_I32;
            for (int k = 0; k < TC_RECENT; k++) c[k] = e->correct[k], c[TC_RECENT + k] = e->total[k];
            c[2 * TC_RECENT] = e->head, c[2 * TC_RECENT + 1] = e->n;
        }
        err = err ? err : h5_write_i64(f, "curriculum/tasks/levels", lv, 1, &n3);
        err = err ? err : put_i64(f, "curriculum/tasks/filtered", tc->filtered);
        err = err ? err : put_i64(f, "curriculum/tasks/raises", tc->raises);
        err = err ? err : h5_write_i64(f, "curriculum/tasks/keys", keys, 1, &cap);
        err = err ? err : h5_write_i32(f, "curriculum/tasks/counts", cnt, 2, d2);
        free(keys);
        free(cnt);
    }
    return err;
}

static int load_budget(RunCurriculum *cu, H5File *f) {
    BudgetState s;
    memset(&s, 0, sizeof s);
    int64_t stage = 0, sis = 0, tr = 0, nh = 0, bits[2 * BUDGET_MAX_WINDOW], n = 2 * BUDGET_MAX_WINDOW;
    int err = get_i64(f, "curriculum/budget/stage", &stage);
    err = err ? err : get_i64(f, "curriculum/budget/steps_in_stage", &sis);
    err = err ? err : get_i64(f, "curriculum/budget/transitions", &tr);
    err = err ? err : get_i64(f, "curriculum/budget/n_hist", &nh);
    err = err ? err : h5_read_i64(f, "curriculum/budget/hist_bits", bits, 1, &n);
    if (err) return err;
    s.stage = (int)stage, s.steps_in_stage = sis, s.transitions = tr, s.n_hist = (int)nh;
    memcpy(s.hist, bits, sizeof bits);
    return budget_restore(&cu->budget, &s);
}

static int load_tasks(RunCurriculum *cu, H5File *f) {
    TaskCurriculum *tc = &cu->tc;
    int64_t nf = tc->cfg.n_fam, n3 = 3 * nf, lv[3 * TC_MAX_FAMILIES], cap = tc->cfg.capacity, d2[2] = {cap, RC_ENTRY_I32};
    int64_t filtered = 0, raises = 0;
    int64_t *keys = xmalloc((size_t)cap * sizeof(int64_t));
    int32_t *cnt = xmalloc((size_t)cap * RC_ENTRY_I32 * sizeof(int32_t));
    int err = h5_read_i64(f, "curriculum/tasks/levels", lv, 1, &n3);
    err = err ? err : get_i64(f, "curriculum/tasks/filtered", &filtered);
    err = err ? err : get_i64(f, "curriculum/tasks/raises", &raises);
    err = err ? err : h5_read_i64(f, "curriculum/tasks/keys", keys, 1, &cap);
    err = err ? err : h5_read_i32(f, "curriculum/tasks/counts", cnt, 2, d2);
    for (int64_t i = 0; i < cap && !err; i++) {
        PassEntry *e = &tc->table[i];
        memcpy(&e->key, &keys[i], sizeof(int64_t));
        const int32_t *c = cnt + i * RC_ENTRY_I32;
        for (int k = 0; k < TC_RECENT; k++) e->correct[k] = (uint16_t)c[k], e->total[k] = (uint16_t)c[TC_RECENT + k];
        e->head = (uint16_t)c[2 * TC_RECENT], e->n = (uint16_t)c[2 * TC_RECENT + 1];
        if (e->head >= TC_RECENT || e->n > TC_RECENT)
            err = err_set(ERR_FORMAT, "curriculum/tasks/counts row %lld: ring position %d / %d out of range", (long long)i,
                          e->head, e->n);
    }
    for (int i = 0; i < nf && !err; i++) {
        tc->lo[i] = (int)lv[i], tc->lvl_correct[i] = lv[nf + i], tc->lvl_total[i] = lv[2 * nf + i];
        if (tc->lo[i] < tc->cfg.difficulty_min || tc->lo[i] > tc->cfg.difficulty_max)
            err = err_set(ERR_FORMAT, "curriculum/tasks/levels: level %d outside [%d, %d]", tc->lo[i],
                          tc->cfg.difficulty_min, tc->cfg.difficulty_max);
    }
    tc->filtered = filtered, tc->raises = raises;
    free(keys);
    free(cnt);
    return err;
}

int run_curriculum_load(RunCurriculum *cu, const char *ckpt_dir) {
    if (!cu->budget_on && !cu->tasks_on) return 0;
    char path[1100];
    snprintf(path, sizeof path, "%s/state.h5", ckpt_dir);
    H5File f;
    int err = h5_open(&f, path);
    if (err) return err;
    if (cu->budget_on) err = load_budget(cu, &f);
    if (!err && cu->tasks_on) err = load_tasks(cu, &f);
    h5_close(&f);
    return err ? err_wrap(err, "curriculum state of %s", ckpt_dir) : 0;
}

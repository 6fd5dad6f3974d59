/* curricula/budget.c: see budget.h. The history is a short array kept oldest-first and shifted
 * by one on each new value once full (2*window <= 128 doubles), which keeps the saved state a
 * plain array without a ring offset. */
#include "curricula/budget.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int budget_parse_stages(const char *text, const char *key, int *out, int cap, int *n) {
    *n = 0;
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v <= 0 || v > (1 << 24) || (*end && *end != ',' && *end != ' '))
            return err_set(ERR_CONFIG, "%s: '%s' is not a list of positive token counts (e.g. \"32, 48, 64\")", key,
                           text);
        if (*n == cap) return err_set(ERR_CONFIG, "%s: at most %d stages", key, cap);
        if (*n > 0 && v <= out[*n - 1])
            return err_set(ERR_CONFIG, "%s: stages must increase strictly ('%s': %ld after %d)", key, text, v,
                           out[*n - 1]);
        out[(*n)++] = (int)v;
        p = end;
    }
    return 0;
}

int budget_init(BudgetController *b, const BudgetConfig *cfg) {
    memset(b, 0, sizeof(*b));
    if (cfg->n_stages < 0 || cfg->n_stages > BUDGET_MAX_STAGES)
        return err_set(ERR_CONFIG, "budget controller: %d stages (expected 0..%d)", cfg->n_stages, BUDGET_MAX_STAGES);
    for (int i = 0; i < cfg->n_stages; i++)
        if (cfg->stages[i] <= 0 || (i > 0 && cfg->stages[i] <= cfg->stages[i - 1]))
            return err_set(ERR_CONFIG, "budget controller: stage %d (%d tokens) must be positive and above the previous",
                           i, cfg->stages[i]);
    if (cfg->window < 1 || cfg->window > BUDGET_MAX_WINDOW)
        return err_set(ERR_CONFIG, "curriculum.ppl_window %d: expected 1..%d", cfg->window, BUDGET_MAX_WINDOW);
    if (!(cfg->tol >= 0) || !(cfg->p99_frac >= 0 && cfg->p99_frac <= 1) || cfg->min_steps < 0)
        return err_set(ERR_CONFIG, "budget controller: tol %g (>= 0), p99_frac %g (in [0, 1]), min_steps %d (>= 0)",
                       cfg->tol, cfg->p99_frac, cfg->min_steps);
    b->cfg = *cfg;
    return 0;
}

int budget_current(const BudgetController *b) {
    CHECK(b->cfg.n_stages > 0, "budget controller without stages");
    return b->cfg.stages[b->st.stage];
}

static double mean(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s / n;
}

int budget_observe(BudgetController *b, double gen_ppl, double p99_len, BudgetEvent *ev) {
    BudgetEvent e = {0, 0, 0, NAN, NAN, NAN, 0, 0};
    BudgetState *s = &b->st;
    const int w = b->cfg.window, cap = 2 * w;
    e.from_budget = e.to_budget = budget_current(b);
    s->steps_in_stage++;
    if (isfinite(gen_ppl)) {
        if (s->n_hist == cap) memmove(s->hist, s->hist + 1, (size_t)(cap - 1) * sizeof(double));
        else s->n_hist++;
        s->hist[s->n_hist - 1] = gen_ppl;
    }
    if (s->n_hist == cap) {
        e.ma_old = mean(s->hist, w);
        e.ma_new = mean(s->hist + w, w);
        e.rel_change = fabs(e.ma_new - e.ma_old) / fmax(fabs(e.ma_old), 1e-300);
        e.plateau = e.rel_change < b->cfg.tol;
    }
    e.long_enough = p99_len >= b->cfg.p99_frac * e.from_budget;
    if (s->stage + 1 < b->cfg.n_stages && s->steps_in_stage >= b->cfg.min_steps && e.plateau && e.long_enough) {
        s->stage++;
        s->steps_in_stage = 0;
        s->transitions++;
        s->n_hist = 0;
        e.advanced = 1;
        e.to_budget = budget_current(b);
    }
    if (ev) *ev = e;
    return e.advanced;
}

int budget_restore(BudgetController *b, const BudgetState *st) {
    if (st->stage < 0 || st->stage >= (b->cfg.n_stages > 0 ? b->cfg.n_stages : 1) || st->n_hist < 0 ||
        st->n_hist > 2 * b->cfg.window || st->steps_in_stage < 0 || st->transitions < 0)
        return err_set(ERR_FORMAT, "budget controller state (stage %d, %d perplexities) does not fit %d stages, window %d",
                       st->stage, st->n_hist, b->cfg.n_stages, b->cfg.window);
    b->st = *st;
    return 0;
}

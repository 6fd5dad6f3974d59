/* curricula/task_curriculum.c: see task_curriculum.h. */
#include "curricula/task_curriculum.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int tc_parse_weights(const char *text, const char *key, int n, double *out) {
    int k = 0;
    const char *p = text;
    if (!*text) {
        for (int i = 0; i < n; i++) out[i] = 1.0;
        return 0;
    }
    while (*p) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !(v >= 0) || !isfinite(v) || (*end && *end != ',' && *end != ' '))
            return err_set(ERR_CONFIG, "%s: '%s' is not a list of non-negative weights", key, text);
        if (k == n) break;
        out[k++] = v;
        p = end;
    }
    if (k != n || *p)
        return err_set(ERR_CONFIG, "%s: '%s' has %s weights than the %d families of data.tasks", key, text,
                       k < n ? "fewer" : "more", n);
    double s = 0;
    for (int i = 0; i < n; i++) s += out[i];
    if (!(s > 0)) return err_set(ERR_CONFIG, "%s: '%s': at least one weight must be positive", key, text);
    return 0;
}

int tc_init(TaskCurriculum *tc, const TaskCurriculumConfig *cfg) {
    memset(tc, 0, sizeof(*tc));
    if (cfg->n_fam < 1 || cfg->n_fam > TC_MAX_FAMILIES)
        return err_set(ERR_CONFIG, "task curriculum: %d families (expected 1..%d)", cfg->n_fam, TC_MAX_FAMILIES);
    if (cfg->capacity < 1 || (cfg->capacity & (cfg->capacity - 1)))
        return err_set(ERR_CONFIG, "curriculum.pass_capacity %d: expected a power of two", cfg->capacity);
    if (cfg->difficulty_min > cfg->difficulty_max || cfg->window < 0 ||
        cfg->window > cfg->difficulty_max - cfg->difficulty_min + 1)
        return err_set(ERR_CONFIG, "curriculum.difficulty_window %d: expected 0 (off) .. %d (the levels of data.difficulty_min..max)",
                       cfg->window, cfg->difficulty_max - cfg->difficulty_min + 1);
    if (!(cfg->pass_upper > 0 && cfg->pass_upper <= 1) || cfg->pass_min_samples < 1)
        return err_set(ERR_CONFIG, "curriculum.pass_upper %g must be in (0, 1], pass_min_samples %d >= 1",
                       cfg->pass_upper, cfg->pass_min_samples);
    double s0 = 0, s1 = 0;
    for (int f = 0; f < cfg->n_fam; f++) {
        if (!(cfg->mix_start[f] >= 0) || !(cfg->mix_end[f] >= 0))
            return err_set(ERR_CONFIG, "curriculum.mix_start/mix_end: weights must be >= 0");
        s0 += cfg->mix_start[f], s1 += cfg->mix_end[f];
    }
    if (!(s0 > 0) || !(s1 > 0)) return err_set(ERR_CONFIG, "curriculum.mix_start/mix_end: some weight must be positive");
    tc->cfg = *cfg;
    for (int f = 0; f < cfg->n_fam; f++) tc->lo[f] = cfg->difficulty_min;
    tc->table = xcalloc((size_t)cfg->capacity, sizeof(PassEntry));
    return 0;
}

void tc_free(TaskCurriculum *tc) {
    if (!tc) return;
    free(tc->table);
    tc->table = NULL;
}

void tc_weights(const TaskCurriculum *tc, long step, double *w) {
    const TaskCurriculumConfig *c = &tc->cfg;
    double a = c->mix_steps <= 0 ? 1.0 : step >= c->mix_steps ? 1.0 : (double)step / c->mix_steps, s = 0;
    for (int f = 0; f < c->n_fam; f++) {
        w[f] = c->mix_start[f] + a * (c->mix_end[f] - c->mix_start[f]);
        s += w[f];
    }
    for (int f = 0; f < c->n_fam; f++) w[f] /= s;
}

int tc_pick_family(const TaskCurriculum *tc, long step, double u) {
    double w[TC_MAX_FAMILIES], acc = 0;
    tc_weights(tc, step, w);
    int last = 0;
    for (int f = 0; f < tc->cfg.n_fam; f++) {
        if (w[f] <= 0) continue;
        last = f;
        acc += w[f];
        if (u < acc) return f;
    }
    return last; /* u within rounding of 1 */
}

void tc_difficulty_range(const TaskCurriculum *tc, int f, int *lo, int *hi) {
    const TaskCurriculumConfig *c = &tc->cfg;
    if (c->window == 0) {
        *lo = c->difficulty_min, *hi = c->difficulty_max;
        return;
    }
    *lo = tc->lo[f];
    *hi = tc->lo[f] + c->window - 1;
}

/* Slot of key, or -1 when absent. */
static long find(const TaskCurriculum *tc, uint64_t key) {
    const uint64_t mask = (uint64_t)tc->cfg.capacity - 1;
    for (uint64_t i = 0; i <= mask; i++) {
        const PassEntry *e = &tc->table[(key + i) & mask];
        if (e->key == key) return (long)((key + i) & mask);
        if (e->key == 0) return -1;
    }
    return -1;
}

static uint64_t norm_key(uint64_t key) { return key ? key : 1; }

double tc_pass_rate(const TaskCurriculum *tc, uint64_t key, int *n) {
    long s = find(tc, norm_key(key));
    *n = 0;
    if (s < 0) return -1;
    const PassEntry *e = &tc->table[s];
    int c = 0;
    for (int i = 0; i < e->n; i++) c += e->correct[i], *n += e->total[i];
    return *n > 0 ? (double)c / *n : -1;
}

int tc_keep(const TaskCurriculum *tc, uint64_t key) {
    if (!tc->cfg.filter) return 1;
    int n;
    double rate = tc_pass_rate(tc, key, &n);
    if (n < tc->cfg.pass_min_samples) return 1;
    return rate > 0 && rate < tc->cfg.pass_upper;
}

/* Slot for key: its own, else the first empty on its probe path, else its home slot (evicted). */
static PassEntry *slot_for(TaskCurriculum *tc, uint64_t key) {
    const uint64_t mask = (uint64_t)tc->cfg.capacity - 1;
    for (uint64_t i = 0; i <= mask; i++) {
        PassEntry *e = &tc->table[(key + i) & mask];
        if (e->key == key) return e;
        if (e->key == 0) {
            e->key = key;
            return e;
        }
    }
    PassEntry *e = &tc->table[key & mask];
    memset(e, 0, sizeof(*e));
    e->key = key;
    return e;
}

void tc_record(TaskCurriculum *tc, uint64_t key, int f, int d, int correct, int total) {
    CHECK(f >= 0 && f < tc->cfg.n_fam && correct >= 0 && correct <= total && total <= 65535,
          "tc_record: family %d, %d of %d correct", f, correct, total);
    PassEntry *e = slot_for(tc, norm_key(key));
    e->correct[e->head] = (uint16_t)correct;
    e->total[e->head] = (uint16_t)total;
    e->head = (uint16_t)((e->head + 1) % TC_RECENT);
    if (e->n < TC_RECENT) e->n++;
    int lo, hi;
    tc_difficulty_range(tc, f, &lo, &hi);
    if (tc->cfg.window > 0 && d >= lo && d <= hi) {
        tc->lvl_correct[f] += correct;
        tc->lvl_total[f] += total;
    }
}

int tc_end_step(TaskCurriculum *tc, int *raised) {
    const TaskCurriculumConfig *c = &tc->cfg;
    int n = 0;
    for (int f = 0; f < c->n_fam; f++) {
        if (raised) raised[f] = 0;
        if (c->window == 0 || tc->lo[f] + c->window - 1 >= c->difficulty_max) continue;
        if (tc->lvl_total[f] < c->master_samples || tc->lvl_total[f] <= 0) continue;
        if ((double)tc->lvl_correct[f] / tc->lvl_total[f] < c->master_rate) continue;
        tc->lo[f]++;
        tc->lvl_correct[f] = tc->lvl_total[f] = 0;
        tc->raises++;
        if (raised) raised[f] = 1;
        n++;
    }
    return n;
}

/* trainer/problems.c: see problems.h. */
#include "trainer/problems.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "model/chat_template.h"

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Problem from the generated families for (seed, index). */
static void draw(const ProblemSet *ps, uint64_t seed, uint64_t i, double noise, Problem *p) {
    uint64_t st = rng_stream(0x9a0b1e, seed, 0, 0);
    int f = (int)(rng_uniform(seed, st, 2 * i) * ps->n_fam);
    int d = ps->dmin + (int)(rng_uniform(seed, st, 2 * i + 1) * (ps->dmax - ps->dmin + 1));
    if (f >= ps->n_fam) f = ps->n_fam - 1;
    if (d > ps->dmax) d = ps->dmax;
    int rc = ps->fam[f]->generate(p, d, seed, i, noise);
    CHECK(rc == 0, "task %s difficulty %d: %s", ps->fam[f]->name, d, err_msg());
}

int problems_init(ProblemSet *ps, const RunConfig *rc) {
    memset(ps, 0, sizeof(*ps));
    ps->seed = (uint64_t)rc->seed;
    ps->eval_seed = (uint64_t)rc->eval_seed;
    ps->eval_size = rc->eval_size;
    ps->noise = rc->sft_noise;
    ps->dmin = rc->difficulty_min;
    ps->dmax = rc->difficulty_max;
    if (rc->jsonl[0]) {
        ps->jsonl = xcalloc(1, sizeof(JsonlSource));
        int err = jsonl_source_load(ps->jsonl, rc->jsonl, rc->strict);
        if (err) {
            free(ps->jsonl);
            ps->jsonl = NULL;
            return err;
        }
        long n = jsonl_source_count(ps->jsonl);
        log_info("%s: %ld problems, %ld malformed lines skipped", rc->jsonl, n, jsonl_source_malformed(ps->jsonl));
        if (n < 2 * (long)rc->eval_size)
            return err_set(ERR_CONFIG, "data.jsonl %s has %ld usable problems; data.eval_size %d needs at least %d",
                           rc->jsonl, n, rc->eval_size, 2 * rc->eval_size);
        ps->jsonl_eval_start = n - rc->eval_size; /* the last eval_size lines are held out */
        return 0;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", rc->tasks);
    for (char *save = NULL, *tok = strtok_r(buf, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        const TaskFamily *f = task_family_find(tok);
        if (!f) {
            char known[512] = "";
            for (const TaskFamily *const *it = task_families(); *it; it++) {
                strncat(known, (*it)->name, sizeof known - strlen(known) - 2);
                if (it[1]) strncat(known, ", ", sizeof known - strlen(known) - 1);
            }
            return err_set(ERR_CONFIG, "data.tasks: unknown task family '%s'\nHINT: known families: %s", tok, known);
        }
        if (ps->n_fam == PROBLEMS_MAX_FAMILIES) return err_set(ERR_CONFIG, "data.tasks: at most %d families", PROBLEMS_MAX_FAMILIES);
        if (rc->difficulty_min < f->min_difficulty || rc->difficulty_max > f->max_difficulty)
            return err_set(ERR_CONFIG, "data.difficulty_min/max [%d, %d] outside task %s's range [%d, %d]",
                           rc->difficulty_min, rc->difficulty_max, f->name, f->min_difficulty, f->max_difficulty);
        ps->fam[ps->n_fam++] = f;
    }
    if (ps->n_fam == 0) return err_set(ERR_CONFIG, "data.tasks is empty");
    ps->eval_hash = xcalloc((size_t)ps->eval_size, sizeof(uint64_t));
    Problem p;
    for (int i = 0; i < ps->eval_size; i++) {
        draw(ps, ps->eval_seed, (uint64_t)i, 0.0, &p);
        ps->eval_hash[i] = hash_str(p.prompt);
    }
    qsort(ps->eval_hash, (size_t)ps->eval_size, sizeof(uint64_t), cmp_u64);
    return 0;
}

void problems_free(ProblemSet *ps) {
    if (!ps) return;
    if (ps->jsonl) {
        jsonl_source_free(ps->jsonl);
        free(ps->jsonl);
    }
    free(ps->eval_hash);
    memset(ps, 0, sizeof(*ps));
}

/* fam < 0: family and difficulty drawn as usual; else that family at difficulty d. */
static void train_draw(const ProblemSet *ps, int fam, int d, uint64_t i, Problem *p) {
    if (ps->jsonl) {
        CHECK(jsonl_source_get(ps->jsonl, (long)(i % (uint64_t)ps->jsonl_eval_start), p) == 0, "%s", err_msg());
        return;
    }
    /* draw candidates (i, attempt) until one is not held out; 64 attempts make a collision-only
     * stream astronomically unlikely unless the problem space is tiny, which is then an error */
    for (uint64_t attempt = 0; attempt < 64; attempt++) {
        if (fam < 0) {
            draw(ps, ps->seed + 0x1000193 * attempt, i, ps->noise, p);
        } else {
            int rc = ps->fam[fam]->generate(p, d, ps->seed + 0x1000193 * attempt, i, ps->noise);
            CHECK(rc == 0, "task %s difficulty %d: %s", ps->fam[fam]->name, d, err_msg());
        }
        uint64_t h = hash_str(p->prompt);
        if (!bsearch(&h, ps->eval_hash, (size_t)ps->eval_size, sizeof(uint64_t), cmp_u64)) return;
    }
    CHECK(0, "training problem %llu collides with the held-out set 64 times: the problem space of data.tasks at "
             "difficulty [%d, %d] is too small for data.eval_size %d", (unsigned long long)i, ps->dmin, ps->dmax,
          ps->eval_size);
}

void problems_train(const ProblemSet *ps, uint64_t i, Problem *p) { train_draw(ps, -1, 0, i, p); }

void problems_train_in(const ProblemSet *ps, int fam, int difficulty, uint64_t i, Problem *p) {
    CHECK(ps->jsonl || (fam >= 0 && fam < ps->n_fam), "family %d of %d", fam, ps->n_fam);
    train_draw(ps, ps->jsonl ? -1 : fam, difficulty, i, p);
}

uint64_t problems_key(const Problem *p) { return hash_str(p->prompt); }

void problems_eval(const ProblemSet *ps, int i, Problem *p) {
    CHECK(i >= 0 && i < ps->eval_size, "held-out problem %d of %d", i, ps->eval_size);
    if (ps->jsonl) {
        CHECK(jsonl_source_get(ps->jsonl, ps->jsonl_eval_start + i, p) == 0, "%s", err_msg());
        return;
    }
    draw(ps, ps->eval_seed, (uint64_t)i, 0.0, p);
}

int problems_prompt_tokens(const Tokenizer *tok, const Problem *p, int *out, int cap) {
    if (tok->chat) return chat_prompt_tokens(tok, p->prompt, out, cap);
    char text[TASK_PROMPT_MAX + 2];
    snprintf(text, sizeof text, "%s\n", p->prompt);
    int nb = tok->bos >= 0; /* Qwen2's tokenizer has no BOS */
    if (cap < nb + 1) return -1;
    if (nb) out[0] = tok->bos;
    int n = tok->encode(tok, text, out + nb, cap - nb);
    return n < 0 ? -1 : n + nb;
}

int problems_sft_tokens(const Tokenizer *tok, const Problem *p, int *out, int cap, int *n_prompt) {
    int np = problems_prompt_tokens(tok, p, out, cap);
    if (np < 0) return -1;
    int ns = tok->encode(tok, p->solution, out + np, cap - np - 1);
    if (ns < 0) return -1;
    out[np + ns] = tok->eos;
    *n_prompt = np;
    return np + ns + 1;
}

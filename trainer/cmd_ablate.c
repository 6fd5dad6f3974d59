/* trainer/cmd_ablate.c: `cispo ablate CONFIG --algos cispo,dapo,grpo,ppo --seeds N [--jobs J]
 *                        [--eval-every K] [--target ACC] [section.key=value ...]`
 *
 * The CISPO vs PPO/GRPO/DAPO ablation (ALGORITHMS.md §10) as one command:
 *   1. the SFT warm start runs once (in this process) and is saved to RUN_DIR/base_model; every
 *      run starts from it (rl.sft_first=false, model.path=RUN_DIR/base_model). With rl.sft_first
 *      false the config's model.path is the shared base instead;
 *   2. one `cispo train` child process per (algorithm, seed) in RUN_DIR/runs/<algo>_s<seed>/, J at a
 *      time (run.threads=1 each when J > 1). Seed i of every algorithm uses run.seed = run.seed + i,
 *      so all algorithms of a seed see the same problems in the same order with the same budget and
 *      batch shape; the held-out set (data.eval_seed) is the same for all. Held-out pass@1 is
 *      evaluated every K RL steps (rl.eval_every, default 5) and before and after RL;
 *   3. RUN_DIR/ablation.csv, RUN_DIR/ablation.md (trainer/ablation_report.h) and, when python3
 *      with matplotlib is there, RUN_DIR/ablation.png (tools/plot_ablation.py).
 * `--set ALGO:section.key=value` (repeatable) changes a key for one algorithm only, e.g. PPO and
 * GRPO's symmetric clip: --set ppo:loss.eps_high=0.2; the report lists these settings.
 * Re-running the command continues an interrupted ablation: the base model is reused when
 * RUN_DIR/config.yaml (the config it was trained with) agrees with the current one, and every run
 * is started with `--resume auto`, so a finished run only re-evaluates its final model and a run
 * that was cut off continues from its newest checkpoint; a changed config is refused, by this
 * command for the base model and by `cispo train` for a run, with the differing keys named.
 * Child output goes to RUN_DIR/runs/<name>/train.log.
 */
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"
#include "trainer/ablation_report.h"
#include "trainer/commands.h"
#include "trainer/run.h"
#include "trainer/sft.h"
#include "trainer/train_ckpt.h"

#define ABL_MAX_RUNS 256
#define ABL_MAX_ALGOS 8

typedef struct {
    const char *config;          /* CONFIG path or NULL */
    char *over[128];             /* user overrides, passed on to every run */
    int n_over;
    char algos_text[128];        /* as given (for the report) */
    char algos_buf[128];         /* tokenized: algos[] point into it */
    const char *algos[ABL_MAX_ALGOS];
    int n_algos, seeds, jobs, eval_every;
    char set_algo[32][16];       /* --set ALGO:key=value */
    const char *set_kv[32];
    int n_set;
    double target;               /* NAN: DAPO's mean final pass@1 */
} AblArgs;

typedef struct {
    char name[64], dir[1200], seed_kv[64], algo_kv[40];
    const char *algo;
    long long seed;
    pid_t pid;
    double t0, seconds;
    int status;                  /* -1 pending, 0 ok, else exit code */
} AblRun;

static int usage(const char *msg) {
    fprintf(stderr, "cispo ablate: %s\nHINT: usage: cispo ablate CONFIG --algos cispo,dapo,grpo,ppo --seeds N "
                    "[--jobs J] [--eval-every K] [--target ACC] [--set ALGO:section.key=value] [section.key=value ...]\n", msg);
    return 2;
}

static int parse_args(int argc, char **argv, AblArgs *a) {
    memset(a, 0, sizeof(*a));
    snprintf(a->algos_text, sizeof a->algos_text, "cispo,dapo,grpo,ppo");
    a->seeds = 1, a->jobs = 1, a->eval_every = 0, a->target = NAN;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(s, "--algos") && v) snprintf(a->algos_text, sizeof a->algos_text, "%s", v), i++;
        else if (!strcmp(s, "--seeds") && v) a->seeds = (int)strtol(v, &end, 10), i++;
        else if (!strcmp(s, "--jobs") && v) a->jobs = (int)strtol(v, &end, 10), i++;
        else if (!strcmp(s, "--eval-every") && v) a->eval_every = (int)strtol(v, &end, 10), i++;
        else if (!strcmp(s, "--target") && v) a->target = strtod(v, &end), i++;
        else if (!strcmp(s, "--set") && v) {
            const char *colon = strchr(v, ':');
            if (!colon || colon == v || colon - v >= 16 || !strchr(colon, '=') || a->n_set == 32)
                return usage("--set takes ALGO:section.key=value (at most 32)");
            snprintf(a->set_algo[a->n_set], sizeof a->set_algo[0], "%.*s", (int)(colon - v), v);
            a->set_kv[a->n_set++] = colon + 1;
            i++;
        }
        else if (!strncmp(s, "--", 2)) return usage("unknown or incomplete option");
        else if (strchr(s, '=')) {
            if (a->n_over == 128) return usage("too many overrides");
            a->over[a->n_over++] = argv[i];
        } else if (!a->config) a->config = s;
        else return usage("more than one CONFIG");
        if (end && *end) return usage("a number was expected after --seeds/--jobs/--eval-every/--target");
    }
    if (a->seeds < 1 || a->seeds > 64 || a->jobs < 1 || a->jobs > 256 || a->eval_every < 0)
        return usage("--seeds must be 1..64, --jobs 1..256, --eval-every >= 0");
    char *save = NULL;
    snprintf(a->algos_buf, sizeof a->algos_buf, "%s", a->algos_text);
    for (char *t = strtok_r(a->algos_buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (strcmp(t, "cispo") && strcmp(t, "dapo") && strcmp(t, "grpo") && strcmp(t, "ppo"))
            return usage("--algos takes a comma-separated list of cispo, dapo, grpo, ppo");
        if (a->n_algos == ABL_MAX_ALGOS) return usage("too many algorithms");
        a->algos[a->n_algos++] = t;
    }
    if (a->n_algos == 0) return usage("--algos is empty");
    for (int k = 0; k < a->n_set; k++) {
        int known = 0;
        for (int j = 0; j < a->n_algos; j++) known |= !strcmp(a->set_algo[k], a->algos[j]);
        if (!known) return usage("--set names an algorithm that is not in --algos");
    }
    return 0;
}

/* The shared base model: SFT once into RUN_DIR/base_model (reused when there), or model.path. */
static int base_model(const RunConfig *rc, char *out, size_t cap) {
    if (!rc->sft_first || rc->sft_steps == 0) {
        if (!rc->model_path[0])
            return err_set(ERR_CONFIG, "ablate needs a base model: rl.sft_first with sft.steps > 0, or model.path");
        snprintf(out, cap, "%s", rc->model_path);
        return 0;
    }
    snprintf(out, cap, "%s/base_model", rc->dir);
    char probe[1300], tmp[1300];
    snprintf(probe, sizeof probe, "%s/model.safetensors", out);
    if (fs_exists(probe)) {
        char cpath[1100], *yaml = NULL;
        size_t len = 0;
        snprintf(cpath, sizeof cpath, "%s/config.yaml", rc->dir);
        FILE *f = fopen(cpath, "r");
        if (!f) return err_set(ERR_NOTFOUND, "%s exists but %s does not: cannot tell what it was trained with", out, cpath);
        yaml = xmalloc(1 << 20);
        len = fread(yaml, 1, (1 << 20) - 1, f);
        yaml[len] = '\0';
        fclose(f);
        int err = train_ckpt_check_config(rc, yaml, rc->dir);
        free(yaml);
        if (err) return err;
        log_info("ablate: reusing the SFT base model %s", out);
        return 0;
    }
    Run r;
    int err = run_open(&r, rc, NULL, 1);
    SftResult sr;
    if (!err) err = sft_run(&r, &sr, NULL);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (!err) err = model_save_hf(&r.m, tmp, ST_F32);
    run_close(&r);
    if (err) return err;
    if (rename(tmp, out) != 0) return err_set(ERR_IO, "cannot rename %s to %s", tmp, out);
    printf("ablate: SFT base model: %d steps in %.1f s, loss %.4f -> %.4f, saved to %s\n", sr.steps, sr.seconds,
           sr.loss_first, sr.loss_last, out);
    fflush(stdout);
    return 0;
}

/* summary.json of a finished run with rl.steps == steps; NULL otherwise. */
static json_t *load_summary(const char *dir, int steps) {
    char path[1300];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_t *j = json_load_file(path, 0, NULL);
    json_t *rl = j ? json_object_get(j, "rl") : NULL;
    json_t *sfrom = j ? json_object_get(j, "resumed_from") : NULL;
    (void)sfrom;
    if (!rl) {
        json_decref(j);
        return NULL;
    }
    /* a resumed-finished run reports the steps it ran (0); its metrics file has all of them */
    char mpath[1300];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", dir);
    FILE *f = fopen(mpath, "r");
    long lines = 0;
    for (int c; f && (c = fgetc(f)) != EOF;) lines += c == '\n';
    if (f) fclose(f);
    if (lines != steps) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static void spawn(AblRun *r, const AblArgs *a, const char *exe, const char *base, int threads1) {
    char model_kv[PATH_MAX + 16], dir_kv[1300], every_kv[64], log[1300];
    snprintf(model_kv, sizeof model_kv, "model.path=%s", base);
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s", r->dir);
    snprintf(every_kv, sizeof every_kv, "rl.eval_every=%d", a->eval_every);
    snprintf(log, sizeof log, "%s/train.log", r->dir);
    const char *argv[200]; /* 2 + config + 128 overrides + 32 --set + 10 */
    int n = 0;
    argv[n++] = exe;
    argv[n++] = "train";
    if (a->config) argv[n++] = a->config;
    for (int i = 0; i < a->n_over; i++) argv[n++] = a->over[i];
    for (int i = 0; i < a->n_set; i++)
        if (!strcmp(a->set_algo[i], r->algo)) argv[n++] = a->set_kv[i];
    argv[n++] = dir_kv, argv[n++] = r->algo_kv, argv[n++] = r->seed_kv, argv[n++] = model_kv;
    argv[n++] = "rl.sft_first=false", argv[n++] = every_kv;
    if (threads1) argv[n++] = "run.threads=1";
    argv[n++] = "--resume", argv[n++] = "auto";
    argv[n] = NULL;
    fflush(NULL);
    r->t0 = time_now_s();
    r->pid = fork();
    if (r->pid == 0) {
        if (!freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(126);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    CHECK(r->pid > 0, "fork failed");
}

/* Run every pending run, at most jobs at a time; returns the number that failed. */
static int run_all(AblRun *runs, int n, const AblArgs *a, const char *exe, const char *base) {
    int next = 0, running = 0, done = 0, failed = 0;
    while (done < n) {
        while (running < a->jobs && next < n) {
            if (runs[next].status == -1) spawn(&runs[next], a, exe, base, a->jobs > 1), running++;
            else done++;
            next++;
        }
        if (running == 0) continue;
        int st;
        pid_t pid = wait(&st);
        if (pid < 0) break;
        for (int i = 0; i < n; i++) {
            if (runs[i].pid != pid || runs[i].status != -1) continue;
            runs[i].seconds = time_now_s() - runs[i].t0;
            runs[i].status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            running--, done++;
            failed += runs[i].status != 0;
            printf("ablate: %d/%d  %-14s %s in %.0f s%s%s\n", done, n, runs[i].name,
                   runs[i].status ? "FAILED" : "done", runs[i].seconds, runs[i].status ? "; see " : "",
                   runs[i].status ? runs[i].dir : "");
            fflush(stdout);
        }
    }
    return failed;
}

/* Held-out curve of a finished run: step 0, every eval_pass1 line, the last step. */
static int read_curve(const AblRun *r, int steps, AblCurve *c) {
    memset(c, 0, sizeof(*c));
    snprintf(c->algo, sizeof c->algo, "%s", r->algo);
    c->seed = r->seed;
    json_t *sum = load_summary(r->dir, steps);
    if (!sum) return err_set(ERR_FORMAT, "%s: no finished summary.json / metrics.jsonl of %d steps", r->dir, steps);
    json_t *b = json_object_get(sum, "eval_before"), *e = json_object_get(sum, "eval_after");
    c->step[0] = 0;
    c->pass1[0] = json_number_value(json_object_get(b, "pass1"));
    c->passk[0] = json_number_value(json_object_get(b, "passk"));
    c->n = 1;
    char path[1300], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f) && c->n < ABL_MAX_POINTS - 1) {
        json_t *m = json_loads(line, 0, NULL);
        json_t *p1 = m ? json_object_get(m, "eval_pass1") : NULL;
        if (p1) {
            c->step[c->n] = (int)json_integer_value(json_object_get(m, "step"));
            c->pass1[c->n] = json_number_value(p1);
            c->passk[c->n] = json_number_value(json_object_get(m, "eval_passk"));
            c->n++;
        }
        json_decref(m);
    }
    if (f) fclose(f);
    c->step[c->n] = steps;
    c->pass1[c->n] = json_number_value(json_object_get(e, "pass1"));
    c->passk[c->n] = json_number_value(json_object_get(e, "passk"));
    c->n++;
    json_decref(sum);
    return 0;
}

/* tools/plot_ablation.py from $CISPO_SOURCE_DIR, the working directory, or next to the binary's tree. */
static int find_script(const char *exe, char *out, size_t cap) {
    const char *src = getenv("CISPO_SOURCE_DIR");
    if (src) {
        snprintf(out, cap, "%s/tools/plot_ablation.py", src);
        if (fs_exists(out)) return 1;
    }
    snprintf(out, cap, "tools/plot_ablation.py");
    if (fs_exists(out)) return 1;
    char d[1024];
    snprintf(d, sizeof d, "%s", exe);
    char *slash = strrchr(d, '/');
    if (slash) *slash = '\0';
    snprintf(out, cap, "%s/../tools/plot_ablation.py", d);
    return fs_exists(out);
}

static void plot(const char *exe, const char *dir, double target) {
    char script[1100], csv[1300], png[1300], tgt[64];
    int have = find_script(exe, script, sizeof script);
    snprintf(csv, sizeof csv, "%s/ablation.csv", dir);
    snprintf(png, sizeof png, "%s/ablation.png", dir);
    snprintf(tgt, sizeof tgt, "%.6f", target);
    if (!have) {
        log_warn("ablate: tools/plot_ablation.py not found; no plot\nHINT: python3 tools/plot_ablation.py %s %s", csv, png);
        return;
    }
    /* $CISPO_PYTHON, else python3 on PATH, else Debian's (where python3-matplotlib installs) */
    const char *env = getenv("CISPO_PYTHON");
    const char *py[3] = {env ? env : "python3", "python3", "/usr/bin/python3"};
    int ok = 0;
    for (int i = env ? 0 : 1; i < 3 && !ok; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0 && i < 2) dup2(fd, 2); /* the last try's errors are shown */
            execlp(py[i], py[i], script, csv, png, "--target", tgt, (char *)NULL);
            _exit(127);
        }
        int st = 0;
        if (pid > 0) waitpid(pid, &st, 0);
        ok = pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    if (!ok)
        log_warn("ablate: the plot failed (python3 with matplotlib needed)\nHINT: apt-get install python3-matplotlib, "
                 "then python3 %s %s %s", script, csv, png);
    else
        printf("ablate: plot %s\n", png);
}

static int report(AblRun *runs, int n, const AblArgs *a, const RunConfig *rc, const char *exe) {
    AblCurve *c = xcalloc((size_t)n, sizeof(AblCurve));
    int err = 0;
    for (int i = 0; i < n && !err; i++) err = read_curve(&runs[i], rc->rl_steps, &c[i]);
    char path[1300], setup[2048], from[128];
    snprintf(path, sizeof path, "%s/ablation.csv", rc->dir);
    if (!err) err = abl_write_csv(path, c, n);
    double target = a->target;
    if (!err && isnan(target)) {
        int found;
        target = abl_mean_final(c, n, "dapo", &found);
        if (!found) target = abl_mean_final(c, n, a->algos[0], &found);
        (void)abl_mean_final(c, n, "dapo", &found);
        snprintf(from, sizeof from, "mean final pass@1 of %s", found ? "DAPO" : a->algos[0]);
    } else {
        snprintf(from, sizeof from, "--target");
    }
    snprintf(setup, sizeof setup,
             "Ablation: %s, %d seeds, %d RL steps of %d prompts x %d responses, %d updates per generation batch, "
             "budget %d tokens, held-out %d problems x %d samples every %d steps.",
             a->algos_text, a->seeds, rc->rl_steps, rc->prompts_per_step, rc->group_size, rc->minibatches,
             rc->rl_max_new, rc->eval_size, rc->eval_k, a->eval_every);
    for (int i = 0; i < a->n_set; i++) {
        size_t used = strlen(setup);
        snprintf(setup + used, sizeof setup - used, "%s %s: %s", i ? "," : " Per algorithm:", a->set_algo[i], a->set_kv[i]);
    }
    AblRow rows[ABL_MAX_ALGOS];
    if (!err) {
        abl_summarize(c, n, a->algos, a->n_algos, target, rows);
        snprintf(path, sizeof path, "%s/ablation.md", rc->dir);
        err = abl_write_table(path, rows, a->n_algos, target, from, setup);
    }
    if (!err) {
        FILE *f = fopen(path, "r");
        for (int ch; f && (ch = fgetc(f)) != EOF;) putchar(ch);
        if (f) fclose(f);
        printf("ablate: %s/ablation.csv, %s\n", rc->dir, path);
        plot(exe, rc->dir, target);
    }
    free(c);
    return err;
}

int cmd_ablate(int argc, char **argv) {
    AblArgs a;
    int st = parse_args(argc, argv, &a);
    if (st) return st;
    RunConfig rc;
    char *cl[170];
    int ncl = 0;
    if (a.config) cl[ncl++] = (char *)a.config;
    for (int i = 0; i < a.n_over; i++) cl[ncl++] = a.over[i];
    for (int k = 0; k < a.n_set; k++) cl[ncl + k] = (char *)a.set_kv[k];
    for (int k = 0; k < a.n_set; k++) { /* each --set must load on top of the config */
        RunConfig probe;
        if ((st = cli_load_config("ablate", ncl + k + 1, cl, &probe))) return st;
    }
    if ((st = cli_load_config("ablate", ncl, cl, &rc))) return st;
    if (a.eval_every == 0) a.eval_every = rc.eval_every > 0 ? rc.eval_every : 5;
    char exe[1024];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return fprintf(stderr, "cispo ablate: cannot find its own binary\n"), 1;
    exe[len] = '\0';
    double t0 = time_now_s();
    char rel[1100], base[PATH_MAX];
    int err = fs_mkdir_p(rc.dir);
    if (!err) err = base_model(&rc, rel, sizeof rel);
    if (!err && !realpath(rel, base)) err = err_set(ERR_NOTFOUND, "base model %s not found", rel); /* children: absolute */
    int n = a.seeds * a.n_algos;
    AblRun *runs = xcalloc((size_t)n, sizeof(AblRun));
    for (int s = 0, i = 0; s < a.seeds && !err; s++)
        for (int k = 0; k < a.n_algos; k++, i++) {
            AblRun *r = &runs[i];
            r->algo = a.algos[k];
            r->seed = rc.seed + s;
            snprintf(r->name, sizeof r->name, "%s_s%lld", r->algo, r->seed);
            snprintf(r->dir, sizeof r->dir, "%s/runs/%s", rc.dir, r->name);
            snprintf(r->seed_kv, sizeof r->seed_kv, "run.seed=%lld", r->seed);
            snprintf(r->algo_kv, sizeof r->algo_kv, "rl.algo=%s", r->algo);
            r->status = -1;
            if (!err) err = fs_mkdir_p(r->dir);
        }
    if (err) {
        free(runs);
        fprintf(stderr, "cispo ablate: %s\n", err_msg());
        return 1;
    }
    printf("ablate: %d runs (%s x %d seeds), %d at a time, base model %s\n", n, a.algos_text, a.seeds, a.jobs, base);
    int failed = run_all(runs, n, &a, exe, base);
    if (failed) {
        free(runs);
        fprintf(stderr, "cispo ablate: %d of %d runs failed; their train.log says why\nHINT: rerun the same command to "
                        "retry them (finished runs are reused)\n", failed, n);
        return 1;
    }
    err = report(runs, n, &a, &rc, exe);
    free(runs);
    if (err) {
        fprintf(stderr, "cispo ablate: %s\n", err_msg());
        return 1;
    }
    printf("ablate: total %.1f s\n", time_now_s() - t0);
    return 0;
}

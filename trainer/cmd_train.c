/* trainer/cmd_train.c: `cispo sft`, `cispo train` and `cispo eval`.
 *   sft   CONFIG: supervised warm start; saves RUN_DIR/sft_model and evaluates it.
 *   train CONFIG [--resume auto|none|CHECKPOINT_DIR]: RL from model.path, or SFT first (rl.sft_first);
 *                 held-out accuracy before and after RL; saves RUN_DIR/final_model and RUN_DIR/summary.json.
 *                 Checkpoints every ckpt.every steps; by default (auto) a run directory that holds
 *                 checkpoints is resumed from its newest valid one, bit for bit.
 *   eval  CONFIG --model PATH: held-out pass@1 / pass@k, lengths and stop reasons of a saved model.
 * `mpirun -np N cispo train CONFIG` runs the ranks of trainer/dist.h: every rank runs the same
 * command; rank 0 alone evaluates, prints and writes the run directory's shared files.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "trainer/commands.h"
#include "trainer/dist.h"
#include "trainer/eval.h"
#include "trainer/rl.h"
#include "trainer/sft.h"
#include "trainer/train_ckpt.h"
#include "checkpoints/ckpt.h"

static Dist *g_dist; /* the ranks of `cispo train` under mpirun (NULL otherwise) */

static int fail(const char *cmd, Run *r) {
    if (g_dist) { /* end every rank now rather than leave them waiting on this one */
        fprintf(stderr, "cispo %s: rank %d of %d: %s\n", cmd, g_dist->rank, g_dist->world, err_msg());
        fflush(stderr);
        comm_abort(1);
    }
    fprintf(stderr, "cispo %s: %s\n", cmd, err_msg());
    if (r) run_close(r);
    return 1;
}

static int save_model(Run *r, const char *name) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", r->rc.dir, name);
    int err = model_save_hf(&r->m, dir, ST_F32);
    if (!err) log_info("saved %s", dir);
    return err;
}

static void print_eval(const char *label, const EvalResult *e) {
    char line[300];
    eval_format(e, line, sizeof line);
    printf("%-28s %s\n", label, line);
    fflush(stdout);
}

static void eval_json(json_t *o, const char *key, const EvalResult *e) {
    json_object_set_new(o, key, json_pack("{s:f,s:f,s:f,s:f,s:f,s:i,s:i}", "pass1", e->pass1, "passk", e->passk,
                                          "format_rate", e->format_rate, "len_p50", e->len_p50, "len_p99", e->len_p99,
                                          "problems", e->n_problems, "k", e->k));
}

int cmd_sft(int argc, char **argv) {
    RunConfig rc;
    int st = cli_load_config("sft", argc, argv, &rc);
    if (st) return st;
    Run r;
    if (run_open(&r, &rc, NULL, 1)) return fail("sft", &r);
    SftResult sr;
    if (sft_run(&r, &sr, NULL) || save_model(&r, "sft_model")) return fail("sft", &r);
    printf("SFT: %d steps in %.1f s (%.0f tokens/s), loss %.4f -> %.4f\n", sr.steps, sr.seconds, sr.tokens_per_s,
           sr.loss_first, sr.loss_last);
    EvalResult e;
    eval_run(&r, &e);
    print_eval("held-out after SFT:", &e);
    run_close(&r);
    return 0;
}

/* Split "--resume X" out of argv (default "auto"); returns the remaining count in rest. */
static int take_resume(int argc, char **argv, char **rest, const char **resume) {
    int n = 0;
    *resume = "auto";
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--resume") && i + 1 < argc) *resume = argv[++i];
        else rest[n++] = argv[i];
    }
    return n;
}

/* Find the checkpoint to resume from (auto: newest valid one of the run), check its config, load
 * the model and the state. *dir is left empty when `auto` finds none (a fresh start). */
static int resume_from(Run *r, const char *what, TrainState *ts, char *dir, size_t cap) {
    dir[0] = '\0';
    int err;
    if (!strcmp(what, "auto")) {
        err = ckpt_find_latest(r->rc.dir, dir, cap);
        if (err == ERR_NOTFOUND) {
            log_info("--resume auto: no checkpoint in %s/checkpoints, starting fresh", r->rc.dir);
            dir[0] = '\0';
            return 0;
        }
        if (err) return err;
    } else {
        snprintf(dir, cap, "%s", what);
        if ((err = ckpt_verify(dir))) return err;
    }
    char *yaml = NULL;
    if ((err = train_ckpt_read_state(dir, ts, &yaml))) return err;
    err = train_ckpt_check_config(&r->rc, yaml, dir);
    free(yaml);
    if (!err) err = dist_ckpt_check(r->dist, dir);
    if (!err) err = train_ckpt_load_model(r, dir);
    if (!err) log_info("resuming from %s (%s phase, %ld steps done)", dir, ts->phase == PHASE_SFT ? "SFT" : "RL", ts->step);
    return err;
}

int cmd_train(int argc, char **argv) {
    char *rest[256];
    const char *resume;
    if (argc > 256) return 2;
    int n = take_resume(argc, argv, rest, &resume);
    RunConfig rc;
    int st = cli_load_config("train", n, rest, &rc);
    if (st) return st;
    Run r;
    double t0 = time_now_s();
    Dist *dist = NULL;
    int derr = dist_init(&dist, &rc, NULL, NULL);
    g_dist = dist;
    if (derr) return fail("train", NULL);
    if (run_open(&r, &rc, NULL, 0)) return fail("train", &r);
    r.dist = dist;
    const int lead = dist_is_leader(dist);
    TrainState ts = {.phase = rc.sft_first && rc.sft_steps > 0 ? PHASE_SFT : PHASE_RL};
    char resume_dir[1024] = "";
    if (!strcmp(resume, "none")) {
        char probe[1024];
        if (ckpt_find_latest(rc.dir, probe, sizeof probe) == 0) {
            err_set(ERR_CONFIG, "--resume none, but %s already holds checkpoints (newest %s)\n"
                    "HINT: resume it (--resume auto, the default), or choose another run.dir", rc.dir, probe);
            return fail("train", &r);
        }
    } else if (resume_from(&r, resume, &ts, resume_dir, sizeof resume_dir)) {
        /* a resume checks the checkpoint's config before anything in the run directory changes */
        return fail("train", &r);
    }
    if (lead && run_save_config(&r)) return fail("train", &r);
    int stale = lead ? ckpt_cleanup_stale(rc.dir) : 0;
    if (stale > 0) log_warn("removed %d unfinished checkpoint director%s", stale, stale > 1 ? "ies" : "y");
    LoopCkpt lc = {&ts, resume_dir[0] ? resume_dir : NULL};
    json_t *sum = json_object();
    if (ts.phase == PHASE_SFT) {
        SftResult sr;
        if (sft_run(&r, &sr, &lc) || (lead && save_model(&r, "sft_model"))) return fail("train", &r);
        if (lead)
            printf("SFT: %d steps in %.1f s (%.0f tokens/s), loss %.4f -> %.4f\n", sr.steps, sr.seconds,
                   sr.tokens_per_s, sr.loss_first, sr.loss_last);
        ts.have_sft = 1;
        ts.sft = sr;
        ts.phase = PHASE_RL;
        ts.step = 0;
    } else if (!rc.model_path[0] && !resume_dir[0]) {
        log_warn("RL from a randomly initialised model (no model.path, rl.sft_first false): expect no reward signal");
    }
    if (ts.have_sft)
        json_object_set_new(sum, "sft", json_pack("{s:i,s:f,s:f,s:f,s:f}", "steps", ts.sft.steps, "seconds", ts.sft.seconds,
                                                  "tokens_per_s", ts.sft.tokens_per_s, "loss_first", ts.sft.loss_first,
                                                  "loss_last", ts.sft.loss_last));
    EvalResult after;
    if (!ts.have_eval_before) {
        if (lead) eval_run(&r, &ts.eval_before); /* other ranks neither print nor save it */
        ts.have_eval_before = 1;
        if (train_ckpt_save(&r, &ts, NULL, NULL)) return fail("train", &r); /* the phase boundary */
    }
    if (lead) print_eval(ts.step > 0 ? "held-out before RL (saved):" : "held-out before RL:", &ts.eval_before);
    RlResult rr;
    if (rl_run(&r, &rr, &lc)) return fail("train", &r);
    if (!lead) {
        run_close(&r);
        json_decref(sum);
        dist_free(dist);
        return 0;
    }
    if (save_model(&r, "final_model")) return fail("train", &r);
    eval_run(&r, &after);
    print_eval("held-out after RL:", &after);
    const EvalResult *before = &ts.eval_before;
    double total = time_now_s() - t0;
    if (rr.steps == 0)
        printf("RL (%s): all %d steps were already done (resumed from %s)\n", rc.algo, rc.rl_steps, resume_dir);
    else
        printf("RL (%s): %d steps in %.1f s (rollout %.0f tok/s, learner %.0f tok/s, %ld skipped updates)\n", rc.algo,
               rr.steps, rr.seconds, rr.rollout_tokens_per_s, rr.learner_tokens_per_s, rr.skipped_updates);
    printf("held-out pass@1 %.3f -> %.3f (%+.3f), pass@%d %.3f -> %.3f; total %.1f s; metrics in %s/metrics.jsonl\n",
           before->pass1, after.pass1, after.pass1 - before->pass1, after.k, before->passk, after.passk, total, rc.dir);
    eval_json(sum, "eval_before", before);
    eval_json(sum, "eval_after", &after);
    json_object_set_new(sum, "rl", json_pack("{s:s,s:i,s:f,s:f,s:f,s:i}", "algo", rc.algo, "steps", rr.steps, "seconds",
                                             rr.seconds, "rollout_tokens_per_s", rr.rollout_tokens_per_s,
                                             "learner_tokens_per_s", rr.learner_tokens_per_s, "skipped_updates",
                                             (int)rr.skipped_updates));
    json_object_set_new(sum, "total_seconds", json_real(total));
    if (resume_dir[0]) json_object_set_new(sum, "resumed_from", json_string(resume_dir));
    char path[1024];
    snprintf(path, sizeof path, "%s/summary.json", rc.dir);
    if (json_dump_file(sum, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) log_warn("cannot write %s", path);
    json_decref(sum);
    run_close(&r);
    dist_free(dist);
    g_dist = NULL;
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model = NULL;
    char *rest[256];
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (n < 256) rest[n++] = argv[i];
    }
    if (!model) {
        fprintf(stderr, "cispo eval: missing --model PATH\nHINT: usage: cispo eval CONFIG --model RUN_DIR/final_model\n");
        return 2;
    }
    RunConfig rc;
    int st = cli_load_config("eval", n, rest, &rc);
    if (st) return st;
    rc.sft_steps = 0;
    Run r;
    if (run_open(&r, &rc, model, 0)) return fail("eval", &r);
    EvalResult e;
    eval_run(&r, &e);
    print_eval("held-out:", &e);
    run_close(&r);
    return 0;
}

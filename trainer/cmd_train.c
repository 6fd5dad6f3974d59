/* trainer/cmd_train.c: `cispo sft`, `cispo train` and `cispo eval`.
 *   sft   CONFIG: supervised warm start; saves RUN_DIR/sft_model and evaluates it.
 *   train CONFIG: RL from model.path, or SFT first (rl.sft_first); held-out accuracy before and after RL;
 *                 saves RUN_DIR/final_model and RUN_DIR/summary.json.
 *   eval  CONFIG --model PATH: held-out pass@1 / pass@k, lengths and stop reasons of a saved model.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/log.h"
#include "trainer/commands.h"
#include "trainer/eval.h"
#include "trainer/rl.h"
#include "trainer/sft.h"

static int fail(const char *cmd, Run *r) {
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
    if (sft_run(&r, &sr) || save_model(&r, "sft_model")) return fail("sft", &r);
    printf("SFT: %d steps in %.1f s (%.0f tokens/s), loss %.4f -> %.4f\n", sr.steps, sr.seconds, sr.tokens_per_s,
           sr.loss_first, sr.loss_last);
    EvalResult e;
    eval_run(&r, &e);
    print_eval("held-out after SFT:", &e);
    run_close(&r);
    return 0;
}

int cmd_train(int argc, char **argv) {
    RunConfig rc;
    int st = cli_load_config("train", argc, argv, &rc);
    if (st) return st;
    Run r;
    double t0 = time_now_s();
    if (run_open(&r, &rc, NULL, 1)) return fail("train", &r);
    json_t *sum = json_object();
    if (rc.sft_first && rc.sft_steps > 0) {
        SftResult sr;
        if (sft_run(&r, &sr) || save_model(&r, "sft_model")) return fail("train", &r);
        printf("SFT: %d steps in %.1f s (%.0f tokens/s), loss %.4f -> %.4f\n", sr.steps, sr.seconds, sr.tokens_per_s,
               sr.loss_first, sr.loss_last);
        json_object_set_new(sum, "sft", json_pack("{s:i,s:f,s:f,s:f,s:f}", "steps", sr.steps, "seconds", sr.seconds,
                                                  "tokens_per_s", sr.tokens_per_s, "loss_first", sr.loss_first,
                                                  "loss_last", sr.loss_last));
    } else if (!rc.model_path[0]) {
        log_warn("RL from a randomly initialised model (no model.path, rl.sft_first false): expect no reward signal");
    }
    EvalResult before, after;
    eval_run(&r, &before);
    print_eval("held-out before RL:", &before);
    RlResult rr;
    if (rl_run(&r, &rr) || save_model(&r, "final_model")) return fail("train", &r);
    eval_run(&r, &after);
    print_eval("held-out after RL:", &after);
    double total = time_now_s() - t0;
    printf("RL (%s): %d steps in %.1f s (rollout %.0f tok/s, learner %.0f tok/s, %ld skipped updates)\n"
           "held-out pass@1 %.3f -> %.3f (%+.3f), pass@%d %.3f -> %.3f; total %.1f s; metrics in %s/metrics.jsonl\n",
           rc.algo, rr.steps, rr.seconds, rr.rollout_tokens_per_s, rr.learner_tokens_per_s, rr.skipped_updates,
           before.pass1, after.pass1, after.pass1 - before.pass1, after.k, before.passk, after.passk, total, rc.dir);
    eval_json(sum, "eval_before", &before);
    eval_json(sum, "eval_after", &after);
    json_object_set_new(sum, "rl", json_pack("{s:s,s:i,s:f,s:f,s:f,s:i}", "algo", rc.algo, "steps", rr.steps, "seconds",
                                             rr.seconds, "rollout_tokens_per_s", rr.rollout_tokens_per_s,
                                             "learner_tokens_per_s", rr.learner_tokens_per_s, "skipped_updates",
                                             (int)rr.skipped_updates));
    json_object_set_new(sum, "total_seconds", json_real(total));
    char path[1024];
    snprintf(path, sizeof path, "%s/summary.json", rc.dir);
    if (json_dump_file(sum, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) log_warn("cannot write %s", path);
    json_decref(sum);
    run_close(&r);
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

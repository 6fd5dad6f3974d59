/* tests/trainer/test_hf_tokenizer_run.c: a run on a JSONL dataset with a tokenizer.json BPE and
 * the ChatML template (model.tokenizer, data.chat_template): prompts are the rendered chat turns
 * encoded (no BOS before them), SFT sequences end with
 * <|im_end|>, which is the run's EOS, and a short SFT + RL run completes with one metrics line
 * per step. Also the config errors: a template the tokenizer cannot serve, a missing file.
 * labels: unit
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../test_tmpdir.h"

#include "core/error.h"
#include "core/log.h"
#include "model/chat_template.h"
#include "trainer/rl.h"
#include "trainer/sft.h"

static char tmpdir[128];

static void write_dataset(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < 24; i++) {
        int a = 3 + i, b = 2 * i + 1;
        fprintf(f, "{\"prompt\": \"What is %d + %d?\", \"answer\": \"%d\", \"solution\": "
                   "\"<think>%d + %d = %d</think><answer>%d</answer>\"}\n", a, b, a + b, a, b, a + b, a + b);
    }
    fclose(f);
}

static int load_config(RunConfig *rc, const char *tokenizer, const char *chat, const char *run_name) {
    static char dir_kv[300], data_kv[300], tok_kv[700], chat_kv[64];
    const char *src = getenv("CISPO_SOURCE_DIR");
    snprintf(dir_kv, sizeof dir_kv, "run.dir=%s/%s", tmpdir, run_name);
    snprintf(data_kv, sizeof data_kv, "data.jsonl=%s/data.jsonl", tmpdir);
    snprintf(tok_kv, sizeof tok_kv, "model.tokenizer=%s%s%s", tokenizer[0] ? (src ? src : ".") : "",
             tokenizer[0] ? "/" : "", tokenizer);
    snprintf(chat_kv, sizeof chat_kv, "data.chat_template=%s", chat);
    char *ov[] = {dir_kv, data_kv, tok_kv, chat_kv, "model.vocab_size=1204", "model.hidden_size=32",
                  "model.intermediate_size=32", "model.num_layers=2", "model.full_attn_every=2", "model.head_dim=8",
                  "model.block_size=4", "sft.steps=4", "sft.batch_size=4", "rl.steps=2", "rl.prompts_per_step=2",
                  "rl.group_size=2", "rl.minibatches=1", "rl.max_gen_batches=1", "data.eval_size=4",
                  "eval.samples=1", "rollout.max_new_tokens=12", "data.system_prompt=Answer in tags."};
    return run_config_load(rc, NULL, (int)(sizeof ov / sizeof ov[0]), ov);
}

static void test_chatml_run(void **state) {
    (void)state;
    RunConfig rc;
    assert_int_equal(load_config(&rc, "tests/data/tokenizers/qwen2/tokenizer.json", "chatml", "chatml"), 0);
    Run r;
    int err = run_open(&r, &rc, NULL, 1);
    if (err) fail_msg("%s", err_msg());
    assert_int_equal(r.tok.eos, r.tok.added_id(&r.tok, "<|im_end|>"));
    Problem p;
    problems_train(&r.ps, 0, &p);
    int ids[1024], np;
    int n = problems_sft_tokens(&r.tok, &p, ids, 1024, &np);
    assert_true(n > np);
    assert_int_equal(ids[0], r.tok.added_id(&r.tok, "<|im_start|>"));
    assert_int_equal(ids[np], r.tok.tag[TOK_SPECIAL_THINK]);
    assert_int_equal(ids[n - 1], r.tok.eos);
    char want[2048];
    int want_ids[1024];
    chat_render(CHAT_CHATML, "Answer in tags.", p.prompt, want, sizeof want);
    assert_int_equal(r.tok.encode(&r.tok, want, want_ids, 1024), np);
    assert_memory_equal(ids, want_ids, (size_t)np * sizeof(int));
    SftResult sr;
    RlResult rr;
    assert_int_equal(sft_run(&r, &sr, NULL), 0);
    assert_int_equal(rl_run(&r, &rr, NULL), 0);
    run_close(&r);
    char path[400], line[8192];
    snprintf(path, sizeof path, "%s/chatml/metrics.jsonl", tmpdir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int lines = 0;
    while (fgets(line, sizeof line, f)) lines++;
    fclose(f);
    assert_int_equal(lines, 2);
}

static void test_config_errors(void **state) {
    (void)state;
    RunConfig rc;
    Run r;
    assert_int_equal(load_config(&rc, "", "chatml", "bad1"), 0); /* byte tokenizer has no <|im_start|> */
    assert_int_equal(run_open(&r, &rc, NULL, 0), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "needs the special token <|im_start|>"));
    run_close(&r);
    assert_int_equal(load_config(&rc, "nope/tokenizer.json", "none", "bad2"), 0);
    assert_int_equal(run_open(&r, &rc, NULL, 0), ERR_IO);
    assert_non_null(strstr(err_msg(), "nope/tokenizer.json"));
    run_close(&r);
}

static int setup(void **state) {
    (void)state;
    log_set_level(LOG_WARN);
    if (tmpdir_make(tmpdir, sizeof tmpdir, "cispo_test_hftok")) return -1;
    char path[300];
    snprintf(path, sizeof path, "%s/data.jsonl", tmpdir);
    write_dataset(path);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chatml_run),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

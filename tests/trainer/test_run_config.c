/* tests/trainer/test_run_config.c: the run config schema: the demo defaults, configs/demo.yaml,
 * file + override precedence, error messages naming file/line/key, cross-field validation, and
 * print -> reload round trips.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "trainer/run_config.h"

#define assert_msg_has(needle)                                                                 \
    do {                                                                                       \
        if (strstr(err_msg(), (needle)) == NULL) {                                             \
            print_error("error message\n  '%s'\nlacks\n  '%s'\n", err_msg(), (needle));         \
            fail();                                                                            \
        }                                                                                      \
    } while (0)

/* Write text to a fresh temporary .yaml file; the caller unlinks `path`. */
static void write_tmp(char *path, size_t cap, const char *text) {
    snprintf(path, cap, "/tmp/cispo_run_config_XXXXXX.yaml");
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Every schema field equal: numbers bitwise, strings up to the terminator. */
static void assert_same(const RunConfig *a, const RunConfig *b) {
    for (const ConfigField *f = run_config_schema(); f->key != NULL; f++) {
        const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
        int same = (f->type == CFG_STRING || f->type == CFG_ENUM) ? strcmp(pa, pb) == 0 : memcmp(pa, pb, f->size) == 0;
        if (!same) {
            print_error("field %s differs\n", f->key);
            fail();
        }
    }
}

static void test_defaults(void **state) {
    (void)state;
    RunConfig rc;
    assert_int_equal(run_config_load(&rc, NULL, 0, NULL), 0);
    assert_int_equal(rc.seed, 1);
    assert_string_equal(rc.dir, "runs/demo");
    assert_int_equal(rc.threads, 0);
    assert_string_equal(rc.backend, "cpu");
    assert_string_equal(rc.log_level, "info");
    assert_string_equal(rc.model_path, "");
    assert_string_equal(rc.family, "minimax");
    assert_int_equal(rc.vocab_size, 272);
    assert_int_equal(rc.hidden_size, 128);
    assert_int_equal(rc.intermediate_size, 192);
    assert_int_equal(rc.num_layers, 4);
    assert_int_equal(rc.num_heads, 4);
    assert_int_equal(rc.num_kv_heads, 2);
    assert_int_equal(rc.head_dim, 32);
    assert_int_equal(rc.full_attn_every, 4);
    assert_int_equal(rc.block_size, 64);
    assert_int_equal(rc.num_experts, 4);
    assert_int_equal(rc.experts_per_tok, 2);
    assert_true(rc.rope_theta == 1e7);
    assert_true(rc.init_std == 0.02);
    assert_int_equal(rc.tie_embeddings, 0);
    assert_int_equal(rc.max_seq_len, 512);
    assert_string_equal(rc.prompt, "The quick brown fox");
    assert_int_equal(rc.max_new_tokens, 64);
    assert_true(rc.temperature == 1.0);
    assert_true(rc.top_p == 0.95);
    assert_int_equal(rc.num_samples, 4);
}

static void test_schema_complete(void **state) {
    (void)state;
    const ConfigSchema *s = run_config_schema();
    int n = 0;
    for (const ConfigField *f = s; f->key != NULL; f++, n++) {
        assert_non_null(f->help);
        assert_true(f->help[0] != '\0');
        assert_ptr_equal(config_find(s, f->key), f);
    }
    assert_int_equal(n, 120); /* every RunConfig field has a key */
}

static void test_demo_yaml_loads(void **state) {
    (void)state;
    const char *src = getenv("CISPO_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof(path), "%s/configs/demo.yaml", src ? src : ".");
    RunConfig from_file, defaults;
    int rc = run_config_load(&from_file, path, 0, NULL);
    if (rc != 0) print_error("%s\n", err_msg());
    assert_int_equal(rc, 0);
    assert_int_equal(run_config_load(&defaults, NULL, 0, NULL), 0);
    assert_same(&from_file, &defaults); /* the shipped demo config is the defaults, spelled out */
}

static void test_precedence(void **state) {
    (void)state;
    char path[64];
    write_tmp(path, sizeof(path), "model:\n  hidden_size: 256\n  num_layers: 8\ngenerate:\n  top_p: 0.5\n");
    RunConfig rc;
    char *ov[] = {"model.hidden_size=64", "generate.top_p=0.7", "model.hidden_size=96"};
    assert_int_equal(run_config_load(&rc, path, 0, NULL), 0);
    assert_int_equal(rc.hidden_size, 256); /* file beats default */
    assert_int_equal(rc.num_layers, 8);
    assert_int_equal(run_config_load(&rc, path, 3, ov), 0);
    assert_int_equal(rc.hidden_size, 96); /* command line beats file; the last override wins */
    assert_int_equal(rc.num_layers, 8);
    assert_true(rc.top_p == 0.7);
    assert_int_equal(rc.intermediate_size, 192); /* untouched: default */
    unlink(path);
}

static void test_errors_name_file_line_key(void **state) {
    (void)state;
    char path[64], expected[256];
    write_tmp(path, sizeof(path), "run:\n  seed: 3\nmodel:\n  hiden_size: 64\n");
    RunConfig rc;
    assert_int_equal(run_config_load(&rc, path, 0, NULL), ERR_CONFIG);
    snprintf(expected, sizeof(expected), "%s:4: unknown key 'model.hiden_size'; did you mean 'model.hidden_size'?", path);
    assert_string_equal(err_msg(), expected);
    unlink(path);

    write_tmp(path, sizeof(path), "generate:\n  temperature: 11\n");
    assert_int_equal(run_config_load(&rc, path, 0, NULL), ERR_CONFIG);
    snprintf(expected, sizeof(expected), "%s:2: generate.temperature: expected a value in [0, 10], got 11", path);
    assert_string_equal(err_msg(), expected);
    unlink(path);

    char *bad[] = {"run.backend=gpu"};
    assert_int_equal(run_config_load(&rc, NULL, 1, bad), ERR_CONFIG);
    assert_string_equal(err_msg(), "command line: run.backend: expected one of cpu|cuda, got 'gpu'");
    char *top_p0[] = {"generate.top_p=0"};
    assert_int_equal(run_config_load(&rc, NULL, 1, top_p0), ERR_CONFIG);
    assert_string_equal(err_msg(), "command line: generate.top_p: expected a value in [1e-06, 1], got 0");
    char *noeq[] = {"model.hidden_size"};
    assert_int_equal(run_config_load(&rc, NULL, 1, noeq), ERR_CONFIG);
    assert_msg_has("command line: expected section.key=value");
    assert_int_equal(run_config_load(&rc, "/nonexistent/x.yaml", 0, NULL), ERR_IO);
    assert_msg_has("/nonexistent/x.yaml");
}

/* The RL sections' relations: each bad combination is an error naming both keys. */
static void test_rl_cross_field(void **state) {
    (void)state;
    struct {
        char *a, *b;
        const char *needle;
    } cases[] = {
        {"data.difficulty_min=5", "data.difficulty_max=4", "data.difficulty_min (5) must be at most data.difficulty_max (4)"},
        {"rl.minibatches=200", "rl.group_size=8", "rl.minibatches (200) exceeds the responses per step"},
        {"rollout.max_new_tokens=600", "model.max_seq_len=512", "rollout.max_new_tokens (600) must be less than"},
        {"loss.dual_clip_c=0.5", "rl.algo=ppo", "loss.dual_clip_c (0.5) must be 0 (off) or greater than 1"},
        {"loss.cispo_c_low=1", "loss.cispo_c_high=1", "loss.cispo_c_low (1) must be below loss.cispo_c_high (1)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *ov[2] = {cases[i].a, cases[i].b};
        RunConfig rc;
        assert_int_equal(run_config_load(&rc, NULL, 2, ov), ERR_CONFIG);
        if (!strstr(err_msg(), cases[i].needle)) print_error("message: %s\n", err_msg());
        assert_non_null(strstr(err_msg(), cases[i].needle));
        assert_non_null(strstr(err_msg(), "defaults + command line"));
    }
}

static void test_cross_field(void **state) {
    (void)state;
    RunConfig rc;
    char *kv[] = {"model.num_kv_heads=3"};
    assert_int_equal(run_config_load(&rc, NULL, 1, kv), ERR_CONFIG);
    assert_msg_has("model.num_heads (4) must be divisible by model.num_kv_heads (3)");
    char *ex[] = {"model.experts_per_tok=5"};
    assert_int_equal(run_config_load(&rc, NULL, 1, ex), ERR_CONFIG);
    assert_msg_has("model.experts_per_tok (5) must be at most model.num_experts (4)");
    char *hd[] = {"model.head_dim=33"};
    assert_int_equal(run_config_load(&rc, NULL, 1, hd), ERR_CONFIG);
    assert_msg_has("model.head_dim (33) must be even");
    char *fa[] = {"model.full_attn_every=0"};
    assert_int_equal(run_config_load(&rc, NULL, 1, fa), ERR_CONFIG);
    assert_msg_has("model.full_attn_every: expected a value in [1, 1024], got 0");
    char *len[] = {"generate.max_new_tokens=512"};
    assert_int_equal(run_config_load(&rc, NULL, 1, len), ERR_CONFIG);
    assert_msg_has("generate.max_new_tokens (512) must be less than model.max_seq_len (512)");
    /* Fixing the relation in a later override makes it valid: validation runs last. */
    char *fixed[] = {"model.num_kv_heads=3", "model.num_heads=6"};
    assert_int_equal(run_config_load(&rc, NULL, 2, fixed), 0);
    assert_int_equal(rc.num_heads, 6);
}

static void test_print_reload(void **state) {
    (void)state;
    char *ov[] = {"generate.prompt=Q: \"2+2\"?\n# not a comment\tend", "generate.temperature=0.7",
                  "run.seed=-9007199254740993", "model.init_std=0.1", "model.tie_embeddings=yes",
                  "model.path=", "run.dir=/tmp/a b:c", "model.rope_theta=123456.789"};
    RunConfig orig, back;
    assert_int_equal(run_config_load(&orig, NULL, 8, ov), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    run_config_print(f, &orig);
    fclose(f);
    assert_non_null(strstr(text, "model:\n"));
    assert_non_null(strstr(text, "  hidden_size: 128  # model width C\n"));
    assert_non_null(strstr(text, "  temperature: 0.7  #"));
    char path[64];
    write_tmp(path, sizeof(path), text);
    int rc = run_config_load(&back, path, 0, NULL);
    if (rc != 0) print_error("%s\n--- printed ---\n%s", err_msg(), text);
    assert_int_equal(rc, 0);
    assert_same(&orig, &back);
    assert_string_equal(back.prompt, "Q: \"2+2\"?\n# not a comment\tend");
    unlink(path);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_schema_complete),
        cmocka_unit_test(test_demo_yaml_loads),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_errors_name_file_line_key),
        cmocka_unit_test(test_cross_field),
        cmocka_unit_test(test_rl_cross_field),
        cmocka_unit_test(test_print_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

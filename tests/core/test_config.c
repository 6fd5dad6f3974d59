/* tests/core/test_config.c: the YAML config engine against a small test schema.
 * labels: unit
 *
 * Every error the loader promises is provoked and its message checked for the file name, the
 * 1-based line, the key and what was expected (and the suggestion for typos); numbers and
 * booleans are parsed strictly; printed YAML reloads to bit-identical values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/error.h"

typedef struct {
    int hidden;      /* model.hidden_size */
    int layers;      /* model.num_layers */
    long long seed;  /* run.seed */
    int count;       /* run.count */
    double lr;       /* trainer.lr */
    double eps;      /* trainer.eps */
    int use_kl;      /* trainer.use_kl */
    char name[16];   /* run.name */
    char backend[8]; /* run.backend */
} T;

#define FLD(key, type, field, def, lo, hi, choices, help) \
    {key, type, offsetof(T, field), sizeof(((T *)0)->field), def, lo, hi, choices, help}

static const ConfigField kSchema[] = {
    FLD("run.seed", CFG_INT64, seed, "7", 1, 0, NULL, "seed"),
    FLD("run.count", CFG_INT, count, "-3", 1, 0, NULL, "unbounded int"),
    FLD("run.name", CFG_STRING, name, "demo", 1, 0, NULL, "a name"),
    FLD("run.backend", CFG_ENUM, backend, "cpu", 1, 0, "cpu|cuda", "backend"),
    FLD("model.hidden_size", CFG_INT, hidden, "128", 1, 65536, NULL, "width"),
    FLD("model.num_layers", CFG_INT, layers, "4", 1, 64, NULL, "layers"),
    FLD("trainer.lr", CFG_FLOAT, lr, "1e-3", 0, 1, NULL, "learning rate"),
    FLD("trainer.eps", CFG_FLOAT, eps, "1e-8", 1, 0, NULL, "unbounded float"),
    FLD("trainer.use_kl", CFG_BOOL, use_kl, "off", 1, 0, NULL, "a flag"),
    {NULL, CFG_INT, 0, 0, NULL, 0, 0, NULL, NULL},
};

#define assert_msg_has(needle)                                                                 \
    do {                                                                                       \
        if (strstr(err_msg(), (needle)) == NULL) {                                             \
            print_error("error message\n  '%s'\nlacks\n  '%s'\n", err_msg(), (needle));         \
            fail();                                                                            \
        }                                                                                      \
    } while (0)

#define assert_msg_is(expected)                                                                \
    do {                                                                                       \
        if (strcmp(err_msg(), (expected)) != 0) {                                              \
            print_error("error message\n  '%s'\nexpected\n  '%s'\n", err_msg(), (expected));    \
            fail();                                                                            \
        }                                                                                      \
    } while (0)

static void fresh(T *t) {
    memset(t, 0xAB, sizeof(*t));
    assert_int_equal(config_set_defaults(kSchema, t), 0);
}

static int load(T *t, const char *text) {
    err_clear();
    return config_load_yaml_string(kSchema, t, text, strlen(text), "configs/x.yaml");
}

static int over(T *t, const char *assignment) {
    err_clear();
    return config_apply_override(kSchema, t, assignment);
}

static void test_defaults(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(t.seed, 7);
    assert_int_equal(t.count, -3);
    assert_string_equal(t.name, "demo");
    assert_string_equal(t.backend, "cpu");
    assert_int_equal(t.hidden, 128);
    assert_int_equal(t.layers, 4);
    assert_true(t.lr == 1e-3);
    assert_true(t.eps == 1e-8);
    assert_int_equal(t.use_kl, 0);
    /* String buffers are zero past the terminator (so structs compare and print cleanly). */
    for (size_t i = strlen(t.name); i < sizeof(t.name); i++) assert_int_equal(t.name[i], 0);
}

static void test_load_good(void **state) {
    (void)state;
    T t;
    fresh(&t);
    const char *text = "# a comment\n"
                       "run:\n"
                       "  seed: -12345678901234   # trailing comment\n"
                       "  name: 'hello world'\n"
                       "  backend: cuda\n"
                       "model:\n"
                       "  hidden_size: 256\n"
                       "trainer:\n"
                       "  lr: .5\n"
                       "  eps: -3\n"
                       "  use_kl: Yes\n";
    assert_int_equal(load(&t, text), 0);
    assert_int_equal(t.seed, -12345678901234LL);
    assert_string_equal(t.name, "hello world");
    assert_string_equal(t.backend, "cuda");
    assert_int_equal(t.hidden, 256);
    assert_int_equal(t.layers, 4); /* untouched keys keep their defaults */
    assert_true(t.lr == 0.5);
    assert_true(t.eps == -3.0);
    assert_int_equal(t.use_kl, 1);
}

static void test_empty_inputs(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, ""), 0);
    assert_int_equal(load(&t, "# only a comment\n\n"), 0);
    assert_int_equal(load(&t, "---\n"), 0);
    assert_int_equal(load(&t, "trainer:\nmodel:\n  num_layers: 9\n"), 0); /* empty section */
    assert_int_equal(t.layers, 9);
    assert_int_equal(load(&t, "run:\n  name:\n"), 0); /* YAML null is the empty string */
    assert_string_equal(t.name, "");
    assert_int_equal(load(&t, "run:\n  name: ~\n"), 0);
    assert_string_equal(t.name, "");
    assert_int_equal(load(&t, "run:\n  name: \"null\"\n"), 0); /* quoted: the word itself */
    assert_string_equal(t.name, "null");
}

static void test_error_integer(void **state) {
    (void)state;
    T t;
    fresh(&t);
    const char *text = "# header\n"
                       "run:\n"
                       "  seed: 1\n"
                       "\n"
                       "model:\n"
                       "  num_layers: 2\n"
                       "  hidden_size: abc\n";
    assert_int_equal(load(&t, text), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:7: model.hidden_size: expected an integer, got 'abc'");
    assert_int_equal(load(&t, "model:\n  hidden_size:\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:2: model.hidden_size: expected an integer, got ''");
}

static void test_error_unknown_key(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "model:\n  num_layers: 2\n  hiden_size: 64\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:3: unknown key 'model.hiden_size'; did you mean 'model.hidden_size'?");
    /* A key under the wrong section points to where it lives. */
    assert_int_equal(load(&t, "model:\n  seed: 3\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:2: unknown key 'model.seed'; did you mean 'run.seed'?");
    /* Nothing close: list the section's keys instead. */
    assert_int_equal(load(&t, "model:\n  zzzzzzzzzzzzz: 3\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:2: unknown key 'model.zzzzzzzzzzzzz'");
    assert_msg_has("HINT: valid keys in 'model': hidden_size, num_layers");
    assert_null(strstr(err_msg(), "did you mean"));
}

static void test_error_unknown_section(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "run:\n  seed: 1\nmodle:\n  hidden_size: 64\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:3: unknown section 'modle'; did you mean 'model'?");
    assert_int_equal(load(&t, "optimizer_settings:\n  beta: 1\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:1: unknown section 'optimizer_settings'");
    assert_msg_has("HINT: valid sections: run, model, trainer");
    /* A flat dotted key at the top level is a known mistake with a specific message. */
    assert_int_equal(load(&t, "model.hidden_size: 5\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:1: 'model.hidden_size' must be nested: write 'model:' and under it "
                  "'  hidden_size: ...'");
}

static void test_error_range(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "model:\n  hidden_size: 0\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:2: model.hidden_size: expected a value in [1, 65536], got 0");
    assert_int_equal(load(&t, "model:\n  hidden_size: 65537\n"), ERR_CONFIG);
    assert_msg_has("expected a value in [1, 65536], got 65537");
    assert_int_equal(load(&t, "model:\n  hidden_size: 65536\n"), 0); /* bounds are inclusive */
    assert_int_equal(t.hidden, 65536);
    assert_int_equal(load(&t, "trainer:\n\n  lr: 1.5\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:3: trainer.lr: expected a value in [0, 1], got 1.5");
    /* Past the C type of an unbounded field. */
    assert_int_equal(load(&t, "run:\n  count: 2147483648\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:2: run.count: expected an integer in [-2147483648, 2147483647], got 2147483648");
    assert_int_equal(load(&t, "run:\n  count: -2147483648\n"), 0);
    assert_int_equal(t.count, INT_MIN);
    assert_int_equal(load(&t, "run:\n  seed: 9223372036854775808\n"), ERR_CONFIG);
    assert_msg_has("run.seed: expected an integer in [-9223372036854775808, 9223372036854775807]");
}

static void test_error_enum_and_string(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "run:\n  backend: gpu\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:2: run.backend: expected one of cpu|cuda, got 'gpu'");
    assert_int_equal(load(&t, "run:\n  backend: CPU\n"), ERR_CONFIG); /* case-sensitive */
    assert_int_equal(load(&t, "run:\n  name: 0123456789abcdef\n"), ERR_CONFIG); /* 16 bytes, buffer 16 */
    assert_msg_has("configs/x.yaml:2: run.name: expected a string of at most 15 bytes, got 16 bytes");
    assert_int_equal(load(&t, "run:\n  name: 0123456789abcde\n"), 0); /* 15 fits */
    assert_string_equal(t.name, "0123456789abcde");
    assert_int_equal(load(&t, "run:\n  name: \"a\\0b\"\n"), ERR_CONFIG);
    assert_msg_has("run.name: the value contains a NUL byte");
}

static void test_error_duplicates(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "model:\n  hidden_size: 8\n  num_layers: 2\n  hidden_size: 16\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:4: duplicate key 'model.hidden_size' (first set on line 2)");
    assert_int_equal(load(&t, "model:\n  hidden_size: 8\nrun:\n  seed: 2\nmodel:\n  num_layers: 2\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:5: duplicate section 'model' (first on line 1)");
}

static void test_error_syntax(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "model:\n  hidden_size: 8\n  num_layers: 2: 3\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:3: YAML syntax error: mapping values are not allowed in this context");
    assert_int_equal(load(&t, "run:\n  name: \"unterminated\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:");
    assert_msg_has("YAML syntax error: found unexpected end of stream");
    assert_msg_has("while scanning a quoted scalar, line 2");
    assert_int_equal(load(&t, "run:\n  seed: 1\n---\nrun:\n  seed: 2\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:3: expected a single YAML document, found another one");
    assert_int_equal(load(&t, "run:\n  name: &a x\n  backend: *a\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:3: run.backend: expected a single value, got an alias (aliases are not "
                  "supported)\nHINT: configs have two levels, section -> key: value");
    const char bad_utf8[] = "run:\n  name: \xff\xfe\n";
    err_clear();
    assert_int_equal(config_load_yaml_string(kSchema, &t, bad_utf8, strlen(bad_utf8), "configs/x.yaml"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml: cannot read YAML at byte");
}

static void test_error_structure(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "run:\n  seed: 1\nmodel: 5\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:3: section 'model': expected a mapping of key: value, got a scalar");
    assert_int_equal(load(&t, "model:\n  - 1\n  - 2\n"), ERR_CONFIG);
    assert_msg_is("configs/x.yaml:2: section 'model': expected a mapping of key: value, got a list");
    assert_int_equal(load(&t, "- run\n- model\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:1: expected a mapping of sections at the top level");
    assert_int_equal(load(&t, "just a string\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:1: expected a mapping of sections at the top level (e.g. 'model:'), got a scalar");
    /* Deeper nesting and lists as values. */
    assert_int_equal(load(&t, "model:\n  hidden_size:\n    inner: 1\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:2: model.hidden_size: expected a single value, got a mapping");
    assert_int_equal(load(&t, "model:\n  hidden_size: [1, 2]\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:2: model.hidden_size: expected a single value, got a list");
    assert_int_equal(load(&t, "model:\n  ? [a, b]\n  : 1\n"), ERR_CONFIG);
    assert_msg_has("configs/x.yaml:2: in section 'model': expected a key name, got a list");
}

static void test_overrides(void **state) {
    (void)state;
    T t;
    fresh(&t);
    assert_int_equal(load(&t, "model:\n  hidden_size: 64\n"), 0);
    assert_int_equal(over(&t, "model.hidden_size=96"), 0);
    assert_int_equal(t.hidden, 96); /* the command line beats the file */
    assert_int_equal(over(&t, "model.hidden_size=32"), 0);
    assert_int_equal(t.hidden, 32); /* a later override beats an earlier one */
    assert_int_equal(over(&t, "run.name=a=b"), 0); /* split at the first '=' */
    assert_string_equal(t.name, "a=b");
    assert_int_equal(over(&t, "run.name="), 0);
    assert_string_equal(t.name, "");
    assert_int_equal(over(&t, "trainer.use_kl=ON"), 0);
    assert_int_equal(t.use_kl, 1);

    assert_int_equal(over(&t, "model.hidden_size"), ERR_CONFIG);
    assert_msg_has("command line: expected section.key=value, got 'model.hidden_size'");
    assert_int_equal(over(&t, "model.hiden_size=5"), ERR_CONFIG);
    assert_msg_is("command line: unknown key 'model.hiden_size'; did you mean 'model.hidden_size'?");
    assert_int_equal(over(&t, "modle.hidden_size=5"), ERR_CONFIG);
    assert_msg_is("command line: unknown key 'modle.hidden_size'; did you mean 'model.hidden_size'?");
    assert_int_equal(over(&t, "seed=5"), ERR_CONFIG);
    assert_msg_is("command line: unknown key 'seed'; did you mean 'run.seed'?");
    assert_int_equal(over(&t, "model.hidden_size=12x"), ERR_CONFIG);
    assert_msg_is("command line: model.hidden_size: expected an integer, got '12x'");
    assert_int_equal(over(&t, "model.hidden_size=0"), ERR_CONFIG);
    assert_msg_is("command line: model.hidden_size: expected a value in [1, 65536], got 0");
    assert_int_equal(over(&t, "run.backend=tpu"), ERR_CONFIG);
    assert_msg_is("command line: run.backend: expected one of cpu|cuda, got 'tpu'");
    assert_int_equal(over(&t, "run.name=this name is too long"), ERR_CONFIG);
    assert_msg_has("command line: run.name: expected a string of at most 15 bytes");
    assert_int_equal(over(&t, "trainer.use_kl=maybe"), ERR_CONFIG);
    assert_msg_is("command line: trainer.use_kl: expected a boolean (true|false|yes|no|on|off|1|0), got 'maybe'");
    assert_int_equal(t.hidden, 32); /* failed overrides changed nothing */
}

static void test_floats_strict(void **state) {
    (void)state;
    static const struct { const char *text; double value; } good[] = {
        {"1e-5", 1e-5}, {".5", 0.5}, {"-3", -3.0}, {"+2.5", 2.5}, {"5.", 5.0}, {"-0", -0.0}, {"1E+3", 1000.0},
    };
    static const char *const not_number[] = {"", " 1", "1 ", "1.5x", "0x10", "1,5", ".inf", "e5", "--1", "1e"};
    static const char *const not_finite[] = {"inf", "-inf", "+infinity", "nan", "NaN", "1e999", "-1e400", "-nan"};
    T t;
    fresh(&t);
    char buf[64];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(buf, sizeof(buf), "trainer.eps=%s", good[i].text);
        assert_int_equal(over(&t, buf), 0);
        assert_memory_equal(&t.eps, &good[i].value, sizeof(double)); /* bit-exact, incl. -0 */
    }
    for (size_t i = 0; i < sizeof(not_number) / sizeof(not_number[0]); i++) {
        snprintf(buf, sizeof(buf), "trainer.eps=%s", not_number[i]);
        assert_int_equal(over(&t, buf), ERR_CONFIG);
        assert_msg_has("trainer.eps: expected a number, got '");
    }
    for (size_t i = 0; i < sizeof(not_finite) / sizeof(not_finite[0]); i++) {
        snprintf(buf, sizeof(buf), "trainer.eps=%s", not_finite[i]);
        assert_int_equal(over(&t, buf), ERR_CONFIG);
        assert_msg_has("trainer.eps: expected a finite number, got '");
    }
}

static void test_ints_strict(void **state) {
    (void)state;
    static const char *const bad[] = {"", "1.0", "1e3", "0x10", "12abc", " 5", "5 ", "--5", "+", "1_000"};
    T t;
    fresh(&t);
    char buf[64];
    assert_int_equal(over(&t, "run.count=-7"), 0);
    assert_int_equal(t.count, -7);
    assert_int_equal(over(&t, "run.count=+7"), 0);
    assert_int_equal(t.count, 7);
    assert_int_equal(over(&t, "run.count=007"), 0); /* decimal, not octal */
    assert_int_equal(t.count, 7);
    assert_int_equal(over(&t, "run.seed=-9223372036854775808"), 0);
    assert_true(t.seed == LLONG_MIN);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "run.count=%s", bad[i]);
        assert_int_equal(over(&t, buf), ERR_CONFIG);
        assert_msg_has("run.count: expected an integer, got '");
    }
}

static void test_bools(void **state) {
    (void)state;
    static const struct { const char *text; int value; } good[] = {
        {"true", 1}, {"TRUE", 1}, {"yes", 1}, {"On", 1}, {"1", 1},
        {"false", 0}, {"False", 0}, {"NO", 0}, {"off", 0}, {"0", 0},
    };
    static const char *const bad[] = {"", "2", "y", "n", "truee", "enabled", "-1"};
    T t;
    fresh(&t);
    char buf[64];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        t.use_kl = -1;
        snprintf(buf, sizeof(buf), "trainer.use_kl=%s", good[i].text);
        assert_int_equal(over(&t, buf), 0);
        assert_int_equal(t.use_kl, good[i].value);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf), "trainer.use_kl=%s", bad[i]);
        assert_int_equal(over(&t, buf), ERR_CONFIG);
    }
    fresh(&t);
    assert_int_equal(load(&t, "trainer:\n  use_kl: yes\n"), 0);
    assert_int_equal(t.use_kl, 1);
}

/* Field-by-field equality through the schema: numbers bitwise, strings up to the terminator. */
static void assert_same_config(const T *a, const T *b) {
    for (const ConfigField *f = kSchema; f->key != NULL; f++) {
        const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
        if (f->type == CFG_STRING || f->type == CFG_ENUM) {
            if (strcmp(pa, pb) != 0) {
                print_error("%s: '%s' != '%s'\n", f->key, pa, pb);
                fail();
            }
        } else if (memcmp(pa, pb, f->size) != 0) {
            print_error("%s differs after the round trip\n", f->key);
            fail();
        }
    }
}

static void round_trip(const T *orig) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print_yaml(kSchema, orig, f);
    fclose(f);
    T back;
    memset(&back, 0x5A, sizeof(back));
    err_clear();
    int rc = config_load_yaml_string(kSchema, &back, text, len, "printed");
    if (rc != 0) print_error("reload failed: %s\n--- text ---\n%s", err_msg(), text);
    assert_int_equal(rc, 0);
    assert_same_config(orig, &back);
    free(text);
}

static void test_print_round_trip(void **state) {
    (void)state;
    static const char *const names[] = {"demo", "", "null", "~", "a: b # c", " lead", "trail ", "tab\there",
                                        "quo\"te", "back\\sl", "new\nline", "-dash", "[x]", "#hash", "1e5",
                                        "caf\xc3\xa9", "'single'", "true"};
    static const double floats[] = {0.1, 1.0 / 3.0, 1e-300, -0.0, 2.5e-308, 123456789.125, 1e7, 0.95};
    T t;
    fresh(&t);
    round_trip(&t);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        fresh(&t);
        snprintf(t.name, sizeof(t.name), "%s", names[i]);
        t.eps = floats[i % (sizeof(floats) / sizeof(floats[0]))];
        t.lr = (double)i / 17.0;
        t.seed = i % 2 ? LLONG_MIN : LLONG_MAX;
        t.count = i % 2 ? INT_MIN : INT_MAX;
        t.use_kl = (int)(i % 2);
        snprintf(t.backend, sizeof(t.backend), "%s", i % 2 ? "cuda" : "cpu");
        round_trip(&t);
    }
}

static void test_print_format(void **state) {
    (void)state;
    T t;
    fresh(&t);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_print_yaml(kSchema, &t, f);
    fclose(f);
    const char *expected = "run:\n"
                           "  seed: 7  # seed\n"
                           "  count: -3  # unbounded int\n"
                           "  name: demo  # a name\n"
                           "  backend: cpu  # backend\n"
                           "\n"
                           "model:\n"
                           "  hidden_size: 128  # width\n"
                           "  num_layers: 4  # layers\n"
                           "\n"
                           "trainer:\n"
                           "  lr: 0.001  # learning rate\n"
                           "  eps: 1e-08  # unbounded float\n"
                           "  use_kl: false  # a flag\n";
    assert_string_equal(text, expected);
    free(text);
}

static void test_edit_distance_and_find(void **state) {
    (void)state;
    assert_int_equal(config_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(config_edit_distance("flaw", "lawn"), 2);
    assert_int_equal(config_edit_distance("", "abc"), 3);
    assert_int_equal(config_edit_distance("abc", ""), 3);
    assert_int_equal(config_edit_distance("same", "same"), 0);
    assert_int_equal(config_edit_distance("hiden_size", "hidden_size"), 1);
    assert_int_equal(config_edit_distance("modle", "model"), 2);
    assert_ptr_equal(config_find(kSchema, "model.num_layers"), &kSchema[5]);
    assert_null(config_find(kSchema, "model.num_layer"));
    assert_null(config_find(kSchema, "num_layers"));
}

static void test_file_on_disk(void **state) {
    (void)state;
    char path[] = "/tmp/cispo_test_config_XXXXXX";
    char template[] = "/tmp/cispo_test_config_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "model:\n  hidden_size: 48\n  num_layers: 3\ntrainer:\n  lr: oops\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    T t;
    fresh(&t);
    err_clear();
    assert_int_equal(config_load_yaml(kSchema, &t, path), ERR_CONFIG);
    char expected[256];
    snprintf(expected, sizeof(expected), "%s:5: trainer.lr: expected a number, got 'oops'", path);
    assert_msg_is(expected);
    assert_int_equal(t.hidden, 48); /* lines before the error were applied */
    unlink(path);
    memcpy(path, template, sizeof(template));

    /* A file larger than the first read chunk (64 KiB of comments), error on its last line. */
    FILE *big = fdopen(mkstemp(path), "w");
    assert_non_null(big);
    fputs("model:\n", big);
    for (int i = 0; i < 3000; i++) fprintf(big, "  # comment line %d padded to be long enough...\n", i);
    fputs("  num_layers: 99\n", big);
    fclose(big);
    assert_int_equal(config_load_yaml(kSchema, &t, path), ERR_CONFIG);
    snprintf(expected, sizeof(expected), "%s:3002: model.num_layers: expected a value in [1, 64], got 99", path);
    assert_msg_is(expected);
    unlink(path);

    err_clear();
    assert_int_equal(config_load_yaml(kSchema, &t, "/nonexistent/dir/cfg.yaml"), ERR_IO);
    assert_msg_has("cannot open config file '/nonexistent/dir/cfg.yaml'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_good),
        cmocka_unit_test(test_empty_inputs),
        cmocka_unit_test(test_error_integer),
        cmocka_unit_test(test_error_unknown_key),
        cmocka_unit_test(test_error_unknown_section),
        cmocka_unit_test(test_error_range),
        cmocka_unit_test(test_error_enum_and_string),
        cmocka_unit_test(test_error_duplicates),
        cmocka_unit_test(test_error_syntax),
        cmocka_unit_test(test_error_structure),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_floats_strict),
        cmocka_unit_test(test_ints_strict),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_print_round_trip),
        cmocka_unit_test(test_print_format),
        cmocka_unit_test(test_edit_distance_and_find),
        cmocka_unit_test(test_file_on_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

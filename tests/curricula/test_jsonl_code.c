/* tests/curricula/test_jsonl_code.c: code tasks in JSONL datasets. A line with "tests" and/or
 * "test_program" becomes a problem of family "code" whose code_spec holds exactly the tests, the
 * checker and the language as JSON (its "answer" optional); every malformed code line is rejected
 * in strict mode with a message naming the file, the line and what was wrong (RELIABILITY.md Z2).
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "../test_tmpdir.h"
#include "core/error.h"
#include "curricula/jsonl_source.h"

static char g_dir[256];

static const char *write_lines(const char *text) {
    static char path[400];
    snprintf(path, sizeof(path), "%s/d.jsonl", g_dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_code_line(void **state) {
    (void)state;
    JsonlSource s;
    const char *path = write_lines(
        "{\"prompt\": \"Add.\", \"tests\": [{\"input\": \"1 2\", \"output\": \"3\"}], \"language\": \"c\", \"extra\": 1}\n"
        "{\"prompt\": \"Check.\", \"test_program\": \"raise SystemExit(0)\", \"answer\": \"x\"}\n"
        "{\"prompt\": \"Plain.\", \"answer\": \"7\"}\n");
    assert_int_equal(jsonl_source_load(&s, path, 1), 0);
    assert_int_equal(jsonl_source_count(&s), 3);
    Problem p;
    assert_int_equal(jsonl_source_get(&s, 0, &p), 0);
    assert_string_equal(p.family, "code");
    assert_string_equal(p.answer, "");
    json_t *spec = json_loads(p.code_spec, 0, NULL);
    assert_non_null(spec);
    assert_string_equal(json_string_value(json_object_get(spec, "language")), "c");
    assert_int_equal(json_array_size(json_object_get(spec, "tests")), 1);
    assert_null(json_object_get(spec, "extra"));
    assert_null(json_object_get(spec, "prompt"));
    json_decref(spec);
    assert_int_equal(jsonl_source_get(&s, 1, &p), 0);
    assert_string_equal(p.family, "code");
    assert_string_equal(p.answer, "x");
    assert_non_null(strstr(p.code_spec, "\"test_program\":\"raise SystemExit(0)\""));
    assert_int_equal(jsonl_source_get(&s, 2, &p), 0);
    assert_string_equal(p.family, "jsonl");
    assert_null(p.code_spec);
    jsonl_source_free(&s);
}

static void test_malformed_code_lines(void **state) {
    (void)state;
    static const struct {
        const char *line, *expect;
    } bad[] = {
        {"{\"prompt\": \"p\", \"tests\": 3}", "\"tests\" must be an array"},
        {"{\"prompt\": \"p\", \"tests\": {\"input\": \"1\"}}", "\"tests\" must be an array"},
        {"{\"prompt\": \"p\", \"tests\": [3]}", "tests[0] must be"},
        {"{\"prompt\": \"p\", \"tests\": [{\"input\": \"1\"}]}", "tests[0] must be"},
        {"{\"prompt\": \"p\", \"tests\": [{\"input\": \"1\", \"output\": \"2\"}, {\"input\": 1, \"output\": \"2\"}]}",
         "tests[1] must be"},
        {"{\"prompt\": \"p\", \"tests\": [{\"input\": \"1\", \"output\": null}]}", "tests[0] must be"},
        {"{\"prompt\": \"p\", \"test_program\": 5}", "\"test_program\" must be a string"},
        {"{\"prompt\": \"p\", \"tests\": [{\"input\": \"1\", \"output\": \"2\"}], \"language\": \"rust\"}", "\"language\" \"python\" or \"c\""},
        {"{\"prompt\": \"p\", \"tests\": [{\"input\": \"1\", \"output\": \"2\"}], \"language\": 1}", "\"language\" \"python\" or \"c\""},
        {"{\"prompt\": \"p\", \"tests\": [{\"input\": \"1\", \"output\": \"2\"}], \"answer\": [1]}", "\"answer\" must be a string or a number"},
        {"{\"tests\": [{\"input\": \"1\", \"output\": \"2\"}]}", "missing \"prompt\""},
        {"{\"prompt\": \"p\", \"tests\": [], \"tests\": []}", "duplicate"},
        {"{\"prompt\": \"p\", \"tests\": []}", "at least one test"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[600];
        snprintf(text, sizeof(text), "{\"prompt\": \"ok\", \"answer\": \"1\"}\n%s\n", bad[i].line);
        JsonlSource s;
        int rc = jsonl_source_load(&s, write_lines(text), 1);
        if (rc != ERR_FORMAT || strstr(err_msg(), ":2: ") == NULL || strstr(err_msg(), bad[i].expect) == NULL)
            fail_msg("case %zu: rc %d, message '%s' lacks '%s'", i, rc, err_msg(), bad[i].expect);
    }
    char big[16384];
    int n = snprintf(big, sizeof(big), "{\"prompt\": \"p\", \"tests\": [");
    for (int i = 0; i < 257; i++) n += snprintf(big + n, sizeof(big) - (size_t)n, "%s{\"input\":\"\",\"output\":\"\"}", i ? "," : "");
    snprintf(big + n, sizeof(big) - (size_t)n, "]}\n");
    JsonlSource s;
    assert_int_equal(jsonl_source_load(&s, write_lines(big), 1), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "at most 256"));
}

static int setup(void **state) {
    (void)state;
    return tmpdir_make(g_dir, sizeof(g_dir), "cispo_jsonl_code");
}

static int teardown(void **state) {
    (void)state;
    return tmpdir_remove(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_code_line), cmocka_unit_test(test_malformed_code_lines)};
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* tests/curricula/test_jsonl.c: the JSONL task source on temporary files: good lines loaded with
 * their optional fields, blank lines skipped silently, each kind of malformed line reported as
 * "FILE:LINE: reason" and counted, strict mode failing on the first bad line, the warning cap,
 * a missing file, a file with no valid line, and a byte-order mark.
 * labels: unit
 *
 * log_warn writes to stderr; the tests capture it by pointing file descriptor 2 at a temp file.
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
#include "core/log.h"
#include "curricula/jsonl_source.h"

/* Write text to a fresh temp file; path receives its name. */
static void write_temp(char *path, size_t cap, const char *text) {
    snprintf(path, cap, "/tmp/cispo_test_jsonl_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

typedef struct {
    int saved_fd;
    char path[64];
} Capture;

static void capture_begin(Capture *c) {
    fflush(stderr);
    snprintf(c->path, sizeof(c->path), "/tmp/cispo_test_jsonl_err_XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved_fd = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Restore stderr and return what was written (caller frees). */
static char *capture_end(Capture *c) {
    fflush(stderr);
    dup2(c->saved_fd, 2);
    close(c->saved_fd);
    FILE *f = fopen(c->path, "rb");
    assert_non_null(f);
    static const size_t cap = 1 << 16;
    char *buf = calloc(cap, 1);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    unlink(c->path);
    return buf;
}

static int count_substr(const char *hay, const char *needle) {
    int n = 0;
    for (const char *c = strstr(hay, needle); c != NULL; c = strstr(c + 1, needle)) n++;
    return n;
}

/* Lines: 1 good, 2 blank, 3 bad JSON, 4 array, 5 no answer, 6 boolean answer, 7 numeric answer
 * with id and difficulty, 8 over-long prompt, 9 integer answer with solution, 10 difficulty 0,
 * 11 id array, 12 spaces, 13 duplicate key, 14 CRLF, 15 good without final newline. */
static char *mixed_file_text(void) {
    static char text[4096];
    char long_prompt[701];
    memset(long_prompt, 'p', 700);
    long_prompt[700] = '\0';
    snprintf(text, sizeof(text),
             "{\"prompt\": \"1+1?\", \"answer\": \"2\"}\n"
             "\n"
             "{\"prompt\": \n"
             "[1, 2]\n"
             "{\"prompt\": \"x\"}\n"
             "{\"prompt\": \"x\", \"answer\": true}\n"
             "{\"prompt\": \"half?\", \"answer\": 0.5, \"difficulty\": 3, \"id\": 17}\n"
             "{\"prompt\": \"%s\", \"answer\": \"1\"}\n"
             "{\"prompt\": \"p\", \"answer\": 42, \"id\": \"q9\", \"solution\": \"<think>a</think><answer>42</answer>\"}\n"
             "{\"prompt\": \"p\", \"answer\": \"1\", \"difficulty\": 0}\n"
             "{\"prompt\": \"p\", \"answer\": \"1\", \"id\": [1]}\n"
             "   \n"
             "{\"prompt\": \"a\", \"prompt\": \"b\", \"answer\": \"1\"}\n"
             "{\"prompt\": \"crlf\", \"answer\": \"x\"}\r\n"
             "{\"prompt\": \"last\", \"answer\": \"-7\", \"extra\": {\"ignored\": 1}}",
             long_prompt);
    return text;
}

static void test_mixed_lenient(void **state) {
    (void)state;
    char path[64], want[128];
    write_temp(path, sizeof(path), mixed_file_text());
    log_set_level(LOG_INFO);
    JsonlSource s;
    Capture cap;
    capture_begin(&cap);
    int rc = jsonl_source_load(&s, path, 0);
    char *log = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_int_equal(jsonl_source_count(&s), 5);
    assert_int_equal(jsonl_source_malformed(&s), 8);
    const struct {
        int line;
        const char *why;
    } bad[] = {{3, "invalid JSON"},
               {4, "expected a JSON object, got an array"},
               {5, "missing \"answer\""},
               {6, "\"answer\" must be a string or a number, got a boolean"},
               {8, "\"prompt\" is 700 bytes, longer than the limit of 511"},
               {10, "\"difficulty\" must be an integer in [1,"},
               {11, "\"id\" must be a string or an integer, got an array"},
               {13, "invalid JSON: duplicate object key"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(want, sizeof(want), "%s:%d: %s", path, bad[i].line, bad[i].why);
        if (strstr(log, want) == NULL) fail_msg("missing '%s' in log:\n%s", want, log);
    }
    for (int line = 1; line <= 15; line++) { /* good and blank lines are not reported */
        if (line == 3 || line == 4 || line == 5 || line == 6 || line == 8 || line == 10 || line == 11 || line == 13)
            continue;
        snprintf(want, sizeof(want), "%s:%d:", path, line);
        assert_null(strstr(log, want));
    }
    free(log);

    Problem p;
    const long lines[] = {1, 7, 9, 14, 15};
    const char *prompts[] = {"1+1?", "half?", "p", "crlf", "last"};
    const char *answers[] = {"2", "0.5", "42", "x", "-7"};
    const char *ids[] = {"", "17", "q9", "", ""};
    for (long i = 0; i < 5; i++) {
        assert_int_equal(jsonl_source_get(&s, i, &p), 0);
        assert_string_equal(p.family, "jsonl");
        assert_int_equal(p.id, (uint64_t)i);
        assert_string_equal(p.prompt, prompts[i]);
        assert_string_equal(p.answer, answers[i]);
        assert_string_equal(p.data, ids[i]);
        assert_int_equal(p.difficulty, i == 1 ? 3 : 1);
        assert_int_equal(jsonl_source_line(&s, i), lines[i]);
    }
    assert_int_equal(jsonl_source_get(&s, 2, &p), 0);
    assert_string_equal(p.solution, "<think>a</think><answer>42</answer>");
    assert_int_equal(jsonl_source_get(&s, 0, &p), 0);
    assert_string_equal(p.solution, "");
    assert_int_equal(jsonl_source_get(&s, 5, &p), ERR_RANGE);
    assert_int_equal(jsonl_source_get(&s, -1, &p), ERR_RANGE);
    assert_int_equal(jsonl_source_line(&s, 5), -1);
    jsonl_source_free(&s);
    jsonl_source_free(&s); /* idempotent */
    assert_int_equal(jsonl_source_count(&s), 0);
    unlink(path);
}

static void test_strict_stops_at_first_bad_line(void **state) {
    (void)state;
    char path[64], want[96];
    write_temp(path, sizeof(path), mixed_file_text());
    JsonlSource s;
    assert_int_equal(jsonl_source_load(&s, path, 1), ERR_FORMAT);
    snprintf(want, sizeof(want), "%s:3: invalid JSON", path);
    assert_non_null(strstr(err_msg(), want));
    assert_null(strstr(err_msg(), ":4:"));
    assert_int_equal(jsonl_source_count(&s), 0);
    jsonl_source_free(&s);
    unlink(path);

    /* A clean file loads the same in strict mode. */
    write_temp(path, sizeof(path), "{\"prompt\": \"a\", \"answer\": 1}\n\n{\"prompt\": \"b\", \"answer\": \"2\"}\n");
    assert_int_equal(jsonl_source_load(&s, path, 1), 0);
    assert_int_equal(jsonl_source_count(&s), 2);
    assert_int_equal(jsonl_source_malformed(&s), 0);
    jsonl_source_free(&s);
    unlink(path);
}

static void test_warning_cap_and_counts(void **state) {
    (void)state;
    static char text[8192];
    size_t n = 0;
    for (int i = 0; i < 50; i++) n += (size_t)snprintf(text + n, sizeof(text) - n, "not json %d\n", i);
    snprintf(text + n, sizeof(text) - n, "{\"prompt\": \"ok\", \"answer\": \"1\"}\n");
    char path[64];
    write_temp(path, sizeof(path), text);
    log_set_level(LOG_INFO);
    JsonlSource s;
    Capture cap;
    capture_begin(&cap);
    int rc = jsonl_source_load(&s, path, 0);
    char *log = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_int_equal(jsonl_source_malformed(&s), 50);
    assert_int_equal(jsonl_source_count(&s), 1);
    assert_int_equal(count_substr(log, "(line skipped)"), JSONL_MAX_WARNINGS);
    assert_non_null(strstr(log, "counted but not reported"));
    assert_non_null(strstr(log, "skipped 50 malformed lines"));
    free(log);
    jsonl_source_free(&s);
    unlink(path);
}

static void test_missing_empty_and_bom(void **state) {
    (void)state;
    JsonlSource s;
    assert_int_equal(jsonl_source_load(&s, "/nonexistent/dir/x.jsonl", 0), ERR_IO);
    assert_non_null(strstr(err_msg(), "/nonexistent/dir/x.jsonl"));

    char path[64];
    write_temp(path, sizeof(path), "\n  \n");
    assert_int_equal(jsonl_source_load(&s, path, 0), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "no valid problems"));
    unlink(path);

    log_set_level(LOG_ERROR); /* the warnings of this file are not under test */
    write_temp(path, sizeof(path), "{\"answer\": \"1\"}\n{\"prompt\": 3, \"answer\": \"1\"}\n");
    assert_int_equal(jsonl_source_load(&s, path, 0), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "2 malformed"));
    unlink(path);
    log_set_level(LOG_INFO);

    write_temp(path, sizeof(path), "\xEF\xBB\xBF{\"prompt\": \"bom\", \"answer\": \"\\u00e9\"}\n");
    assert_int_equal(jsonl_source_load(&s, path, 1), 0);
    Problem p;
    assert_int_equal(jsonl_source_get(&s, 0, &p), 0);
    assert_string_equal(p.prompt, "bom");
    assert_string_equal(p.answer, "\xc3\xa9");
    jsonl_source_free(&s);
    unlink(path);
}

/* Field limits are exact: the longest prompt/answer/solution that fit are accepted. */
static void test_field_limits(void **state) {
    (void)state;
    static char text[8192];
    static char prompt[TASK_PROMPT_MAX + 1], answer[TASK_ANSWER_MAX + 1], sol[TASK_SOLUTION_MAX + 1];
    memset(prompt, 'a', TASK_PROMPT_MAX);
    memset(answer, 'b', TASK_ANSWER_MAX);
    memset(sol, 'c', TASK_SOLUTION_MAX);
    prompt[TASK_PROMPT_MAX - 1] = answer[TASK_ANSWER_MAX - 1] = sol[TASK_SOLUTION_MAX - 1] = '\0';
    snprintf(text, sizeof(text), "{\"prompt\": \"%s\", \"answer\": \"%s\", \"solution\": \"%s\"}\n", prompt, answer, sol);
    char path[64];
    write_temp(path, sizeof(path), text);
    JsonlSource s;
    assert_int_equal(jsonl_source_load(&s, path, 1), 0);
    Problem p;
    assert_int_equal(jsonl_source_get(&s, 0, &p), 0);
    assert_int_equal(strlen(p.prompt), TASK_PROMPT_MAX - 1);
    assert_int_equal(strlen(p.answer), TASK_ANSWER_MAX - 1);
    assert_int_equal(strlen(p.solution), TASK_SOLUTION_MAX - 1);
    jsonl_source_free(&s);
    unlink(path);
    answer[TASK_ANSWER_MAX - 1] = 'b'; /* one byte more */
    answer[TASK_ANSWER_MAX] = '\0';
    snprintf(text, sizeof(text), "{\"prompt\": \"q\", \"answer\": \"%s\"}\n", answer);
    write_temp(path, sizeof(path), text);
    assert_int_equal(jsonl_source_load(&s, path, 1), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), ":1: \"answer\" is 128 bytes, longer than the limit of 127"));
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_lenient),
        cmocka_unit_test(test_strict_stops_at_first_bad_line),
        cmocka_unit_test(test_warning_cap_and_counts),
        cmocka_unit_test(test_missing_empty_and_bom),
        cmocka_unit_test(test_field_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

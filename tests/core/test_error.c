/* tests/core/test_error.c: error messages (err_set/err_wrap, thread-local), CHECK's abort path
 * and its one-line report, xmalloc, and the version string.
 * labels: unit
 *
 * CHECK is exercised in a forked child whose stderr goes to a pipe: the parent asserts the child
 * died of SIGABRT (MPI is not initialised here) and printed the documented line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/version.h"

static void test_set_and_wrap(void **state) {
    (void)state;
    err_clear();
    assert_string_equal(err_msg(), "");
    assert_int_equal(err_set(ERR_CONFIG, "bad value %d for '%s'", 42, "x"), ERR_CONFIG);
    assert_string_equal(err_msg(), "bad value 42 for 'x'");
    assert_int_equal(err_wrap(ERR_IO, "loading %s", "a.yaml"), ERR_IO);
    assert_string_equal(err_msg(), "loading a.yaml: bad value 42 for 'x'");
    err_clear();
    err_wrap(ERR_IO, "only context");
    assert_string_equal(err_msg(), "only context");
}

static void test_long_messages_truncate(void **state) {
    (void)state;
    char big[6000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    err_set(ERR_FORMAT, "%s", big);
    assert_int_equal(strlen(err_msg()), 4095);
    err_wrap(ERR_FORMAT, "ctx");
    assert_int_equal(strlen(err_msg()), 4095);
    assert_memory_equal(err_msg(), "ctx: aaa", 8);
}

static void test_names(void **state) {
    (void)state;
    assert_string_equal(err_name(ERR_OK), "ERR_OK");
    assert_string_equal(err_name(ERR_CONFIG), "ERR_CONFIG");
    assert_string_equal(err_name(ERR_ARG), "ERR_ARG");
    assert_string_equal(err_name(-1000), "ERR_UNKNOWN");
}

static void *thread_body(void *arg) {
    err_set(ERR_IO, "thread message");
    *(int *)arg = strcmp(err_msg(), "thread message") == 0;
    return NULL;
}

static void test_thread_local(void **state) {
    (void)state;
    err_set(ERR_CONFIG, "main message");
    int ok = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, thread_body, &ok), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(ok, 1);
    assert_string_equal(err_msg(), "main message"); /* untouched by the other thread */
}

/* Run `body` in a child with stderr captured; returns the wait status, output in out. */
static int run_child(void (*body)(void), char *out, size_t cap) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        signal(SIGABRT, SIG_DFL); /* whatever the test framework installed */
        body();
        _exit(0);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fds[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = '\0';
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

static void failing_check(void) {
    int x = 3;
    CHECK(x == 4, "x is %d, expected %d", x, 4);
}

static void failing_check_rank(void) {
    error_set_rank(5);
    CHECK(1 + 1 == 3, "arithmetic");
}

static void passing_check(void) { CHECK(1 == 1, "never printed"); }

static void test_check_aborts(void **state) {
    (void)state;
    char out[2048];
    int st = run_child(failing_check, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "[cispo] CHECK failed in failing_check ("));
    assert_non_null(strstr(out, "test_error.c:"));
    assert_non_null(strstr(out, "): x == 4: x is 3, expected 4\n"));

    st = run_child(failing_check_rank, out, sizeof(out));
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    assert_non_null(strstr(out, "[cispo rank 5] CHECK failed in failing_check_rank ("));
    assert_non_null(strstr(out, "1 + 1 == 3: arithmetic"));

    st = run_child(passing_check, out, sizeof(out));
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_string_equal(out, "");
}

static void test_xmalloc_and_rank(void **state) {
    (void)state;
    char *p = xmalloc(100);
    memset(p, 1, 100);
    free(p);
    int *q = xcalloc(10, sizeof(int));
    for (int i = 0; i < 10; i++) assert_int_equal(q[i], 0);
    free(q);
    free(xmalloc(0)); /* a zero-byte request is not a failure */
    assert_int_equal(error_get_rank(), -1);
    error_set_rank(2);
    assert_int_equal(error_get_rank(), 2);
    error_set_rank(-1);
}

static void test_version(void **state) {
    (void)state;
    const char *v = cispo_version();
    assert_non_null(strstr(v, "0.1.0 (commit "));
    assert_int_equal(v[strlen(v) - 1], ')');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_wrap),
        cmocka_unit_test(test_long_messages_truncate),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_thread_local),
        cmocka_unit_test(test_check_aborts),
        cmocka_unit_test(test_xmalloc_and_rank),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

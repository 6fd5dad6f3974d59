/* tests/core/test_log.c: log levels (API and CISPO_LOG), the log line format, and the progress
 * line: its exact text, rate limiting, and in-place redraw on a terminal (a pseudo-terminal).
 * labels: unit
 *
 * stderr is redirected to a temporary file (or a pty) around each call under test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"

static int g_saved_fd = -1;
static FILE *g_capture;

static void capture_begin(void) {
    fflush(stderr);
    g_capture = tmpfile();
    assert_non_null(g_capture);
    g_saved_fd = dup(STDERR_FILENO);
    assert_true(g_saved_fd >= 0);
    dup2(fileno(g_capture), STDERR_FILENO);
}

/* Restore stderr and return what was written (static buffer). */
static const char *capture_end(void) {
    static char buf[8192];
    fflush(stderr);
    dup2(g_saved_fd, STDERR_FILENO);
    close(g_saved_fd);
    rewind(g_capture);
    size_t n = fread(buf, 1, sizeof(buf) - 1, g_capture);
    buf[n] = '\0';
    fclose(g_capture);
    return buf;
}

/* Must run first: the level is read from CISPO_LOG only if never set. Checked in a child. */
static void test_level_from_env(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("CISPO_LOG", "WARN", 1);
        capture_begin();
        log_info("hidden %d", 1);
        log_warn("shown %d", 2);
        const char *out = capture_end();
        _exit(log_get_level() == LOG_WARN && strcmp(out, "[cispo WARN] shown 2\n") == 0 ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_levels_and_format(void **state) {
    (void)state;
    log_set_level(LOG_INFO);
    capture_begin();
    log_debug("not shown");
    log_info("step %d of %d", 3, 10);
    log_error("bad %s", "thing");
    const char *out = capture_end();
    assert_string_equal(out, "[cispo INFO] step 3 of 10\n[cispo ERROR] bad thing\n");

    log_set_level(LOG_DEBUG);
    error_set_rank(3);
    capture_begin();
    log_debug("dbg");
    out = capture_end();
    assert_string_equal(out, "[cispo rank 3 DEBUG] dbg\n");
    error_set_rank(-1);

    log_set_level(LOG_OFF);
    capture_begin();
    log_error("silent");
    out = capture_end();
    assert_string_equal(out, "");
    assert_int_equal(log_get_level(), LOG_OFF);
    log_set_level(LOG_INFO);
}

static void test_progress_plain(void **state) {
    (void)state;
    Progress p;
    capture_begin();
    progress_start(&p, "rollout", 120);
    int tty = p.tty;
    p.t_start = time_now_s() - 12.0; /* pretend 12 s have passed */
    progress_update(&p, 37, "reward 0.41 acc 0.37");
    progress_update(&p, 38, NULL); /* within min_interval_s: skipped */
    p.min_interval_s = 0.0;
    progress_update(&p, 0, NULL);
    progress_update(&p, 119, NULL);
    p.min_interval_s = 1e9;
    progress_update(&p, 120, NULL); /* the last one always prints */
    progress_end(&p);
    const char *out = capture_end();
    assert_int_equal(tty, 0);
    assert_string_equal(out, "rollout 37/120 [31%] 0:12 ETA 0:26 reward 0.41 acc 0.37\n"
                             "rollout 0/120 [0%] 0:12 ETA ?\n"
                             "rollout 119/120 [99%] 0:12 ETA 0:00\n"
                             "rollout 120/120 [100%] 0:12 ETA 0:00\n");
}

static void test_progress_long_and_unknown(void **state) {
    (void)state;
    Progress p;
    capture_begin();
    progress_start(&p, "train", 2);
    p.t_start = time_now_s() - 3723.5;
    progress_update(&p, 1, "loss 0.5");
    progress_start(&p, "steps", 0); /* total unknown */
    p.t_start = time_now_s() - 61.0;
    progress_update(&p, 5, "x");
    const char *out = capture_end();
    assert_string_equal(out, "train 1/2 [50%] 1:02:03 ETA 1:02:03 loss 0.5\nsteps 5 1:01 x\n");
}

static void test_progress_tty(void **state) {
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        print_message("no pseudo-terminal available; skipping\n");
        skip();
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(slave, STDERR_FILENO);
    Progress p;
    progress_start(&p, "gen", 4);
    int tty = p.tty;
    p.min_interval_s = 0.0;
    progress_update(&p, 1, NULL);
    log_set_level(LOG_INFO);
    log_info("between"); /* clears the drawn line first */
    progress_update(&p, 4, NULL);
    progress_end(&p);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(slave);
    /* Everything is already written; drain the master without blocking. */
    char buf[1024];
    size_t n = 0;
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    for (int tries = 0; tries < 100 && n + 1 < sizeof(buf); tries++) {
        ssize_t r = read(master, buf + n, sizeof(buf) - 1 - n);
        if (r > 0) n += (size_t)r;
        else if (n > 0) break;
        else usleep(1000);
    }
    close(master);
    assert_int_equal(tty, 1);
    buf[n] = '\0';
    /* The terminal turns "\n" into "\r\n". */
    assert_string_equal(buf, "\rgen 1/4 [25%] 0:00 ETA 0:00\033[K"
                             "\r\033[K[cispo INFO] between\r\n"
                             "\rgen 4/4 [100%] 0:00 ETA 0:00\033[K\r\n");
}

static void test_clock(void **state) {
    (void)state;
    double a = time_now_s();
    usleep(20000);
    double b = time_now_s();
    assert_true(b - a >= 0.019 && b - a < 5.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_from_env),
        cmocka_unit_test(test_levels_and_format),
        cmocka_unit_test(test_progress_plain),
        cmocka_unit_test(test_progress_long_and_unknown),
        cmocka_unit_test(test_progress_tty),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

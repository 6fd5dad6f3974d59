/* tests/rewards/test_sandbox_escape.c: the sandbox escape suite (RELIABILITY.md S1) and the
 * start-up self-check (S2).
 *
 * Escape suite: every hostile program of escape_programs.h runs in the sandbox with a 1.5 s wall
 * limit; none may print "ESCAPED", leak the canary file's secret or the test's secret environment
 * variable, kill the victim (a host process running as the sandbox uid), connect to the TCP port
 * or abstract unix socket the test listens on, or create the marker file on the host; each must end
 * within its wall limit + 1 s and never as an infrastructure failure; afterwards no cgroup of this
 * process remains (so no process survived), the host mount table is unchanged and the scratch
 * folders are gone. Self-check: the default config passes; each test hook that weakens one layer
 * (no seccomp, root launcher, leaked environment, leaked descriptor) is refused with a message
 * naming the layer; a config asking for uid 0 is refused before anything runs.
 * Needs root, bubblewrap, python3, gcc and cgroup v1 pids/memory (CI has them).
 * labels: sandbox
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../test_tmpdir.h"
#include "core/error.h"
#include "escape_programs.h"
#include "rewards/sandbox.h"

#define WALL_MS 1500

typedef struct {
    char dir[256], canary[300], marker[128], secret[64], abstract[64];
    int port, tcp_fd, unix_fd, canary_fd;
    pid_t victim;
} Host;

static Host g;

static int count_mounts(void) {
    FILE *f = fopen("/proc/self/mountinfo", "r");
    int n = 0, c;
    while (f && (c = fgetc(f)) != EOF) n += c == '\n';
    if (f) fclose(f);
    return n;
}

/* Number of cgroups named cispo-sbx-<our pid>-* below dir (recursive, depth <= 4). */
static int count_our_cgroups(const char *dir, int depth) {
    char prefix[64], p[1024];
    snprintf(prefix, sizeof(prefix), "cispo-sbx-%ld-", (long)getpid());
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (depth < 4) n += count_our_cgroups(p, depth + 1);
    }
    if (d) closedir(d);
    return n;
}

static void host_setup(void) {
    memset(&g, 0, sizeof(g));
    assert_int_equal(tmpdir_make(g.dir, sizeof(g.dir), "cispo_escape"), 0);
    chmod(g.dir, 0755);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    snprintf(g.secret, sizeof(g.secret), "CISPO-SECRET-%08x%08x", (unsigned)rand(), (unsigned)rand());
    setenv("CISPO_SECRET_ENV", g.secret, 1);
    snprintf(g.canary, sizeof(g.canary), "%s/canary", g.dir);
    FILE *f = fopen(g.canary, "w");
    assert_non_null(f);
    fputs(g.secret, f);
    fclose(f);
    g.canary_fd = open(g.canary, O_RDONLY); /* no O_CLOEXEC: a descriptor to tempt a leak */
    snprintf(g.marker, sizeof(g.marker), "/tmp/cispo_escape_marker_%ld", (long)getpid());
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g.tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    socklen_t al = sizeof(a);
    assert_int_equal(bind(g.tcp_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(g.tcp_fd, 8), 0);
    getsockname(g.tcp_fd, (struct sockaddr *)&a, &al);
    g.port = ntohs(a.sin_port);
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    snprintf(g.abstract, sizeof(g.abstract), "cispo-escape-%ld", (long)getpid());
    memcpy(u.sun_path + 1, g.abstract, strlen(g.abstract));
    g.unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_int_equal(bind(g.unix_fd, (struct sockaddr *)&u, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(g.abstract))), 0);
    assert_int_equal(listen(g.unix_fd, 8), 0);
    g.victim = fork();
    if (g.victim == 0) { /* a host process with the sandbox's uid: a target for kill() */
        if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(3);
        for (;;) pause();
    }
}

/* Replace the @KEY@ placeholders of src. Returns a malloc'd string. */
static char *fill(const char *src) {
    char port[16], victim[16], hostpid[16];
    snprintf(port, sizeof(port), "%d", g.port);
    snprintf(victim, sizeof(victim), "%ld", (long)g.victim);
    snprintf(hostpid, sizeof(hostpid), "%ld", (long)getpid());
    const char *keys[][2] = {{"@CANARY@", g.canary}, {"@SECRET@", g.secret},   {"@VICTIM@", victim},
                             {"@HOSTPID@", hostpid}, {"@PORT@", port},         {"@ABSTRACT@", g.abstract},
                             {"@MARKER@", g.marker}};
    size_t cap = strlen(src) * 4 + 4096, n = 0;
    char *out = malloc(cap);
    for (const char *s = src; *s;) {
        int hit = 0;
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]) && !hit; k++)
            if (strncmp(s, keys[k][0], strlen(keys[k][0])) == 0) {
                n += (size_t)snprintf(out + n, cap - n, "%s", keys[k][1]);
                s += strlen(keys[k][0]);
                hit = 1;
            }
        if (!hit) out[n++] = *s++;
    }
    out[n] = '\0';
    return out;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Prepare folder dir for program e; fills argv. */
static void prepare(const EscapeProgram *e, const char *dir, const char **argv) {
    char path[600], cmd[1400];
    mkdir(dir, 0755);
    char *src = fill(e->src);
    snprintf(path, sizeof(path), "%s/prog.%s", dir, e->lang == 'c' ? "c" : "py");
    write_text(path, src);
    free(src);
    if (e->lang == 'c') {
        snprintf(cmd, sizeof(cmd), "gcc -O1 -w -o %s/prog %s 2>&1", dir, path);
        assert_int_equal(system(cmd), 0);
        argv[0] = "/box/prog", argv[1] = NULL;
    } else {
        argv[0] = "/usr/bin/python3", argv[1] = "/box/prog.py", argv[2] = NULL;
    }
}

static int accepted(int fd) {
    int c = accept(fd, NULL, NULL);
    if (c >= 0) close(c);
    return c >= 0;
}

static void test_escape_suite(void **state) {
    (void)state;
    host_setup();
    int mounts0 = count_mounts();
    SandboxConfig c;
    sandbox_config_default(&c);
    c.wall_ms = WALL_MS;
    int n = (int)(sizeof(k_escape) / sizeof(k_escape[0])), failures = 0;
    assert_true(n >= 25);
    static const char *st_name[] = {"exited", "timeout", "output-limit", "infra"};
    for (int i = 0; i < n; i++) {
        const EscapeProgram *e = &k_escape[i];
        char dir[512];
        const char *argv[4];
        snprintf(dir, sizeof(dir), "%s/%s", g.dir, e->name);
        prepare(e, dir, argv);
        SandboxJob job = {.dir = dir, .argv = argv};
        SandboxResult r;
        assert_int_equal(sandbox_run(&c, &job, &r), 0);
        const char *bad = NULL;
        if (strstr(r.out, "ESCAPED") || strstr(r.err, "ESCAPED")) bad = "printed ESCAPED";
        else if (strstr(r.out, g.secret) || strstr(r.err, g.secret)) bad = "leaked the secret";
        else if (r.status == SBX_INFRA) bad = "infrastructure failure";
        else if (r.wall_ms > WALL_MS + 1000) bad = "ran past its wall limit + 1 s";
        else if (kill(g.victim, 0) != 0 || waitpid(g.victim, NULL, WNOHANG) != 0) bad = "killed the victim";
        else if (accepted(g.tcp_fd) || accepted(g.unix_fd)) bad = "connected to a host socket";
        else if (access(g.marker, F_OK) == 0) bad = "created the host marker";
        else if (count_our_cgroups("/sys/fs/cgroup/pids", 0) + count_our_cgroups("/sys/fs/cgroup/memory", 0) != 0)
            bad = "left a cgroup (processes) behind";
        printf("  %-20s %-12s exit %3d %6.0f ms  %s\n", e->name, st_name[r.status], r.exit_code, r.wall_ms,
               bad ? bad : "contained");
        if (bad) {
            printf("    stdout: %.300s\n    stderr: %.300s\n    why: %s\n", r.out, r.err, r.why);
            failures++;
        }
        sandbox_result_free(&r);
    }
    sleep(1); /* the daemon's 2.5 s timer has passed: it must be dead, not late */
    assert_false(access(g.marker, F_OK) == 0);
    assert_int_equal(count_mounts(), mounts0);
    kill(g.victim, SIGKILL);
    waitpid(g.victim, NULL, 0);
    close(g.canary_fd), close(g.tcp_fd), close(g.unix_fd);
    assert_int_equal(tmpdir_remove(g.dir), 0);
    printf("  %d hostile programs, %d not contained\n", n, failures);
    assert_int_equal(failures, 0);
}

static void test_self_check(void **state) {
    (void)state;
    SandboxConfig c;
    sandbox_config_default(&c);
    int rc = sandbox_self_check(&c);
    if (rc != 0) fail_msg("default sandbox refused: %s", err_msg());
    static const struct {
        unsigned flag;
        const char *expect;
    } weak[] = {{SBX_WEAKEN_NO_SECCOMP, "no seccomp filter"},
                {SBX_WEAKEN_KEEP_ROOT, "not root"},
                {SBX_WEAKEN_LEAK_ENV, "environment variable CISPO_SANDBOX_LEAK"},
                {SBX_WEAKEN_LEAK_FD, "open descriptors inside are 0,1,2,5"}};
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        c.test_weaken = weak[i].flag;
        rc = sandbox_self_check(&c);
        assert_int_equal(rc, ERR_UNSUPPORTED);
        if (strstr(err_msg(), weak[i].expect) == NULL) fail_msg("hook %u: '%s' lacks '%s'", weak[i].flag, err_msg(), weak[i].expect);
    }
    sandbox_config_default(&c);
    c.uid = 0;
    assert_int_equal(sandbox_self_check(&c), ERR_CONFIG);
    assert_non_null(strstr(err_msg(), "unprivileged"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_check),
        cmocka_unit_test(test_escape_suite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

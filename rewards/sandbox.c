/* rewards/sandbox.c: one sandboxed run (see sandbox.h): the launcher child, the bwrap command
 * line, and the caller's side (stdin, capped stdout/stderr, the wall clock, the kill and cleanup).
 *
 * Launcher (forked child; only async-signal-safe calls between fork and exec, every path and
 * string prepared before the fork): join the run's cgroups by writing "0" to their cgroup.procs,
 * move the streams to fds 0-2, the seccomp memfd to 3 and bwrap's JSON status pipe to 4, close
 * every fd from 5 up (close_range), set the rlimits, drop supplementary groups, gid and uid, ask
 * for SIGKILL if the caller dies (after the uid change, which clears it), exec bwrap with envp = {}.
 *
 * Caller: poll() on stdin (a socketpair end, written with MSG_NOSIGNAL so a program that closes
 * stdin cannot SIGPIPE us), stdout, stderr and the status pipe until all three outputs close or the
 * deadline passes or an output passes the cap; then SIGKILL everything in the cgroup, reap the
 * launcher and remove the cgroups. bwrap writes {"exit-code": N} to the status pipe only when the
 * program itself ran and exited, so a run without it that we did not kill is SBX_INFRA.
 */
#include "rewards/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "rewards/sandbox_internal.h"

#define SBX_BWRAP "/usr/bin/bwrap"
#define SBX_MAX_ARGS 96

void sandbox_config_default(SandboxConfig *c) {
    memset(c, 0, sizeof(*c));
    c->uid = c->gid = 65534;
    c->wall_ms = 2000;
    c->cpu_s = 2;
    c->mem_bytes = 256L << 20;
    c->pids_max = 64;
    c->output_max_bytes = 1L << 20;
    c->file_max_bytes = 16L << 20;
    c->tmp_bytes = 16L << 20;
}

int sandbox_config_check(const SandboxConfig *c) {
    if (c->uid <= 0 || c->gid <= 0)
        return err_set(ERR_CONFIG, "sandbox: uid and gid must be unprivileged (> 0), got %d/%d", c->uid, c->gid);
    if (c->wall_ms <= 0 || c->cpu_s <= 0 || c->mem_bytes < (16L << 20) || c->pids_max < 4 ||
        c->output_max_bytes <= 0 || c->file_max_bytes <= 0 || c->tmp_bytes < (1L << 20))
        return err_set(ERR_CONFIG,
                       "sandbox: limits out of range (wall_ms %d, cpu_s %d, mem_bytes %ld >= 16 MiB, pids_max %d >= 4, "
                       "output_max_bytes %ld, file_max_bytes %ld, tmp_bytes %ld >= 1 MiB)",
                       c->wall_ms, c->cpu_s, c->mem_bytes, c->pids_max, c->output_max_bytes, c->file_max_bytes,
                       c->tmp_bytes);
    return 0;
}

/* Everything the launcher needs, prepared before the fork. */
typedef struct {
    const char *argv[SBX_MAX_ARGS];
    char tmp_size[32];
    char procs[2][SBX_PATH_MAX + 16];
    int fd_in, fd_out, fd_err, fd_seccomp, fd_status; /* child ends */
    struct rlimit lim_cpu, lim_as, lim_fsize, lim_nofile, lim_nproc, lim_core;
    int uid, gid;
    unsigned weaken;
} Launch;

static int build_argv(Launch *L, const SandboxConfig *c, const SandboxJob *job) {
    int n = 0;
    const char **a = L->argv;
    int drop = !(c->test_weaken & SBX_WEAKEN_KEEP_ROOT);
    a[n++] = SBX_BWRAP;
    a[n++] = "--unshare-all";
    if (drop) a[n++] = "--unshare-user", a[n++] = "--disable-userns";
    a[n++] = "--die-with-parent";
    a[n++] = "--new-session";
    if (!(c->test_weaken & SBX_WEAKEN_LEAK_ENV)) a[n++] = "--clearenv";
    a[n++] = "--ro-bind", a[n++] = "/usr", a[n++] = "/usr";
    a[n++] = "--symlink", a[n++] = "usr/lib", a[n++] = "/lib";
    a[n++] = "--symlink", a[n++] = "usr/lib64", a[n++] = "/lib64";
    a[n++] = "--symlink", a[n++] = "usr/bin", a[n++] = "/bin";
    a[n++] = "--symlink", a[n++] = "usr/sbin", a[n++] = "/sbin";
    a[n++] = "--proc", a[n++] = "/proc";
    a[n++] = "--dev", a[n++] = "/dev";
    snprintf(L->tmp_size, sizeof(L->tmp_size), "%ld", c->tmp_bytes);
    a[n++] = "--size", a[n++] = L->tmp_size, a[n++] = "--tmpfs", a[n++] = "/tmp";
    a[n++] = job->dir_writable ? "--bind" : "--ro-bind", a[n++] = job->dir, a[n++] = "/box";
    a[n++] = "--remount-ro", a[n++] = "/"; /* bwrap's root is a tmpfs: no writes outside /tmp (and /dev/shm) */
    a[n++] = "--chdir", a[n++] = "/box";
    if (!(c->test_weaken & SBX_WEAKEN_NO_SECCOMP)) a[n++] = "--seccomp", a[n++] = "3";
    a[n++] = "--json-status-fd", a[n++] = "4";
    a[n++] = "--";
    for (int i = 0; job->argv[i] != NULL; i++) {
        if (n >= SBX_MAX_ARGS - 1) return err_set(ERR_ARG, "sandbox: more than %d arguments", SBX_MAX_ARGS - 40);
        a[n++] = job->argv[i];
    }
    a[n] = NULL;
    return 0;
}

static void set_limits(Launch *L, const SandboxConfig *c) {
    long as = 4 * c->mem_bytes < (1L << 30) ? (1L << 30) : 4 * c->mem_bytes;
    L->lim_cpu = (struct rlimit){(rlim_t)c->cpu_s, (rlim_t)c->cpu_s + 1};
    L->lim_as = (struct rlimit){(rlim_t)as, (rlim_t)as};
    L->lim_fsize = (struct rlimit){(rlim_t)c->file_max_bytes, (rlim_t)c->file_max_bytes};
    L->lim_nofile = (struct rlimit){256, 256};
    L->lim_nproc = (struct rlimit){(rlim_t)c->pids_max * 16, (rlim_t)c->pids_max * 16};
    L->lim_core = (struct rlimit){0, 0};
    L->uid = c->uid;
    L->gid = c->gid;
    L->weaken = c->test_weaken;
}

static void child_fail(const char *what) {
    static const char pre[] = "cispo-sandbox-launcher: ";
    (void)!write(2, pre, sizeof(pre) - 1);
    (void)!write(2, what, strlen(what));
    (void)!write(2, "\n", 1);
    _exit(127);
}

/* The launcher: never returns. Async-signal-safe calls only. */
static void launcher(const Launch *L) {
    int fds[5] = {L->fd_in, L->fd_out, L->fd_err, L->fd_seccomp, L->fd_status};
    for (int i = 0; i < 2; i++) {
        int fd = open(L->procs[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) child_fail("cannot join the run's cgroup");
        close(fd);
    }
    for (int i = 0; i < 5; i++) /* move above the targets first, so no dup2 clobbers a source */
        if (fds[i] >= 0 && (fds[i] = fcntl(fds[i], F_DUPFD, 64)) < 0) child_fail("fcntl(F_DUPFD)");
    for (int i = 0; i < 5; i++)
        if (fds[i] >= 0 && dup2(fds[i], i) != i) child_fail("dup2");
    int keep = (L->weaken & SBX_WEAKEN_LEAK_FD) ? (dup2(1, 5) == 5 ? 6 : 5) : 5;
    if (close_range((unsigned)keep, ~0U, 0) != 0) child_fail("close_range");
    if (setrlimit(RLIMIT_CPU, &L->lim_cpu) || setrlimit(RLIMIT_AS, &L->lim_as) ||
        setrlimit(RLIMIT_FSIZE, &L->lim_fsize) || setrlimit(RLIMIT_NOFILE, &L->lim_nofile) ||
        setrlimit(RLIMIT_NPROC, &L->lim_nproc) || setrlimit(RLIMIT_CORE, &L->lim_core))
        child_fail("setrlimit");
    if (!(L->weaken & SBX_WEAKEN_KEEP_ROOT)) {
        if (setgroups(0, NULL) != 0) child_fail("setgroups");
        if (setresgid((gid_t)L->gid, (gid_t)L->gid, (gid_t)L->gid) != 0) child_fail("setresgid");
        if (setresuid((uid_t)L->uid, (uid_t)L->uid, (uid_t)L->uid) != 0) child_fail("setresuid");
        if (getuid() == 0 || geteuid() == 0) child_fail("still root after setresuid");
    }
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail("prctl(PR_SET_PDEATHSIG)");
    static char leak[] = "CISPO_SANDBOX_LEAK=1";
    char *env_leak[] = {leak, NULL};
    char *env_none[] = {NULL};
    execve(SBX_BWRAP, (char *const *)L->argv, (L->weaken & SBX_WEAKEN_LEAK_ENV) ? env_leak : env_none);
    child_fail("cannot exec " SBX_BWRAP);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Buffers and state of the caller's side of one run. */
typedef struct {
    int in, out, err, status;  /* caller ends, -1 once closed */
    size_t in_done;
    char *obuf, *ebuf;
    size_t olen, elen, cap;
    char sbuf[1024];
    size_t slen;
    int over_cap;
    double t0, started_ms; /* launch time; when bwrap reported the program started (0: not yet) */
} Pump;

/* Read what fd has into buf (at most cap bytes kept; *over set past it). Closes fd on EOF/error. */
static void drain(int *fd, char *buf, size_t *len, size_t cap, int *over) {
    char scratch[65536];
    ssize_t n = read(*fd, scratch, sizeof(scratch));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        close(*fd);
        *fd = -1;
        return;
    }
    size_t keep = (size_t)n;
    if (*len + keep > cap) {
        keep = cap - *len;
        if (over) *over = 1;
    }
    memcpy(buf + *len, scratch, keep);
    *len += keep;
}

/* Pump stdin/stdout/stderr/status until the outputs close, the cap is passed or the deadline. */
static SandboxStatus pump(Pump *p, const SandboxJob *job, double deadline) {
    while (p->out >= 0 || p->err >= 0 || p->status >= 0) {
        struct pollfd pf[4] = {{p->out, POLLIN, 0}, {p->err, POLLIN, 0}, {p->status, POLLIN, 0}, {p->in, POLLOUT, 0}};
        double left = deadline - now_ms();
        if (left <= 0) return SBX_TIMEOUT;
        int rc = poll(pf, 4, (int)left + 1);
        if (rc < 0 && errno != EINTR) return SBX_INFRA;
        if (rc <= 0) continue;
        if (pf[0].revents) drain(&p->out, p->obuf, &p->olen, p->cap, &p->over_cap);
        if (pf[1].revents) drain(&p->err, p->ebuf, &p->elen, p->cap, &p->over_cap);
        if (pf[2].revents) {
            drain(&p->status, p->sbuf, &p->slen, sizeof(p->sbuf) - 1, NULL);
            p->sbuf[p->slen] = '\0';
            if (p->started_ms == 0 && strstr(p->sbuf, "child-pid") != NULL) p->started_ms = now_ms() - p->t0;
        }
        if (p->over_cap) return SBX_OUTPUT_LIMIT;
        if (pf[3].revents & (POLLERR | POLLHUP)) {
            close(p->in);
            p->in = -1;
        } else if (pf[3].revents & POLLOUT) {
            ssize_t n = send(p->in, job->stdin_data + p->in_done, job->stdin_len - p->in_done, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) p->in_done += (size_t)n;
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || p->in_done == job->stdin_len) {
                shutdown(p->in, SHUT_WR);
                close(p->in);
                p->in = -1;
            }
        }
    }
    return SBX_EXITED;
}

static void close_fd(int *fd) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
}

/* Fork the launcher with the child ends; fills *pid. 0 or -1 with why. */
static int start(Launch *L, Pump *p, size_t job_stdin_len, pid_t *pid, char *why, size_t why_cap) {
    int sp[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, ps[2] = {-1, -1};
    int rc = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) || pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) ||
        pipe2(ps, O_CLOEXEC)) {
        snprintf(why, why_cap, "cannot make pipes: %s", strerror(errno));
        goto done;
    }
    L->fd_in = sp[1], L->fd_out = po[1], L->fd_err = pe[1], L->fd_status = ps[1];
    *pid = fork();
    if (*pid < 0) {
        snprintf(why, why_cap, "fork: %s", strerror(errno));
        goto done;
    }
    if (*pid == 0) launcher(L);
    p->in = sp[0], p->out = po[0], p->err = pe[0], p->status = ps[0];
    sp[0] = po[0] = pe[0] = ps[0] = -1;
    fcntl(p->out, F_SETFL, O_NONBLOCK);
    fcntl(p->err, F_SETFL, O_NONBLOCK);
    fcntl(p->status, F_SETFL, O_NONBLOCK);
    if (job_stdin_len == 0) close_fd(&p->in);
    rc = 0;
done:
    close_fd(&sp[0]), close_fd(&sp[1]), close_fd(&po[0]), close_fd(&po[1]);
    close_fd(&pe[0]), close_fd(&pe[1]), close_fd(&ps[0]), close_fd(&ps[1]);
    return rc;
}

/* The outcome once the run is over and cleaned up. */
static void conclude(SandboxResult *r, SandboxStatus st, const Pump *p, int wstatus, int left, int wall_ms) {
    const char *ec = strstr(p->sbuf, "\"exit-code\"");
    r->status = st;
    if (st == SBX_EXITED && ec != NULL && sscanf(ec, "\"exit-code\" : %d", &r->exit_code) != 1 &&
        sscanf(ec, "\"exit-code\": %d", &r->exit_code) != 1)
        ec = NULL;
    if (st == SBX_EXITED && ec == NULL) {
        r->status = SBX_INFRA;
        size_t n = strcspn(p->ebuf, "\n");
        snprintf(r->why, sizeof(r->why), "the sandbox did not start the program (launcher status %d): %.*s",
                 WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus), (int)(n > 200 ? 200 : n),
                 p->ebuf);
    }
    /* A timeout of a program that could not even start within a quarter of its time: the machine
     * is overloaded (or bwrap hung), not the program's fault. */
    if (st == SBX_TIMEOUT && (p->started_ms == 0 || p->started_ms > 0.25 * wall_ms)) {
        r->status = SBX_INFRA;
        snprintf(r->why, sizeof(r->why), "overloaded: the sandbox took %.0f ms of the %d ms limit to start the program",
                 p->started_ms == 0 ? wall_ms : p->started_ms, wall_ms);
    }
    if (left != 0 && r->status != SBX_INFRA) {
        r->status = SBX_INFRA;
        snprintf(r->why, sizeof(r->why), "%d processes survived the kill or a cgroup could not be removed", left);
    }
}

int sandbox_run(const SandboxConfig *c, const SandboxJob *job, SandboxResult *r) {
    if (c == NULL || job == NULL || r == NULL || job->dir == NULL || job->argv == NULL || job->argv[0] == NULL)
        return err_set(ERR_ARG, "sandbox_run: missing config, job, folder or command");
    memset(r, 0, sizeof(*r));
    int rc = sandbox_config_check(c);
    if (rc != 0) return rc;
    Launch L;
    memset(&L, 0, sizeof(L));
    if ((rc = build_argv(&L, c, job)) != 0) return rc;
    set_limits(&L, c);
    Pump p = {.in = -1, .out = -1, .err = -1, .status = -1, .cap = (size_t)c->output_max_bytes};
    p.obuf = malloc(p.cap + 1);
    p.ebuf = malloc(p.cap + 1);
    if (p.obuf == NULL || p.ebuf == NULL) {
        free(p.obuf), free(p.ebuf);
        return err_set(ERR_NOMEM, "sandbox_run: no memory for %zu-byte output buffers", p.cap);
    }
    double t0 = now_ms();
    int wall_ms = job->wall_ms > 0 ? job->wall_ms : c->wall_ms;
    p.t0 = t0;
    SbxCgroup cg;
    SandboxStatus st = SBX_INFRA;
    pid_t pid = -1;
    int wstatus = 0, left = 0, reaped = 0;
    L.fd_seccomp = -1;
    if (sbx_cgroup_create(&cg, c->pids_max, c->mem_bytes, r->why, sizeof(r->why)) != 0) goto out;
    snprintf(L.procs[0], sizeof(L.procs[0]), "%s/cgroup.procs", cg.pids);
    snprintf(L.procs[1], sizeof(L.procs[1]), "%s/cgroup.procs", cg.mem);
    if (!(c->test_weaken & SBX_WEAKEN_NO_SECCOMP) && (L.fd_seccomp = sbx_seccomp_memfd(r->why, sizeof(r->why))) < 0)
        goto clean;
    if (start(&L, &p, job->stdin_len, &pid, r->why, sizeof(r->why)) != 0) goto clean;
    st = pump(&p, job, t0 + wall_ms);
clean:
    /* A program that ended by itself: bwrap has closed its status pipe and is exiting; reap it
     * first so the cgroup is usually empty by the time it is swept. */
    reaped = pid > 0 && st == SBX_EXITED && waitpid(pid, &wstatus, 0) == pid;
    left = sbx_cgroup_kill_all(&cg);
    if (pid > 0 && !reaped) waitpid(pid, &wstatus, 0);
    if (sbx_cgroup_remove(&cg) != 0 && left == 0) left = -1;
    close_fd(&p.in), close_fd(&p.out), close_fd(&p.err), close_fd(&p.status), close_fd(&L.fd_seccomp);
out:
    p.obuf[p.olen] = '\0';
    p.ebuf[p.elen] = '\0';
    if (pid > 0) conclude(r, st, &p, wstatus, left, wall_ms);
    else r->status = SBX_INFRA;
    r->out = p.obuf, r->out_len = p.olen, r->err = p.ebuf, r->err_len = p.elen;
    r->wall_ms = now_ms() - t0;
    r->start_ms = p.started_ms;
    return 0;
}

void sandbox_result_free(SandboxResult *r) {
    if (r == NULL) return;
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}

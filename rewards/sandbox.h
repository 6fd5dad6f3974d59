/* rewards/sandbox.h: running an untrusted program (a model's answer to a code task) inside an
 * OS-level sandbox that cispo starts itself, with no service to deploy.
 *
 * One run = one bubblewrap (bwrap) container started by an outer launcher, a forked child of the
 * caller that, before it execs bwrap:
 *   - joins a fresh pids cgroup and memory cgroup (cgroup v1; pids.max, memory.limit_in_bytes),
 *   - puts the streams on fds 0-2 and closes every other inherited descriptor,
 *   - sets rlimits (CPU seconds, address space, file size, open files, processes, no core),
 *   - drops to an unprivileged uid/gid (65534) with no supplementary groups, so bwrap runs in a
 *     user namespace and nothing inside is root on the host,
 *   - execs bwrap with an EMPTY environment.
 * bwrap adds --unshare-all (network, pid, ipc, uts, cgroup, user namespaces) --die-with-parent
 * --new-session --clearenv, a seccomp filter (libseccomp, passed with --seccomp), a read-only /usr
 * (with the /bin, /lib, /lib64 links), /proc, a minimal /dev, a small tmpfs /tmp, and the job's
 * folder at /box (read-only, or writable for a compile step); the root itself is remounted read-only. The caller's side enforces the
 * wall-clock limit and the output cap and, at the end, SIGKILLs everything left in the cgroup and
 * removes it: nothing outlives a run.
 *
 * An infrastructure failure (the sandbox could not be set up, a cgroup could not be made, the
 * launcher could not start, or a timeout of a program that took more than a quarter of its wall
 * limit just to start: an overloaded machine) is reported as SBX_INFRA, never as the program's failure.
 * sandbox_self_check (sandbox_check.c) launches a probe and refuses (ERR_UNSUPPORTED) when the
 * child is weaker than configured (RELIABILITY.md S2).
 */
#ifndef CISPO_REWARDS_SANDBOX_H
#define CISPO_REWARDS_SANDBOX_H

#include <stddef.h>

/* Test hooks: each flag weakens one layer so the self-check can be shown to catch it.
 * Never set outside tests. */
enum {
    SBX_WEAKEN_NO_SECCOMP = 1u << 0, /* no seccomp filter */
    SBX_WEAKEN_KEEP_ROOT = 1u << 1,  /* launcher does not drop root */
    SBX_WEAKEN_LEAK_ENV = 1u << 2,   /* bwrap started with a variable in its environment, no --clearenv */
    SBX_WEAKEN_LEAK_FD = 1u << 3,    /* an extra descriptor (fd 5) left open into the sandbox */
};

typedef struct {
    int uid, gid;             /* unprivileged ids the launcher drops to (65534, "nobody") */
    int wall_ms;              /* wall-clock limit of one run */
    int cpu_s;                /* RLIMIT_CPU */
    long mem_bytes;           /* memory cgroup limit (RLIMIT_AS is 4x this, at least 1 GiB) */
    int pids_max;             /* pids cgroup limit (processes + threads) */
    long output_max_bytes;    /* cap on stdout and on stderr; the run is killed past it */
    long file_max_bytes;      /* RLIMIT_FSIZE */
    long tmp_bytes;           /* size of the tmpfs at /tmp */
    unsigned test_weaken;     /* SBX_WEAKEN_* (tests only) */
} SandboxConfig;

typedef enum {
    SBX_EXITED = 0,       /* the program exited (exit_code; 128+signal when a signal killed it) */
    SBX_TIMEOUT = 1,      /* killed at the wall-clock limit */
    SBX_OUTPUT_LIMIT = 2, /* killed for writing more than output_max_bytes */
    SBX_INFRA = 3,        /* the sandbox could not run the program: not the program's fault */
} SandboxStatus;

typedef struct {
    const char *dir;           /* host folder seen at /box */
    int dir_writable;          /* 1: /box writable (compile steps); 0: read-only */
    const char *const *argv;   /* command inside the sandbox, NULL-terminated, argv[0] absolute */
    const char *stdin_data;    /* bytes on the program's stdin (then EOF); may be NULL */
    size_t stdin_len;
    int wall_ms;               /* > 0: overrides the config's wall limit for this run */
} SandboxJob;

typedef struct {
    SandboxStatus status;
    int exit_code;        /* SBX_EXITED: the program's status as bwrap reports it */
    char *out, *err;      /* captured stdout / stderr (at most output_max_bytes each, NUL-terminated); owned */
    size_t out_len, err_len;
    double wall_ms;       /* from launch to the end of cleanup */
    double start_ms;      /* from launch to bwrap reporting the program started (0: never) */
    char why[256];        /* SBX_INFRA: what failed */
} SandboxResult;

/* The defaults: uid/gid 65534, 2 s wall, 2 s CPU, 256 MiB memory, 64 pids, 1 MiB output cap,
 * 16 MiB files, 16 MiB /tmp. */
void sandbox_config_default(SandboxConfig *c);
/* Validate a config: ERR_CONFIG naming the field when a value is out of range (uid 0, limits <= 0). */
int sandbox_config_check(const SandboxConfig *c);

/* Run job under c. Returns 0 with *r filled (status says how the program ended; free r with
 * sandbox_result_free), or ERR_ARG for bad arguments. Blocks for at most the wall limit plus
 * cleanup. Thread-safe (no global state beyond an atomic counter for cgroup names). */
int sandbox_run(const SandboxConfig *c, const SandboxJob *job, SandboxResult *r);
void sandbox_result_free(SandboxResult *r);

/* Launch a probe (python3) under c and check what it sees: no capabilities, no_new_privs set, a
 * seccomp filter, a non-root uid equal to c->uid, an environment within {PWD, LC_CTYPE}, only fds
 * 0-2; also that bwrap, the cgroups and python3 are there. Returns 0, or ERR_UNSUPPORTED with a
 * message naming every property that failed (code rewards must then refuse to run). */
int sandbox_self_check(const SandboxConfig *c);

#endif

/* rewards/sandbox_internal.h: the pieces of the sandbox that sandbox.c assembles: per-run cgroups
 * (sandbox_cgroup.c) and the seccomp filter (sandbox_seccomp.c). Not a public API. */
#ifndef CISPO_REWARDS_SANDBOX_INTERNAL_H
#define CISPO_REWARDS_SANDBOX_INTERNAL_H

#include <sys/types.h>

#define SBX_PATH_MAX 512

/* A run's cgroup directories (cgroup v1: one per controller). */
typedef struct {
    char pids[SBX_PATH_MAX];
    char mem[SBX_PATH_MAX];
} SbxCgroup;

/* Make fresh pids and memory cgroups named after this process and a counter, with pids.max and
 * memory.limit_in_bytes (and memsw when the kernel has swap accounting) set. 0, or -1 with why
 * filled (an infrastructure failure). */
int sbx_cgroup_create(SbxCgroup *cg, int pids_max, long mem_bytes, char *why, size_t why_cap);
/* Move process pid into both cgroups (called by the launcher for itself, as root). 0 or -1. */
int sbx_cgroup_enter(const SbxCgroup *cg, pid_t pid);
/* SIGKILL everything in the cgroup until it is empty (bounded retries). Returns the number of
 * processes still there at the end (0 when clean). */
int sbx_cgroup_kill_all(const SbxCgroup *cg);
/* 1 if the memory cgroup recorded an OOM kill. */
int sbx_cgroup_oom(const SbxCgroup *cg);
/* rmdir both (retrying while the kernel finishes reaping). 0, or -1 if one is left behind. */
int sbx_cgroup_remove(const SbxCgroup *cg);

/* A memfd holding the compiled seccomp BPF program (for bwrap --seccomp FD), or -1 with why. */
int sbx_seccomp_memfd(char *why, size_t why_cap);

#endif

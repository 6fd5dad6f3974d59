/* rewards/sandbox_cgroup.c: one pids cgroup and one memory cgroup per sandbox run (cgroup v1, as
 * on these machines: the controllers are mounted at /sys/fs/cgroup/<controller>).
 *
 * The new groups are made below the caller's own group of each controller (read from
 * /proc/self/cgroup), so a caller confined by a memory limit stays confined. Names are
 * "cispo-sbx-<pid>-<counter>", unique per process and run. The pids limit counts threads too, so
 * it stops fork and thread bombs (RLIMIT_NPROC alone does not for root, RELIABILITY.md). Killing
 * reads cgroup.procs and SIGKILLs each pid until the file is empty; a fork bomb cannot outrun it
 * because it cannot grow past pids.max.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rewards/sandbox_internal.h"

#define SBX_CGROOT "/sys/fs/cgroup"

static atomic_long g_counter;

/* The caller's path in controller `name` from /proc/self/cgroup ("" for the root). 0 or -1. */
static int own_group(const char *name, char *out, size_t cap) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (f == NULL) return -1;
    char line[1024];
    int found = -1;
    while (found != 0 && fgets(line, sizeof(line), f) != NULL) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) continue;
        *c2 = '\0';
        /* the controller list is comma-separated (e.g. "cpu,cpuacct") */
        for (char *tok = strtok(c1 + 1, ","); tok != NULL; tok = strtok(NULL, ","))
            if (strcmp(tok, name) == 0) found = 0;
        if (found == 0) {
            char *path = c2 + 1;
            path[strcspn(path, "\n")] = '\0';
            snprintf(out, cap, "%s", strcmp(path, "/") == 0 ? "" : path);
        }
    }
    fclose(f);
    return found;
}

static int write_text(const char *dir, const char *file, const char *text) {
    char p[SBX_PATH_MAX + 64];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int rc = (n == (ssize_t)strlen(text)) ? 0 : -1;
    close(fd);
    return rc;
}

static int make_group(const char *ctrl, const char *name, char *out, char *why, size_t why_cap) {
    char own[256];
    if (own_group(ctrl, own, sizeof(own)) != 0) {
        snprintf(why, why_cap, "no cgroup v1 '%s' controller in /proc/self/cgroup", ctrl);
        return -1;
    }
    snprintf(out, SBX_PATH_MAX, SBX_CGROOT "/%s%s/%s", ctrl, own, name);
    if (mkdir(out, 0755) != 0) {
        snprintf(why, why_cap, "cannot create cgroup %s: %s", out, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int sbx_cgroup_create(SbxCgroup *cg, int pids_max, long mem_bytes, char *why, size_t why_cap) {
    char name[64], v[32];
    memset(cg, 0, sizeof(*cg));
    snprintf(name, sizeof(name), "cispo-sbx-%ld-%ld", (long)getpid(), atomic_fetch_add(&g_counter, 1));
    if (make_group("pids", name, cg->pids, why, why_cap) != 0) return -1;
    if (make_group("memory", name, cg->mem, why, why_cap) != 0) goto fail;
    snprintf(v, sizeof(v), "%d", pids_max);
    if (write_text(cg->pids, "pids.max", v) != 0) {
        snprintf(why, why_cap, "cannot set %s/pids.max: %s", cg->pids, strerror(errno));
        goto fail;
    }
    snprintf(v, sizeof(v), "%ld", mem_bytes);
    if (write_text(cg->mem, "memory.limit_in_bytes", v) != 0) {
        snprintf(why, why_cap, "cannot set %s/memory.limit_in_bytes: %s", cg->mem, strerror(errno));
        goto fail;
    }
    (void)write_text(cg->mem, "memory.memsw.limit_in_bytes", v); /* absent without swap accounting */
    return 0;
fail:
    sbx_cgroup_remove(cg);
    return -1;
}

int sbx_cgroup_enter(const SbxCgroup *cg, pid_t pid) {
    char v[32];
    snprintf(v, sizeof(v), "%ld", (long)pid);
    if (write_text(cg->pids, "cgroup.procs", v) != 0) return -1;
    return write_text(cg->mem, "cgroup.procs", v);
}

/* SIGKILL every pid listed in dir/cgroup.procs; returns how many were listed (-1: unreadable). */
static int kill_listed(const char *dir) {
    char p[SBX_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
    FILE *f = fopen(p, "re");
    if (f == NULL) return -1;
    long pid;
    int n = 0;
    while (fscanf(f, "%ld", &pid) == 1) {
        if (pid > 1) kill((pid_t)pid, SIGKILL);
        n++;
    }
    fclose(f);
    return n;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int sbx_cgroup_kill_all(const SbxCgroup *cg) {
    int left = 0;
    for (int tries = 0; tries < 2000; tries++) { /* up to ~2 s */
        int a = cg->pids[0] ? kill_listed(cg->pids) : 0;
        int b = cg->mem[0] ? kill_listed(cg->mem) : 0;
        left = (a > 0 ? a : 0) + (b > 0 ? b : 0);
        if (left == 0) break;
        sleep_ms(1);
    }
    return left;
}

int sbx_cgroup_oom(const SbxCgroup *cg) {
    char p[SBX_PATH_MAX + 32], line[128];
    snprintf(p, sizeof(p), "%s/memory.oom_control", cg->mem);
    FILE *f = fopen(p, "re");
    if (f == NULL) return 0;
    long kills = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "oom_kill %ld", &kills) == 1) break;
    fclose(f);
    return kills > 0;
}

int sbx_cgroup_remove(const SbxCgroup *cg) {
    int rc = 0;
    const char *dirs[2] = {cg->pids, cg->mem};
    for (int i = 0; i < 2; i++) {
        if (dirs[i][0] == '\0') continue;
        int ok = 0;
        for (int tries = 0; tries < 1000 && !ok; tries++) { /* the last exits are reaped asynchronously */
            ok = rmdir(dirs[i]) == 0 || errno == ENOENT;
            if (!ok) {
                kill_listed(dirs[i]);
                sleep_ms(1);
            }
        }
        if (!ok) rc = -1;
    }
    return rc;
}

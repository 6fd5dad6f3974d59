/* rewards/sandbox_check.c: the start-up self-check of the sandbox (RELIABILITY.md S2).
 *
 * One launch of a small Python probe under the caller's config; the probe prints what it sees
 * from the inside (its uids, the capability sets, NoNewPrivs and Seccomp from /proc/self/status,
 * the names of its environment variables, its open descriptors) as "key=value" lines, and this
 * file checks each against what the config promises. Any miss is named in one ERR_UNSUPPORTED
 * message, so a weakened sandbox (a missing package, a kernel without a feature, a test hook)
 * stops code rewards before the first untrusted program runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "rewards/sandbox.h"

static const char k_probe[] =
    "import os\n"
    "st = {}\n"
    "for l in open('/proc/self/status'):\n"
    "    k, _, v = l.partition(':'); st[k] = v.split()\n"
    "fds = []\n"
    "for f in os.listdir('/proc/self/fd'):\n"
    "    try: os.readlink('/proc/self/fd/' + f); fds.append(int(f))\n"
    "    except OSError: pass\n"
    "print('uid=' + ','.join(st['Uid'] + st['Gid']))\n"
    "for c in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'): print(c + '=' + st[c][0])\n"
    "print('nnp=' + st['NoNewPrivs'][0])\n"
    "print('seccomp=' + st['Seccomp'][0])\n"
    "print('env=' + ','.join(sorted(os.environ)))\n"
    "print('fds=' + ','.join(str(f) for f in sorted(fds)))\n"
    "print('probe=done')\n";

/* Allowed environment: bwrap's --chdir sets PWD; Python's C-locale coercion sets LC_CTYPE. */
static int env_allowed(const char *name) { return strcmp(name, "PWD") == 0 || strcmp(name, "LC_CTYPE") == 0; }

/* Value of "key=" in the probe output, copied into v ("" if absent). */
static void probe_value(const char *out, const char *key, char *v, size_t cap) {
    char pat[32];
    snprintf(pat, sizeof(pat), "\n%s=", key);
    const char *s = strstr(out, pat);
    v[0] = '\0';
    if (s == NULL) return;
    s += strlen(pat);
    size_t n = strcspn(s, "\n");
    snprintf(v, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

static void miss(char *msg, size_t cap, const char *what) {
    size_t n = strlen(msg);
    snprintf(msg + n, cap - n, "%s%s", n ? "; " : "", what);
}

/* Compare the probe's report with the config; failures appended to msg. */
static void judge(const SandboxConfig *c, const char *out, char *msg, size_t cap) {
    char v[512], want[64], buf[600];
    static const char *const caps[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
    probe_value(out, "uid", v, sizeof(v));
    snprintf(want, sizeof(want), "%d,%d,%d,%d,%d,%d,%d,%d", c->uid, c->uid, c->uid, c->uid, c->gid, c->gid, c->gid,
             c->gid);
    if (strcmp(v, want) != 0) {
        snprintf(buf, sizeof(buf), "uid/gid inside are %s, expected all %d/%d (not root)", v, c->uid, c->gid);
        miss(msg, cap, buf);
    }
    for (int i = 0; i < 5; i++) {
        probe_value(out, caps[i], v, sizeof(v));
        if (strtoull(v, NULL, 16) != 0 || v[0] == '\0') {
            snprintf(buf, sizeof(buf), "capabilities left: %s=%s", caps[i], v);
            miss(msg, cap, buf);
        }
    }
    probe_value(out, "nnp", v, sizeof(v));
    if (strcmp(v, "1") != 0) miss(msg, cap, "no_new_privs is not set");
    probe_value(out, "seccomp", v, sizeof(v));
    if (strcmp(v, "2") != 0) miss(msg, cap, "no seccomp filter (Seccomp mode is not 2)");
    probe_value(out, "env", v, sizeof(v));
    for (char *t = strtok(v, ","); t != NULL; t = strtok(NULL, ","))
        if (!env_allowed(t)) {
            snprintf(buf, sizeof(buf), "environment variable %s visible inside", t);
            miss(msg, cap, buf);
        }
    probe_value(out, "fds", v, sizeof(v));
    if (strcmp(v, "0,1,2") != 0) {
        snprintf(buf, sizeof(buf), "open descriptors inside are %s, expected 0,1,2", v);
        miss(msg, cap, buf);
    }
}

int sandbox_self_check(const SandboxConfig *c) {
    int rc = sandbox_config_check(c);
    if (rc != 0) return rc;
    if (access("/usr/bin/bwrap", X_OK) != 0 || access("/usr/bin/python3", X_OK) != 0)
        return err_set(ERR_UNSUPPORTED, "sandbox self-check: /usr/bin/bwrap or /usr/bin/python3 is missing\n"
                                        "HINT: apt-get install bubblewrap python3 (scripts/setup.sh does)");
    const char *argv[] = {"/usr/bin/python3", "-I", "-S", "-c", k_probe, NULL};
    SandboxJob job = {.dir = "/usr/share", .argv = argv, .wall_ms = 10000};
    SandboxResult r;
    if ((rc = sandbox_run(c, &job, &r)) != 0) return rc;
    char msg[1500] = "";
    char *out = malloc(r.out_len + 2);
    if (out == NULL) {
        sandbox_result_free(&r);
        return err_set(ERR_NOMEM, "sandbox self-check: out of memory");
    }
    out[0] = '\n'; /* so every key, the first included, follows a newline */
    memcpy(out + 1, r.out, r.out_len + 1);
    if (r.status != SBX_EXITED || r.exit_code != 0 || strstr(out, "\nprobe=done") == NULL) {
        size_t n = strcspn(r.err, "\n");
        snprintf(msg, sizeof(msg), "the probe did not run (status %d, exit %d): %.*s%s", (int)r.status, r.exit_code,
                 (int)(n > 300 ? 300 : n), r.err, r.why);
    } else {
        judge(c, out, msg, sizeof(msg));
    }
    free(out);
    sandbox_result_free(&r);
    if (msg[0] != '\0')
        return err_set(ERR_UNSUPPORTED,
                       "sandbox self-check failed: %s\nHINT: code rewards refuse to run in a weaker sandbox than "
                       "configured; run as root on Linux with cgroup v1 pids/memory, bubblewrap and libseccomp",
                       msg);
    return 0;
}

/* checkpoints/ckpt.c: the checkpoint directory protocol of ckpt.h: begin, commit (with rollback),
 * retention, stale-directory cleanup and lookup of the newest valid checkpoint.
 *
 * Commit order (each step checked): fsync every file and write manifest.json (ckpt_manifest.c),
 * fsync step_N.tmp/, rename step_N.tmp -> step_N (an existing step_N, re-saved after a resume, is
 * first renamed aside to step_N.old and deleted only once `latest` is durable), fsync checkpoints/,
 * write latest.tmp ("step_NNNNNNN\n") + fsync + rename to latest, fsync checkpoints/. Invariant: at
 * every instant, for each step N either step_N is complete (old or new) or it is absent and
 * step_N.old is complete; ckpt_cleanup_stale renames such an orphaned .old back.
 *
 * A failure rolls back what was done (latest restored, the new directory renamed away and deleted,
 * step_N.old renamed back) with plain, unhooked calls, best effort and logged: the fault hook only
 * covers the forward path. Retention runs after a successful commit and only warns on failure.
 */
#include "checkpoints/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints/ckpt_manifest.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/log.h"

#define LATEST_NAME "latest"
#define LATEST_TMP_NAME "latest.tmp"
#define STEP_NAME_BYTES 32

static CkptFaultHook g_fault_hook; /* test hook (ckpt_set_fault_hook); NULL in normal runs */

void ckpt_set_fault_hook(CkptFaultHook hook) { g_fault_hook = hook; }

static int fault(const char *op, const char *path) { return g_fault_hook ? g_fault_hook(op, path) : 0; }

/* ---- file operations ------------------------------------------------------------------------ */

int ckpt_fsync_path(const char *path) {
    int e = fault("fsync", path);
    if (e != 0) return err_set(ERR_IO, "fsync %s: %s", path, strerror(e));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(ERR_IO, "open %s for fsync: %s", path, strerror(errno));
    if (fsync(fd) != 0) e = errno;
    close(fd);
    if (e != 0) return err_set(ERR_IO, "fsync %s: %s", path, strerror(e));
    return 0;
}

static int write_all(int fd, const char *p, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n < 0 ? errno : EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* hooked != 0: consult the fault hook before the write and the fsync. */
static int write_file(const char *path, const void *data, size_t len, int hooked) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return err_set(ERR_IO, "create %s: %s", path, strerror(errno));
    const char *op = "write";
    int e = hooked ? fault("write", path) : 0;
    if (e == 0) e = write_all(fd, data, len);
    if (e == 0) {
        op = "fsync";
        e = hooked ? fault("fsync", path) : 0;
        if (e == 0 && fsync(fd) != 0) e = errno;
    }
    if (close(fd) != 0 && e == 0) {
        op = "close";
        e = errno;
    }
    if (e == 0) return 0;
    unlink(path);
    return err_set(ERR_IO, "%s %s: %s", op, path, strerror(e));
}

int ckpt_io_write_file(const char *path, const void *data, size_t len) { return write_file(path, data, len, 1); }

int ckpt_io_rename(const char *from, const char *to) {
    int e = fault("rename", from);
    if (e == 0 && rename(from, to) != 0) e = errno;
    if (e != 0) return err_set(ERR_IO, "rename %s -> %s: %s", from, to, strerror(e));
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb;
    (void)ftw;
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    return (rc != 0 && errno != ENOENT) ? -1 : 0;
}

/* Remove a file or a directory tree; a missing path is fine. */
static int rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return err_set(ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static int path_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static int join_or(char *dst, size_t cap, const char *a, const char *b) {
    return fs_join(dst, cap, a, b) != 0 ? ERR_IO : 0;
}

/* ---- names ---------------------------------------------------------------------------------- */

long ckpt_step_of(const char *ckpt_dir) {
    size_t n = strlen(ckpt_dir);
    while (n > 1 && ckpt_dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && ckpt_dir[b - 1] != '/') b--;
    const char *name = ckpt_dir + b;
    size_t len = n - b;
    if (len < 6 || len >= STEP_NAME_BYTES || strncmp(name, "step_", 5) != 0) return -1;
    long v = 0;
    for (size_t i = 5; i < len; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        if (v > (LONG_MAX - 9) / 10) return -1;
        v = v * 10 + (name[i] - '0');
    }
    char canon[STEP_NAME_BYTES];
    snprintf(canon, sizeof canon, "step_%07ld", v);
    return (strlen(canon) == len && strncmp(canon, name, len) == 0) ? v : -1;
}

static int checkpoints_dir(char *out, size_t cap, const char *run_dir) {
    return fs_join(out, cap, run_dir, "checkpoints");
}

static int step_dir(char *out, size_t cap, const char *root, long step, const char *suffix) {
    int n = snprintf(out, cap, "%s/step_%07ld%s", root, step, suffix);
    if (n < 0 || (size_t)n >= cap) return err_set(ERR_RANGE, "path too long: %s/step_%07ld%s", root, step, suffix);
    return 0;
}

/* Names of the entries of `dir` (without . and ..); *names is malloc'd, free with free_names. */
static int list_dir(const char *dir, char ***names, int *count) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) return err_set(ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, (size_t)cap * sizeof(char *));
            CHECK(grown != NULL, "out of memory listing %s", dir);
            *names = grown;
        }
        (*names)[(*count)++] = strdup(e->d_name);
        CHECK((*names)[*count - 1] != NULL, "out of memory listing %s", dir);
    }
    closedir(d);
    return 0;
}

static void free_names(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

static int cmp_long_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x < y) - (x > y);
}

/* Steps of the committed checkpoint directories under root (canonical names only), descending. */
static int list_steps(const char *root, long **steps, int *count) {
    char **names;
    int n;
    *steps = NULL;
    *count = 0;
    int rc = list_dir(root, &names, &n);
    if (rc != 0) return rc;
    *steps = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(long));
    for (int i = 0; i < n; i++) {
        long s = ckpt_step_of(names[i]);
        char path[4096];
        if (s < 0 || fs_join(path, sizeof path, root, names[i]) != 0 || !fs_is_dir(path)) continue;
        (*steps)[(*count)++] = s;
    }
    free_names(names, n);
    qsort(*steps, (size_t)*count, sizeof(long), cmp_long_desc);
    return 0;
}

/* ---- begin / path / abort ------------------------------------------------------------------- */

int ckpt_begin(CkptWriter *w, const char *run_dir, long step) {
    memset(w, 0, sizeof *w);
    if (step < 0) return err_set(ERR_RANGE, "checkpoint step %ld: must be >= 0", step);
    if (strlen(run_dir) >= sizeof w->run_dir) return err_set(ERR_RANGE, "run directory path too long: %s", run_dir);
    strcpy(w->run_dir, run_dir);
    w->step = step;
    int rc = checkpoints_dir(w->ckpt_root, sizeof w->ckpt_root, run_dir);
    if (rc == 0) rc = step_dir(w->tmp_dir, sizeof w->tmp_dir, w->ckpt_root, step, ".tmp");
    if (rc == 0) rc = step_dir(w->final_dir, sizeof w->final_dir, w->ckpt_root, step, "");
    if (rc != 0) return rc;
    int created = !fs_is_dir(w->ckpt_root);
    rc = fs_mkdir_p(w->ckpt_root);
    if (rc == 0 && created) rc = ckpt_fsync_path(run_dir); /* make checkpoints/ itself durable */
    if (rc == 0 && path_exists(w->tmp_dir)) {
        log_warn("checkpoint: removing stale %s", w->tmp_dir);
        rc = rm_rf(w->tmp_dir);
    }
    if (rc != 0) return err_wrap(rc, "checkpoint step %ld", step);
    if (mkdir(w->tmp_dir, 0755) != 0)
        return err_set(ERR_IO, "checkpoint step %ld: cannot create %s: %s", step, w->tmp_dir, strerror(errno));
    w->open = 1;
    return 0;
}

int ckpt_path(const CkptWriter *w, const char *name, char *out, size_t cap) {
    CHECK(w != NULL && w->open, "ckpt_path on a writer that is not open");
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strncmp(name, CKPT_MANIFEST_NAME, strlen(CKPT_MANIFEST_NAME)) == 0)
        return err_set(ERR_ARG, "checkpoint file name '%s': expected a plain file name (no '/', not %s*)", name,
                       CKPT_MANIFEST_NAME);
    return fs_join(out, cap, w->tmp_dir, name);
}

void ckpt_abort(CkptWriter *w) {
    if (w == NULL || !w->open) return;
    if (rm_rf(w->tmp_dir) != 0) log_warn("checkpoint abort: %s", err_msg());
    w->open = 0;
}

/* ---- commit --------------------------------------------------------------------------------- */

/* What a commit has done so far, for the rollback. */
typedef struct {
    char old_latest[STEP_NAME_BYTES + 2]; /* previous content of `latest` ("" if none) */
    int moved_old;       /* step_N renamed aside to step_N.old */
    int new_in_place;    /* step_N.tmp renamed to step_N */
    int latest_replaced; /* latest.tmp renamed over latest */
} CommitState;

static void read_small_file(const char *path, char *buf, size_t cap) {
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (f == NULL) return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static int install_dir(const CkptWriter *w, CommitState *st, const char *old_dir) {
    if (path_exists(w->final_dir)) {
        int rc = rm_rf(old_dir); /* a stale one from an earlier crash: step_N itself is complete */
        if (rc == 0) rc = ckpt_io_rename(w->final_dir, old_dir);
        if (rc != 0) return rc;
        st->moved_old = 1;
    }
    int rc = ckpt_io_rename(w->tmp_dir, w->final_dir);
    if (rc == 0) st->new_in_place = 1;
    return rc;
}

static int write_latest(const CkptWriter *w, CommitState *st) {
    char tmp[sizeof w->ckpt_root + 16], latest[sizeof w->ckpt_root + 16], text[STEP_NAME_BYTES + 2];
    if (join_or(tmp, sizeof tmp, w->ckpt_root, LATEST_TMP_NAME) ||
        join_or(latest, sizeof latest, w->ckpt_root, LATEST_NAME))
        return ERR_IO;
    int len = snprintf(text, sizeof text, "step_%07ld\n", w->step);
    int rc = ckpt_io_write_file(tmp, text, (size_t)len);
    if (rc != 0) return rc;
    rc = ckpt_io_rename(tmp, latest);
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    st->latest_replaced = 1;
    return ckpt_fsync_path(w->ckpt_root);
}

/* Undo a failed commit with plain calls; failures here are logged, never returned. */
static void rollback(const CkptWriter *w, const CommitState *st, const char *old_dir) {
    char latest[sizeof w->ckpt_root + 16], tmp[sizeof w->ckpt_root + 16];
    if (st->latest_replaced && join_or(latest, sizeof latest, w->ckpt_root, LATEST_NAME) == 0 &&
        join_or(tmp, sizeof tmp, w->ckpt_root, LATEST_TMP_NAME) == 0) {
        int bad = st->old_latest[0] == '\0' ? (unlink(latest) != 0)
                                             : (write_file(tmp, st->old_latest, strlen(st->old_latest), 0) != 0 ||
                                                rename(tmp, latest) != 0);
        if (bad) log_error("checkpoint rollback: cannot restore %s: %s", latest, strerror(errno));
    }
    /* The new step_N goes back to .tmp (atomically) before step_N.old returns, so step_N is never
     * a half-deleted directory. */
    if (st->new_in_place && rename(w->final_dir, w->tmp_dir) != 0)
        log_error("checkpoint rollback: rename %s -> %s: %s", w->final_dir, w->tmp_dir, strerror(errno));
    if (st->moved_old && rename(old_dir, w->final_dir) != 0)
        log_error("checkpoint rollback: rename %s -> %s: %s", old_dir, w->final_dir, strerror(errno));
    if (rm_rf(w->tmp_dir) != 0) log_error("checkpoint rollback: %s", err_msg());
    int fd = open(w->ckpt_root, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static void apply_retention(const CkptWriter *w, int keep_last, int keep_every);

int ckpt_commit(CkptWriter *w, int keep_last, int keep_every) {
    CHECK(w != NULL && w->open, "ckpt_commit on a writer that is not open");
    CommitState st = {0};
    char latest[sizeof w->ckpt_root + 16], old_dir[sizeof w->final_dir + 8];
    int rc = join_or(latest, sizeof latest, w->ckpt_root, LATEST_NAME);
    if (rc == 0) rc = step_dir(old_dir, sizeof old_dir, w->ckpt_root, w->step, ".old");
    if (rc == 0) read_small_file(latest, st.old_latest, sizeof st.old_latest);
    if (rc == 0) rc = ckpt_manifest_write(w->tmp_dir, w->step);
    if (rc == 0) rc = ckpt_fsync_path(w->tmp_dir);
    if (rc == 0) rc = install_dir(w, &st, old_dir);
    if (rc == 0) rc = ckpt_fsync_path(w->ckpt_root);
    if (rc == 0) rc = write_latest(w, &st);
    if (rc != 0) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", err_msg());
        rollback(w, &st, old_dir);
        w->open = 0;
        return err_set(ERR_IO, "checkpoint step %ld not committed (the previous checkpoint is kept): %s", w->step, msg);
    }
    w->open = 0;
    if (st.moved_old && rm_rf(old_dir) != 0) log_warn("checkpoint step %ld: %s", w->step, err_msg());
    log_debug("checkpoint step %ld committed: %s", w->step, w->final_dir);
    apply_retention(w, keep_last, keep_every);
    return 0;
}

/* ---- retention ------------------------------------------------------------------------------ */

/* Keep the newest keep_last steps at or below the one just committed, every step that is a
 * multiple of keep_every (> 0), and the committed one (`latest`). Steps above it (left from an
 * abandoned timeline after a fallback) are not ours to judge and are left alone. */
static void apply_retention(const CkptWriter *w, int keep_last, int keep_every) {
    long *steps;
    int n;
    if (list_steps(w->ckpt_root, &steps, &n) != 0) {
        log_warn("checkpoint retention skipped: %s", err_msg());
        return;
    }
    int rank = 0;
    for (int i = 0; i < n; i++) {
        long s = steps[i];
        if (s > w->step) continue;
        int keep = rank < keep_last || (keep_every > 0 && s % keep_every == 0) || s == w->step;
        rank++;
        if (keep) continue;
        char dir[sizeof w->final_dir];
        if (step_dir(dir, sizeof dir, w->ckpt_root, s, "") != 0 || rm_rf(dir) != 0)
            log_warn("checkpoint retention: %s", err_msg());
        else
            log_debug("checkpoint retention: removed %s", dir);
    }
    free(steps);
}

/* ---- start-up cleanup and lookup ------------------------------------------------------------ */

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* step_N.old: deleted when step_N exists, renamed back to step_N when it does not (a crash between
 * the two renames of a re-save, or inside a rollback). Returns 1 if removed, 0 if restored. */
static int settle_old(const char *root, const char *name) {
    char old_path[4096], base_path[4096];
    if (join_or(old_path, sizeof old_path, root, name) != 0) return ERR_IO;
    snprintf(base_path, sizeof base_path, "%.*s", (int)(strlen(old_path) - 4), old_path);
    if (!path_exists(base_path)) {
        if (rename(old_path, base_path) != 0)
            return err_set(ERR_IO, "rename %s -> %s: %s", old_path, base_path, strerror(errno));
        log_warn("checkpoint: restored %s (left aside by an interrupted re-save)", base_path);
        return 0;
    }
    int rc = rm_rf(old_path);
    return rc != 0 ? rc : 1;
}

int ckpt_cleanup_stale(const char *run_dir) {
    char root[4096];
    if (checkpoints_dir(root, sizeof root, run_dir) != 0) return ERR_IO;
    if (!fs_is_dir(root)) return 0;
    char **names;
    int n, removed = 0, rc = list_dir(root, &names, &n);
    for (int i = 0; rc == 0 && i < n; i++) {
        const char *name = names[i];
        char path[4096];
        if ((rc = join_or(path, sizeof path, root, name)) != 0) break;
        if (strcmp(name, LATEST_TMP_NAME) == 0) {
            unlink(path);
        } else if (strncmp(name, "step_", 5) == 0 && has_suffix(name, ".tmp")) {
            log_info("checkpoint: removing stale %s", path);
            rc = rm_rf(path);
            removed += rc == 0;
        } else if (strncmp(name, "step_", 5) == 0 && has_suffix(name, ".old")) {
            int r = settle_old(root, name);
            rc = r < 0 ? r : 0;
            removed += r > 0;
        }
    }
    free_names(names, n);
    if (rc == 0 && removed > 0) rc = ckpt_fsync_path(root);
    return rc != 0 ? err_wrap(ERR_IO, "checkpoint cleanup under %s", root) : removed;
}

/* Read `latest`: 1 and its name in `name` when well formed, 0 when absent, -1 (warned) otherwise. */
static int read_latest_name(const char *root, char *name, size_t cap) {
    char path[4096], buf[64];
    if (join_or(path, sizeof path, root, LATEST_NAME) != 0 || !path_exists(path)) return 0;
    read_small_file(path, buf, sizeof buf);
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n') buf[--n] = '\0';
    if (n > 0 && n < cap && strchr(buf, '/') == NULL && ckpt_step_of(buf) >= 0) {
        memcpy(name, buf, n + 1);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (buf[i] < 0x20 || buf[i] > 0x7e) buf[i] = '?';
    log_warn("checkpoint: %s is corrupt (holds '%s', expected step_NNNNNNN); trying the step directories", path, buf);
    return -1;
}

static int accept_if_valid(const char *path, char *out, size_t cap) {
    if (ckpt_verify(path) != 0) {
        log_warn("checkpoint rejected: %s", err_msg());
        return 0;
    }
    if (strlen(path) >= cap) return err_set(ERR_RANGE, "checkpoint path %s longer than %zu bytes", path, cap - 1);
    strcpy(out, path);
    return 1;
}

int ckpt_find_latest(const char *run_dir, char *out, size_t cap) {
    char root[4096], name[STEP_NAME_BYTES], path[4096];
    if (checkpoints_dir(root, sizeof root, run_dir) != 0) return ERR_RANGE;
    if (!fs_is_dir(root)) return err_set(ERR_NOTFOUND, "no checkpoints under %s (no directory %s)", run_dir, root);
    long below = LONG_MAX; /* only steps below this one are candidates after `latest` */
    if (read_latest_name(root, name, sizeof name) == 1) {
        if (join_or(path, sizeof path, root, name) != 0) return ERR_RANGE;
        if (!fs_is_dir(path)) {
            log_warn("checkpoint: %s/latest names %s, which does not exist; trying the step directories", root, name);
        } else {
            int ok = accept_if_valid(path, out, cap);
            if (ok != 0) return ok < 0 ? ok : 0;
            below = ckpt_step_of(name);
        }
    }
    long *steps;
    int n, found = 0;
    int rc = list_steps(root, &steps, &n);
    if (rc != 0) return rc;
    for (int i = 0; i < n && found == 0; i++) {
        if (steps[i] >= below || step_dir(path, sizeof path, root, steps[i], "") != 0) continue;
        found = accept_if_valid(path, out, cap);
    }
    free(steps);
    if (found < 0) return found;
    if (found == 0) return err_set(ERR_NOTFOUND, "no valid checkpoint under %s", root);
    return 0;
}

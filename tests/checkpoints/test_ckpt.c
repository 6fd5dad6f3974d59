/* tests/checkpoints/test_ckpt.c: the checkpoint directory protocol (checkpoints/ckpt.h).
 * labels: unit
 *
 * Round trip (manifest sizes and hashes recomputed here with one-shot XXH3-128, latest, verify,
 * lookup), retention, a fault injected at every write/fsync/rename of a commit (ENOSPC and EIO,
 * once and persistently, new step and re-save), corruption of committed files (byte flips,
 * truncation, deletion, extra files, a corrupt `latest`, 20 random bit flips), start-up cleanup.
 * Every test works in its own mkdtemp directory and removes it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <xxhash.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/fs.h"
#include "ckpt_test_util.h"

#define SEED 20240611u

/* Files of one test checkpoint: sizes differ per step so that contents and sizes both change. */
static size_t a_bytes(long step) { return 3000 + 7 * (size_t)step; }
static size_t b_bytes(long step) { return 70000 + 13 * (size_t)step; }

/* Begin step `step`, write a.bin and b.bin (and model.h5 when with_h5), leave the writer open. */
static void stage_step(CkptWriter *w, const char *run, long step, int with_h5) {
    char path[1024];
    assert_int_equal(ckpt_begin(w, run, step), 0);
    assert_int_equal(ckpt_path(w, "a.bin", path, sizeof path), 0);
    write_random_file(path, a_bytes(step), SEED, (uint64_t)step * 2);
    assert_int_equal(ckpt_path(w, "b.bin", path, sizeof path), 0);
    write_random_file(path, b_bytes(step), SEED, (uint64_t)step * 2 + 1);
    if (!with_h5) return;
    float x[4096];
    int64_t dims[2] = {64, 64};
    rng_fill_normal(x, 4096, SEED, 1000 + (uint64_t)step, 0.0f, 1.0f);
    H5File f;
    assert_int_equal(ckpt_path(w, "model.h5", path, sizeof path), 0);
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_f32(&f, "model/w", x, 2, dims), 0);
    assert_int_equal(h5_close(&f), 0);
}

static void save_step(const char *run, long step, int keep_last, int keep_every, int with_h5) {
    CkptWriter w;
    stage_step(&w, run, step, with_h5);
    int rc = ckpt_commit(&w, keep_last, keep_every);
    if (rc != 0) fprintf(stderr, "commit failed: %s\n", err_msg());
    assert_int_equal(rc, 0);
}

static void step_path(char *out, size_t cap, const char *run, long step, const char *suffix) {
    fmt_path(out, cap, "%s/checkpoints/step_%07ld%s", run, step, suffix);
}

static void hex128(const void *data, size_t n, char out[33]) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(data, n));
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", c.digest[i]);
}

/* The manifest lists `name` with its true size and one-shot XXH3-128. */
static void assert_manifest_entry(json_t *files, const char *dir, const char *name) {
    char path[1024], hex[33];
    fmt_path(path, sizeof path, "%s/%s", dir, name);
    size_t n;
    unsigned char *data = read_file_bytes(path, &n);
    hex128(data, n, hex);
    free(data);
    json_t *e = json_object_get(files, name);
    assert_non_null(e);
    assert_int_equal(json_integer_value(json_object_get(e, "bytes")), (json_int_t)n);
    assert_string_equal(json_string_value(json_object_get(e, "xxh3_128")), hex);
}

static void test_step_of(void **state) {
    (void)state;
    assert_int_equal(ckpt_step_of("step_0000005"), 5);
    assert_int_equal(ckpt_step_of("/r/checkpoints/step_0000012/"), 12);
    assert_int_equal(ckpt_step_of("step_0000000"), 0);
    assert_int_equal(ckpt_step_of("step_12345678"), 12345678);
    assert_int_equal(ckpt_step_of("step_5"), -1);
    assert_int_equal(ckpt_step_of("step_01234567"), -1);
    assert_int_equal(ckpt_step_of("step_0000005.tmp"), -1);
    assert_int_equal(ckpt_step_of("step_0000005.old"), -1);
    assert_int_equal(ckpt_step_of("step_"), -1);
    assert_int_equal(ckpt_step_of("latest"), -1);
    assert_int_equal(ckpt_step_of("step_-000005"), -1);
}

static void test_commit_round_trip(void **state) {
    (void)state;
    char run[512], dir[1024], path[1024], found[1024], latest[64];
    make_tmp_dir(run, sizeof run);
    save_step(run, 3, 5, 0, 1);
    step_path(dir, sizeof dir, run, 3, "");
    step_path(path, sizeof path, run, 3, ".tmp");
    assert_true(fs_is_dir(dir));
    assert_false(file_size(path) >= 0);
    read_latest(run, latest, sizeof latest);
    assert_string_equal(latest, "step_0000003\n");

    fmt_path(path, sizeof path, "%s/manifest.json", dir);
    json_error_t je;
    json_t *m = json_load_file(path, 0, &je);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "format")), "cispo-checkpoint");
    assert_int_equal(json_integer_value(json_object_get(m, "version")), 1);
    assert_int_equal(json_integer_value(json_object_get(m, "step")), 3);
    assert_non_null(json_string_value(json_object_get(m, "cispo")));
    json_t *files = json_object_get(m, "files");
    assert_int_equal(json_object_size(files), 3);
    assert_manifest_entry(files, dir, "a.bin");
    assert_manifest_entry(files, dir, "b.bin");
    assert_manifest_entry(files, dir, "model.h5");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(files, "b.bin"), "bytes")), b_bytes(3));
    json_decref(m);

    assert_int_equal(ckpt_verify(dir), 0);
    assert_int_equal(ckpt_find_latest(run, found, sizeof found), 0);
    assert_string_equal(found, dir);
    assert_int_equal(ckpt_step_of(found), 3);

    /* The HDF5 file reads back bit for bit. */
    float want[4096], got[4096];
    int64_t dims[2] = {64, 64};
    rng_fill_normal(want, 4096, SEED, 1003, 0.0f, 1.0f);
    H5File f;
    fmt_path(path, sizeof path, "%s/model.h5", dir);
    assert_int_equal(h5_open(&f, path), 0);
    assert_int_equal(h5_read_f32(&f, "model/w", got, 2, dims), 0);
    assert_int_equal(h5_close(&f), 0);
    assert_memory_equal(want, got, sizeof want);

    /* A second commit moves latest; the first stays valid. */
    save_step(run, 4, 5, 0, 0);
    read_latest(run, latest, sizeof latest);
    assert_string_equal(latest, "step_0000004\n");
    assert_int_equal(ckpt_verify(dir), 0);
    rm_tree(run);
}

static void test_path_abort_and_errors(void **state) {
    (void)state;
    char run[512], path[1024], latest[64];
    make_tmp_dir(run, sizeof run);
    CkptWriter w;
    assert_int_equal(ckpt_begin(&w, run, -1), ERR_RANGE);
    assert_int_equal(ckpt_begin(&w, run, 1), 0);
    assert_int_equal(ckpt_path(&w, "a/b", path, sizeof path), ERR_ARG);
    assert_int_equal(ckpt_path(&w, "manifest.json", path, sizeof path), ERR_ARG);
    assert_int_equal(ckpt_path(&w, "", path, sizeof path), ERR_ARG);
    assert_int_equal(ckpt_path(&w, "x.bin", path, sizeof path), 0);
    write_random_file(path, 10, SEED, 1);
    ckpt_abort(&w);
    ckpt_abort(&w);
    step_path(path, sizeof path, run, 1, ".tmp");
    assert_int_equal(file_size(path), -1);

    /* begin replaces a stale .tmp of the same step (its file is gone from the manifest). */
    save_step(run, 1, 5, 0, 0);
    assert_int_equal(ckpt_begin(&w, run, 2), 0);
    assert_int_equal(ckpt_path(&w, "junk.bin", path, sizeof path), 0);
    write_random_file(path, 10, SEED, 2);
    stage_step(&w, run, 2, 0);
    assert_int_equal(ckpt_commit(&w, 5, 0), 0);
    step_path(path, sizeof path, run, 2, "/junk.bin");
    assert_int_equal(file_size(path), -1);

    /* A sub-directory is refused; nothing changes. */
    stage_step(&w, run, 3, 0);
    fmt_path(path, sizeof path, "%s/sub", w.tmp_dir);
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(ckpt_commit(&w, 5, 0), ERR_IO);
    assert_non_null(strstr(err_msg(), "sub-directory"));
    assert_non_null(strstr(err_msg(), "step 3"));
    read_latest(run, latest, sizeof latest);
    assert_string_equal(latest, "step_0000002\n");
    fmt_path(path, sizeof path, "%s/checkpoints", run);
    assert_int_equal(count_suffix(path, ".tmp"), 0);
    step_path(path, sizeof path, run, 3, "");
    assert_int_equal(file_size(path), -1);

    /* Nothing to find in an empty run directory. */
    char other[512], found[1024];
    make_tmp_dir(other, sizeof other);
    assert_int_equal(ckpt_find_latest(other, found, sizeof found), ERR_NOTFOUND);
    assert_int_equal(ckpt_cleanup_stale(other), 0);
    rm_tree(other);
    rm_tree(run);
}

/* Step numbers of the committed directories, as a bit set (steps < 64). */
static uint64_t committed_set(const char *run) {
    uint64_t set = 0;
    for (long s = 0; s < 64; s++) {
        char p[1024];
        step_path(p, sizeof p, run, s, "");
        if (fs_is_dir(p)) set |= 1ull << s;
    }
    return set;
}

static void test_retention(void **state) {
    (void)state;
    char run[512], latest[64];
    make_tmp_dir(run, sizeof run);
    for (long s = 1; s <= 12; s++) save_step(run, s, 2, 5, 0);
    assert_int_equal(committed_set(run), (1ull << 5) | (1ull << 10) | (1ull << 11) | (1ull << 12));
    read_latest(run, latest, sizeof latest);
    assert_string_equal(latest, "step_0000012\n");
    /* keep_every <= 0 keeps none for that reason; keep_last 0 still keeps latest. */
    save_step(run, 13, 0, 0, 0);
    assert_int_equal(committed_set(run), 1ull << 13);
    /* Steps above the one committed (an abandoned timeline) are left alone. */
    save_step(run, 20, 1, 0, 0);
    save_step(run, 14, 1, 0, 0);
    assert_int_equal(committed_set(run), (1ull << 14) | (1ull << 20));
    rm_tree(run);
}

/* ---- fault injection ------------------------------------------------------------------------ */

static int g_calls;       /* protocol calls seen by the hook */
static int g_fail_at;     /* fail call number g_fail_at (1-based); 0: never */
static int g_persistent;  /* also fail every call after it */
static int g_errno;       /* errno to inject */
static char g_ops[64][16]; /* ops seen, for the call-count check */

static int fault_hook(const char *op, const char *path) {
    (void)path;
    g_calls++;
    if (g_calls <= 64) fmt_path(g_ops[g_calls - 1], sizeof g_ops[0], "%s", op);
    if (g_fail_at > 0 && (g_calls == g_fail_at || (g_persistent && g_calls > g_fail_at))) return g_errno;
    return 0;
}

/* Number of hooked calls of a successful commit of step `step` (the run is left with it). */
static int count_commit_calls(const char *run, long step) {
    g_calls = 0;
    g_fail_at = 0;
    ckpt_set_fault_hook(fault_hook);
    save_step(run, step, 10, 0, 0);
    ckpt_set_fault_hook(NULL);
    return g_calls;
}

/* After a failed commit of `step`: no .tmp/.old, latest names `prev`, which verifies and whose
 * a.bin has the content written for `prev_content_step`. */
static void assert_state_intact(const char *run, long step, long prev, long prev_content_step) {
    char root[1024], dir[1024], latest[64], want[64], found[1024];
    fmt_path(root, sizeof root, "%s/checkpoints", run);
    assert_int_equal(count_suffix(root, ".tmp"), 0);
    assert_int_equal(count_suffix(root, ".old"), 0);
    read_latest(run, latest, sizeof latest);
    fmt_path(want, sizeof want, "step_%07ld\n", prev);
    assert_string_equal(latest, want);
    step_path(dir, sizeof dir, run, prev, "");
    assert_int_equal(ckpt_verify(dir), 0);
    assert_int_equal(ckpt_find_latest(run, found, sizeof found), 0);
    assert_string_equal(found, dir);
    assert_int_equal(file_size(dir) >= 0, 1);
    char a[1024];
    fmt_path(a, sizeof a, "%s/a.bin", dir);
    assert_int_equal(file_size(a), (long)a_bytes(prev_content_step));
    if (step != prev) {
        step_path(dir, sizeof dir, run, step, "");
        assert_int_equal(file_size(dir), -1);
    }
}

/* Fail each of the n hooked calls of a commit of `step` in turn (with each errno, once and
 * persistently) and check the previous checkpoint `prev` survives. */
static void fail_every_call(const char *run, long step, long prev, long prev_content_step, int n) {
    const int errnos[2] = {ENOSPC, EIO};
    for (int persistent = 0; persistent < 2; persistent++)
        for (int e = 0; e < 2; e++)
            for (int k = 1; k <= n; k++) {
                CkptWriter w;
                stage_step(&w, run, step, 0);
                if (step == prev) { /* a re-save: new content of another size */
                    char a[1024];
                    assert_int_equal(ckpt_path(&w, "a.bin", a, sizeof a), 0);
                    write_random_file(a, 123, SEED, 99);
                }
                g_calls = 0;
                g_fail_at = k;
                g_errno = errnos[e];
                g_persistent = persistent;
                ckpt_set_fault_hook(fault_hook);
                int rc = ckpt_commit(&w, 10, 0);
                ckpt_set_fault_hook(NULL);
                assert_int_equal(rc, ERR_IO);
                assert_non_null(strstr(err_msg(), strerror(errnos[e])));
                char want[64];
                fmt_path(want, sizeof want, "step %ld", step);
                assert_non_null(strstr(err_msg(), want));
                assert_non_null(strstr(err_msg(), run)); /* the path */
                assert_false(w.open);
                assert_state_intact(run, step, prev, prev_content_step);
            }
}

static void test_fault_every_call(void **state) {
    (void)state;
    char run[512];
    make_tmp_dir(run, sizeof run);
    save_step(run, 1, 10, 0, 0);
    /* 2 file fsyncs; manifest write, fsync, rename; dir fsync; dir rename; root fsync; latest
     * write, fsync, rename; root fsync. */
    int n = count_commit_calls(run, 2);
    assert_int_equal(n, 12);
    const char *expect[12] = {"fsync", "fsync", "write", "fsync", "rename", "fsync",
                              "rename", "fsync", "write", "fsync", "rename", "fsync"};
    for (int i = 0; i < 12; i++) assert_string_equal(g_ops[i], expect[i]);

    /* A new step 3 on top of step 2. */
    fail_every_call(run, 3, 2, 2, n);
    /* Re-saving step 2 (after a resume): one more rename (step_2 aside to step_2.old); the old
     * step 2 must survive every failure, with its old content. */
    fail_every_call(run, 2, 2, 2, n + 1);
    rm_tree(run);
}

static void test_fault_resave_succeeds(void **state) {
    (void)state;
    char run[512], dir[1024], a[1024], root[1024];
    make_tmp_dir(run, sizeof run);
    save_step(run, 1, 10, 0, 0);
    save_step(run, 2, 10, 0, 0);
    /* Re-save step 2 with a different a.bin; the count includes the rename aside. */
    CkptWriter w;
    stage_step(&w, run, 2, 0);
    assert_int_equal(ckpt_path(&w, "a.bin", a, sizeof a), 0);
    write_random_file(a, 123, SEED, 99);
    g_calls = 0;
    g_fail_at = 0;
    ckpt_set_fault_hook(fault_hook);
    assert_int_equal(ckpt_commit(&w, 10, 0), 0);
    ckpt_set_fault_hook(NULL);
    assert_int_equal(g_calls, 13);
    step_path(dir, sizeof dir, run, 2, "");
    fmt_path(a, sizeof a, "%s/a.bin", dir);
    assert_int_equal(file_size(a), 123);
    assert_int_equal(ckpt_verify(dir), 0);
    fmt_path(root, sizeof root, "%s/checkpoints", run);
    assert_int_equal(count_suffix(root, ".old"), 0);
    rm_tree(run);
}

/* ---- corruption ----------------------------------------------------------------------------- */

typedef struct {
    char path[1024];
    unsigned char *data;
    size_t n;
} Backup;

static void backup_take(Backup *b, const char *dir, const char *name) {
    fmt_path(b->path, sizeof b->path, "%s/%s", dir, name);
    b->data = read_file_bytes(b->path, &b->n);
}

static void backup_restore(const Backup *b) { write_file_bytes(b->path, b->data, b->n); }

/* ckpt_verify(dir) fails with `code` and a message naming dir and containing `needle`. */
static void assert_verify_fails(const char *dir, int code, const char *needle) {
    int rc = ckpt_verify(dir);
    if (rc != code || strstr(err_msg(), needle) == NULL || strstr(err_msg(), dir) == NULL)
        fprintf(stderr, "verify rc %d, message: %s (wanted '%s')\n", rc, err_msg(), needle);
    assert_int_equal(rc, code);
    assert_non_null(strstr(err_msg(), needle));
    assert_non_null(strstr(err_msg(), dir));
}

static void test_corruption_detected(void **state) {
    (void)state;
    char run[512], dir[1024], path[1024], want[256];
    make_tmp_dir(run, sizeof run);
    save_step(run, 2, 5, 0, 1);
    step_path(dir, sizeof dir, run, 2, "");
    Backup a, b, h, m;
    backup_take(&a, dir, "a.bin");
    backup_take(&b, dir, "b.bin");
    backup_take(&h, dir, "model.h5");
    backup_take(&m, dir, "manifest.json");

    uint64_t r = rng_block(SEED, 7, 0).v[0];
    xor_byte(a.path, (long)(r % a.n), (unsigned char)(1 + r % 255));
    assert_verify_fails(dir, ERR_FORMAT, "a.bin: content hash mismatch");
    backup_restore(&a);
    assert_int_equal(ckpt_verify(dir), 0);

    assert_int_equal(truncate(b.path, (off_t)b.n - 6), 0);
    fmt_path(want, sizeof want, "b.bin: size %zu != manifest %zu", b.n - 6, b.n);
    assert_verify_fails(dir, ERR_FORMAT, want);
    backup_restore(&b);

    assert_int_equal(unlink(h.path), 0);
    assert_verify_fails(dir, ERR_NOTFOUND, "model.h5: listed in the manifest but missing");
    backup_restore(&h);

    fmt_path(path, sizeof path, "%s/x", dir);
    write_random_file(path, 5, SEED, 5);
    assert_verify_fails(dir, ERR_FORMAT, "extra file 'x' not in the manifest");
    unlink(path);

    assert_int_equal(unlink(m.path), 0);
    assert_verify_fails(dir, ERR_NOTFOUND, "missing manifest.json");
    backup_restore(&m);

    /* The manifest's own content: a changed value nothing else checks ("cispo"). */
    char *cispo = strstr((char *)m.data, "\"cispo\": \"");
    assert_non_null(cispo);
    xor_byte(m.path, (long)((unsigned char *)cispo - m.data) + 11, 0x01);
    assert_verify_fails(dir, ERR_FORMAT, "manifest.json: self-hash mismatch");
    backup_restore(&m);

    /* A checkpoint renamed to another step. */
    step_path(path, sizeof path, run, 7, "");
    assert_int_equal(rename(dir, path), 0);
    assert_verify_fails(path, ERR_FORMAT, "step 2 != directory step 7");
    assert_int_equal(rename(path, dir), 0);
    assert_int_equal(ckpt_verify(dir), 0);
    assert_int_equal(ckpt_verify(path), ERR_NOTFOUND);

    free(a.data);
    free(b.data);
    free(h.data);
    free(m.data);
    rm_tree(run);
}

static void test_random_bit_flips(void **state) {
    (void)state;
    char run[512], dir[1024];
    make_tmp_dir(run, sizeof run);
    save_step(run, 1, 5, 0, 1);
    step_path(dir, sizeof dir, run, 1, "");
    const char *names[4] = {"a.bin", "b.bin", "model.h5", "manifest.json"};
    Backup bk[4];
    for (int i = 0; i < 4; i++) backup_take(&bk[i], dir, names[i]);
    int detected = 0, per_file[4] = {0};
    for (int t = 0; t < 20; t++) {
        Philox4 r = rng_block(SEED, 11, (uint64_t)t);
        int f = (int)(r.v[0] % 4);
        long off = (long)(r.v[1] % bk[f].n);
        unsigned char mask = (unsigned char)(1u << (r.v[2] % 8));
        xor_byte(bk[f].path, off, mask);
        int rc = ckpt_verify(dir);
        if (rc != 0) detected++;
        else fprintf(stderr, "bit flip NOT detected: %s offset %ld mask 0x%02x\n", names[f], off, mask);
        per_file[f]++;
        xor_byte(bk[f].path, off, mask);
        assert_int_equal(ckpt_verify(dir), 0);
    }
    printf("bit flips: %d/20 detected (a.bin %d, b.bin %d, model.h5 %d, manifest.json %d)\n", detected, per_file[0],
           per_file[1], per_file[2], per_file[3]);
    assert_int_equal(detected, 20);
    /* Every bit of the manifest, one at a time, is detected too. */
    int manifest_missed = 0;
    for (size_t off = 0; off < bk[3].n; off++)
        for (int bit = 0; bit < 8; bit++) {
            xor_byte(bk[3].path, (long)off, (unsigned char)(1u << bit));
            manifest_missed += ckpt_verify(dir) == 0;
            xor_byte(bk[3].path, (long)off, (unsigned char)(1u << bit));
        }
    printf("manifest.json: %zu single-bit flips, %d missed\n", bk[3].n * 8, manifest_missed);
    assert_int_equal(manifest_missed, 0);
    for (int i = 0; i < 4; i++) free(bk[i].data);
    rm_tree(run);
}

/* A fault inside an HDF5 file that the manifest hashed as is (corrupted before the commit) is
 * still caught: ckpt_verify reads every dataset through h5io. */
static void test_h5_checked_in_full(void **state) {
    (void)state;
    char run[512], path[1024], dir[1024];
    make_tmp_dir(run, sizeof run);
    CkptWriter w;
    assert_int_equal(ckpt_begin(&w, run, 1), 0);
    enum { N = 65536 };
    float *x = malloc(N * sizeof(float));
    assert_non_null(x);
    rng_fill_normal(x, N, SEED, 3, 0.0f, 1.0f);
    int64_t dims[1] = {N};
    H5File f;
    assert_int_equal(ckpt_path(&w, "model.h5", path, sizeof path), 0);
    assert_int_equal(h5_create(&f, path), 0);
    assert_int_equal(h5_write_f32(&f, "w", x, 1, dims), 0);
    assert_int_equal(h5_close(&f), 0);
    free(x);
    long n = file_size(path);
    xor_byte(path, n / 2, 0x10);
    assert_int_equal(ckpt_commit(&w, 5, 0), 0);
    step_path(dir, sizeof dir, run, 1, "");
    int rc = ckpt_verify(dir);
    fprintf(stderr, "corrupt HDF5 payload: %s\n", err_msg());
    assert_int_equal(rc, ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "model.h5"));
    assert_null(strstr(err_msg(), "hash mismatch"));
    rm_tree(run);
}

static void write_latest_text(const char *run, const char *text) {
    char path[1024];
    fmt_path(path, sizeof path, "%s/checkpoints/latest", run);
    write_file_bytes(path, text, strlen(text));
}

/* ckpt_find_latest returns step `step` and logs `needle` (when not NULL). */
static void assert_find(const char *run, long step, const char *needle) {
    char found[1024], want[1024];
    StderrCapture cap;
    capture_begin(&cap);
    int rc = ckpt_find_latest(run, found, sizeof found);
    char *log = capture_end(&cap);
    assert_int_equal(rc, 0);
    step_path(want, sizeof want, run, step, "");
    assert_string_equal(found, want);
    if (needle != NULL) assert_non_null(strstr(log, needle));
    free(log);
}

static void test_find_latest_falls_back(void **state) {
    (void)state;
    char run[512], dir2[1024], dir3[1024];
    make_tmp_dir(run, sizeof run);
    save_step(run, 1, 5, 0, 0);
    save_step(run, 2, 5, 0, 1);
    save_step(run, 3, 5, 0, 0);
    step_path(dir2, sizeof dir2, run, 2, "");
    step_path(dir3, sizeof dir3, run, 3, "");
    Backup a3;
    backup_take(&a3, dir3, "a.bin");
    xor_byte(a3.path, 17, 0x40);
    /* latest (3) is corrupt: rejected by name and reason, step 2 used. */
    assert_find(run, 2, "checkpoint rejected: ");
    assert_find(run, 2, "step_0000003: a.bin: content hash mismatch");
    /* latest itself garbage: said so; the newest valid directory is used. */
    write_latest_text(run, "st\x01p_00x\n");
    assert_find(run, 2, "is corrupt");
    backup_restore(&a3);
    assert_find(run, 3, "is corrupt");
    /* latest naming a directory that does not exist: skipped with a warning. */
    write_latest_text(run, "step_0000009\n");
    assert_find(run, 3, "step_0000009, which does not exist");
    /* Only candidates older than a rejected latest: latest=2 corrupt -> 1 (not 3). */
    write_latest_text(run, "step_0000002\n");
    Backup h2;
    backup_take(&h2, dir2, "model.h5");
    assert_int_equal(truncate(h2.path, (off_t)h2.n / 2), 0);
    assert_find(run, 1, "model.h5: size");
    backup_restore(&h2);
    assert_find(run, 2, NULL);
    /* Nothing valid at all. */
    char found[1024];
    for (long s = 1; s <= 3; s++) {
        char m[1024];
        step_path(m, sizeof m, run, s, "/manifest.json");
        unlink(m);
    }
    StderrCapture cap;
    capture_begin(&cap);
    assert_int_equal(ckpt_find_latest(run, found, sizeof found), ERR_NOTFOUND);
    free(capture_end(&cap));
    free(a3.data);
    free(h2.data);
    rm_tree(run);
}

static void test_cleanup_stale(void **state) {
    (void)state;
    char run[512], root[1024], path[1024], path2[1024], found[1024];
    make_tmp_dir(run, sizeof run);
    fmt_path(root, sizeof root, "%s/checkpoints", run);
    save_step(run, 1, 5, 0, 0);
    save_step(run, 2, 5, 0, 0);
    save_step(run, 4, 5, 0, 0);
    /* step 4 left aside by an interrupted re-save: step_0000004 missing, .old complete. */
    step_path(path, sizeof path, run, 4, "");
    step_path(path2, sizeof path2, run, 4, ".old");
    assert_int_equal(rename(path, path2), 0);
    /* a stale .old next to its committed step, a stale .tmp, a stale latest.tmp. */
    step_path(path, sizeof path, run, 1, ".old");
    assert_int_equal(mkdir(path, 0755), 0);
    step_path(path, sizeof path, run, 3, ".tmp");
    assert_int_equal(mkdir(path, 0755), 0);
    step_path(path, sizeof path, run, 3, ".tmp/model.h5");
    write_random_file(path, 100, SEED, 1);
    fmt_path(path, sizeof path, "%s/latest.tmp", root);
    write_random_file(path, 3, SEED, 1);

    assert_int_equal(ckpt_cleanup_stale(run), 2);
    assert_int_equal(count_suffix(root, ".tmp"), 0);
    assert_int_equal(count_suffix(root, ".old"), 0);
    assert_int_equal(committed_set(run), (1ull << 1) | (1ull << 2) | (1ull << 4));
    assert_int_equal(ckpt_find_latest(run, found, sizeof found), 0);
    assert_int_equal(ckpt_step_of(found), 4);
    assert_int_equal(ckpt_cleanup_stale(run), 0);
    rm_tree(run);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_of),
        cmocka_unit_test(test_commit_round_trip),
        cmocka_unit_test(test_path_abort_and_errors),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_fault_every_call),
        cmocka_unit_test(test_fault_resave_succeeds),
        cmocka_unit_test(test_corruption_detected),
        cmocka_unit_test(test_random_bit_flips),
        cmocka_unit_test(test_h5_checked_in_full),
        cmocka_unit_test(test_find_latest_falls_back),
        cmocka_unit_test(test_cleanup_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

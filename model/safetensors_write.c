/* model/safetensors_write.c: the safetensors writer (see safetensors.h): one file with the tensors in
 * the given order, or a sharded directory with model.safetensors.index.json; every file is written
 * under a temporary name, fsynced and renamed. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "model/safetensors.h"
#include "model/safetensors_internal.h"

/* ---------------------------------------------------------------------------------------------
 * Writing */

/* Atomic file write: open "<path>.tmp.<pid>", then commit (flush, fsync, rename) or abort. */
typedef struct {
    FILE *f;
    char *tmp;
    const char *path;
} AtomicFile;

static int atomic_open(AtomicFile *af, const char *path) {
    size_t n = strlen(path) + 32;
    af->path = path;
    af->tmp = malloc(n);
    af->f = NULL;
    if (!af->tmp) return err_set(ERR_NOMEM, "%s: out of memory", path);
    snprintf(af->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int rc = err_set(ERR_IO, "%s: cannot create: %s", af->tmp, strerror(errno));
        free(af->tmp);
        af->tmp = NULL;
        return rc;
    }
    return 0;
}

static void atomic_abort(AtomicFile *af) {
    if (af->f) fclose(af->f);
    if (af->tmp) unlink(af->tmp);
    free(af->tmp);
    af->f = NULL, af->tmp = NULL;
}

static int atomic_commit(AtomicFile *af) {
    int ok = fflush(af->f) == 0 && fsync(fileno(af->f)) == 0;
    int saved = errno;
    ok = (fclose(af->f) == 0) && ok;
    af->f = NULL;
    if (ok && rename(af->tmp, af->path) != 0) ok = 0, saved = errno;
    if (!ok) {
        int rc = err_set(ERR_IO, "%s: write/fsync/rename failed: %s", af->path, strerror(saved ? saved : errno));
        atomic_abort(af);
        return rc;
    }
    free(af->tmp);
    af->tmp = NULL;
    return 0;
}

static uint64_t write_numel(const StWriteTensor *t) {
    CHECK(t->name && t->name[0] && strcmp(t->name, "__metadata__") != 0, "bad tensor name for st_write");
    CHECK(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "tensor %s: ndim %d", t->name, t->ndim);
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        CHECK(t->shape[i] >= 0, "tensor %s: shape[%d] = %lld", t->name, i, (long long)t->shape[i]);
        CHECK(!__builtin_mul_overflow(n, (uint64_t)t->shape[i], &n), "tensor %s: numel overflows", t->name);
    }
    CHECK(n == 0 || t->data, "tensor %s: NULL data", t->name);
    return n;
}

/* The header JSON (compact, tensors in order) padded with spaces to a multiple of 8 bytes. */
static char *build_header(const StWriteTensor *t, int n, StDtype dtype, size_t *len) {
    json_t *root = json_object(), *md = json_object();
    json_object_set_new(md, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", md);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = write_numel(&t[i]) * st_dtype_size(dtype);
        CHECK(json_object_get(root, t[i].name) == NULL, "duplicate tensor name %s in st_write", t[i].name);
        json_t *e = json_object(), *shape = json_array(), *offs = json_array();
        for (int d = 0; d < t[i].ndim; d++) json_array_append_new(shape, json_integer(t[i].shape[d]));
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + bytes)));
        json_object_set_new(e, "dtype", json_string(st_dtype_name(dtype)));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets", offs);
        CHECK(json_object_set_new(root, t[i].name, e) == 0, "tensor name %s is not valid UTF-8", t[i].name);
        off += bytes;
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    CHECK(s != NULL, "json_dumps failed (invalid UTF-8 in a tensor name?)");
    size_t raw = strlen(s), padded = (raw + 7) & ~(size_t)7;
    char *out = realloc(s, padded + 1);
    CHECK(out != NULL, "out of memory padding a %zu-byte header", padded);
    memset(out + raw, ' ', padded - raw);
    out[padded] = 0;
    *len = padded;
    return out;
}

static int write_data(FILE *f, const float *x, uint64_t n, StDtype dtype) {
    if (dtype == ST_F32) return n == 0 || fwrite(x, 4, (size_t)n, f) == (size_t)n ? 0 : -1;
    uint16_t buf[ST_CHUNK_ELEMS];
    for (uint64_t i = 0; i < n; i += ST_CHUNK_ELEMS) {
        size_t m = (size_t)(n - i < ST_CHUNK_ELEMS ? n - i : ST_CHUNK_ELEMS);
        for (size_t k = 0; k < m; k++) buf[k] = dtype == ST_BF16 ? st_f32_to_bf16(x[i + k]) : st_f32_to_f16(x[i + k]);
        if (fwrite(buf, 2, m, f) != m) return -1;
    }
    return 0;
}

int st_write(const char *path, const StWriteTensor *t, int n, StDtype dtype) {
    CHECK(dtype == ST_F32 || dtype == ST_BF16 || dtype == ST_F16, "st_write: dtype %d not F32/BF16/F16", (int)dtype);
    CHECK(n >= 0 && (n == 0 || t), "st_write: %d tensors", n);
    size_t hlen = 0;
    char *hdr = build_header(t, n, dtype, &hlen);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (rc != 0) {
        free(hdr);
        return rc;
    }
    unsigned char lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int bad = fwrite(lenb, 1, 8, af.f) != 8 || fwrite(hdr, 1, hlen, af.f) != hlen;
    for (int i = 0; i < n && !bad; i++) bad = write_data(af.f, t[i].data, write_numel(&t[i]), dtype) != 0;
    free(hdr);
    if (bad) {
        rc = err_set(ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
        atomic_abort(&af);
        return rc;
    }
    return atomic_commit(&af);
}

static int write_index(const char *dir, const StWriteTensor *t, int n, const int *shard_of, int n_shards,
                       uint64_t total) {
    json_t *root = json_object(), *md = json_object(), *wm = json_object();
    json_object_set_new(md, "total_size", json_integer((json_int_t)total));
    json_object_set_new(root, "metadata", md);
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", shard_of[i] + 1, n_shards);
        json_object_set_new(wm, t[i].name, json_string(name));
    }
    json_object_set_new(root, "weight_map", wm);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    CHECK(text != NULL, "json_dumps of the index failed");
    char *path = st_path_join(dir, ST_INDEX_NAME);
    AtomicFile af;
    int rc = path ? atomic_open(&af, path) : err_set(ERR_NOMEM, "out of memory");
    if (rc == 0) {
        size_t len = strlen(text);
        if (fwrite(text, 1, len, af.f) != len || fputc('\n', af.f) == EOF) {
            rc = err_set(ERR_IO, "%s: write failed: %s", af.tmp, strerror(errno));
            atomic_abort(&af);
        } else {
            rc = atomic_commit(&af);
        }
    }
    free(path);
    free(text);
    return rc;
}

/* Remove a stale file that would shadow (or duplicate) what was just written. */
static void remove_stale(const char *dir, const char *name) {
    char *p = st_path_join(dir, name);
    if (p) unlink(p);
    free(p);
}

int st_write_dir(const char *dir, const StWriteTensor *t, int n, StDtype dtype, int64_t max_shard_bytes) {
    CHECK(dtype == ST_F32 || dtype == ST_BF16 || dtype == ST_F16, "st_write_dir: bad dtype %d", (int)dtype);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return err_set(ERR_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    uint64_t total = 0;
    for (int i = 0; i < n; i++) total += write_numel(&t[i]) * st_dtype_size(dtype);
    if (max_shard_bytes <= 0 || total <= (uint64_t)max_shard_bytes) {
        char *p = st_path_join(dir, ST_SINGLE_NAME);
        int rc = p ? st_write(p, t, n, dtype) : err_set(ERR_NOMEM, "out of memory");
        free(p);
        if (rc == 0) remove_stale(dir, ST_INDEX_NAME);
        return rc;
    }
    /* Greedy packing in order; a tensor larger than the limit gets a shard of its own. */
    int *shard_of = malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    CHECK(shard_of != NULL, "out of memory for %d shard slots", n);
    int n_shards = 0;
    uint64_t cur = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = write_numel(&t[i]) * st_dtype_size(dtype);
        if (n_shards == 0 || (cur > 0 && cur + b > (uint64_t)max_shard_bytes)) n_shards++, cur = 0;
        shard_of[i] = n_shards - 1;
        cur += b;
    }
    int rc = 0;
    char name[64];
    for (int s = 0, first = 0; s < n_shards && rc == 0; s++) {
        int last = first;
        while (last < n && shard_of[last] == s) last++;
        snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        char *p = st_path_join(dir, name);
        rc = p ? st_write(p, t + first, last - first, dtype) : err_set(ERR_NOMEM, "out of memory");
        free(p);
        first = last;
    }
    if (rc == 0) rc = write_index(dir, t, n, shard_of, n_shards, total);
    if (rc == 0) remove_stale(dir, ST_SINGLE_NAME);
    free(shard_of);
    return rc;
}

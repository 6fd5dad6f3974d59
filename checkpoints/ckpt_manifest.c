/* checkpoints/ckpt_manifest.c: manifest.json of a checkpoint directory, written at commit and
 * checked by ckpt_verify.
 *
 * Format (version 1), keys sorted, two-space indent:
 *   {"cispo": "<cispo_version()>", "files": {"model.h5": {"bytes": N, "xxh3_128": "<32 hex>"}, ...},
 *    "format": "cispo-checkpoint", "manifest_xxh3_128": "<32 hex>", "step": N, "version": 1}
 * File hashes are XXH3-128 of the whole content (streamed), written as the canonical big-endian
 * digest in lowercase hex. manifest_xxh3_128 hashes the manifest itself: the compact, key-sorted
 * serialisation of the object without that key, so a flipped bit anywhere in manifest.json (even in
 * a value nothing else checks, such as "cispo") is detected; other flips break the JSON or a key.
 *
 * ckpt_verify checks, in order: the directory and manifest exist; the manifest parses (duplicate
 * keys rejected) with the right format, version, self-hash and a step equal to the directory's;
 * no entry of the directory is missing from the manifest; every listed file exists with the listed
 * size and hash; every *.h5 file reads in full through h5io (Fletcher-32, zstd).
 */
#include "checkpoints/ckpt_manifest.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "checkpoints/ckpt.h"
#include "checkpoints/h5io.h"
#include "core/error.h"
#include "core/fs.h"
#include "core/version.h"

#define HASH_HEX_BYTES 33 /* 32 hex digits + NUL */
#define HASH_CHUNK_BYTES (1u << 20)
#define SELF_HASH_KEY "manifest_xxh3_128"

static void hash_hex(XXH128_hash_t h, char hex[HASH_HEX_BYTES]) {
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    for (size_t i = 0; i < sizeof c.digest; i++) snprintf(hex + 2 * i, 3, "%02x", c.digest[i]);
}

/* XXH3-128 of a file's content, streamed in 1 MiB chunks; *bytes gets the length read. */
static int hash_file(const char *path, char hex[HASH_HEX_BYTES], long long *bytes) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return err_set(ERR_IO, "open %s: %s", path, strerror(errno));
    XXH3_state_t *st = XXH3_createState();
    unsigned char *buf = malloc(HASH_CHUNK_BYTES);
    CHECK(st != NULL && buf != NULL, "out of memory hashing %s", path);
    XXH3_128bits_reset(st);
    long long total = 0;
    size_t n;
    while ((n = fread(buf, 1, HASH_CHUNK_BYTES, f)) > 0) {
        XXH3_128bits_update(st, buf, n);
        total += (long long)n;
    }
    int failed = ferror(f);
    if (!failed) hash_hex(XXH3_128bits_digest(st), hex);
    XXH3_freeState(st);
    free(buf);
    fclose(f);
    if (failed) return err_set(ERR_IO, "read %s: I/O error", path);
    *bytes = total;
    return 0;
}

/* Self-hash of a manifest object, computed without the SELF_HASH_KEY member. */
static void manifest_self_hash(json_t *m, char hex[HASH_HEX_BYTES]) {
    json_t *copy = json_copy(m);
    CHECK(copy != NULL, "out of memory copying the manifest");
    json_object_del(copy, SELF_HASH_KEY);
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    CHECK(text != NULL, "out of memory serialising the manifest");
    hash_hex(XXH3_128bits(text, strlen(text)), hex);
    free(text);
    json_decref(copy);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the entries of dir other than the manifest; *names malloc'd (free_list). */
static int list_entries(const char *dir, char ***names, int *count) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL) return err_set(ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (strcmp(e->d_name, CKPT_MANIFEST_NAME) == 0) continue;
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            char **grown = realloc(*names, (size_t)cap * sizeof(char *));
            CHECK(grown != NULL, "out of memory listing %s", dir);
            *names = grown;
        }
        (*names)[*count] = strdup(e->d_name);
        CHECK((*names)[*count] != NULL, "out of memory listing %s", dir);
        (*count)++;
    }
    closedir(d);
    if (*count > 1) qsort(*names, (size_t)*count, sizeof(char *), cmp_str);
    return 0;
}

static void free_list(char **names, int count) {
    for (int i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* fsync and hash one file of the directory being committed, adding it to `files`. */
static int add_file(json_t *files, const char *dir, const char *name) {
    char path[4096], hex[HASH_HEX_BYTES];
    struct stat st;
    int rc = fs_join(path, sizeof path, dir, name);
    if (rc != 0) return ERR_IO;
    if (lstat(path, &st) != 0) return err_set(ERR_IO, "stat %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return err_set(ERR_IO, "%s is a sub-directory; a checkpoint holds plain files only", path);
    if (!S_ISREG(st.st_mode)) return err_set(ERR_IO, "%s is not a regular file", path);
    long long bytes = 0;
    rc = ckpt_fsync_path(path);
    if (rc == 0) rc = hash_file(path, hex, &bytes);
    if (rc != 0) return rc;
    json_t *entry = json_pack("{s:I, s:s}", "bytes", (json_int_t)bytes, "xxh3_128", hex);
    if (entry == NULL || json_object_set_new(files, name, entry) != 0)
        return err_set(ERR_IO, "%s: file name is not valid UTF-8", path);
    return 0;
}

static json_t *build_manifest(const char *dir, long step) {
    char **names;
    int n;
    if (list_entries(dir, &names, &n) != 0) return NULL;
    json_t *files = json_object();
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = add_file(files, dir, names[i]);
    free_list(names, n);
    if (rc != 0) {
        json_decref(files);
        return NULL;
    }
    json_t *m = json_pack("{s:s, s:i, s:I, s:s, s:o}", "format", CKPT_MANIFEST_FORMAT, "version",
                          CKPT_MANIFEST_VERSION, "step", (json_int_t)step, "cispo", cispo_version(), "files", files);
    CHECK(m != NULL, "cannot build the manifest object");
    char hex[HASH_HEX_BYTES];
    manifest_self_hash(m, hex);
    json_object_set_new(m, SELF_HASH_KEY, json_string(hex));
    return m;
}

int ckpt_manifest_write(const char *dir, long step) {
    json_t *m = build_manifest(dir, step);
    if (m == NULL) return ERR_IO;
    char *text = json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(m);
    CHECK(text != NULL, "out of memory serialising the manifest");
    char tmp[4096], final[4096];
    int rc = fs_join(final, sizeof final, dir, CKPT_MANIFEST_NAME);
    if (rc == 0) rc = fs_join(tmp, sizeof tmp, dir, CKPT_MANIFEST_NAME ".tmp");
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: the file ends with a newline */
    if (rc == 0) rc = ckpt_io_write_file(tmp, text, len + 1);
    free(text);
    if (rc == 0) rc = ckpt_io_rename(tmp, final);
    return rc != 0 ? ERR_IO : 0;
}

/* ---- verification --------------------------------------------------------------------------- */

static int is_hex32(const char *s) {
    if (strlen(s) != HASH_HEX_BYTES - 1) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

/* Everything but the file list: format, version, step, cispo, self-hash. */
static int check_header(json_t *m, const char *dir) {
    const char *format = json_string_value(json_object_get(m, "format"));
    json_t *version = json_object_get(m, "version"), *step = json_object_get(m, "step");
    const char *self = json_string_value(json_object_get(m, SELF_HASH_KEY));
    if (!json_is_object(m)) return err_set(ERR_FORMAT, "%s: manifest.json is not a JSON object", dir);
    if (format == NULL || strcmp(format, CKPT_MANIFEST_FORMAT) != 0)
        return err_set(ERR_FORMAT, "%s: manifest.json: \"format\" is not \"%s\"", dir, CKPT_MANIFEST_FORMAT);
    if (!json_is_integer(version) || json_integer_value(version) != CKPT_MANIFEST_VERSION)
        return err_set(ERR_FORMAT, "%s: manifest.json: \"version\" is not %d (this build reads version %d only)", dir,
                       CKPT_MANIFEST_VERSION, CKPT_MANIFEST_VERSION);
    if (!json_is_integer(step) || json_integer_value(step) < 0)
        return err_set(ERR_FORMAT, "%s: manifest.json: \"step\" is not a non-negative integer", dir);
    long dir_step = ckpt_step_of(dir);
    if (dir_step >= 0 && json_integer_value(step) != dir_step)
        return err_set(ERR_FORMAT, "%s: manifest.json: step %lld != directory step %ld", dir,
                       (long long)json_integer_value(step), dir_step);
    if (!json_is_string(json_object_get(m, "cispo")))
        return err_set(ERR_FORMAT, "%s: manifest.json: \"cispo\" (version string) missing", dir);
    if (!json_is_object(json_object_get(m, "files")))
        return err_set(ERR_FORMAT, "%s: manifest.json: \"files\" is not an object", dir);
    char hex[HASH_HEX_BYTES];
    manifest_self_hash(m, hex);
    if (self == NULL || strcmp(self, hex) != 0)
        return err_set(ERR_FORMAT, "%s: manifest.json: self-hash mismatch (\"%s\" missing or wrong)", dir,
                       SELF_HASH_KEY);
    return 0;
}

/* No entry of the directory outside the manifest (and no sub-directories). */
static int check_extras(json_t *files, const char *dir) {
    char **names;
    int n, rc = list_entries(dir, &names, &n);
    if (rc != 0) return ERR_FORMAT;
    for (int i = 0; i < n && rc == 0; i++)
        if (json_object_get(files, names[i]) == NULL)
            rc = err_set(ERR_FORMAT, "%s: extra file '%s' not in the manifest", dir, names[i]);
    free_list(names, n);
    return rc;
}

static int check_file(const char *dir, const char *name, json_t *entry) {
    json_t *bytes = json_object_get(entry, "bytes");
    const char *want = json_string_value(json_object_get(entry, "xxh3_128"));
    if (!json_is_integer(bytes) || json_integer_value(bytes) < 0 || want == NULL || !is_hex32(want))
        return err_set(ERR_FORMAT, "%s: manifest.json: entry '%s' needs \"bytes\" (integer) and \"xxh3_128\" (32 hex)",
                       dir, name);
    if (name[0] == '\0' || strchr(name, '/') != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
        strcmp(name, CKPT_MANIFEST_NAME) == 0)
        return err_set(ERR_FORMAT, "%s: manifest.json: bad file name '%s'", dir, name);
    char path[4096], hex[HASH_HEX_BYTES];
    struct stat st;
    if (fs_join(path, sizeof path, dir, name) != 0) return ERR_FORMAT;
    if (lstat(path, &st) != 0) return err_set(ERR_NOTFOUND, "%s: %s: listed in the manifest but missing", dir, name);
    if (!S_ISREG(st.st_mode)) return err_set(ERR_FORMAT, "%s: %s: not a regular file", dir, name);
    if ((long long)st.st_size != (long long)json_integer_value(bytes))
        return err_set(ERR_FORMAT, "%s: %s: size %lld != manifest %lld", dir, name, (long long)st.st_size,
                       (long long)json_integer_value(bytes));
    long long got_bytes = 0;
    if (hash_file(path, hex, &got_bytes) != 0) return err_wrap(ERR_FORMAT, "%s", dir);
    if (got_bytes != (long long)json_integer_value(bytes) || strcmp(hex, want) != 0)
        return err_set(ERR_FORMAT, "%s: %s: content hash mismatch", dir, name);
    return 0;
}

static int check_h5(const char *dir, const char *name) {
    size_t n = strlen(name);
    if (n < 3 || strcmp(name + n - 3, ".h5") != 0) return 0;
    char path[4096];
    if (fs_join(path, sizeof path, dir, name) != 0) return ERR_FORMAT;
    H5File f;
    int rc = h5_open(&f, path);
    if (rc == 0) {
        rc = h5_verify_all(&f);
        int rc_close = h5_close(&f);
        if (rc == 0) rc = rc_close;
    }
    return rc != 0 ? err_wrap(ERR_FORMAT, "%s: %s", dir, name) : 0;
}

int ckpt_verify(const char *ckpt_dir) {
    if (!fs_is_dir(ckpt_dir)) return err_set(ERR_NOTFOUND, "checkpoint %s: no such directory", ckpt_dir);
    char path[4096];
    if (fs_join(path, sizeof path, ckpt_dir, CKPT_MANIFEST_NAME) != 0) return ERR_FORMAT;
    if (!fs_exists(path)) return err_set(ERR_NOTFOUND, "%s: missing manifest.json", ckpt_dir);
    json_error_t je;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (m == NULL)
        return err_set(ERR_FORMAT, "%s: manifest.json line %d column %d: %s", ckpt_dir, je.line, je.column, je.text);
    int rc = check_header(m, ckpt_dir);
    json_t *files = json_object_get(m, "files");
    if (rc == 0) rc = check_extras(files, ckpt_dir);
    const char *name;
    json_t *entry;
    json_object_foreach(files, name, entry) {
        if (rc != 0) break;
        rc = check_file(ckpt_dir, name, entry);
    }
    json_object_foreach(files, name, entry) {
        if (rc != 0) break;
        rc = check_h5(ckpt_dir, name);
    }
    json_decref(m);
    return rc;
}

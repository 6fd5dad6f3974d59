/* model/safetensors.c: the safetensors reader (see safetensors.h); the writer is in safetensors_write.c.
 *
 * Reading: the 8-byte little-endian header length is checked against the file size and a 100 MiB
 * cap, the header bytes are checked for valid UTF-8 (so a bad tensor name is reported by name
 * rather than as a JSON error), then parsed by jansson with JSON_REJECT_DUPLICATES. Every entry is
 * validated (dtype, shape, offsets, size = numel x dtype size, inside the data section) and, per
 * file, the byte ranges are sorted and checked for overlap. Tensor data is only read on demand by
 * st_read_f32 (pread, converted in fixed-size chunks). A directory is opened through
 * model.safetensors.index.json ("weight_map"), keeping from each shard only the tensors the map
 * assigns to it. The archive's tensors are sorted by name so st_find is a binary search.
 *
 * Writing (safetensors_write.c): header JSON in the caller's order, contiguous offsets, padded with spaces to a multiple
 * of 8 bytes; data converted in chunks (BF16 and F16 round to nearest even); written to
 * "<path>.tmp.<pid>", flushed, fsynced and renamed over <path>.
 *
 * The host is little-endian (x86-64, aarch64), as the format is; a static check guards that.
 */
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "model/safetensors_internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes a little-endian host");

#define ST_MAX_HEADER_BYTES (100ull * 1024 * 1024)
#define ST_MAX_DIM_VALUE (1ll << 40) /* larger dims are treated as corrupt */

static const char *const k_dtype_names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"};
static const size_t k_dtype_sizes[] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};
#define ST_N_DTYPES ((int)(sizeof(k_dtype_names) / sizeof(k_dtype_names[0])))
/* Valid safetensors dtypes that cispo does not read: ERR_UNSUPPORTED rather than ERR_FORMAT. */
static const char *const k_other_dtypes[] = {"F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",
                                             "U16",     "U32",     "U64",     "C64"};
static const char k_known_dtypes[] = "F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL";

/* ---------------------------------------------------------------------------------------------
 * Number conversions */

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bf16_to_f32(uint16_t h) { return bits_to_f32((uint32_t)h << 16); }

/* Round to nearest even; NaN stays NaN (quiet bit forced so the payload cannot round to inf). */
uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0) { /* zero or subnormal: man x 2^-24, exact in float32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (man << 13));
    return bits_to_f32(sign | ((exp - 15 + 127) << 23) | (man << 13));
}

/* Round to nearest even, with float16 subnormals, overflow to inf, NaN kept quiet. */
uint16_t st_f32_to_f16(float f) {
    uint32_t u = f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu, man = u & 0x7fffffu;
    if (exp == 255) return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0));
    int e = (int)exp - 127;
    if (e > 15) return (uint16_t)(sign | 0x7c00u);
    if (e >= -14) { /* normal half; a carry out of the mantissa bumps the exponent (maybe to inf) */
        uint32_t h = ((uint32_t)(e + 15) << 10) | (man >> 13), rest = man & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) h++;
        return (uint16_t)(sign | h);
    }
    if (exp == 0) return sign; /* float32 subnormals are far below half's range */
    int shift = -1 - e;        /* value = (man | 2^23) * 2^(e-23) = q units of 2^-24 */
    if (shift > 24) return sign;
    uint32_t m = man | 0x800000u, q = m >> shift, rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rest > half || (rest == half && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/* ---------------------------------------------------------------------------------------------
 * Small helpers */

size_t st_dtype_size(StDtype d) {
    CHECK((int)d >= 0 && (int)d < ST_N_DTYPES, "bad StDtype %d", (int)d);
    return k_dtype_sizes[d];
}

const char *st_dtype_name(StDtype d) {
    CHECK((int)d >= 0 && (int)d < ST_N_DTYPES, "bad StDtype %d", (int)d);
    return k_dtype_names[d];
}

int64_t st_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static char *str_dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *st_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

/* Read exactly n bytes at offset off; returns 0, or -1 with errno set (0 on a short file). */
static int pread_full(int fd, void *buf, size_t n, uint64_t off) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            if (r == 0) errno = 0;
            return -1;
        }
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return 0;
}

static int open_error(const char *path) {
    int code = errno == ENOENT ? ERR_NOTFOUND : ERR_IO;
    return err_set(code, "%s: cannot open: %s", path, strerror(errno));
}

/* Length of the valid UTF-8 prefix of s[0..n) (n when all valid): no overlongs, no surrogates,
 * nothing above U+10FFFF. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xbf;
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) len = 2;
        else if (c >= 0xe0 && c <= 0xef) len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        else if (c >= 0xf0 && c <= 0xf4) len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        else return i;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
        i += len;
    }
    return n;
}

/* Report invalid UTF-8 at header byte `bad`, quoting the JSON string around it (the tensor name),
 * with non-ASCII bytes shown as \xNN. */
static int utf8_error(const char *path, const char *hdr, size_t len, size_t bad) {
    size_t b = bad, e = bad;
    while (b > 0 && hdr[b - 1] != '"') b--;
    while (e < len && hdr[e] != '"') e++;
    char shown[256];
    size_t k = 0;
    for (size_t i = b; i < e && k + 5 < sizeof(shown); i++) {
        unsigned char c = (unsigned char)hdr[i];
        if (c >= 0x20 && c < 0x7f) shown[k++] = (char)c;
        else k += (size_t)snprintf(shown + k, sizeof(shown) - k, "\\x%02x", c);
    }
    shown[k] = 0;
    return err_set(ERR_FORMAT, "%s: header string \"%s\" (file byte %zu) is not valid UTF-8 (tensor names must be)",
                   path, shown, bad + 8);
}

/* ---------------------------------------------------------------------------------------------
 * Header parsing */

static int dtype_from_name(const char *path, const char *tname, const char *s, StDtype *out) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(s, k_dtype_names[i]) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    for (size_t i = 0; i < sizeof(k_other_dtypes) / sizeof(k_other_dtypes[0]); i++)
        if (strcmp(s, k_other_dtypes[i]) == 0)
            return err_set(ERR_UNSUPPORTED, "%s: tensor '%s': dtype \"%s\" is not supported (readable: %s)", path,
                           tname, s, k_known_dtypes);
    return err_set(ERR_FORMAT, "%s: tensor '%s': unknown dtype \"%s\" (expected one of %s)", path, tname, s,
                   k_known_dtypes);
}

/* Read a non-negative JSON integer (element i of array a) bounded by `max`. */
static int get_u64(const json_t *v, uint64_t max, uint64_t *out) {
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    if (x < 0 || (uint64_t)x > max) return -1;
    *out = (uint64_t)x;
    return 0;
}

static int parse_shape(const char *path, const char *name, const json_t *shape, StTensor *t, uint64_t *numel) {
    if (!json_is_array(shape))
        return err_set(ERR_FORMAT, "%s: tensor '%s': \"shape\" must be an array of integers", path, name);
    size_t nd = json_array_size(shape);
    if (nd > ST_MAX_DIMS)
        return err_set(ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dims; at most %d are supported", path, name, nd,
                       ST_MAX_DIMS);
    t->ndim = (int)nd;
    *numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (get_u64(json_array_get(shape, i), (uint64_t)ST_MAX_DIM_VALUE, &d) != 0)
            return err_set(ERR_FORMAT, "%s: tensor '%s': shape[%zu] must be an integer in [0, 2^40]", path, name, i);
        t->shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(*numel, d, numel))
            return err_set(ERR_FORMAT, "%s: tensor '%s': the element count overflows 64 bits", path, name);
    }
    return 0;
}

/* Validate one header entry into t (t->name is set by the caller). */
static int parse_entry(const char *path, const char *name, const json_t *e, uint64_t data_bytes, StTensor *t) {
    if (!json_is_object(e)) return err_set(ERR_FORMAT, "%s: tensor '%s': entry must be a JSON object", path, name);
    const json_t *dt = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
    const json_t *offs = json_object_get(e, "data_offsets");
    if (!json_is_string(dt)) return err_set(ERR_FORMAT, "%s: tensor '%s': missing string \"dtype\"", path, name);
    if (!shape) return err_set(ERR_FORMAT, "%s: tensor '%s': missing \"shape\"", path, name);
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return err_set(ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" must be an array [begin, end]", path, name);
    int rc = dtype_from_name(path, name, json_string_value(dt), &t->dtype);
    uint64_t numel = 0, bytes = 0;
    if (rc == 0) rc = parse_shape(path, name, shape, t, &numel);
    if (rc != 0) return rc;
    if (__builtin_mul_overflow(numel, (uint64_t)k_dtype_sizes[t->dtype], &bytes))
        return err_set(ERR_FORMAT, "%s: tensor '%s': byte size overflows 64 bits", path, name);
    if (get_u64(json_array_get(offs, 0), (uint64_t)INT64_MAX, &t->begin) != 0 ||
        get_u64(json_array_get(offs, 1), (uint64_t)INT64_MAX, &t->end) != 0)
        return err_set(ERR_FORMAT, "%s: tensor '%s': data_offsets must be non-negative integers", path, name);
    if (t->end < t->begin)
        return err_set(ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before begin", path, name,
                       (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end - t->begin != bytes)
        return err_set(ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes but dtype %s x %llu elements "
                       "needs %llu",
                       path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)(t->end - t->begin), k_dtype_names[t->dtype], (unsigned long long)numel,
                       (unsigned long long)bytes);
    if (t->end > data_bytes)
        return err_set(ERR_FORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] run past the data section (%llu bytes)"
                       "\nHINT: the file is truncated or its header is wrong",
                       path, name, (unsigned long long)t->begin, (unsigned long long)t->end,
                       (unsigned long long)data_bytes);
    return 0;
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Non-empty byte ranges of one file must not overlap. */
static int check_overlaps(const char *path, StTensor *t, int n) {
    if (n < 2) return 0;
    const StTensor **ord = malloc((size_t)n * sizeof(*ord));
    if (!ord) return err_set(ERR_NOMEM, "%s: out of memory sorting %d tensors", path, n);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (t[i].end > t[i].begin) ord[m++] = &t[i];
    qsort(ord, (size_t)m, sizeof(*ord), cmp_begin);
    int rc = 0;
    for (int i = 1; i < m && rc == 0; i++)
        if (ord[i]->begin < ord[i - 1]->end)
            rc = err_set(ERR_FORMAT, "%s: tensor '%s' bytes [%llu, %llu) overlap tensor '%s' bytes [%llu, %llu)", path,
                         ord[i]->name, (unsigned long long)ord[i]->begin, (unsigned long long)ord[i]->end,
                         ord[i - 1]->name, (unsigned long long)ord[i - 1]->begin,
                         (unsigned long long)ord[i - 1]->end);
    free(ord);
    return rc;
}

/* Read and check the raw header of `path`: *hdr (malloc'd, hdr_len bytes), *data_bytes. */
static int read_header(const char *path, char **hdr, uint64_t *hdr_len, uint64_t *data_bytes) {
    *hdr = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return open_error(path);
    int rc = 0;
    struct stat sb;
    unsigned char lenb[8];
    uint64_t n = 0;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = err_set(ERR_IO, "%s: not a readable regular file", path);
        goto done;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < 8 || pread_full(fd, lenb, 8, 0) != 0) {
        rc = err_set(ERR_FORMAT, "%s: file is %llu bytes, too short for the 8-byte header length", path,
                     (unsigned long long)size);
        goto done;
    }
    for (int i = 7; i >= 0; i--) n = (n << 8) | lenb[i];
    if (n == 0 || n > size - 8 || n > ST_MAX_HEADER_BYTES) {
        rc = err_set(ERR_FORMAT, "%s: header length %llu is invalid (file is %llu bytes, cap %llu)%s", path,
                     (unsigned long long)n, (unsigned long long)size, ST_MAX_HEADER_BYTES,
                     n > size - 8 ? "\nHINT: the file is truncated or not a safetensors file" : "");
        goto done;
    }
    *hdr = malloc((size_t)n);
    if (!*hdr) {
        rc = err_set(ERR_NOMEM, "%s: out of memory for a %llu-byte header", path, (unsigned long long)n);
        goto done;
    }
    if (pread_full(fd, *hdr, (size_t)n, 8) != 0) {
        rc = err_set(ERR_IO, "%s: reading the header: %s", path, errno ? strerror(errno) : "short read");
        goto done;
    }
    *hdr_len = n;
    *data_bytes = size - 8 - n;
done:
    close(fd);
    if (rc != 0) free(*hdr), *hdr = NULL;
    return rc;
}

static void free_tensors(StTensor *t, int n) {
    for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
}

static int check_metadata(const char *path, const json_t *md) {
    const char *k;
    const json_t *v;
    if (!json_is_object(md)) return err_set(ERR_FORMAT, "%s: \"__metadata__\" must be an object", path);
    json_object_foreach((json_t *)md, k, v) {
        if (!json_is_string(v))
            return err_set(ERR_FORMAT, "%s: \"__metadata__\" key '%s' must map to a string", path, k);
    }
    return 0;
}

/* Parse every entry of a header into a new array *out (n_out entries, names owned). */
static int parse_entries(const char *path, const json_t *root, uint64_t data_bytes, StTensor **out, int *n_out) {
    size_t cap = json_object_size(root);
    StTensor *t = calloc(cap ? cap : 1, sizeof(*t));
    if (!t) return err_set(ERR_NOMEM, "%s: out of memory for %zu tensor entries", path, cap);
    int n = 0, rc = 0;
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)root, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            rc = check_metadata(path, v);
        } else if (key[0] == 0) {
            rc = err_set(ERR_FORMAT, "%s: a tensor has an empty name", path);
        } else {
            t[n].name = str_dup(key);
            if (!t[n].name) rc = err_set(ERR_NOMEM, "%s: out of memory", path);
            else rc = parse_entry(path, key, v, data_bytes, &t[n]);
            n++;
        }
        if (rc != 0) break;
    }
    if (rc == 0) rc = check_overlaps(path, t, n);
    if (rc != 0) {
        free_tensors(t, n);
        return rc;
    }
    *out = t;
    *n_out = n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Archive assembly */

static int add_file(StArchive *a, const char *path, uint64_t data_start) {
    char **f = realloc(a->files, (size_t)(a->n_files + 1) * sizeof(*f));
    if (f) a->files = f;
    uint64_t *d = realloc(a->data_start, (size_t)(a->n_files + 1) * sizeof(*d));
    if (d) a->data_start = d;
    char *p = str_dup(path);
    if (!f || !d || !p) {
        free(p);
        return err_set(ERR_NOMEM, "%s: out of memory", path);
    }
    a->files[a->n_files] = p;
    a->data_start[a->n_files] = data_start;
    return a->n_files++;
}

/* Open one .safetensors file and append its tensors to `a`. With `keep` (a weight_map) only the
 * tensors it assigns to `shard` are kept. */
static int load_file(StArchive *a, const char *path, const json_t *keep, const char *shard) {
    char *hdr = NULL;
    uint64_t hdr_len = 0, data_bytes = 0;
    int rc = read_header(path, &hdr, &hdr_len, &data_bytes);
    if (rc != 0) return rc;
    json_t *root = NULL;
    StTensor *t = NULL;
    int n = 0;
    size_t ok = utf8_valid_prefix((const unsigned char *)hdr, (size_t)hdr_len);
    if (ok < hdr_len) {
        rc = utf8_error(path, hdr, (size_t)hdr_len, ok);
        goto done;
    }
    json_error_t jerr;
    root = json_loadb(hdr, (size_t)hdr_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        rc = err_set(ERR_FORMAT, "%s: header is not valid JSON (header line %d, column %d): %s", path, jerr.line,
                     jerr.column, jerr.text);
        goto done;
    }
    if (!json_is_object(root)) {
        rc = err_set(ERR_FORMAT, "%s: header must be a JSON object mapping tensor names to entries", path);
        goto done;
    }
    if ((rc = parse_entries(path, root, data_bytes, &t, &n)) != 0) goto done;
    int file = add_file(a, path, 8 + hdr_len);
    if (file < 0) {
        rc = file;
        goto done;
    }
    StTensor *grown = realloc(a->t, (size_t)(a->n + n + 1) * sizeof(*grown));
    if (!grown) {
        rc = err_set(ERR_NOMEM, "%s: out of memory for %d tensors", path, a->n + n);
        goto done;
    }
    a->t = grown;
    for (int i = 0; i < n; i++) {
        const json_t *where = keep ? json_object_get(keep, t[i].name) : NULL;
        if (keep && !(json_is_string(where) && strcmp(json_string_value(where), shard) == 0)) continue;
        a->t[a->n] = t[i];
        a->t[a->n].file = file;
        t[i].name = NULL; /* ownership moved */
        a->n++;
    }
done:
    free_tensors(t, n);
    json_decref(root);
    free(hdr);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

/* A shard file name from the index must be a plain name inside the directory. */
static int check_shard_name(const char *index, const char *tensor, const json_t *v) {
    if (!json_is_string(v))
        return err_set(ERR_FORMAT, "%s: weight_map entry for tensor '%s' must be a file name string", index, tensor);
    const char *s = json_string_value(v);
    if (s[0] == 0 || strchr(s, '/') || strstr(s, ".."))
        return err_set(ERR_FORMAT,
                       "%s: weight_map puts tensor '%s' in \"%s\"; a shard must be a plain file name in the model "
                       "directory (no '/' or '..')",
                       index, tensor, s);
    return 0;
}

static int load_index(StArchive *a, const char *dir, const char *index) {
    json_error_t jerr;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && json_error_code(&jerr) == json_error_cannot_open_file)
        return err_set(ERR_IO, "%s: %s", index, jerr.text);
    if (!root) return err_set(ERR_FORMAT, "%s:%d:%d: %s", index, jerr.line, jerr.column, jerr.text);
    int rc = 0;
    const json_t *wm = json_object_get(root, "weight_map");
    const char *name, *shard_name;
    const json_t *v;
    if (!json_is_object(wm)) {
        rc = err_set(ERR_FORMAT, "%s: missing object \"weight_map\" (tensor name -> shard file)", index);
        goto done;
    }
    json_object_foreach((json_t *)wm, name, v) {
        if ((rc = check_shard_name(index, name, v)) != 0) goto done;
    }
    /* Open each distinct shard once, in first-mention order. */
    json_object_foreach((json_t *)wm, name, v) {
        shard_name = json_string_value(v);
        int seen = 0;
        for (int f = 0; f < a->n_files && !seen; f++) {
            const char *base = strrchr(a->files[f], '/');
            seen = strcmp(base ? base + 1 : a->files[f], shard_name) == 0;
        }
        if (seen) continue;
        char *p = st_path_join(dir, shard_name);
        rc = p ? load_file(a, p, wm, shard_name) : err_set(ERR_NOMEM, "%s: out of memory", index);
        free(p);
        if (rc != 0) goto done;
    }
    qsort(a->t, (size_t)a->n, sizeof(*a->t), cmp_name);
    json_object_foreach((json_t *)wm, name, v) {
        if (!st_find(a, name)) {
            rc = err_set(ERR_NOTFOUND, "%s: weight_map lists tensor '%s' in shard '%s', which has no such tensor",
                         index, name, json_string_value(v));
            goto done;
        }
    }
done:
    json_decref(root);
    return rc;
}

int st_open(StArchive *a, const char *path) {
    memset(a, 0, sizeof(*a));
    struct stat sb;
    if (stat(path, &sb) != 0) return open_error(path);
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        char *index = st_path_join(path, ST_INDEX_NAME), *single = st_path_join(path, ST_SINGLE_NAME);
        if (!index || !single) rc = err_set(ERR_NOMEM, "%s: out of memory", path);
        else if (access(index, F_OK) == 0) rc = load_index(a, path, index);
        else if (access(single, F_OK) == 0) rc = load_file(a, single, NULL, NULL);
        else
            rc = err_set(ERR_NOTFOUND, "%s: no %s or %s in this directory", path, ST_INDEX_NAME, ST_SINGLE_NAME);
        free(index);
        free(single);
    } else {
        rc = load_file(a, path, NULL, NULL);
    }
    if (rc == 0) qsort(a->t, (size_t)a->n, sizeof(*a->t), cmp_name);
    else st_close(a);
    return rc;
}

void st_close(StArchive *a) {
    if (!a) return;
    for (int i = 0; i < a->n_files; i++) free(a->files[i]);
    free(a->files);
    free(a->data_start);
    free_tensors(a->t, a->n);
    memset(a, 0, sizeof(*a));
}

const StTensor *st_find(const StArchive *a, const char *name) {
    int lo = 0, hi = a->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(a->t[mid].name, name);
        if (c == 0) return &a->t[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Reading tensor data */

static void convert_chunk(StDtype d, const void *src, float *dst, size_t n) {
    if (d == ST_F16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
    } else if (d == ST_BF16) {
        const uint16_t *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
    } else {
        const double *s = src;
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    }
}

int st_read_f32(const StArchive *a, const StTensor *t, float *dst, int64_t n) {
    CHECK(a && t && t->file >= 0 && t->file < a->n_files, "tensor not from this archive");
    const char *path = a->files[t->file];
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16 && t->dtype != ST_F64)
        return err_set(ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; only F32, F16, BF16, F64 convert to float32",
                       path, t->name, k_dtype_names[t->dtype]);
    int64_t numel = st_numel(t);
    if (n != numel)
        return err_set(ERR_SHAPE, "%s: tensor '%s' has %lld elements but the destination holds %lld", path, t->name,
                       (long long)numel, (long long)n);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return open_error(path);
    int rc = 0;
    uint64_t off = a->data_start[t->file] + t->begin;
    size_t esize = k_dtype_sizes[t->dtype];
    void *buf = NULL;
    if (t->dtype == ST_F32) {
        if (numel > 0 && pread_full(fd, dst, (size_t)numel * 4, off) != 0) rc = -1;
    } else if ((buf = malloc(ST_CHUNK_ELEMS * esize)) == NULL) {
        rc = err_set(ERR_NOMEM, "out of memory");
    } else {
        for (int64_t i = 0; i < numel && rc == 0; i += ST_CHUNK_ELEMS) {
            size_t m = (size_t)(numel - i < ST_CHUNK_ELEMS ? numel - i : ST_CHUNK_ELEMS);
            if (pread_full(fd, buf, m * esize, off + (uint64_t)i * esize) != 0) rc = -1;
            else convert_chunk(t->dtype, buf, dst + i, m);
        }
    }
    if (rc == -1)
        rc = err_set(ERR_IO, "%s: reading tensor '%s': %s", path, t->name,
                     errno ? strerror(errno) : "file shorter than its header says");
    free(buf);
    close(fd);
    return rc;
}

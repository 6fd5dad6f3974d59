/* model/tokenizer_bpe.c: byte-level BPE encode and decode behind the Tokenizer interface,
 * matching Hugging Face `tokenizers` (tests/model/test_tokenizer_bpe.c compares the two).
 *
 * Encode, as HF's pipeline runs it:
 *   0. Ill-formed UTF-8 is first repaired the way Python's bytes.decode("utf-8", "replace") and
 *      Rust's from_utf8_lossy do (each maximal ill-formed subpart -> U+FFFD): HF only accepts
 *      text, so this is the text a Python caller would hand it.
 *   1. Added tokens are cut out first, leftmost-longest (at the first position where any matches,
 *      the longest); each becomes its id.
 *   2. The text between them is NFC-normalised (utf8proc) when the normalizer says so, then split
 *      by each Split regex in turn (PCRE2, UTF + Unicode properties, behaviour Isolated: matches
 *      and the gaps between them are pieces).
 *   3. Each piece's bytes become byte-level symbols (one per byte). With ignore_merges a piece
 *      that is itself a vocab entry is one token; otherwise merges apply lowest rank first,
 *      leftmost among equal ranks, until no adjacent pair has a merge (a plain scan for short pieces,
 *      a heap for pieces over BPE_SHORT_PIECE bytes, so a 100 kB run of letters stays O(n log n)).
 * Decode concatenates each id's bytes (tokenizer_bpe_internal.h) and repairs ill-formed UTF-8 the
 * same way (HF's ByteLevel decoder). BOS/EOS/PAD are skipped as the interface says; ids outside
 * the vocabulary become "<?id>" (HF drops them).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/log.h"
#include "model/tokenizer.h"
#include "model/tokenizer_bpe_internal.h"

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t k) {
    k *= 0x9e3779b97f4a7c15ull;
    return k ^ (k >> 31);
}

int bpe_lookup(const BpeTok *b, const char *s, size_t len) {
    if (!b->str_cap) return -1;
    for (size_t i = hash_bytes(s, len) & (b->str_cap - 1);; i = (i + 1) & (b->str_cap - 1)) {
        int id = b->str_slot[i];
        if (id < 0) return -1;
        if (strncmp(b->tok[id], s, len) == 0 && b->tok[id][len] == '\0') return id;
    }
}

void bpe_index_str(BpeTok *b, int id) {
    size_t i = hash_bytes(b->tok[id], strlen(b->tok[id])) & (b->str_cap - 1);
    while (b->str_slot[i] >= 0) i = (i + 1) & (b->str_cap - 1);
    b->str_slot[i] = id;
}

void bpe_add_merge(BpeTok *b, int left, int right, int rank, int merged) {
    uint64_t key = ((uint64_t)left << 32 | (uint32_t)right) + 1;
    size_t i = hash_pair(key) & (b->pair_cap - 1);
    while (b->pair_key[i] && b->pair_key[i] != key) i = (i + 1) & (b->pair_cap - 1);
    if (b->pair_key[i]) return; /* a repeated merge keeps its first (lowest) rank */
    b->pair_key[i] = key;
    b->pair_val[i] = (uint64_t)rank << 32 | (uint32_t)merged;
}

/* rank << 32 | merged id of the pair, or UINT64_MAX if it has no merge. */
static uint64_t pair_merge(const BpeTok *b, int left, int right) {
    uint64_t key = ((uint64_t)left << 32 | (uint32_t)right) + 1;
    for (size_t i = hash_pair(key) & (b->pair_cap - 1);; i = (i + 1) & (b->pair_cap - 1)) {
        if (b->pair_key[i] == key) return b->pair_val[i];
        if (!b->pair_key[i]) return UINT64_MAX;
    }
}

void bpe_byte_alphabet(BpeTok *b) {
    int next = 256;
    for (int i = 0; i < BPE_ALPHABET_CPS; i++) b->cp_byte[i] = -1;
    for (int c = 0; c < 256; c++) {
        int printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
        int cp = printable ? c : next++;
        utf8proc_ssize_t n = utf8proc_encode_char(cp, (utf8proc_uint8_t *)b->byte_char[c]);
        b->byte_char[c][n] = '\0';
        b->cp_byte[cp] = (int16_t)c;
    }
}

/* Length of the well-formed UTF-8 character at s (n > 0 bytes left), or minus the length of the
 * maximal ill-formed subpart there (Unicode §3.9, Table 3-7). */
static int utf8_char(const unsigned char *s, size_t n) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    int need;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return -1;
    for (int k = 1; k < need; k++) {
        if ((size_t)k >= n || s[k] < (k == 1 ? lo : 0x80) || s[k] > (k == 1 ? hi : 0xBF)) return -k;
    }
    return need;
}

/* Append `piece` (len bytes) to out at *pos, writing only what fits below cap - 1 (snprintf-like). */
static void put(char *out, size_t cap, size_t *pos, const char *piece, size_t len) {
    if (*pos < cap) {
        size_t room = cap - 1 - *pos;
        memcpy(out + *pos, piece, len < room ? len : room);
    }
    *pos += len;
}

/* Copy s (n bytes) to out with every ill-formed subpart replaced by U+FFFD; returns the length. */
static size_t utf8_repair(const char *s, size_t n, char *out, size_t cap) {
    size_t pos = 0;
    for (size_t i = 0; i < n;) {
        size_t run = i;
        int k;
        while (run < n && (k = utf8_char((const unsigned char *)s + run, n - run)) > 0) run += (size_t)k;
        put(out, cap, &pos, s + i, run - i);
        if (run == n) break;
        put(out, cap, &pos, "\xEF\xBF\xBD", 3);
        i = run + (size_t)(-utf8_char((const unsigned char *)s + run, n - run));
    }
    return pos;
}

static int utf8_is_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int k = utf8_char((const unsigned char *)s + i, n - i);
        if (k < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

typedef struct {
    int *out;
    int cap, n;
    pcre2_match_data *md;
} Sink;

static void emit(Sink *k, int id) {
    if (k->n < k->cap) k->out[k->n] = id;
    k->n++;
}

#define BPE_SHORT_PIECE 48 /* longer pieces take the heap-based merge loop */

/* Merge loop over sym (n ids): lowest rank first, leftmost on ties. rank[i] is pair (i, i+1)'s. */
static void bpe_merge(const BpeTok *b, int *sym, uint64_t *rank, int n, Sink *k) {
    for (int i = 0; i + 1 < n; i++) rank[i] = pair_merge(b, sym[i], sym[i + 1]);
    while (n > 1) {
        int best = 0;
        for (int i = 1; i + 1 < n; i++)
            if (rank[i] >> 32 < rank[best] >> 32) best = i;
        if (rank[best] == UINT64_MAX) break;
        sym[best] = (int)(uint32_t)rank[best];
        memmove(sym + best + 1, sym + best + 2, (size_t)(n - best - 2) * sizeof(int));
        memmove(rank + best + 1, rank + best + 2, (size_t)(n > best + 2 ? n - best - 3 : 0) * sizeof(uint64_t));
        n--;
        if (best > 0) rank[best - 1] = pair_merge(b, sym[best - 1], sym[best]);
        if (best + 1 < n) rank[best] = pair_merge(b, sym[best], sym[best + 1]);
    }
    for (int i = 0; i < n; i++) emit(k, sym[i]);
}

/* Min-heap of candidate merges by (rank, position): the same order as bpe_merge's scan. */
typedef struct {
    uint32_t rank;
    int pos;
} Cand;

static int cand_less(Cand a, Cand c) { return a.rank < c.rank || (a.rank == c.rank && a.pos < c.pos); }

static void heap_push(Cand *h, int *n, Cand c) {
    int i = (*n)++;
    while (i > 0 && cand_less(c, h[(i - 1) / 2])) h[i] = h[(i - 1) / 2], i = (i - 1) / 2;
    h[i] = c;
}

static Cand heap_pop(Cand *h, int *n) {
    Cand top = h[0], last = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c], i = c;
    }
    h[i] = last;
    return top;
}

static void push_pair(const BpeTok *b, const int *sym, const int *next, int pos, Cand *h, int *nh) {
    if (pos < 0 || next[pos] < 0) return;
    uint64_t m = pair_merge(b, sym[pos], sym[next[pos]]);
    if (m != UINT64_MAX) heap_push(h, nh, (Cand){(uint32_t)(m >> 32), pos});
}

/* The merge loop for long pieces, O(n log n): symbols in a linked list, candidates in a heap;
 * a popped candidate whose pair has changed since it was pushed is stale and skipped. */
static void bpe_merge_long(const BpeTok *b, int *sym, int n, Sink *k) {
    int *next = xmalloc((size_t)n * sizeof(int)), *prev = xmalloc((size_t)n * sizeof(int)), nh = 0;
    Cand *h = xmalloc((size_t)3 * (size_t)n * sizeof(Cand)); /* n - 1 initial + at most 2 per merge */
    for (int i = 0; i < n; i++) next[i] = i + 1 < n ? i + 1 : -1, prev[i] = i - 1;
    for (int i = 0; i + 1 < n; i++) push_pair(b, sym, next, i, h, &nh);
    while (nh > 0) {
        Cand c = heap_pop(h, &nh);
        int j = sym[c.pos] >= 0 ? next[c.pos] : -1;
        if (j < 0) continue;
        uint64_t m = pair_merge(b, sym[c.pos], sym[j]);
        if (m == UINT64_MAX || (uint32_t)(m >> 32) != c.rank) continue;
        sym[c.pos] = (int)(uint32_t)m;
        sym[j] = -1;
        next[c.pos] = next[j];
        if (next[j] >= 0) prev[next[j]] = c.pos;
        push_pair(b, sym, next, prev[c.pos], h, &nh);
        push_pair(b, sym, next, c.pos, h, &nh);
    }
    for (int i = 0; i >= 0; i = next[i]) emit(k, sym[i]);
    free(next);
    free(prev);
    free(h);
}

/* One pre-token (bytes s[0..len)) to ids. */
static void bpe_word(const BpeTok *b, const char *s, size_t len, Sink *k) {
    enum { SMALL = 128 };
    int sym_small[SMALL];
    uint64_t rank_small[SMALL];
    char str_small[2 * SMALL];
    str_small[0] = 0; /* (quiets a false maybe-uninitialized warning) */
    int *sym = sym_small;
    uint64_t *rank = rank_small;
    char *str = str_small;
    if (len > SMALL) {
        sym = xmalloc(len * sizeof(int));
        rank = xmalloc(len * sizeof(uint64_t));
        str = xmalloc(2 * len);
    }
    int n = 0, whole = -1;
    for (size_t i = 0; i < len; i++)
        if (b->byte_id[(unsigned char)s[i]] >= 0) sym[n++] = b->byte_id[(unsigned char)s[i]];
    if (b->ignore_merges) {
        size_t sl = 0;
        for (size_t i = 0; i < len; i++)
            for (const char *bc = b->byte_char[(unsigned char)s[i]]; *bc; bc++) str[sl++] = *bc;
        whole = bpe_lookup(b, str, sl);
    }
    if (whole >= 0) emit(k, whole);
    else if (n > BPE_SHORT_PIECE) bpe_merge_long(b, sym, n, k);
    else if (n > 0) bpe_merge(b, sym, rank, n, k);
    if (len > SMALL) {
        free(sym);
        free(rank);
        free(str);
    }
}

/* Split s[0..len) by regex number `level` (Isolated: matches and gaps), recursing to the next. */
static void split_apply(const BpeTok *b, int level, const char *s, size_t len, Sink *k) {
    if (level == b->n_split) {
        if (len > 0) bpe_word(b, s, len, k);
        return;
    }
    size_t pos = 0, last = 0;
    while (pos < len) {
        int rc = pcre2_match(b->split[level], (PCRE2_SPTR)s, len, pos, PCRE2_NO_UTF_CHECK, k->md, NULL);
        CHECK(rc >= 0 || rc == PCRE2_ERROR_NOMATCH, "%s: split regex %d failed: error %d", b->path, level, rc);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(k->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* an empty match splits nothing; step over one character */
            int cl = utf8_char((const unsigned char *)s + ms, len - ms);
            pos = ms + (size_t)(cl > 0 ? cl : 1);
            continue;
        }
        if (ms > last) split_apply(b, level + 1, s + last, ms - last, k);
        split_apply(b, level + 1, s + ms, me - ms, k);
        last = pos = me;
    }
    if (last < len) split_apply(b, level + 1, s + last, len - last, k);
}

/* Normalise (NFC when asked; ASCII is already NFC) and pre-tokenise one stretch between added tokens. */
static void encode_segment(const BpeTok *b, const char *s, size_t len, Sink *k) {
    int ascii = 1;
    for (size_t i = 0; i < len && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (!b->nfc || ascii || len == 0) {
        split_apply(b, 0, s, len, k);
        return;
    }
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len, &norm,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    CHECK(n >= 0, "utf8proc NFC of valid UTF-8 failed: %s", utf8proc_errmsg(n));
    split_apply(b, 0, (const char *)norm, (size_t)n, k);
    free(norm);
}

/* The longest added token starting at s (n bytes left), or NULL. */
static const BpeAdded *added_at(const BpeTok *b, const char *s, size_t n) {
    if (!b->added_first[(unsigned char)*s]) return NULL;
    for (int i = 0; i < b->n_added; i++) /* sorted longest first */
        if ((size_t)b->added[i].len <= n && memcmp(s, b->added[i].content, (size_t)b->added[i].len) == 0)
            return &b->added[i];
    return NULL;
}

static int bpe_encode(const Tokenizer *t, const char *text, int *out, int cap) {
    const BpeTok *b = t->impl;
    size_t n = strlen(text);
    char *fixed = NULL;
    if (!utf8_is_valid(text, n)) {
        size_t need = utf8_repair(text, n, NULL, 0);
        fixed = xmalloc(need + 1);
        n = utf8_repair(text, n, fixed, need + 1);
        text = fixed;
    }
    Sink k = {out, cap, 0, pcre2_match_data_create(1, NULL)};
    CHECK(k.md, "out of memory");
    size_t seg = 0;
    for (size_t i = 0; i < n;) {
        const BpeAdded *a = added_at(b, text + i, n - i);
        if (!a) {
            i++;
            continue;
        }
        encode_segment(b, text + seg, i - seg, &k);
        emit(&k, a->id);
        i += (size_t)a->len;
        seg = i;
    }
    encode_segment(b, text + seg, n - seg, &k);
    pcre2_match_data_free(k.md);
    free(fixed);
    return k.n <= cap ? k.n : -k.n;
}

static size_t bpe_decode(const Tokenizer *t, const int *ids, int n, char *out, size_t cap) {
    const BpeTok *b = t->impl;
    size_t len = 0, room = 256;
    char *raw = xmalloc(room);
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id == t->bos || id == t->eos || id == t->pad) continue;
        char unk[24];
        const char *piece = unk;
        size_t pl;
        if (id >= 0 && id < b->n_ids && b->tok[id]) piece = b->dec[id], pl = (size_t)b->dec_len[id];
        else pl = (size_t)snprintf(unk, sizeof unk, "<?%d>", id);
        if (len + pl > room) {
            while (len + pl > room) room *= 2;
            char *nr = realloc(raw, room);
            CHECK(nr, "out of memory");
            raw = nr;
        }
        memcpy(raw + len, piece, pl);
        len += pl;
    }
    size_t pos = utf8_repair(raw, len, out, cap);
    if (cap > 0) out[pos < cap ? pos : cap - 1] = '\0';
    free(raw);
    return pos;
}

static int bpe_added_id(const Tokenizer *t, const char *s) {
    const BpeTok *b = t->impl;
    for (int i = 0; i < b->n_added; i++)
        if (strcmp(b->added[i].content, s) == 0) return b->added[i].id;
    return -1;
}

static void bpe_release(Tokenizer *t) {
    bpe_free(t->impl);
    free(t->impl);
}

/* Token named by tokenizer_config.json's `key` (a string, null, or an object with "content"):
 * *id = its id, or -1 when null or absent. */
static int config_role(const BpeTok *b, const char *cfg_path, const json_t *root, const char *key, int *id) {
    json_t *v = json_object_get(root, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    *id = -1;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return err_set(ERR_FORMAT, "%s: $.%s: expected a token string or null", cfg_path, key);
    *id = bpe_lookup(b, json_string_value(v), json_string_length(v));
    if (*id < 0)
        return err_set(ERR_FORMAT, "%s: $.%s: \"%s\" is not a token of %s", cfg_path, key, json_string_value(v), b->path);
    return 0;
}

/* bos/eos/pad from tokenizer_config.json beside tokenizer.json; without one, the first present of
 * the usual names. */
static int set_roles(Tokenizer *t, const BpeTok *b) {
    char cfg[600];
    const char *slash = strrchr(b->path, '/');
    snprintf(cfg, sizeof cfg, "%.*stokenizer_config.json", slash ? (int)(slash - b->path + 1) : 0, b->path);
    json_error_t jerr;
    json_t *root = json_load_file(cfg, 0, &jerr);
    if (root) {
        int err = config_role(b, cfg, root, "bos_token", &t->bos);
        if (!err) err = config_role(b, cfg, root, "eos_token", &t->eos);
        if (!err) err = config_role(b, cfg, root, "pad_token", &t->pad);
        json_decref(root);
        return err;
    }
    if (jerr.line > 0) return err_set(ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", cfg, jerr.line, jerr.column, jerr.text);
    static const char *const bos[] = {"<|begin_of_text|>", "<begin_of_document>", "<s>", NULL};
    static const char *const eos[] = {"<|im_end|>", "<|eot_id|>", "<end_of_sentence>", "<|endoftext|>", "</s>", NULL};
    static const char *const pad[] = {"<|endoftext|>", "<end_of_document>", "<pad>", NULL};
    const char *const *names[3] = {bos, eos, pad};
    int *role[3] = {&t->bos, &t->eos, &t->pad};
    for (int r = 0; r < 3; r++) {
        *role[r] = -1;
        for (const char *const *s = names[r]; *s && *role[r] < 0; s++) *role[r] = bpe_added_id(t, *s);
    }
    log_warn("%s: no tokenizer_config.json beside it; BOS %d, EOS %d, PAD %d by their usual names", b->path, t->bos,
             t->eos, t->pad);
    return 0;
}

int tokenizer_bpe_load(Tokenizer *t, const char *path) {
    static const char *const tags[TOK_N_TAGS] = {"<think>", "</think>", "<answer>", "</answer>"};
    memset(t, 0, sizeof(*t));
    BpeTok *b = calloc(1, sizeof(BpeTok));
    if (!b) return err_set(ERR_NOMEM, "%s: out of memory", path);
    int err = bpe_load_json(b, path);
    if (err) {
        free(b);
        return err;
    }
    t->impl = b;
    t->vocab_size = b->n_ids;
    t->encode = bpe_encode;
    t->decode = bpe_decode;
    t->added_id = bpe_added_id;
    t->release = bpe_release;
    for (int k = 0; k < TOK_N_TAGS; k++) {
        t->tag_str[k] = tags[k];
        t->tag[k] = bpe_added_id(t, tags[k]);
    }
    if ((err = set_roles(t, b))) tokenizer_free(t);
    return err;
}

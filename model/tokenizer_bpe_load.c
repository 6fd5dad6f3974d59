/* model/tokenizer_bpe_load.c: reads a Hugging Face tokenizer.json (byte-level BPE: the GPT-2,
 * Qwen2, Llama-3 and MiniMax family) into a BpeTok, with jansson.
 *
 * Supported pipeline, checked key by key (anything else is ERR_UNSUPPORTED naming the JSON path):
 *   normalizer     null, NFC, or a Sequence of those
 *   pre_tokenizer  ByteLevel, or a Sequence of Split(Regex, behavior Isolated, invert false) ...
 *                  followed by ByteLevel; ByteLevel with use_regex true adds GPT-2's split regex;
 *                  add_prefix_space must be false
 *   model          BPE, byte_fallback false, no dropout, no subword prefix/suffix; merges as
 *                  "A B" strings or [A, B] pairs; ignore_merges honoured
 *   decoder        ByteLevel (or null)
 *   added_tokens   id + content (lstrip/rstrip/single_word must be false)
 * The split regexes are compiled by PCRE2 with UTF and Unicode properties (UCP), JIT when there.
 * Every failure message reads "FILE: $.json.path: what was expected".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <utf8proc.h>

#include "core/error.h"
#include "core/json_util.h"
#include "model/tokenizer_bpe_internal.h"

static const char k_gpt2_split[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int bad(const BpeTok *b, int code, const char *jpath, const char *what, const json_t *got) {
    if (got) return err_set(code, "%s: %s: %s, got %s", b->path, jpath, what, json_type_name(got));
    return err_set(code, "%s: %s: %s", b->path, jpath, what);
}

/* The string member `key` of obj, or NULL (absent or not a string). */
static const char *str_member(const json_t *obj, const char *key) {
    return json_string_value(json_object_get(obj, key));
}

static int is_false_or_null(const json_t *v) { return !v || json_is_null(v) || json_is_false(v); }

static int add_split(BpeTok *b, const char *pattern, const char *jpath) {
    if (b->n_split == BPE_MAX_SPLITS) return bad(b, ERR_UNSUPPORTED, jpath, "more than 8 Split pre-tokenizers", NULL);
    int ec;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return err_set(ERR_FORMAT, "%s: %s: regex does not compile at offset %zu: %s", b->path, jpath, (size_t)off,
                       (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* a failure leaves the interpreter, which is fine */
    b->split[b->n_split++] = re;
    return 0;
}

static int parse_normalizer(BpeTok *b, const json_t *n, const char *jpath) {
    if (!n || json_is_null(n)) return 0;
    const char *type = str_member(n, "type");
    if (!type) return bad(b, ERR_FORMAT, jpath, "expected an object with a string \"type\"", n);
    if (strcmp(type, "NFC") == 0) {
        b->nfc = 1;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(n, "normalizers");
        if (!json_is_array(list)) return bad(b, ERR_FORMAT, jpath, "Sequence: expected an array \"normalizers\"", list);
        for (size_t i = 0; i < json_array_size(list); i++) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s.normalizers[%zu]", jpath, i);
            int err = parse_normalizer(b, json_array_get(list, i), sub);
            if (err) return err;
        }
        return 0;
    }
    return err_set(ERR_UNSUPPORTED, "%s: %s: normalizer \"%s\" is not supported (null, NFC or a Sequence of NFC)",
                   b->path, jpath, type);
}

static int parse_one_pretok(BpeTok *b, const json_t *p, const char *jpath, int last) {
    const char *type = str_member(p, "type");
    if (!type) return bad(b, ERR_FORMAT, jpath, "expected an object with a string \"type\"", p);
    char sub[128];
    if (strcmp(type, "Split") == 0) {
        const char *behavior = str_member(p, "behavior"), *re = str_member(json_object_get(p, "pattern"), "Regex");
        snprintf(sub, sizeof sub, "%s.pattern.Regex", jpath);
        if (!re) return bad(b, ERR_UNSUPPORTED, sub, "expected a regex string (String patterns are not supported)", NULL);
        if (!behavior || strcmp(behavior, "Isolated") != 0)
            return bad(b, ERR_UNSUPPORTED, jpath, "Split: only behavior \"Isolated\" is supported", NULL);
        if (!is_false_or_null(json_object_get(p, "invert")))
            return bad(b, ERR_UNSUPPORTED, jpath, "Split: invert must be false", NULL);
        return add_split(b, re, sub);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        if (!last) return bad(b, ERR_UNSUPPORTED, jpath, "ByteLevel must be the last pre-tokenizer", NULL);
        if (!is_false_or_null(json_object_get(p, "add_prefix_space")))
            return bad(b, ERR_UNSUPPORTED, jpath, "ByteLevel: add_prefix_space must be false", NULL);
        json_t *use_regex = json_object_get(p, "use_regex");
        if (!use_regex || json_is_true(use_regex)) return add_split(b, k_gpt2_split, jpath);
        return 0;
    }
    return err_set(ERR_UNSUPPORTED, "%s: %s: pre-tokenizer \"%s\" is not supported (Split, ByteLevel)", b->path,
                   jpath, type);
}

static int parse_pretokenizer(BpeTok *b, const json_t *p) {
    const char *type = str_member(p, "type");
    if (!type) return bad(b, ERR_FORMAT, "$.pre_tokenizer", "expected an object with a string \"type\"", p);
    if (strcmp(type, "Sequence") != 0) {
        if (strcmp(type, "ByteLevel") != 0)
            return bad(b, ERR_UNSUPPORTED, "$.pre_tokenizer", "a byte-level BPE needs a ByteLevel pre-tokenizer", NULL);
        return parse_one_pretok(b, p, "$.pre_tokenizer", 1);
    }
    json_t *list = json_object_get(p, "pretokenizers");
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0)
        return bad(b, ERR_FORMAT, "$.pre_tokenizer.pretokenizers", "expected a non-empty array", list);
    if (strcmp(str_member(json_array_get(list, n - 1), "type") ? str_member(json_array_get(list, n - 1), "type") : "",
               "ByteLevel") != 0)
        return bad(b, ERR_UNSUPPORTED, "$.pre_tokenizer.pretokenizers", "the last one must be ByteLevel", NULL);
    for (size_t i = 0; i < n; i++) {
        char sub[64];
        snprintf(sub, sizeof sub, "$.pre_tokenizer.pretokenizers[%zu]", i);
        int err = parse_one_pretok(b, json_array_get(list, i), sub, i == n - 1);
        if (err) return err;
    }
    return 0;
}

/* Max id + 1 over vocab and added tokens, with every id checked. */
static int count_ids(BpeTok *b, const json_t *vocab, const json_t *added) {
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)vocab, key, v) {
        json_int_t id = json_integer_value(v);
        if (!json_is_integer(v) || id < 0 || id >= (1 << 24)) {
            char sub[96];
            snprintf(sub, sizeof sub, "$.model.vocab[\"%.40s\"]", key);
            return bad(b, ERR_FORMAT, sub, "expected an integer id in [0, 2^24)", v);
        }
        if (id >= n) n = (int)id + 1;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        char sub[64];
        snprintf(sub, sizeof sub, "$.added_tokens[%zu].id", i);
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24))
            return bad(b, ERR_FORMAT, sub, "expected an integer id in [0, 2^24)", id);
        if (json_integer_value(id) >= n) n = (int)json_integer_value(id) + 1;
    }
    return n;
}

static int set_token(BpeTok *b, int id, const char *s, size_t len, const char *jpath) {
    if (b->tok[id]) {
        if (strlen(b->tok[id]) == len && memcmp(b->tok[id], s, len) == 0) return 0; /* added token also in vocab */
        return err_set(ERR_FORMAT, "%s: %s: id %d is already \"%s\"", b->path, jpath, id, b->tok[id]);
    }
    b->tok[id] = strndup(s, len);
    if (!b->tok[id]) return err_set(ERR_NOMEM, "%s: out of memory", b->path);
    if (bpe_lookup(b, s, len) >= 0) return err_set(ERR_FORMAT, "%s: %s: \"%s\" appears twice", b->path, jpath, s);
    bpe_index_str(b, id);
    return 0;
}

static int cmp_added(const void *x, const void *y) {
    const BpeAdded *a = x, *c = y;
    return a->len != c->len ? c->len - a->len : a->id - c->id;
}

static int parse_added(BpeTok *b, const json_t *added) {
    size_t n = json_array_size(added);
    b->added = calloc(n ? n : 1, sizeof(BpeAdded));
    if (!b->added) return err_set(ERR_NOMEM, "%s: out of memory", b->path);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(added, i), *content = json_object_get(a, "content");
        char sub[64];
        snprintf(sub, sizeof sub, "$.added_tokens[%zu]", i);
        if (!json_is_string(content) || json_string_length(content) == 0)
            return bad(b, ERR_FORMAT, sub, "expected a non-empty string \"content\"", content);
        const char *flags[] = {"lstrip", "rstrip", "single_word"};
        for (int f = 0; f < 3; f++)
            if (!is_false_or_null(json_object_get(a, flags[f])))
                return err_set(ERR_UNSUPPORTED, "%s: %s.%s: only false is supported", b->path, sub, flags[f]);
        int id = (int)json_integer_value(json_object_get(a, "id")), err;
        if ((err = set_token(b, id, json_string_value(content), json_string_length(content), sub))) return err;
        BpeAdded *e = &b->added[b->n_added++];
        e->content = b->tok[id];
        e->len = (int)json_string_length(content);
        e->id = id;
        b->added_first[(unsigned char)e->content[0]] = 1;
    }
    qsort(b->added, (size_t)b->n_added, sizeof(BpeAdded), cmp_added);
    return 0;
}

/* One merge entry: "A B" or ["A", "B"]; sets the two halves. */
static int merge_parts(const json_t *m, const char **l, size_t *ll, const char **r, size_t *rl) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) return -1;
        *l = s, *ll = (size_t)(sp - s), *r = sp + 1, *rl = strlen(sp + 1);
        return 0;
    }
    if (!json_is_array(m) || json_array_size(m) != 2) return -1;
    json_t *a = json_array_get(m, 0), *c = json_array_get(m, 1);
    if (!json_is_string(a) || !json_is_string(c)) return -1;
    *l = json_string_value(a), *ll = json_string_length(a), *r = json_string_value(c), *rl = json_string_length(c);
    return 0;
}

static int parse_merges(BpeTok *b, const json_t *merges) {
    size_t n = json_array_size(merges);
    b->pair_cap = 16;
    while (b->pair_cap < 2 * n) b->pair_cap *= 2;
    b->pair_key = calloc(b->pair_cap, sizeof(uint64_t));
    b->pair_val = calloc(b->pair_cap, sizeof(uint64_t));
    if (!b->pair_key || !b->pair_val) return err_set(ERR_NOMEM, "%s: out of memory", b->path);
    char *buf = NULL;
    size_t buf_cap = 0;
    int err = 0;
    for (size_t i = 0; i < n && !err; i++) {
        const char *l, *r;
        size_t ll, rl;
        char sub[64];
        snprintf(sub, sizeof sub, "$.model.merges[%zu]", i);
        if (merge_parts(json_array_get(merges, i), &l, &ll, &r, &rl) != 0) {
            err = bad(b, ERR_FORMAT, sub, "expected \"A B\" or [\"A\", \"B\"]", NULL);
            break;
        }
        if (ll + rl + 1 > buf_cap) {
            buf_cap = 2 * (ll + rl + 1);
            char *nb = realloc(buf, buf_cap);
            if (!nb) {
                err = err_set(ERR_NOMEM, "%s: out of memory", b->path);
                break;
            }
            buf = nb;
        }
        memcpy(buf, l, ll);
        memcpy(buf + ll, r, rl);
        int li = bpe_lookup(b, l, ll), ri = bpe_lookup(b, r, rl), mi = bpe_lookup(b, buf, ll + rl);
        if (li < 0 || ri < 0 || mi < 0)
            err = err_set(ERR_FORMAT, "%s: %s: \"%.*s\" + \"%.*s\": %s is not in the vocab", b->path, sub, (int)ll, l,
                          (int)rl, r, li < 0 ? "the left part" : ri < 0 ? "the right part" : "their merge");
        else
            bpe_add_merge(b, li, ri, (int)i, mi);
    }
    free(buf);
    return err;
}

static int parse_model(BpeTok *b, const json_t *m, const json_t *added) {
    const char *type = str_member(m, "type");
    if (!type || strcmp(type, "BPE") != 0)
        return bad(b, ERR_UNSUPPORTED, "$.model.type", "expected \"BPE\" (a byte-level BPE tokenizer)", NULL);
    json_t *vocab = json_object_get(m, "vocab"), *merges = json_object_get(m, "merges");
    if (!json_is_object(vocab)) return bad(b, ERR_FORMAT, "$.model.vocab", "expected an object", vocab);
    if (!json_is_array(merges)) return bad(b, ERR_FORMAT, "$.model.merges", "expected an array", merges);
    if (!is_false_or_null(json_object_get(m, "byte_fallback")))
        return bad(b, ERR_UNSUPPORTED, "$.model.byte_fallback", "must be false", NULL);
    if (!json_is_null(json_object_get(m, "dropout")) && json_object_get(m, "dropout"))
        return bad(b, ERR_UNSUPPORTED, "$.model.dropout", "must be null", NULL);
    const char *fixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int f = 0; f < 2; f++) {
        const char *s = str_member(m, fixes[f]);
        if (s && s[0]) return err_set(ERR_UNSUPPORTED, "%s: $.model.%s: must be empty", b->path, fixes[f]);
    }
    b->ignore_merges = json_is_true(json_object_get(m, "ignore_merges"));
    int n = count_ids(b, vocab, added);
    if (n < 0) return n;
    b->n_ids = n;
    b->tok = calloc((size_t)n, sizeof(char *));
    b->str_cap = 16;
    while (b->str_cap < 2 * (size_t)n) b->str_cap *= 2;
    b->str_slot = malloc(b->str_cap * sizeof(int32_t));
    if (!b->tok || !b->str_slot) return err_set(ERR_NOMEM, "%s: out of memory", b->path);
    memset(b->str_slot, 0xff, b->str_cap * sizeof(int32_t));
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        int err = set_token(b, (int)json_integer_value(v), key, strlen(key), "$.model.vocab");
        if (err) return err;
    }
    int err = parse_added(b, added);
    return err ? err : parse_merges(b, merges);
}

/* Decoded bytes of every id (ByteLevel decoder: characters of the alphabet become their byte; a
 * token with any other character decodes to its own UTF-8). */
static int build_decode(BpeTok *b) {
    b->dec = calloc((size_t)b->n_ids, sizeof(char *));
    b->dec_len = calloc((size_t)b->n_ids, sizeof(int));
    if (!b->dec || !b->dec_len) return err_set(ERR_NOMEM, "%s: out of memory", b->path);
    for (int id = 0; id < b->n_ids; id++) {
        const char *s = b->tok[id];
        if (!s) continue;
        size_t n = strlen(s), k = 0;
        if (!(b->dec[id] = malloc(n + 1))) return err_set(ERR_NOMEM, "%s: out of memory", b->path);
        int all = 1;
        for (size_t i = 0; i < n && all;) {
            utf8proc_int32_t cp;
            utf8proc_ssize_t cl = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
            all = cl > 0 && cp >= 0 && cp < BPE_ALPHABET_CPS && b->cp_byte[cp] >= 0;
            if (all) b->dec[id][k++] = (char)b->cp_byte[cp];
            i += cl > 0 ? (size_t)cl : 1;
        }
        if (!all) memcpy(b->dec[id], s, k = n);
        b->dec_len[id] = (int)k;
    }
    return 0;
}

int bpe_load_json(BpeTok *b, const char *path) {
    memset(b, 0, sizeof(*b));
    snprintf(b->path, sizeof b->path, "%s", path);
    bpe_byte_alphabet(b);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        FILE *f = fopen(path, "rb");
        if (!f) return err_set(ERR_IO, "%s: cannot read the tokenizer file", path);
        fclose(f);
        return err_set(ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column, jerr.text);
    }
    int err = 0;
    json_t *added = json_object_get(root, "added_tokens"), *dec = json_object_get(root, "decoder");
    if (!json_is_object(root)) err = bad(b, ERR_FORMAT, "$", "expected an object", root);
    else if (added && !json_is_array(added)) err = bad(b, ERR_FORMAT, "$.added_tokens", "expected an array", added);
    else if (!json_is_object(json_object_get(root, "model")))
        err = bad(b, ERR_FORMAT, "$.model", "expected an object", json_object_get(root, "model"));
    else if (dec && !json_is_null(dec) && strcmp(str_member(dec, "type") ? str_member(dec, "type") : "", "ByteLevel"))
        err = bad(b, ERR_UNSUPPORTED, "$.decoder", "expected a ByteLevel decoder", NULL);
    if (!err) err = parse_normalizer(b, json_object_get(root, "normalizer"), "$.normalizer");
    if (!err) err = parse_pretokenizer(b, json_object_get(root, "pre_tokenizer"));
    if (!err) err = parse_model(b, json_object_get(root, "model"), added);
    for (int c = 0; c < 256 && !err; c++) b->byte_id[c] = bpe_lookup(b, b->byte_char[c], strlen(b->byte_char[c]));
    if (!err) err = build_decode(b);
    json_decref(root);
    if (err) bpe_free(b);
    return err;
}

void bpe_free(BpeTok *b) {
    if (!b) return;
    for (int i = 0; i < b->n_ids; i++) {
        if (b->tok) free(b->tok[i]);
        if (b->dec) free(b->dec[i]);
    }
    free(b->tok);
    free(b->dec);
    free(b->dec_len);
    free(b->str_slot);
    free(b->pair_key);
    free(b->pair_val);
    free(b->added);
    for (int i = 0; i < b->n_split; i++) pcre2_code_free(b->split[i]);
    memset(b, 0, sizeof(*b));
}

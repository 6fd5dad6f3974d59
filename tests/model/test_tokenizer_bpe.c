/* tests/model/test_tokenizer_bpe.c: the tokenizer.json BPE against Hugging Face `tokenizers`.
 *
 * Fixtures (tests/data/tokenizers, made by tools/make_tokenizer_fixtures.py with tokenizers
 * 0.23.3): small byte-level BPE tokenizers trained with the Qwen2 and Llama-3 pre-tokenisation
 * (and GPT-2's ByteLevel regex, checked on the first 1000 strings only), 3009 strings (ASCII, code, CJK, emoji, whitespace runs, contractions, decomposed accents, special
 * tokens inside text, ill-formed UTF-8, pieces thousands of bytes long) with the ids HF gives each,
 * and 500 random id sequences per tokenizer with HF's decode. Every id and every decoded byte must
 * match. Also: the round trip decode(encode(s)) == s where no normalizer changes s (and s holds no
 * BOS/EOS text, which decode skips), the roles read from tokenizer_config.json, capacity handling,
 * random byte strings (encoding never fails, decoding gives well-formed UTF-8), and the error
 * messages for malformed files (file name + JSON path).
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "model/tokenizer.h"
#include "../test_tmpdir.h"

static char g_dir[512];

static void fixture_path(char *out, size_t cap, const char *rel) {
    const char *src = getenv("CISPO_SOURCE_DIR");
    snprintf(out, cap, "%s/tests/data/tokenizers/%s", src ? src : ".", rel);
}

static void load(Tokenizer *t, const char *name) {
    char p[600], rel[64];
    snprintf(rel, sizeof rel, "%s/tokenizer.json", name);
    fixture_path(p, sizeof p, rel);
    int err = tokenizer_bpe_load(t, p);
    if (err) fail_msg("%s", err_msg());
}

/* Case i's text (hex cases decoded to their raw bytes), malloc'ed. */
static char *case_text(const json_t *c) {
    const char *hex = json_string_value(json_object_get(c, "hex"));
    if (!hex) return strdup(json_string_value(json_object_get(c, "text")));
    size_t n = strlen(hex) / 2;
    char *s = calloc(n + 1, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        s[i] = (char)v;
    }
    return s;
}

static int parse_ids(char *line, int *ids, int cap) {
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
        if (n < cap) ids[n++] = atoi(tok);
    return n;
}

/* Encode every case with `name` and compare with its encode.txt; round trip when roundtrip. */
static void check_encode(const char *name, int roundtrip, int min_cases) {
    Tokenizer t;
    load(&t, name);
    char cases_path[600], ids_path[600], rel[64];
    fixture_path(cases_path, sizeof cases_path, "cases.jsonl");
    snprintf(rel, sizeof rel, "%s/encode.txt", name);
    fixture_path(ids_path, sizeof ids_path, rel);
    FILE *fc = fopen(cases_path, "r"), *fi = fopen(ids_path, "r");
    assert_non_null(fc);
    assert_non_null(fi);
    static char line[1 << 16], ids_line[1 << 16], back[1 << 16];
    static int want[8192], got[8192];
    int n_cases = 0, bad = 0, bad_rt = 0;
    while (fgets(line, sizeof line, fc) && fgets(ids_line, sizeof ids_line, fi)) {
        json_t *c = json_loads(line, 0, NULL);
        assert_non_null(c);
        char *s = case_text(c);
        int nw = parse_ids(ids_line, want, 8192), ng = t.encode(&t, s, got, 8192);
        if (ng != nw || memcmp(got, want, (size_t)nw * sizeof(int)) != 0) {
            if (bad++ < 5) {
                fprintf(stderr, "%s case %d %s: want %d ids, got %d:", name, n_cases, line, nw, ng);
                for (int i = 0; i < ng && i < 40; i++) fprintf(stderr, " %d", got[i]);
                fprintf(stderr, "\n");
            }
        }
        int has_role = strstr(s, "<|begin_of_text|>") || strstr(s, "<|eot_id|>") || strstr(s, "<|endoftext|>");
        if (roundtrip && !json_object_get(c, "hex") && !has_role) {
            t.decode(&t, got, ng, back, sizeof back);
            if (strcmp(back, s) != 0 && bad_rt++ < 5) fprintf(stderr, "%s round trip of case %d: %s\n", name, n_cases, back);
        }
        free(s);
        json_decref(c);
        n_cases++;
    }
    fclose(fc);
    fclose(fi);
    tokenizer_free(&t);
    fprintf(stderr, "%s: %d cases, %d encode mismatches, %d round-trip failures\n", name, n_cases, bad, bad_rt);
    assert_true(n_cases >= min_cases);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_rt, 0);
}

static void check_decode(const char *name) {
    Tokenizer t;
    load(&t, name);
    char path[600], rel[64];
    snprintf(rel, sizeof rel, "%s/decode.jsonl", name);
    fixture_path(path, sizeof path, rel);
    json_error_t jerr;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char line[1 << 14], out[1 << 14];
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *c = json_loads(line, JSON_ALLOW_NUL, &jerr), *ids = json_object_get(c, "ids");
        assert_non_null(c);
        int buf[64], k = (int)json_array_size(ids);
        for (int i = 0; i < k; i++) buf[i] = (int)json_integer_value(json_array_get(ids, i));
        size_t len = t.decode(&t, buf, k, out, sizeof out);
        json_t *text = json_object_get(c, "text"); /* may hold NUL bytes: compare lengths and memory */
        if ((len != json_string_length(text) || memcmp(out, json_string_value(text), len) != 0) && bad++ < 5)
            fprintf(stderr, "%s decode %s: got \"%s\"\n", name, line, out);
        json_decref(c);
        n++;
    }
    fclose(f);
    tokenizer_free(&t);
    assert_int_equal(n, 500);
    assert_int_equal(bad, 0);
}

static void test_qwen2_encode(void **state) { (void)state, check_encode("qwen2", 0, 3009); }
static void test_llama3_encode(void **state) { (void)state, check_encode("llama3", 1, 3009); }
static void test_gpt2_encode(void **state) { (void)state, check_encode("gpt2", 1, 1000); }
static void test_qwen2_decode(void **state) { (void)state, check_decode("qwen2"); }
static void test_llama3_decode(void **state) { (void)state, check_decode("llama3"); }

static void test_roles_and_tags(void **state) {
    (void)state;
    Tokenizer q, l;
    load(&q, "qwen2");
    load(&l, "llama3");
    /* qwen2: specials 0-2 come first in training order, the tags were added after the 1200 ids */
    assert_int_equal(q.vocab_size, 1204);
    assert_int_equal(q.bos, -1);
    assert_int_equal(q.eos, 2);   /* <|im_end|> (tokenizer_config.json) */
    assert_int_equal(q.pad, 0);   /* <|endoftext|> */
    for (int k = 0; k < TOK_N_TAGS; k++) assert_int_equal(q.tag[k], 1200 + k);
    assert_int_equal(q.added_id(&q, "<|im_start|>"), 1);
    assert_int_equal(q.added_id(&q, "hello"), -1);
    assert_int_equal(l.bos, 0);   /* <|begin_of_text|> */
    assert_int_equal(l.eos, 4);   /* <|eot_id|> */
    assert_int_equal(l.pad, -1);
    for (int k = 0; k < TOK_N_TAGS; k++) assert_int_equal(l.tag[k], -1);
    int ids[8];
    assert_int_equal(q.encode(&q, "<think>", ids, 8), 1);
    assert_int_equal(ids[0], 1200);
    assert_true(l.encode(&l, "<think>", ids, 8) > 1); /* ordinary text there */
    tokenizer_free(&q);
    tokenizer_free(&l);
    tokenizer_free(&l); /* idempotent */
}

static void test_capacity(void **state) {
    (void)state;
    Tokenizer t;
    load(&t, "qwen2");
    int ids[256];
    const char *s = "def f(a, b):\n    return a + b\n<|im_start|>東京 😀";
    int n = t.encode(&t, s, ids, 256);
    assert_true(n > 4);
    assert_int_equal(t.encode(&t, s, ids, 3), -n);
    char out[8];
    size_t need = t.decode(&t, ids, n, out, sizeof out);
    assert_int_equal(need, strlen(s));
    assert_int_equal(strlen(out), 7);
    assert_memory_equal(out, s, 7);
    int unk[] = {99999};
    char u[32];
    t.decode(&t, unk, 1, u, sizeof u);
    assert_string_equal(u, "<?99999>");
    tokenizer_free(&t);
}

/* 1 if s (n bytes) is well-formed UTF-8 (Unicode Table 3-7), checked here independently of the
 * tokenizer by decoding each sequence and rejecting overlongs, surrogates and values > U+10FFFF. */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!len || i + (size_t)len > n) return 0;
        uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += (size_t)len;
    }
    return 1;
}

/* Random byte strings (fragments of valid text spliced with arbitrary bytes): encoding never
 * fails, ids stay in the vocabulary, decoding gives well-formed UTF-8, and valid input round-trips
 * through the tokenizer without a normalizer. */
static void test_random_bytes(void **state) {
    (void)state;
    Tokenizer t;
    load(&t, "llama3");
    static const char *frag[] = {"héllo ", "東京", "😀", "\t\n", "  ", "x=1;", "'ll", "<|eot", "id|>", "9999"};
    uint64_t x = 88172645463325252ull;
    int n_valid = 0;
    for (int it = 0; it < 3000; it++) {
        char s[256];
        size_t n = 0;
        int parts = 1 + it % 12;
        for (int p = 0; p < parts; p++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (x % 3 == 0) {
                unsigned char b = (unsigned char)(1 + (x >> 8) % 255); /* never NUL */
                s[n++] = (char)b;
            } else {
                const char *f = frag[(x >> 16) % 10];
                memcpy(s + n, f, strlen(f));
                n += strlen(f);
            }
        }
        s[n] = '\0';
        int ids[1024];
        int k = t.encode(&t, s, ids, 1024);
        assert_true(k > 0);
        for (int i = 0; i < k; i++) assert_true(ids[i] >= 0 && ids[i] < t.vocab_size);
        char back[2048];
        size_t len = t.decode(&t, ids, k, back, sizeof back);
        assert_true(valid_utf8((const unsigned char *)back, len));
        if (valid_utf8((const unsigned char *)s, n) && !strstr(s, "<|eot_id|>")) {
            n_valid++;
            assert_string_equal(back, s);
        }
    }
    assert_true(n_valid > 100);
    tokenizer_free(&t);
}

/* Write `json` as DIR/name and return the load's error (message in err_msg()). */
static int load_text(const char *name, const char *json) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    fputs(json, f);
    fclose(f);
    Tokenizer t;
    int err = tokenizer_bpe_load(&t, p);
    if (!err) tokenizer_free(&t);
    return err;
}

#define PRE "{\"added_tokens\": [], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": false},"

static void test_errors(void **state) {
    (void)state;
    Tokenizer t;
    assert_int_equal(tokenizer_bpe_load(&t, "/nonexistent/tokenizer.json"), ERR_IO);
    assert_non_null(strstr(err_msg(), "/nonexistent/tokenizer.json"));
    assert_int_equal(load_text("a.json", "{\"model\": \n [1,"), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "a.json:2:"));
    assert_int_equal(load_text("b.json", PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2},"
                                             " \"merges\": [\"a b\", 7]}}"), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "b.json: $.model.merges[1]: expected"));
    assert_int_equal(load_text("c.json", PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1},"
                                             " \"merges\": [[\"a\", \"b\"]]}}"), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "c.json: $.model.merges[0]: \"a\" + \"b\": their merge is not in the vocab"));
    assert_int_equal(load_text("d.json", PRE "\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}"), ERR_UNSUPPORTED);
    assert_non_null(strstr(err_msg(), "d.json: $.model.type: expected \"BPE\""));
    assert_int_equal(load_text("e.json", "{\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": "
                                         "\"Split\", \"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}, "
                                         "{\"type\": \"ByteLevel\"}]}, \"model\": {}}"), ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "e.json: $.pre_tokenizer.pretokenizers[0].pattern.Regex: regex does not compile"));
    assert_int_equal(load_text("f.json", PRE "\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}, \"merges\": []}}"),
                     ERR_FORMAT);
    assert_non_null(strstr(err_msg(), "f.json: $.model.vocab[\"a\"]: expected an integer id"));
    assert_int_equal(load_text("g.json", "{\"added_tokens\": [{\"id\": 0, \"content\": \"x\", \"lstrip\": true}],"
                                         " \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\","
                                         " \"vocab\": {}, \"merges\": []}}"), ERR_UNSUPPORTED);
    assert_non_null(strstr(err_msg(), "g.json: $.added_tokens[0].lstrip: only false"));
}

int main(void) {
    if (tmpdir_make(g_dir, sizeof g_dir, "cispo_tok")) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qwen2_encode),   cmocka_unit_test(test_llama3_encode),
        cmocka_unit_test(test_gpt2_encode),
        cmocka_unit_test(test_qwen2_decode),   cmocka_unit_test(test_llama3_decode),
        cmocka_unit_test(test_roles_and_tags), cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_random_bytes),   cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    tmpdir_remove(g_dir);
    return rc;
}

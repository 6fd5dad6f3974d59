/* tests/model/test_tokenizer.c: the byte tokenizer: documented ids, tag encoding, the
 * decode(encode(s)) == s round trip on random texts built from bytes and tag fragments, capacity
 * handling on both sides, and how decode writes special and unknown ids.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/tokenizer.h"

static void test_ids(void **state) {
    (void)state;
    Tokenizer t;
    tokenizer_byte_init(&t);
    assert_int_equal(t.vocab_size, 272);
    assert_int_equal(t.bos, 256);
    assert_int_equal(t.eos, 257);
    assert_int_equal(t.pad, 258);
    const char *want[TOK_N_TAGS] = {"<think>", "</think>", "<answer>", "</answer>"};
    for (int k = 0; k < TOK_N_TAGS; k++) {
        assert_int_equal(t.tag[k], 259 + k);
        assert_string_equal(t.tag_str[k], want[k]);
    }
}

static void test_encode_known(void **state) {
    (void)state;
    Tokenizer t;
    tokenizer_byte_init(&t);
    int ids[64];
    int n = t.encode(&t, "ab<think>x</think><answer>7</answer>", ids, 64);
    const int want[] = {'a', 'b', 259, 'x', 260, 261, '7', 262};
    assert_int_equal(n, 8);
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    /* Fragments and near-misses stay bytes; a tag inside brackets is still found. */
    n = t.encode(&t, "<thin</answer <<think>>", ids, 64);
    const int want2[] = {'<', 't', 'h', 'i', 'n', '<', '/', 'a', 'n', 's', 'w', 'e', 'r', ' ', '<', 259, '>'};
    assert_int_equal(n, (int)(sizeof(want2) / sizeof(want2[0])));
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], want2[i]);
    /* Multi-byte UTF-8 is one id per byte. */
    n = t.encode(&t, "\xc3\xa9", ids, 64);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 0xc3);
    assert_int_equal(ids[1], 0xa9);
    assert_int_equal(t.encode(&t, "", ids, 64), 0);
}

static void test_encode_capacity(void **state) {
    (void)state;
    Tokenizer t;
    tokenizer_byte_init(&t);
    int ids[8];
    for (int i = 0; i < 8; i++) ids[i] = -7;
    /* 5 and 6 tokens needed, room for 3: returns -needed and writes only the first 3. */
    int n = t.encode(&t, "12<answer>3</answer>", ids, 3);
    assert_int_equal(n, -5);
    n = t.encode(&t, "12<answer>34</answer>", ids, 3);
    assert_int_equal(n, -6);
    assert_int_equal(ids[0], '1');
    assert_int_equal(ids[1], '2');
    assert_int_equal(ids[2], 261);
    for (int i = 3; i < 8; i++) assert_int_equal(ids[i], -7);
    assert_int_equal(t.encode(&t, "12<answer>34</answer>", ids, 6), 6);
}

static void test_decode_specials_and_unknown(void **state) {
    (void)state;
    Tokenizer t;
    tokenizer_byte_init(&t);
    const int ids[] = {256, 'h', 'i', 259, 258, 260, 263, -1, 0, 272, 262, 257};
    char out[128];
    size_t n = t.decode(&t, ids, 12, out, sizeof(out));
    const char *want = "hi<think></think><?263><?-1><?0><?272></answer>";
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    /* Like snprintf: the needed length, the text truncated and NUL-terminated. */
    char small[6];
    memset(small, 'X', sizeof(small));
    n = t.decode(&t, ids, 12, small, sizeof(small));
    assert_int_equal(n, strlen(want));
    assert_string_equal(small, "hi<th");
    assert_int_equal(t.decode(&t, ids, 12, NULL, 0), strlen(want));
}

/* Random texts from a pool of fragments (tags, partial tags, bytes 1-255) survive the round trip,
 * and encoding the decoded text gives the same ids. */
static void test_round_trip_random(void **state) {
    (void)state;
    Tokenizer t;
    tokenizer_byte_init(&t);
    static const char *const frags[] = {"<think>", "</think>", "<answer>", "</answer>", "<", "</", "<think",
                                        "answer>", ">", "<</", "think>", "<answe", "\n", " "};
    const int nfrag = (int)(sizeof(frags) / sizeof(frags[0]));
    char text[1200], back[1200];
    int ids[1200], ids2[1200];
    for (uint64_t trial = 0; trial < 2000; trial++) {
        size_t len = 0;
        int pieces = 1 + (int)(rng_uniform(5, trial, 0) * 40);
        for (int k = 0; k < pieces; k++) {
            double u = rng_uniform(5, trial, 1 + 2 * (uint64_t)k);
            double v = rng_uniform(5, trial, 2 + 2 * (uint64_t)k);
            if (u < 0.5) {
                const char *f = frags[(int)(v * nfrag)];
                memcpy(text + len, f, strlen(f));
                len += strlen(f);
            } else {
                text[len++] = (char)(1 + (int)(v * 255));
            }
        }
        text[len] = '\0';
        int n = t.encode(&t, text, ids, 1200);
        assert_true(n >= 0 && (size_t)n <= len);
        for (int i = 0; i < n; i++) assert_true(ids[i] > 0 && ids[i] < t.vocab_size && ids[i] != t.bos);
        size_t m = t.decode(&t, ids, n, back, sizeof(back));
        assert_int_equal(m, len);
        assert_memory_equal(back, text, len + 1);
        assert_int_equal(t.encode(&t, back, ids2, 1200), n);
        assert_memory_equal(ids, ids2, sizeof(int) * (size_t)n);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_encode_known),
        cmocka_unit_test(test_encode_capacity),
        cmocka_unit_test(test_decode_specials_and_unknown),
        cmocka_unit_test(test_round_trip_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

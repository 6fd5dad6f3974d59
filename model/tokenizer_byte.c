/* model/tokenizer_byte.c: the byte-level tokenizer of the built-in tasks (see tokenizer.h).
 *
 * Encoding scans the text once: at each position the four tag strings ("<think>", "</think>",
 * "<answer>", "</answer>") are tried first (no tag is a prefix of another, so the first match is
 * the only one) and become their special id; any other byte becomes its own id 0-255. Since a C
 * string never contains a NUL byte, id 0 never comes out of encode.
 *
 * Decoding is the inverse: byte ids are written as bytes, tag ids as their strings, BOS/EOS/PAD
 * are skipped, and anything else (reserved ids 263-271, ids outside the vocabulary, and id 0,
 * which would cut the C string short) is written as "<?id>". So decode(encode(s)) == s for every
 * string s; encode(decode(ids)) == ids holds when ids came from encode.
 */
#include "model/tokenizer.h"

#include <stdio.h>
#include <string.h>

#define TOK_BYTE_BOS 256
#define TOK_BYTE_EOS 257
#define TOK_BYTE_PAD 258
#define TOK_BYTE_FIRST_TAG 259

static const char *const k_tag_str[TOK_N_TAGS] = {"<think>", "</think>", "<answer>", "</answer>"};

/* Length of the tag starting at text, setting *tag; 0 if none starts there. */
static size_t match_tag(const char *text, int *tag) {
    if (text[0] != '<') return 0;
    for (int k = 0; k < TOK_N_TAGS; k++) {
        size_t len = strlen(k_tag_str[k]);
        if (strncmp(text, k_tag_str[k], len) == 0) {
            *tag = k;
            return len;
        }
    }
    return 0;
}

static int byte_encode(const Tokenizer *t, const char *text, int *out, int cap) {
    int n = 0;
    const char *s = text;
    while (*s != '\0') {
        int tag = -1;
        size_t len = match_tag(s, &tag);
        int id = len > 0 ? t->tag[tag] : (int)(unsigned char)*s;
        if (n < cap) out[n] = id;
        n++;
        s += len > 0 ? len : 1;
    }
    return n <= cap ? n : -n;
}

/* Append `piece` (len bytes) to out at position *pos, writing only what fits below cap - 1. */
static void put(char *out, size_t cap, size_t *pos, const char *piece, size_t len) {
    if (*pos < cap) {
        size_t room = cap - 1 - *pos;
        memcpy(out + *pos, piece, len < room ? len : room);
    }
    *pos += len;
}

static size_t byte_decode(const Tokenizer *t, const int *ids, int n, char *out, size_t cap) {
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id == t->bos || id == t->eos || id == t->pad) continue;
        if (id > 0 && id < 256) {
            char c = (char)id;
            put(out, cap, &pos, &c, 1);
        } else if (id >= TOK_BYTE_FIRST_TAG && id < TOK_BYTE_FIRST_TAG + TOK_N_TAGS) {
            const char *s = t->tag_str[id - TOK_BYTE_FIRST_TAG];
            put(out, cap, &pos, s, strlen(s));
        } else {
            char unk[24];
            int len = snprintf(unk, sizeof(unk), "<?%d>", id);
            put(out, cap, &pos, unk, (size_t)len);
        }
    }
    if (cap > 0) out[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

static int byte_added_id(const Tokenizer *t, const char *s) {
    for (int k = 0; k < TOK_N_TAGS; k++)
        if (strcmp(t->tag_str[k], s) == 0) return t->tag[k];
    return -1;
}

void tokenizer_byte_init(Tokenizer *t) {
    memset(t, 0, sizeof(*t));
    t->vocab_size = TOK_BYTE_VOCAB;
    t->bos = TOK_BYTE_BOS;
    t->eos = TOK_BYTE_EOS;
    t->pad = TOK_BYTE_PAD;
    for (int k = 0; k < TOK_N_TAGS; k++) {
        t->tag[k] = TOK_BYTE_FIRST_TAG + k;
        t->tag_str[k] = k_tag_str[k];
    }
    t->encode = byte_encode;
    t->decode = byte_decode;
    t->added_id = byte_added_id;
}

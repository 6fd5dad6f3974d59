/* model/tokenizer.h: text <-> token ids behind one interface, so the byte-level tokenizer of the
 * built-in tasks and a BPE tokenizer (tokenizer.json, a later issue) are interchangeable.
 *
 * Special tokens have fixed roles: BOS/EOS/PAD, and the reasoning and answer tags the built-in
 * tasks use: "<think>" ... "</think>" then "<answer>" ... "</answer>". encode() turns the literal
 * tag strings in the text into their special ids; decode() writes them back as the same strings,
 * so decode(encode(s)) == s for any text.
 *
 * A byte-level BPE tokenizer read from a Hugging Face tokenizer.json (tokenizer_bpe.c) fills the
 * same struct: its ids follow the file, the tag ids are its added tokens of those names (-1 when
 * it has none: the tags are then ordinary text), and BOS/EOS/PAD come from tokenizer_config.json
 * (-1 where there is none). A chat template (chat_template.h) may be attached; prompts are then
 * built with it and EOS becomes its end-of-turn token.
 */
#ifndef CISPO_MODEL_TOKENIZER_H
#define CISPO_MODEL_TOKENIZER_H

#include <stddef.h>

enum { TOK_SPECIAL_THINK = 0, TOK_SPECIAL_END_THINK, TOK_SPECIAL_ANSWER, TOK_SPECIAL_END_ANSWER, TOK_N_TAGS };

typedef struct Tokenizer {
    int vocab_size;
    int bos, eos, pad;
    int tag[TOK_N_TAGS];          /* ids of <think> </think> <answer> </answer> */
    const char *tag_str[TOK_N_TAGS];
    /* Encode `text` into out (capacity cap). Returns the number of ids, or -(needed) if cap is too
     * small (nothing else is an error: every byte string encodes). */
    int (*encode)(const struct Tokenizer *t, const char *text, int *out, int cap);
    /* Decode ids (BOS/EOS/PAD are skipped; unknown ids become "<?id>") into a NUL-terminated string;
     * returns the length it needed (like snprintf). */
    size_t (*decode)(const struct Tokenizer *t, const int *ids, int n, char *out, size_t cap);
    /* Id of the added (special) token whose text is exactly s, or -1. */
    int (*added_id)(const struct Tokenizer *t, const char *s);
    void (*release)(struct Tokenizer *t); /* frees impl; NULL when there is nothing to free */
    void *impl;
    struct ChatTemplate *chat;            /* NULL: plain prompts; owned (tokenizer_free frees it) */
} Tokenizer;

/* The byte tokenizer: ids 0-255 are bytes; 256 BOS, 257 EOS, 258 PAD, 259 <think>, 260 </think>,
 * 261 <answer>, 262 </answer>; 263-271 reserved; vocab_size 272. */
#define TOK_BYTE_VOCAB 272
void tokenizer_byte_init(Tokenizer *t);

/* Load a byte-level BPE tokenizer from a Hugging Face tokenizer.json (BOS/EOS/PAD from the
 * tokenizer_config.json beside it, when there is one). Returns 0 or ERR_* with a message naming the
 * file and the JSON path; on success free with tokenizer_free. */
int tokenizer_bpe_load(Tokenizer *t, const char *path);
/* Release what t owns (its implementation and chat template); idempotent, fine on a zeroed t. */
void tokenizer_free(Tokenizer *t);

#endif

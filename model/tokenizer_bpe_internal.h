/* model/tokenizer_bpe_internal.h: the state of a byte-level BPE tokenizer read from tokenizer.json,
 * shared by its loader (tokenizer_bpe_load.c) and its encoder/decoder (tokenizer_bpe.c).
 *
 * Ids index `tok`: every id in model.vocab and added_tokens has its string there (vocab strings
 * are in the byte-level alphabet, added tokens hold their content); ids that neither names are
 * holes (NULL). `dec` holds what each id decodes to before the final UTF-8 repair: the bytes of
 * its byte-level characters, or its raw UTF-8 when some character is outside that alphabet (as
 * Hugging Face's ByteLevel decoder does).
 */
#ifndef CISPO_MODEL_TOKENIZER_BPE_INTERNAL_H
#define CISPO_MODEL_TOKENIZER_BPE_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#define BPE_MAX_SPLITS 8
#define BPE_ALPHABET_CPS 324 /* the byte-level alphabet lies in U+0000..U+0143 */

typedef struct {
    char *content;
    int len, id;
} BpeAdded;

typedef struct {
    char path[512];
    int n_ids;              /* max id + 1 */
    char **tok;             /* (n_ids) token strings, NULL for holes, owned */
    char **dec;             /* (n_ids) decoded bytes of each id, owned */
    int *dec_len;           /* (n_ids) */
    int32_t *str_slot;      /* (str_cap) open addressing over vocab strings: id or -1 */
    size_t str_cap;
    uint64_t *pair_key;     /* (pair_cap) (left id << 32 | right id) + 1, 0 = empty */
    uint64_t *pair_val;     /* (pair_cap) rank << 32 | merged id */
    size_t pair_cap;
    int byte_id[256];       /* id of each byte's byte-level character (-1 if not in the vocab) */
    char byte_char[256][3]; /* UTF-8 of each byte's byte-level character (1 or 2 bytes + NUL) */
    int16_t cp_byte[BPE_ALPHABET_CPS]; /* byte of each alphabet code point, -1 for the others */
    BpeAdded *added;        /* (n_added), sorted by content length, longest first */
    int n_added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */
    pcre2_code *split[BPE_MAX_SPLITS]; /* Split pre-tokenizers (behaviour Isolated), applied in order */
    int n_split;
    int nfc;                /* normalizer: NFC */
    int ignore_merges;      /* a pre-token that is itself in the vocab is one token */
} BpeTok;

/* Parse `path` (tokenizer.json) into b. 0 or ERR_* with a message "PATH: $.json.path: ...". */
int bpe_load_json(BpeTok *b, const char *path);
/* Release what b owns; idempotent on a zeroed or freed b. */
void bpe_free(BpeTok *b);
/* Id of the vocab or added token with exactly this string (len bytes), -1 if none. */
int bpe_lookup(const BpeTok *b, const char *s, size_t len);
/* Insert id under tok[id] into the string table (the table must have room). */
void bpe_index_str(BpeTok *b, int id);
/* Record merge number `rank` of (left, right) -> merged. */
void bpe_add_merge(BpeTok *b, int left, int right, int rank, int merged);
/* Fill byte_char with GPT-2's byte-to-character map. */
void bpe_byte_alphabet(BpeTok *b);

#endif

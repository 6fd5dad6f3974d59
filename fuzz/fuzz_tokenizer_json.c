/* fuzz/fuzz_tokenizer_json.c: Hugging Face tokenizer.json (model/tokenizer_bpe_load.c): parsing,
 * then, when a tokenizer loads, encoding and decoding a fixed text with ASCII, CJK, invalid UTF-8
 * and whitespace runs (the merge tables and regexes built from the input get exercised too). */
#include "fuzz/fuzz_util.h"
#include "model/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char text[] = "Hello, world! 12345 \xe4\xbd\xa0\xe5\xa5\xbd \xff\xfe  \t\n\n  x<think>y</think>";
    Tokenizer t;
    if (tokenizer_bpe_load(&t, fuzz_file(data, size)) != 0) return 0;
    int ids[512];
    char out[2048];
    int n = t.encode(&t, text, ids, 512);
    if (n > 0) (void)t.decode(&t, ids, n, out, sizeof out);
    tokenizer_free(&t);
    return 0;
}

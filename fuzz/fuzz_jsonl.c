/* fuzz/fuzz_jsonl.c: JSONL datasets (curricula/jsonl_source.c), lenient and strict loads, then
 * every problem fetched (math and code tasks). */
#include "curricula/jsonl_source.h"
#include "fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static JsonlSource s;
    static Problem p;
    const char *path = fuzz_file(data, size);
    for (int strict = 0; strict < 2; strict++) {
        if (jsonl_source_load(&s, path, strict) != 0) continue;
        for (long i = 0; i < jsonl_source_count(&s); i++)
            if (jsonl_source_get(&s, i, &p) != 0 || jsonl_source_line(&s, i) < 1) abort();
        jsonl_source_free(&s);
    }
    return 0;
}

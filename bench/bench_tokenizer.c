/* bench/bench_tokenizer.c: encode throughput of the tokenizer.json BPE (model/tokenizer_bpe.c),
 * one thread, on a text file cut into documents the way bench/bench_tokenizer.py cuts it for
 * Hugging Face `tokenizers` (whole lines, a document closes once it reaches 4096 bytes), so both
 * encode exactly the same strings. Prints one JSON object: bytes, documents, tokens, an FNV-1a
 * hash of every id in order (the driver checks it against Python's), and the median over reps of
 * MB/s and tokens/s. Also decode MB/s of the ids back to text.
 *
 * Usage: bench_tokenizer TOKENIZER_JSON TEXT_FILE [REPS]
 * (bench/bench_tokenizer.py builds the corpus and the tokenizer, runs both sides, writes the row.)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/version.h"
#include "model/tokenizer.h"

#define DOC_BYTES 4096

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = xmalloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* Cut text in place into NUL-terminated documents of whole lines, each closed at >= DOC_BYTES. */
static int cut_docs(char *text, size_t len, char ***docs) {
    int n = 0, cap = 1024;
    char **d = xmalloc((size_t)cap * sizeof(char *));
    char *keep = xmalloc(len + 2 * (len / DOC_BYTES + 2)); /* documents copied out, each NUL-terminated */
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        int end_line = i == len || text[i] == '\n';
        if (!end_line) continue;
        size_t stop = i < len ? i + 1 : i;
        if (stop - start >= DOC_BYTES || (i == len && stop > start)) {
            if (n == cap) d = realloc(d, (size_t)(cap *= 2) * sizeof(char *));
            CHECK(d, "out of memory");
            memcpy(keep + k, text + start, stop - start);
            d[n++] = keep + k;
            k += stop - start;
            keep[k++] = '\0';
            start = stop;
        }
    }
    *docs = d;
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON TEXT_FILE [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    Tokenizer t;
    if (tokenizer_bpe_load(&t, argv[1])) {
        fprintf(stderr, "bench_tokenizer: %s\n", err_msg());
        return 1;
    }
    size_t len;
    char *text = slurp(argv[2], &len);
    if (!text) {
        fprintf(stderr, "bench_tokenizer: cannot read %s\n", argv[2]);
        return 1;
    }
    char **docs;
    int nd = cut_docs(text, len, &docs), cap = 1 << 16;
    int *ids = xmalloc((size_t)cap * sizeof(int));
    char *back = xmalloc(4 * DOC_BYTES + 64);
    double te[64], td[64];
    long tokens = 0;
    uint64_t h = 1469598103934665603ull;
    reps = reps < 1 ? 1 : reps > 64 ? 64 : reps;
    for (int r = 0; r < reps; r++) {
        double t0 = now_s(), dec = 0;
        tokens = 0;
        for (int i = 0; i < nd; i++) {
            int n = t.encode(&t, docs[i], ids, cap);
            CHECK(n >= 0, "document %d has more than %d tokens", i, cap);
            tokens += n;
            if (r == 0)
                for (int j = 0; j < n; j++) h = (h ^ (uint64_t)(uint32_t)ids[j]) * 1099511628211ull;
            double d0 = now_s();
            t.decode(&t, ids, n, back, 4 * DOC_BYTES + 64);
            dec += now_s() - d0;
        }
        td[r] = dec;
        te[r] = now_s() - t0 - dec;
    }
    qsort(te, (size_t)reps, sizeof(double), cmp_d);
    qsort(td, (size_t)reps, sizeof(double), cmp_d);
    double enc = te[reps / 2], dec = td[reps / 2];
    printf("{\"version\": \"%s\", \"bytes\": %zu, \"docs\": %d, \"tokens\": %ld, \"hash\": \"%016llx\", "
           "\"encode_s\": %.4f, \"encode_mb_s\": %.2f, \"encode_tok_s\": %.0f, \"decode_mb_s\": %.2f}\n",
           cispo_version(), len, nd, tokens, (unsigned long long)h, enc, len / enc / 1e6, tokens / enc,
           len / dec / 1e6);
    free(ids);
    free(back);
    if (nd > 0) free(docs[0]); /* the block all documents live in */
    free(docs);
    free(text);
    tokenizer_free(&t);
    return 0;
}

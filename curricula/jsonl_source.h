/* curricula/jsonl_source.h: a task source read from a JSONL file, one problem per line:
 *
 *   {"prompt": "What is 1/2 + 1/4?", "answer": "3/4", "difficulty": 2, "id": "q17", "solution": "..."}
 *
 * "prompt" (non-empty string) and "answer" (non-empty string, or a number) are required;
 * "difficulty" (integer >= 1, default 1), "id" (string or integer) and "solution" (string, the SFT
 * target in the "<think>...</think><answer>...</answer>" format) are optional; other keys are
 * ignored. Empty (whitespace-only) lines are skipped silently. Any other line that is not such an
 * object (bad JSON, not an object, a missing or ill-typed field, a field longer than the Problem
 * buffers, difficulty < 1, duplicate keys) is malformed: reported as "FILE:LINE: what was wrong"
 * through log_warn (the first JSONL_MAX_WARNINGS of them; the rest are counted only), skipped and
 * counted; in strict mode the load fails with ERR_FORMAT and that message instead.
 *
 * Problems come back with family "jsonl" (scored by reward_math_equal against the answer),
 * id = their index among the loaded lines, and data = the line's "id" as text ("" if absent).
 * A numeric answer becomes its shortest exact decimal text (3 -> "3", 0.1 -> "0.1").
 *
 * Code tasks: a line with "tests" (an array of {"input": string, "output": string}) and/or
 * "test_program" (a string), and optionally "language" ("python" or "c"), is a code task; its
 * "answer" is optional. It comes back with family "code" and code_spec pointing at
 * {"language", "tests", "test_program"} as JSON text owned by the source (rewards/code_verify.h
 * scores it in the sandbox).
 */
#ifndef CISPO_CURRICULA_JSONL_SOURCE_H
#define CISPO_CURRICULA_JSONL_SOURCE_H

#include <stddef.h>

#include "curricula/task.h"

#define JSONL_MAX_WARNINGS 20

typedef struct {
    size_t prompt, answer, solution, id; /* offsets into JsonlSource.text (NUL-terminated strings) */
    size_t code_spec;                    /* code tasks: offset of the tests' JSON text */
    int is_code;
    int difficulty;
    long line;                           /* 1-based line number in the file */
} JsonlEntry;

typedef struct {
    char path[512];
    long n;               /* problems loaded */
    long n_malformed;     /* malformed lines skipped (empty lines are not counted) */
    long n_lines;         /* lines read */
    JsonlEntry *entries;  /* (n), owned */
    long entries_cap;
    char *text;           /* the entries' strings, owned */
    size_t text_len, text_cap;
} JsonlSource;

/* Load path into s (s is overwritten; free it with jsonl_source_free). Returns 0; ERR_IO if the
 * file cannot be read; ERR_FORMAT on the first malformed line when strict, or when no line is a
 * valid problem; ERR_NOMEM. On failure s holds nothing (no free needed, but it is harmless). */
int jsonl_source_load(JsonlSource *s, const char *path, int strict);
/* Number of problems loaded. */
long jsonl_source_count(const JsonlSource *s);
/* Number of malformed lines skipped. */
long jsonl_source_malformed(const JsonlSource *s);
/* Fill p with problem `index` (0 <= index < count); ERR_RANGE otherwise. */
int jsonl_source_get(const JsonlSource *s, long index, Problem *p);
/* 1-based line of problem `index` in the file (for messages), or -1 if out of range. */
long jsonl_source_line(const JsonlSource *s, long index);
/* Release everything s owns; idempotent. */
void jsonl_source_free(JsonlSource *s);

#endif

/* curricula/task_caesar.c: "caesar", decode a Caesar-shifted lowercase text with the shift given
 * (difficulty d = number of letters, 1..24; from 6 letters on, the text is two words).
 *
 *   prompt   "caesar 3:khoor"            (the plain text was shifted forward by 3)
 *   solution "<think>k-3=h;h-3=e;o-3=l;o-3=l;r-3=o</think><answer>hello</answer>"
 *
 * Letters are drawn uniformly (pseudo-words, no dictionary); the shift is 1..25. One step per
 * letter, "c-k=p" with wrap-around (a-3=x); the space between two words is the step "_".
 *
 * Noise: a step's letter is off by one (cyclically); every letter is its own output, so a noisy
 * solution is always wrong.
 *
 * Verifier: the decoded text exactly (lowercase, one space between the words).
 */
#include <stdio.h>
#include <string.h>

#include "curricula/task_internal.h"

#define CAESAR_MAX_LETTERS 24

static int caesar_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_caesar, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "caesar", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "caesar", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "caesar", d, seed, index, TASK_STREAM_NOISE);

    int shift = task_rng_int(&r, 1, 25);
    int space_at = d >= 6 ? task_rng_int(&r, 3, d - 3) : -1; /* letters before the space; words >= 3 letters */
    char plain[CAESAR_MAX_LETTERS + 2], cipher[CAESAR_MAX_LETTERS + 2], given[CAESAR_MAX_LETTERS + 2];
    int n = 0;
    for (int i = 0; i < d; i++) {
        if (n == space_at) plain[n++] = ' ';
        plain[n++] = (char)('a' + task_rng_int(&r, 0, 25));
    }
    plain[n] = '\0';
    TaskBuf sb;
    char steps[TASK_SOLUTION_MAX];
    tbuf_init(&sb, steps, sizeof(steps));
    for (int i = 0; i < n; i++) {
        if (plain[i] == ' ') {
            cipher[i] = given[i] = ' ';
            tbuf_printf(&sb, ";_");
            continue;
        }
        cipher[i] = (char)('a' + (plain[i] - 'a' + shift) % 26);
        int out = plain[i] - 'a';
        if (task_rng_chance(&nr, noise)) out = (out + 26 + task_rng_sign(&nr)) % 26;
        given[i] = (char)('a' + out);
        tbuf_printf(&sb, "%s%c-%d=%c", i > 0 ? ";" : "", cipher[i], shift, given[i]);
    }
    cipher[n] = given[n] = '\0';
    snprintf(p->prompt, sizeof(p->prompt), "caesar %d:%s", shift, cipher);
    snprintf(p->answer, sizeof(p->answer), "%s", plain);
    return task_finish(p, steps, given, sb.overflow);
}

static int caesar_verify(const Problem *p, const char *answer) { return strcmp(answer, p->answer) == 0; }

const TaskFamily task_family_caesar = {
    .name = "caesar",
    .description = "decode d Caesar-shifted lowercase letters (two words from 6 letters), letter by letter",
    .min_difficulty = 1,
    .max_difficulty = CAESAR_MAX_LETTERS,
    .generate = caesar_generate,
    .verify = caesar_verify,
};

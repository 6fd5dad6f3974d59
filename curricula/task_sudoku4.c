/* curricula/task_sudoku4.c: "sudoku4", complete a 4x4 sudoku (digits 1-4; rows, columns and the
 * four 2x2 boxes each hold every digit once) with d blanks (difficulty d = 1..12).
 *
 *   prompt   "sudoku 1.34/3412/21.3/4.21"   (rows top to bottom, '.' for a blank)
 *   solution "<think>r1c2=2;r3c3=4;r4c2=3</think><answer>1234341221434321</answer>"
 *   data     "1.34341221.34.21"               (the givens, for the verifier)
 *
 * The full grid is drawn by a randomised backtracking fill; the blanks are d random cells. The
 * reasoning fills one blank per step, "rRcC=v": a blank with a single candidate when there is one
 * (the first in reading order), otherwise the blank with the fewest candidates, taking the drawn
 * grid's value. Puzzles with many blanks may have several completions; any valid one is correct.
 *
 * Noise: a step writes a different digit (off by one, within 1-4); later steps go on from the
 * drawn grid, so the answer has a duplicate in a row and is wrong.
 *
 * Verifier: exactly 16 digits 1-4, row by row, agreeing with every given and forming a valid
 * grid.
 */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "curricula/task_internal.h"

#define SD_CELLS 16
#define SD_MAX_BLANKS 12

/* Bit mask of the digits (bit v for digit v) already used in the row, column and box of cell c. */
static int sd_used(const int *g, int c) {
    int row = c / 4, col = c % 4, br = row / 2 * 2, bc = col / 2 * 2, m = 0;
    for (int k = 0; k < 4; k++) {
        m |= 1 << g[row * 4 + k];
        m |= 1 << g[k * 4 + col];
        m |= 1 << g[(br + k / 2) * 4 + bc + k % 2];
    }
    return m & ~1; /* bit 0 is the blank */
}

/* Fill the blanks of g from cell c on, trying digits in a random order. 1 on success. */
static int sd_fill(int *g, int c, TaskRng *r) {
    if (c == SD_CELLS) return 1;
    int order[4] = {1, 2, 3, 4};
    task_rng_shuffle(r, order, 4);
    int used = sd_used(g, c);
    for (int k = 0; k < 4; k++) {
        if (used & (1 << order[k])) continue;
        g[c] = order[k];
        if (sd_fill(g, c + 1, r)) return 1;
    }
    g[c] = 0;
    return 0;
}

static int sd_popcount(int m) { return __builtin_popcount((unsigned)m); }

/* The blank cell of g to fill next: the first with one candidate, else the one with fewest. */
static int sd_next_cell(const int *g) {
    int best = -1, best_n = 5;
    for (int c = 0; c < SD_CELLS; c++) {
        if (g[c] != 0) continue;
        int n = 4 - sd_popcount(sd_used(g, c));
        if (n < best_n) {
            best = c;
            best_n = n;
        }
        if (n == 1) break;
    }
    return best;
}

static int sudoku4_generate(Problem *p, int d, uint64_t seed, uint64_t index, double noise) {
    int rc = task_check_args(&task_family_sudoku4, d, noise);
    if (rc != 0) return rc;
    task_problem_init(p, "sudoku4", d, index);
    TaskRng r, nr;
    task_rng_init(&r, "sudoku4", d, seed, index, TASK_STREAM_PROBLEM);
    task_rng_init(&nr, "sudoku4", d, seed, index, TASK_STREAM_NOISE);

    int full[SD_CELLS] = {0}, g[SD_CELLS], given[SD_CELLS], cells[SD_CELLS];
    CHECK(sd_fill(full, 0, &r), "a 4x4 grid always has a completion");
    for (int c = 0; c < SD_CELLS; c++) cells[c] = c;
    task_rng_shuffle(&r, cells, SD_CELLS);
    memcpy(g, full, sizeof(g));
    for (int k = 0; k < d; k++) g[cells[k]] = 0;

    char grid_text[SD_CELLS + 4];
    int pos = 0;
    for (int c = 0; c < SD_CELLS; c++) {
        if (c > 0 && c % 4 == 0) grid_text[pos++] = '/';
        grid_text[pos++] = g[c] ? (char)('0' + g[c]) : '.';
        p->data[c] = g[c] ? (char)('0' + g[c]) : '.';
    }
    grid_text[pos] = '\0';
    p->data[SD_CELLS] = '\0';
    snprintf(p->prompt, sizeof(p->prompt), "sudoku %s", grid_text);
    for (int c = 0; c < SD_CELLS; c++) p->answer[c] = (char)('0' + full[c]);
    p->answer[SD_CELLS] = '\0';

    TaskBuf sb;
    char steps[TASK_SOLUTION_MAX], answer[SD_CELLS + 1];
    tbuf_init(&sb, steps, sizeof(steps));
    memcpy(given, full, sizeof(given));
    for (int k = 0; k < d; k++) {
        int c = sd_next_cell(g);
        g[c] = full[c];
        if (task_rng_chance(&nr, noise)) {
            int delta = task_rng_sign(&nr);
            if (full[c] + delta < 1 || full[c] + delta > 4) delta = -delta;
            given[c] = full[c] + delta;
        }
        tbuf_printf(&sb, "%sr%dc%d=%d", k > 0 ? ";" : "", c / 4 + 1, c % 4 + 1, given[c]);
    }
    for (int c = 0; c < SD_CELLS; c++) answer[c] = (char)('0' + given[c]);
    answer[SD_CELLS] = '\0';
    return task_finish(p, steps, answer, sb.overflow);
}

static int sudoku4_verify(const Problem *p, const char *answer) {
    if (strlen(answer) != SD_CELLS || strlen(p->data) != SD_CELLS) return 0;
    int g[SD_CELLS];
    for (int c = 0; c < SD_CELLS; c++) {
        if (answer[c] < '1' || answer[c] > '4') return 0;
        if (p->data[c] != '.' && p->data[c] != answer[c]) return 0;
        g[c] = answer[c] - '0';
    }
    for (int c = 0; c < SD_CELLS; c++) {
        int v = g[c];
        g[c] = 0;
        int clash = (sd_used(g, c) >> v) & 1;
        g[c] = v;
        if (clash) return 0;
    }
    return 1;
}

const TaskFamily task_family_sudoku4 = {
    .name = "sudoku4",
    .description = "complete a 4x4 sudoku with d blanks, one cell per step",
    .min_difficulty = 1,
    .max_difficulty = SD_MAX_BLANKS,
    .generate = sudoku4_generate,
    .verify = sudoku4_verify,
};

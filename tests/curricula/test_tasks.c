/* tests/curricula/test_tasks.c: the built-in task families: registry, seeded determinism,
 * worked solutions (format, correctness over 200 problems per difficulty), noisy solutions
 * (independent of the problem, wrong at noise 1), rejection of wrong answers, the countdown
 * expression parser's edge cases, alternative sudoku completions, known problems at fixed seeds,
 * and a printed table of prompt/solution lengths in byte tokens (for sizing the demo).
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

#include "core/error.h"
#include "curricula/task.h"

#define N_PER_DIFFICULTY 200

static const char *const k_tags[] = {"<think>", "</think>", "<answer>", "</answer>"};

/* Byte tokens of s as the byte tokenizer counts them (each tag string is one token). */
static int byte_tokens(const char *s) {
    int n = 0;
    while (*s) {
        size_t step = 1;
        for (int k = 0; k < 4; k++)
            if (strncmp(s, k_tags[k], strlen(k_tags[k])) == 0) step = strlen(k_tags[k]);
        s += step;
        n++;
    }
    return n;
}

/* Check the solution is exactly "<think>STEPS</think><answer>ANSWER</answer>" with no tags inside
 * and copy ANSWER out. */
static void split_solution(const char *sol, char *answer, size_t cap) {
    assert_true(strncmp(sol, "<think>", 7) == 0);
    const char *mid = strstr(sol, "</think><answer>");
    assert_non_null(mid);
    size_t n = strlen(sol);
    assert_true(n >= 9 && strcmp(sol + n - 9, "</answer>") == 0);
    const char *a = mid + strlen("</think><answer>"), *e = sol + n - 9;
    assert_true(a <= e && (size_t)(e - a) < cap);
    memcpy(answer, a, (size_t)(e - a));
    answer[e - a] = '\0';
    for (const char *c = sol + 7; c < mid; c++) assert_true(*c != '<' && *c != '>');
    for (const char *c = a; c < e; c++) assert_true(*c != '<' && *c != '>');
    assert_true(mid > sol + 7); /* some reasoning */
}

static void test_registry(void **state) {
    (void)state;
    const TaskFamily *const *fs = task_families();
    int n = 0;
    for (; fs[n] != NULL; n++) {
        assert_ptr_equal(task_family_find(fs[n]->name), fs[n]);
        assert_true(fs[n]->min_difficulty >= 1 && fs[n]->min_difficulty <= fs[n]->max_difficulty);
        assert_true(strlen(fs[n]->name) < sizeof(((Problem *)0)->family));
        for (int m = 0; m < n; m++) assert_string_not_equal(fs[m]->name, fs[n]->name);
    }
    assert_true(n >= 6);
    const char *want[] = {"add", "mul", "runsum", "sort", "caesar", "countdown", "sudoku4"};
    for (int i = 0; i < 7; i++) assert_non_null(task_family_find(want[i]));
    assert_null(task_family_find("jsonl"));
    assert_null(task_family_find("nope"));
    assert_null(task_family_find(NULL));
}

static void test_bad_arguments(void **state) {
    (void)state;
    Problem p;
    for (const TaskFamily *const *f = task_families(); *f != NULL; f++) {
        assert_int_equal((*f)->generate(&p, (*f)->min_difficulty - 1, 1, 0, 0.0), ERR_RANGE);
        assert_non_null(strstr(err_msg(), (*f)->name));
        assert_non_null(strstr(err_msg(), "difficulty"));
        assert_int_equal((*f)->generate(&p, (*f)->max_difficulty + 1, 1, 0, 0.0), ERR_RANGE);
        assert_int_equal((*f)->generate(&p, (*f)->min_difficulty, 1, 0, 1.5), ERR_RANGE);
        assert_int_equal((*f)->generate(&p, (*f)->min_difficulty, 1, 0, -0.1), ERR_RANGE);
    }
}

/* Same (difficulty, seed, index) -> byte-identical problem; neighbours and other seeds differ. */
static void test_determinism(void **state) {
    (void)state;
    Problem *a = malloc(sizeof(Problem)), *b = malloc(sizeof(Problem));
    for (const TaskFamily *const *fp = task_families(); *fp != NULL; fp++) {
        const TaskFamily *f = *fp;
        int d = (f->min_difficulty + f->max_difficulty + 1) / 2, diff_index = 0, diff_seed = 0;
        for (uint64_t i = 0; i < 100; i++) {
            assert_int_equal(f->generate(a, d, 77, i, 0.0), 0);
            assert_int_equal(f->generate(b, d, 77, i, 0.0), 0);
            assert_memory_equal(a, b, sizeof(Problem));
            assert_string_equal(a->family, f->name);
            assert_int_equal(a->difficulty, d);
            assert_int_equal(a->id, i);
            assert_int_equal(f->generate(b, d, 77, i + 1, 0.0), 0);
            diff_index += strcmp(a->prompt, b->prompt) != 0;
            assert_int_equal(f->generate(b, d, 78, i, 0.0), 0);
            diff_seed += strcmp(a->prompt, b->prompt) != 0;
            /* Another difficulty draws another problem too. */
            if (d > f->min_difficulty) {
                assert_int_equal(f->generate(b, d - 1, 77, i, 0.0), 0);
                assert_string_not_equal(a->prompt, b->prompt);
            }
        }
        print_message("%-10s d=%-2d distinct neighbours %d/100, other seed %d/100\n", f->name, d, diff_index, diff_seed);
        assert_true(diff_index >= 95);
        assert_true(diff_seed >= 95);
    }
    free(a);
    free(b);
}

/* Noise-free solutions are well formed and verify, over every difficulty; the problem does not
 * depend on the noise level; noisy solutions are well formed and (almost) never verify at noise 1;
 * at noise 0.3 some but not all are wrong. */
static void test_solutions_all_difficulties(void **state) {
    (void)state;
    Problem *p = malloc(sizeof(Problem)), *q = malloc(sizeof(Problem));
    char ans[TASK_ANSWER_MAX];
    for (const TaskFamily *const *fp = task_families(); *fp != NULL; fp++) {
        const TaskFamily *f = *fp;
        long noisy_ok = 0, mid_ok = 0, total = 0;
        for (int d = f->min_difficulty; d <= f->max_difficulty; d++) {
            for (uint64_t i = 0; i < N_PER_DIFFICULTY; i++) {
                assert_int_equal(f->generate(p, d, 2024, i, 0.0), 0);
                split_solution(p->solution, ans, sizeof(ans));
                assert_string_equal(ans, p->answer);
                if (!f->verify(p, ans)) fail_msg("%s d=%d i=%d: %s | %s", f->name, d, (int)i, p->prompt, p->solution);
                assert_int_equal(f->generate(q, d, 2024, i, 1.0), 0);
                assert_string_equal(q->prompt, p->prompt);
                assert_string_equal(q->answer, p->answer);
                assert_string_equal(q->data, p->data);
                split_solution(q->solution, ans, sizeof(ans));
                noisy_ok += f->verify(q, ans);
                assert_int_equal(f->generate(q, d, 2024, i, 0.3), 0);
                split_solution(q->solution, ans, sizeof(ans));
                mid_ok += f->verify(q, ans);
                total++;
            }
        }
        print_message("%-10s noise 1: %ld/%ld verify; noise 0.3: %ld/%ld verify\n", f->name, noisy_ok, total, mid_ok,
                      total);
        assert_true(noisy_ok * 100 <= total); /* at most 1% */
        assert_true(mid_ok > total / 20 && mid_ok < total);
    }
    free(p);
    free(q);
}

/* Mutations of the correct answer are rejected by every family. */
static void test_wrong_answers_rejected(void **state) {
    (void)state;
    Problem p;
    char bad[2 * TASK_ANSWER_MAX + 8];
    for (const TaskFamily *const *fp = task_families(); *fp != NULL; fp++) {
        const TaskFamily *f = *fp;
        for (int d = f->min_difficulty; d <= f->max_difficulty; d++) {
            for (uint64_t i = 0; i < 20; i++) {
                assert_int_equal(f->generate(&p, d, 5, i, 0.0), 0);
                assert_true(f->verify(&p, p.answer));
                assert_false(f->verify(&p, ""));
                snprintf(bad, sizeof(bad), "%s ", p.answer); /* countdown allows spaces between tokens */
                if (strcmp(f->name, "countdown") != 0) assert_false(f->verify(&p, bad));
                snprintf(bad, sizeof(bad), "x%s", p.answer);
                assert_false(f->verify(&p, bad));
                snprintf(bad, sizeof(bad), "%s%s", p.answer, p.answer);
                assert_false(f->verify(&p, bad));
                /* Change the last character to another one of the same kind. */
                snprintf(bad, sizeof(bad), "%s", p.answer);
                size_t n = strlen(bad);
                char c = bad[n - 1];
                if (c >= '0' && c <= '9' && strcmp(f->name, "countdown") != 0)
                    bad[n - 1] = (char)(c == '9' ? '1' : c + 1);
                else if (c >= 'a' && c <= 'z')
                    bad[n - 1] = (char)(c == 'z' ? 'a' : c + 1);
                else
                    continue;
                if (strcmp(f->name, "sudoku4") == 0) bad[n - 1] = (char)(c == '4' ? '1' : c + 1);
                assert_false(f->verify(&p, bad));
            }
        }
    }
}

/* Fixed problems: spot checks that the generators produce what their comments say. */
static void test_known_shapes(void **state) {
    (void)state;
    Problem p;
    const TaskFamily *add = task_family_find("add");
    assert_int_equal(add->generate(&p, 4, 9, 3, 0.0), 0);
    long a = 0, b = 0;
    assert_int_equal(sscanf(p.prompt, "%ld+%ld=", &a, &b), 2);
    assert_true(a >= 1000 && a <= 9999 && b >= 1000 && b <= 9999);
    char want[32];
    snprintf(want, sizeof(want), "%ld", a + b);
    assert_string_equal(p.answer, want);

    const TaskFamily *rs = task_family_find("runsum");
    assert_int_equal(rs->generate(&p, 4, 9, 3, 0.0), 0);
    int t[4];
    assert_int_equal(sscanf(p.prompt, "%d+%d+%d+%d=", &t[0], &t[1], &t[2], &t[3]), 4);
    char sol[128];
    snprintf(sol, sizeof(sol), "<think>%d,%d,%d,%d</think><answer>%d</answer>", t[0], t[0] + t[1], t[0] + t[1] + t[2],
             t[0] + t[1] + t[2] + t[3], t[0] + t[1] + t[2] + t[3]);
    assert_string_equal(p.solution, sol);
    assert_true(byte_tokens(p.prompt) <= 40 && byte_tokens(p.solution) <= 40);

    const TaskFamily *mul = task_family_find("mul");
    assert_int_equal(mul->generate(&p, 7, 9, 3, 0.0), 0); /* 4 digits x 1 digit */
    assert_int_equal(sscanf(p.prompt, "%ld*%ld=", &a, &b), 2);
    assert_true(a >= 1000 && a <= 9999 && b >= 2 && b <= 9);
    assert_int_equal(mul->generate(&p, 8, 9, 3, 0.0), 0); /* 4 digits x 2 digits */
    assert_int_equal(sscanf(p.prompt, "%ld*%ld=", &a, &b), 2);
    assert_true(a >= 1000 && a <= 9999 && b >= 11 && b <= 99);
    snprintf(want, sizeof(want), "%ld", a * b);
    assert_string_equal(p.answer, want);

    const TaskFamily *cz = task_family_find("caesar");
    assert_int_equal(cz->generate(&p, 8, 9, 3, 0.0), 0);
    int shift = 0, off = 0;
    assert_int_equal(sscanf(p.prompt, "caesar %d:%n", &shift, &off), 1);
    const char *cipher = p.prompt + off;
    assert_int_equal(strlen(cipher), 9); /* 8 letters and a space */
    for (size_t i = 0; i < strlen(cipher); i++) {
        if (cipher[i] == ' ') {
            assert_int_equal(p.answer[i], ' ');
            continue;
        }
        assert_int_equal((p.answer[i] - 'a' + shift) % 26, cipher[i] - 'a');
    }
}

/* Countdown: the verifier parses expressions strictly against the given numbers. */
static void test_countdown_parser(void **state) {
    (void)state;
    const TaskFamily *cd = task_family_find("countdown");
    Problem p;
    memset(&p, 0, sizeof(p));
    strcpy(p.family, "countdown");
    struct {
        const char *data, *answer;
        int ok;
    } cases[] = {
        {"16;3,5,2", "(3+5)*2", 1},
        {"16;3,5,2", " ( 3 + 5 ) *\t2 ", 1},
        {"16;3,5,2", "2*(5+3)", 1},
        {"8;3,5,2", "3+5", 1},            /* unused numbers are fine */
        {"16;3,5,2", "3+5*2", 0},         /* 13: precedence */
        {"6;3,4", "3+3", 0},              /* only one 3 */
        {"6;3,3", "3+3", 1},
        {"3;7,2", "7/2", 0},              /* non-exact (C would say 3) */
        {"4;8,2", "8/2", 1},
        {"0;8,0", "8/0", 0},              /* division by zero */
        {"8;2,3", "2**3", 0},
        {"1000;1,3", "1e3", 0},
        {"3;3", "abs(3)", 0},
        {"2;5,3", "-3+5", 0},             /* no unary minus */
        {"8;3,5", "3+5)", 0},
        {"8;3,5", "(3+5", 0},
        {"8;3,5", "3 5", 0},
        {"8;3,5", "03+5", 0},             /* leading zero */
        {"8;3,5", "3.0+5", 0},
        {"8;3,5", "", 0},
        {"8;3,5", "()", 0},
        {"8;3,5", "3+", 0},
        {"8;3,5", "3+5=8", 0},
        {"9;3,5", "3+5", 0},              /* wrong value */
        {"11;3,5,2", "5-3+2", 0},         /* 4, left to right */
        {"0;999999999,999999999,999999999", "999999999*999999999*999999999", 0}, /* overflow */
        {"0;1", "99999999999999999999-99999999999999999999", 0},                 /* literal overflow */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(p.data, sizeof(p.data), "%s", cases[i].data);
        if (cd->verify(&p, cases[i].answer) != cases[i].ok)
            fail_msg("case %d: data '%s' answer '%s' expected %d", (int)i, cases[i].data, cases[i].answer, cases[i].ok);
    }
    /* Parentheses nest up to 64 deep; deeper is rejected rather than recursing on. */
    char deep[400];
    for (int depth = 60; depth <= 70; depth += 10) {
        int n = 0;
        for (int k = 0; k < depth; k++) deep[n++] = '(';
        deep[n++] = '3';
        for (int k = 0; k < depth; k++) deep[n++] = ')';
        deep[n] = '\0';
        strcpy(p.data, "3;3");
        assert_int_equal(cd->verify(&p, deep), depth <= 64);
    }
    /* Generated problems: the target is positive and data matches the prompt. */
    for (uint64_t i = 0; i < 200; i++) {
        assert_int_equal(cd->generate(&p, 6, 3, i, 0.0), 0);
        long target = 0;
        int off = 0;
        assert_int_equal(sscanf(p.prompt, "reach %ld with %n", &target, &off), 1);
        assert_true(target >= 1);
        char want[TASK_ANSWER_MAX];
        snprintf(want, sizeof(want), "%ld;%s", target, p.prompt + off);
        assert_string_equal(p.data, want);
    }
}

/* Count completions of the givens in data (up to 2), storing them in sol. */
static int sudoku_completions(char *g, int cell, char sol[2][17], int found) {
    if (found >= 2) return found;
    if (cell == 16) {
        memcpy(sol[found], g, 17);
        return found + 1;
    }
    if (g[cell] != '.') return sudoku_completions(g, cell + 1, sol, found);
    int r = cell / 4, c = cell % 4;
    for (char v = '1'; v <= '4'; v++) {
        int ok = 1;
        for (int k = 0; k < 4 && ok; k++) {
            int br = r / 2 * 2 + k / 2, bc = c / 2 * 2 + k % 2;
            ok = g[r * 4 + k] != v && g[k * 4 + c] != v && g[br * 4 + bc] != v;
        }
        if (!ok) continue;
        g[cell] = v;
        found = sudoku_completions(g, cell + 1, sol, found);
        g[cell] = '.';
    }
    return found;
}

static void test_sudoku_alternatives(void **state) {
    (void)state;
    const TaskFamily *sd = task_family_find("sudoku4");
    Problem p;
    int with_two = 0;
    for (uint64_t i = 0; i < 200; i++) {
        assert_int_equal(sd->generate(&p, 12, 11, i, 0.0), 0);
        char g[17], sol[2][17];
        memcpy(g, p.data, 17);
        int n = sudoku_completions(g, 0, sol, 0);
        assert_true(n >= 1);
        for (int k = 0; k < n; k++) assert_true(sd->verify(&p, sol[k]));
        if (n == 2) {
            with_two++;
            assert_string_not_equal(sol[0], sol[1]);
        }
        /* Swapping two cells of a row keeps the row valid but breaks two columns. */
        char bad[17];
        memcpy(bad, p.answer, 17);
        char t = bad[0];
        bad[0] = bad[1];
        bad[1] = t;
        assert_false(sd->verify(&p, bad));
    }
    assert_true(with_two > 10); /* several puzzles at 12 blanks have more than one completion */
    memset(&p, 0, sizeof(p));
    strcpy(p.data, "................");
    assert_true(sd->verify(&p, "1234341221434321"));
    assert_false(sd->verify(&p, "1234341221434312")); /* last row 4312: column clash */
    assert_false(sd->verify(&p, "123434122143432"));
    assert_false(sd->verify(&p, "12343412214343210"));
    assert_false(sd->verify(&p, "1234341221434325"));
    assert_false(sd->verify(&p, "1234/3412/2143/4321"));
    assert_false(sd->verify(&p, "1234123412341234"));
}

/* The table the lead sizes the demo with: mean and max byte tokens per family and difficulty. */
static void test_print_token_table(void **state) {
    (void)state;
    Problem p;
    print_message("family     diff  prompt mean/max  solution mean/max\n");
    for (const TaskFamily *const *fp = task_families(); *fp != NULL; fp++) {
        const TaskFamily *f = *fp;
        for (int d = f->min_difficulty; d <= f->max_difficulty; d++) {
            long ps = 0, ss = 0;
            int pm = 0, sm = 0;
            for (uint64_t i = 0; i < N_PER_DIFFICULTY; i++) {
                assert_int_equal(f->generate(&p, d, 1, i, 0.0), 0);
                int pt = byte_tokens(p.prompt), st = byte_tokens(p.solution);
                ps += pt;
                ss += st;
                pm = pt > pm ? pt : pm;
                sm = st > sm ? st : sm;
            }
            print_message("%-10s %4d  %6.1f %4d      %6.1f %4d\n", f->name, d, (double)ps / N_PER_DIFFICULTY, pm,
                          (double)ss / N_PER_DIFFICULTY, sm);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_solutions_all_difficulties),
        cmocka_unit_test(test_wrong_answers_rejected),
        cmocka_unit_test(test_known_shapes),
        cmocka_unit_test(test_countdown_parser),
        cmocka_unit_test(test_sudoku_alternatives),
        cmocka_unit_test(test_print_token_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

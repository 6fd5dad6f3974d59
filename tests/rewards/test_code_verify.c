/* tests/rewards/test_code_verify.c: the code verifier end to end in the sandbox.
 *
 * Right and wrong programs in Python and C against stdin/stdout tests (a + b, and a sort): right
 * ones score 1, wrong ones 0, a half-right one 0.5 (fraction) or 0 (all-or-nothing); a C compile
 * error, a crash and a timeout score 0 and are not masked; a "test_program" checker passes and
 * fails; the output comparison is token-wise; fence extraction picks the language. Infrastructure
 * failures are masked: an unusable work folder gives `infra` and reward_score sets `masked`, and the
 * counters count it. A weakened sandbox makes code_verifier_init refuse, and code_verify then
 * refuses too. Finally a JSONL code task goes through jsonl_source and reward_score.
 * labels: sandbox
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../test_tmpdir.h"
#include "core/error.h"
#include "curricula/jsonl_source.h"
#include "rewards/code_verify.h"
#include "rewards/reward.h"

static const char k_add_spec[] =
    "{\"language\": \"python\", \"tests\": [{\"input\": \"1 2\\n\", \"output\": \"3\\n\"},"
    " {\"input\": \"-5 5\\n\", \"output\": \"0\"}, {\"input\": \"100 23\", \"output\": \" 123 \\n\\n\"},"
    " {\"input\": \"7 7\\n\", \"output\": \"14\\n\"}]}";

static const char k_py_right[] = "a, b = map(int, input().split())\nprint(a + b)\n";
static const char k_py_wrong[] = "a, b = map(int, input().split())\nprint(a - b)\n";
static const char k_py_half[] = "a, b = map(int, input().split())\nprint(a + b if a < 5 else 0)\n"; /* passes 2 of 4 */
static const char k_py_crash[] = "raise SystemExit(3)\n";
static const char k_py_slow[] = "while True: pass\n";
static const char k_c_right[] = "#include <stdio.h>\nint main(void){long a,b;if(scanf(\"%ld %ld\",&a,&b)!=2)return 1;"
                                "printf(\"%ld\\n\",a+b);return 0;}\n";
static const char k_c_wrong[] = "#include <stdio.h>\nint main(void){long a,b;if(scanf(\"%ld %ld\",&a,&b)!=2)return 1;"
                                "printf(\"%ld\\n\",a*b);return 0;}\n";
static const char k_c_broken[] = "int main(void) { return syntax error; }\n";
static const char k_c_segv[] = "int main(void){volatile int *p = 0; return *p;}\n";

static CodeVerifier g_v;

static int setup(void **state) {
    (void)state;
    SandboxConfig c;
    sandbox_config_default(&c);
    c.wall_ms = 1000;
    c.cpu_s = 1;
    if (code_verifier_init(&g_v, &c, 0, "/tmp") != 0) {
        fprintf(stderr, "%s\n", err_msg());
        return -1;
    }
    return 0;
}

static CodeVerdict verify(const char *spec, const char *prog, const char *lang) {
    CodeVerdict v;
    int rc = code_verify(&g_v, spec, prog, lang, &v);
    if (rc != 0) fail_msg("code_verify: %s", err_msg());
    return v;
}

static void test_python_and_c(void **state) {
    (void)state;
    static const struct {
        const char *prog, *lang;
        int passed, compiled;
    } cases[] = {
        {k_py_right, "python", 4, 1}, {k_py_wrong, "python", 0, 1}, {k_py_half, "python", 2, 1},
        {k_py_crash, "python", 0, 1}, {k_py_slow, "python", 0, 1},  {k_c_right, "c", 4, 1},
        {k_c_wrong, "c", 0, 1},       {k_c_broken, "c", 0, 0},     {k_c_segv, "c", 0, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CodeVerdict v = verify(k_add_spec, cases[i].prog, cases[i].lang);
        printf("  case %zu (%s): %d/%d passed, score %.2f, %s\n", i, cases[i].lang, v.n_passed, v.n_tests, v.score, v.why);
        assert_int_equal(v.infra, 0);
        assert_int_equal(v.n_tests, 4);
        assert_int_equal(v.compiled, cases[i].compiled);
        if (v.n_passed != cases[i].passed) fail_msg("case %zu: %d passed, expected %d", i, v.n_passed, cases[i].passed);
        assert_float_equal(v.score, cases[i].passed / 4.0f, 1e-6);
    }
    CodeVerdict v = verify(k_add_spec, k_c_broken, "c");
    assert_non_null(strstr(v.why, "compile error"));
    assert_non_null(strstr(v.why, "error: 'syntax' undeclared"));
    v = verify(k_add_spec, k_py_slow, NULL);
    assert_non_null(strstr(v.why, "time limit"));
    g_v.all_or_nothing = 1;
    v = verify(k_add_spec, k_py_half, NULL);
    assert_float_equal(v.score, 0.0f, 0);
    v = verify(k_add_spec, k_py_right, NULL);
    assert_float_equal(v.score, 1.0f, 0);
    g_v.all_or_nothing = 0;
}

static void test_checker_program(void **state) {
    (void)state;
    static const char spec[] =
        "{\"test_program\": \"import subprocess\\n"
        "r = subprocess.run(['/usr/bin/python3', '/box/solution.py'], input=b'4', capture_output=True)\\n"
        "raise SystemExit(0 if r.stdout.strip() == b'16' else 1)\\n\"}";
    CodeVerdict v = verify(spec, "print(int(input()) ** 2)\n", NULL);
    assert_int_equal(v.n_tests, 1);
    assert_int_equal(v.n_passed, 1);
    v = verify(spec, "print(int(input()) * 2)\n", NULL);
    assert_int_equal(v.n_passed, 0);
}

/* Programs that try to change what they are judged by: the expected output never enters the
 * sandbox, the folder with the checker is read-only, and killing the checker fails the test. */
static void test_tamper(void **state) {
    (void)state;
    static const char tamper_io[] =
        "import os\n"
        "for d in ('/box', '/tmp', '/'):\n"
        "    for name in ('expected', 'expected.txt', 'output', 'solution.py'):\n"
        "        try: open(os.path.join(d, name), 'w').write('999')\n"
        "        except OSError: pass\n"
        "print(999)\n";
    CodeVerdict v = verify(k_add_spec, tamper_io, NULL);
    assert_int_equal(v.n_passed, 0);
    static const char spec[] =
        "{\"test_program\": \"import subprocess\\n"
        "r = subprocess.run(['/usr/bin/python3', '/box/solution.py'], capture_output=True)\\n"
        "raise SystemExit(0 if r.stdout.strip() == b'ok' else 1)\\n\"}";
    static const char tamper_checker[] =
        "import os, signal\n"
        "for p in ('/box/test.py',):\n"
        "    try: open(p, 'w').write('raise SystemExit(0)')\n"
        "    except OSError: pass\n"
        "os.kill(os.getppid(), signal.SIGKILL)\n"
        "print('no')\n";
    v = verify(spec, tamper_checker, NULL);
    assert_int_equal(v.n_tests, 1);
    assert_int_equal(v.n_passed, 0);
    assert_int_equal(v.infra, 0);
}

static void test_compare_and_extract(void **state) {
    (void)state;
#define EQ(a, b) code_output_equal(a, strlen(a), b, strlen(b))
    assert_true(EQ("1 2\n3", " 1\t2 3\n\n"));
    assert_false(EQ("1 2", "12"));
    assert_false(EQ("1 2", "1 2 3"));
    assert_false(EQ("12", "1 2"));
    assert_false(EQ("", "0"));
    assert_true(EQ("", " \n"));
    assert_true(code_output_equal("5\0junk", 1, "5", 1)); /* lengths, not NULs, bound the text */
#undef EQ
    const char *b;
    size_t n;
    char lang[16];
    code_extract_program("text\n```C\nint main(){}\n```\nmore", &b, &n, lang, sizeof(lang));
    assert_string_equal(lang, "c");
    assert_int_equal(n, strlen("int main(){}\n"));
    assert_memory_equal(b, "int main(){}\n", n);
    code_extract_program("print(1)", &b, &n, lang, sizeof(lang));
    assert_string_equal(lang, "");
    assert_int_equal(n, 8);
}

static void test_bad_spec(void **state) {
    (void)state;
    CodeVerdict v;
    static const char *const bad[] = {"[]", "{}", "{\"tests\": 3}", "{\"tests\": [{\"input\": 1, \"output\": \"\"}]}",
                                      "{\"tests\": [], \"language\": \"rust\"}", "not json"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(code_verify(&g_v, bad[i], "print(1)", NULL, &v), ERR_FORMAT);
        assert_non_null(strstr(err_msg(), "code task"));
    }
}

/* Infrastructure failures are masked and counted, never scored as wrong. */
static void test_infra_masked(void **state) {
    (void)state;
    char saved[256];
    snprintf(saved, sizeof(saved), "%s", g_v.work_root);
    snprintf(g_v.work_root, sizeof(g_v.work_root), "/nonexistent/cispo");
    long infra0 = atomic_load(&g_v.n_infra);
    CodeVerdict v = verify(k_add_spec, k_py_right, NULL);
    assert_int_equal(v.infra, 1);
    assert_non_null(strstr(v.why, "infrastructure"));
    assert_int_equal(atomic_load(&g_v.n_infra), infra0 + 1);
    Problem p;
    memset(&p, 0, sizeof(p));
    snprintf(p.family, sizeof(p.family), "code");
    p.code_spec = k_add_spec;
    RewardConfig rc = {.correct_reward = 1, .wrong_reward = -1, .format_penalty = -0.5f, .code = &g_v};
    RewardResult rr;
    assert_int_equal(reward_score(&rc, &p, "<answer>```python\nprint(3)\n```</answer>", &rr), 0);
    assert_int_equal(rr.masked, 1);
    assert_float_equal(rr.reward, 0.0f, 0);
    snprintf(g_v.work_root, sizeof(g_v.work_root), "%s", saved);
}

static void test_weakened_refused(void **state) {
    (void)state;
    CodeVerifier w;
    SandboxConfig c;
    sandbox_config_default(&c);
    c.test_weaken = SBX_WEAKEN_NO_SECCOMP;
    assert_int_equal(code_verifier_init(&w, &c, 0, NULL), ERR_UNSUPPORTED);
    assert_non_null(strstr(err_msg(), "seccomp"));
    CodeVerdict v;
    assert_int_equal(code_verify(&w, k_add_spec, k_py_right, NULL, &v), ERR_UNSUPPORTED);
}

/* A JSONL code task through the source and reward_score: right, wrong, broken format. */
static void test_jsonl_reward(void **state) {
    (void)state;
    char dir[256], path[300];
    assert_int_equal(tmpdir_make(dir, sizeof(dir), "cispo_codejsonl"), 0);
    snprintf(path, sizeof(path), "%s/code.jsonl", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"prompt\": \"Add two numbers.\", \"tests\": [{\"input\": \"2 3\", \"output\": \"5\"},"
               " {\"input\": \"4 4\", \"output\": \"8\"}], \"language\": \"c\"}\n"
               "{\"prompt\": \"bad\", \"tests\": [{\"input\": 2}]}\n"
               "{\"prompt\": \"What is 2+2?\", \"answer\": \"4\"}\n");
    fclose(f);
    JsonlSource s;
    assert_int_equal(jsonl_source_load(&s, path, 0), 0);
    assert_int_equal(jsonl_source_count(&s), 2);
    assert_int_equal(jsonl_source_malformed(&s), 1);
    Problem p;
    assert_int_equal(jsonl_source_get(&s, 0, &p), 0);
    assert_string_equal(p.family, "code");
    assert_non_null(p.code_spec);
    RewardConfig rc = {.correct_reward = 1, .wrong_reward = 0, .format_penalty = -0.5f, .code = &g_v};
    RewardResult rr;
    char resp[512];
    CodeVerdict cv = verify(p.code_spec, k_c_right, NULL);
    assert_int_equal(cv.n_passed, 2);
    snprintf(resp, sizeof(resp), "<think>sum</think><answer>```c\n%s```</answer>", k_c_right);
    assert_int_equal(reward_score(&rc, &p, resp, &rr), 0);
    if (!(rr.format_ok && rr.correct && !rr.masked))
        fail_msg("right C answer: format %d correct %d masked %d reward %.2f answer '%s'", rr.format_ok, rr.correct,
                 rr.masked, rr.reward, rr.answer);
    assert_float_equal(rr.reward, 1.0f, 0);
    snprintf(resp, sizeof(resp), "<answer>a, b = map(int, input().split())\nprint(a + 1)\n</answer>");
    assert_int_equal(reward_score(&rc, &p, resp, &rr), 0); /* python by default? no: the task says c */
    assert_false(rr.correct);
    snprintf(resp, sizeof(resp), "<answer>```python\na, b = map(int, input().split())\nprint(a + 1)\n```</answer>");
    assert_int_equal(reward_score(&rc, &p, resp, &rr), 0); /* 2+1 = 3 != 5, 4+1 = 5 != 8 */
    assert_float_equal(rr.reward, 0.0f, 0);
    snprintf(resp, sizeof(resp), "<answer>```python\na, b = map(int, input().split())\nprint(a + 3)\n```</answer>");
    assert_int_equal(reward_score(&rc, &p, resp, &rr), 0); /* 2+3 = 5 ok, 4+3 = 7 != 8 */
    assert_float_equal(rr.reward, 0.5f, 1e-6);
    assert_int_equal(reward_score(&rc, &p, "no tags", &rr), 0);
    assert_false(rr.format_ok);
    assert_float_equal(rr.reward, -0.5f, 0);
    rc.code = NULL;
    assert_int_equal(reward_score(&rc, &p, resp, &rr), ERR_UNSUPPORTED);
    assert_int_equal(jsonl_source_get(&s, 1, &p), 0);
    assert_string_equal(p.family, "jsonl");
    assert_null(p.code_spec);
    jsonl_source_free(&s);
    assert_int_equal(tmpdir_remove(dir), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compare_and_extract), cmocka_unit_test(test_python_and_c),
        cmocka_unit_test(test_checker_program),     cmocka_unit_test(test_bad_spec),
        cmocka_unit_test(test_infra_masked),        cmocka_unit_test(test_weakened_refused),
        cmocka_unit_test(test_jsonl_reward),        cmocka_unit_test(test_tamper),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

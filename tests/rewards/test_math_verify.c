/* tests/rewards/test_math_verify.c: reward_math_equal on a table of equal and unequal pairs
 * worked out by hand (integers, signs, thousands separators, decimals, fractions, \frac, \boxed,
 * $...$, numbers beyond 64 bits, and the string fallback), checked in both argument orders.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "rewards/reward.h"

typedef struct {
    const char *a, *b;
    int equal;
} Case;

static const Case k_cases[] = {
    /* integers, signs, spaces */
    {"42", "42", 1},
    {" 42 ", "42", 1},
    {"+42", "42", 1},
    {"042", "42", 1},
    {"-0", "0", 1},
    {"-0.0", "+0", 1},
    {"-42", "42", 0},
    {"- 42", "-42", 1},
    {"43", "42", 0},
    {"4 2", "42", 1},
    /* thousands separators */
    {"1,234", "1234", 1},
    {"1,234,567", "1234567", 1},
    {"12,345.5", "12345.5", 1},
    {"1,23", "123", 0},
    {"1234,567", "1234567", 0},
    {"1,2345", "12345", 0},
    {",123", "123", 0},
    /* decimals and fractions, exact */
    {"0.5", "1/2", 1},
    {".5", "0.5", 1},
    {"5.0", "5", 1},
    {"5.000", "5", 1},
    {"2.50", "5/2", 1},
    {"0.333", "1/3", 0},
    {"0.3333333333333333", "1/3", 0},
    {"2/4", "1/2", 1},
    {"-1/2", "-0.5", 1},
    {"-1/2", "0.5", 0},
    {"1/0", "1/0", 1},     /* not a number: compared as text */
    {"1/0", "2/0", 0},
    {"1.5/3", "0.5", 1},
    {"5.", "5", 0},        /* "5." is not a number here */
    /* \frac, \dfrac, \boxed, $ */
    {"\\frac{1}{2}", "0.5", 1},
    {"\\dfrac{1}{2}", "1/2", 1},
    {"\\tfrac{3}{6}", "1/2", 1},
    {"-\\frac{1}{2}", "\\frac{-1}{2}", 1},
    {"-\\frac{-1}{2}", "0.5", 1},
    {"\\frac{1}{2}", "1/3", 0},
    {"\\boxed{42}", "42", 1},
    {"$42$", "42", 1},
    {"$$\\boxed{\\frac{3}{4}}$$", "0.75", 1},
    {"\\boxed{\\dfrac{1}{2}}", "$0.5$", 1},
    {"\\boxed{ 1,000 }", "1000", 1},
    {"\\boxed{1}+\\boxed{2}", "3", 0},
    {"\\boxed{42", "42", 0},
    {"1\\,234", "1234", 1},
    /* beyond 64 bits */
    {"123456789012345678901234567890", "123456789012345678901234567890", 1},
    {"123456789012345678901234567890", "123456789012345678901234567891", 0},
    {"123,456,789,012,345,678,901,234,567,890", "123456789012345678901234567890.0", 1},
    {"18446744073709551617", "18446744073709551616", 0},
    {"1/123456789012345678901234567890", "2/246913578024691357802469135780", 1},
    /* non-numeric: trimmed, case-sensitive string comparison */
    {"x+1", "x+1", 1},
    {"  x + 1 ", "x + 1", 1},
    {"x+1", "x + 1", 0},
    {"Yes", "yes", 0},
    {"\\boxed{B}", "B", 1},
    {"", "", 1},
    {"", "0", 0},
    {"1e3", "1000", 0},
    {"50%", "0.5", 0},
};

static void test_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(k_cases) / sizeof(k_cases[0]); i++) {
        const Case *c = &k_cases[i];
        int ab = reward_math_equal(c->a, c->b), ba = reward_math_equal(c->b, c->a);
        if (ab != c->equal || ba != c->equal)
            fail_msg("case %d: '%s' vs '%s': got %d/%d, expected %d", (int)i, c->a, c->b, ab, ba, c->equal);
    }
}

/* Very long inputs are compared as trimmed text, never truncated into a false match. */
static void test_long_inputs(void **state) {
    (void)state;
    static char a[3000], b[3000];
    memset(a, '7', 2500);
    a[2500] = '\0';
    memcpy(b, a, sizeof(a));
    assert_true(reward_math_equal(a, b));
    b[2499] = '8';
    assert_false(reward_math_equal(a, b));
    /* 170 digits (over the 160-digit rational limit): text comparison, still exact. */
    memset(a, '9', 170);
    a[170] = '\0';
    memcpy(b, a, 171);
    assert_true(reward_math_equal(a, b));
    b[0] = '8';
    assert_false(reward_math_equal(a, b));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_long_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

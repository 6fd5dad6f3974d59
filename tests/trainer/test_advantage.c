/* tests/trainer/test_advantage.c: group-relative advantages against values worked out by hand:
 * each std mode on {1, 2, 3, 6} (mean 3, squared deviations 4 1 0 9, sum 14), the eps term on
 * {0, 1}, several groups side by side, an all-equal group, a group of one.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>

#include "trainer/advantage.h"

#define TOL 1e-6

static void expect(const float *got, const double *want, int n) {
    for (int i = 0; i < n; i++) {
        if (fabs((double)got[i] - want[i]) > TOL * (1.0 + fabs(want[i]))) {
            print_error("adv[%d] = %.9g, expected %.9g\n", i, (double)got[i], want[i]);
            fail();
        }
    }
}

/* sample std sqrt(14/3) = 2.1602468994692865 */
static void test_sample_std(void **state) {
    (void)state;
    const float R[4] = {1, 2, 3, 6};
    float A[4];
    AdvConfig c = {ADV_STD_SAMPLE, 0.0};
    advantages_compute(&c, R, 1, 4, A);
    const double want[4] = {-0.9258200997725514, -0.4629100498862757, 0.0, 1.3887301496588271};
    expect(A, want, 4);
    /* verl's eps 1e-6: -2 / (2.1602468994692865 + 1e-6) */
    c.eps = 1e-6;
    advantages_compute(&c, R, 1, 4, A);
    const double want_eps[4] = {-0.9258196712013211, -0.46290983560066057, 0.0, 1.3887295068019816};
    expect(A, want_eps, 4);
}

/* population std sqrt(14/4) = 1.8708286933869707 */
static void test_population_std(void **state) {
    (void)state;
    const float R[4] = {1, 2, 3, 6};
    float A[4];
    AdvConfig c = {ADV_STD_POPULATION, 0.0};
    advantages_compute(&c, R, 1, 4, A);
    const double want[4] = {-1.0690449676496976, -0.5345224838248488, 0.0, 1.6035674514745464};
    expect(A, want, 4);
}

/* Dr. GRPO: R - mean, eps unused */
static void test_no_std(void **state) {
    (void)state;
    const float R[4] = {1, 2, 3, 6};
    float A[4];
    AdvConfig c = {ADV_STD_NONE, 0.5};
    advantages_compute(&c, R, 1, 4, A);
    const double want[4] = {-2, -1, 0, 3};
    expect(A, want, 4);
}

/* {0, 1}: deviations +-0.5; sample std 1/sqrt(2), population std 1/2. With eps 0.5:
 * sample 0.5 / (1/sqrt2 + 1/2) = sqrt2 - 1; population 0.5 / (1/2 + 1/2) = 0.5. */
static void test_eps_effect(void **state) {
    (void)state;
    const float R[2] = {0, 1};
    float A[2];
    AdvConfig c = {ADV_STD_SAMPLE, 0.5};
    advantages_compute(&c, R, 1, 2, A);
    const double want_s[2] = {-(sqrt(2.0) - 1.0), sqrt(2.0) - 1.0};
    expect(A, want_s, 2);
    c.std_mode = ADV_STD_POPULATION;
    advantages_compute(&c, R, 1, 2, A);
    const double want_p[2] = {-0.5, 0.5};
    expect(A, want_p, 2);
    c.eps = 0.0; /* without eps: +-0.5 / 0.5 = +-1 */
    advantages_compute(&c, R, 1, 2, A);
    const double want_p0[2] = {-1.0, 1.0};
    expect(A, want_p0, 2);
}

/* groups are normalised independently: {0,1} {5,5} {2,4}, population, eps 0 */
static void test_groups_independent(void **state) {
    (void)state;
    const float R[6] = {0, 1, 5, 5, 2, 4};
    float A[6];
    AdvConfig c = {ADV_STD_POPULATION, 0.0};
    advantages_compute(&c, R, 3, 2, A);
    const double want[6] = {-1, 1, 0, 0, -1, 1};
    expect(A, want, 6);
}

/* all rewards equal: exactly 0 in every mode, even where R - mean would not round to 0 */
static void test_all_equal(void **state) {
    (void)state;
    const float R[3] = {0.1f, 0.1f, 0.1f};
    float A[3] = {7, 7, 7};
    for (int mode = 0; mode < 3; mode++) {
        AdvConfig c = {(AdvStdMode)mode, 1e-6};
        advantages_compute(&c, R, 1, 3, A);
        for (int i = 0; i < 3; i++) assert_true(A[i] == 0.0f);
    }
}

/* a group of one: mean 0, std 1 (verl) */
static void test_group_of_one(void **state) {
    (void)state;
    const float R[2] = {2.0f, -1.0f}; /* two groups of one */
    float A[2];
    AdvConfig c = {ADV_STD_SAMPLE, 1e-6};
    advantages_compute(&c, R, 2, 1, A);
    const double want[2] = {2.0 / 1.000001, -1.0 / 1.000001};
    expect(A, want, 2);
    c.std_mode = ADV_STD_POPULATION;
    c.eps = 1.0;
    advantages_compute(&c, R, 2, 1, A);
    const double want_p[2] = {1.0, -0.5};
    expect(A, want_p, 2);
    c.std_mode = ADV_STD_NONE;
    advantages_compute(&c, R, 2, 1, A);
    const double want_n[2] = {2.0, -1.0};
    expect(A, want_n, 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_std),       cmocka_unit_test(test_population_std),
        cmocka_unit_test(test_no_std),           cmocka_unit_test(test_eps_effect),
        cmocka_unit_test(test_groups_independent), cmocka_unit_test(test_all_equal),
        cmocka_unit_test(test_group_of_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

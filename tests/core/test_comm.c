/* tests/core/test_comm.c: core/comm under mpirun with 1, 2 and 4 ranks, and as a plain process.
 * labels: mpi
 * mpi_np: 0 1 2 4
 *
 * - the all-reduce adds in rank order: every rank recomputes ((b0 + b1) + b2) + ... from the known
 *   inputs, chosen so that another order rounds differently, and the result must match bit for bit
 *   (and over more than one 1M-float chunk);
 * - broadcast, ring send/recv, non-blocking send, in-place all-gather, max, barrier;
 * - a split into even and odd ranks reduces within each group only;
 * - without mpirun MPI stays uninitialised and the one-rank group's operations are no-ops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/comm.h"
#include "core/error.h"

static Comm g_world;

/* Values whose sum depends on the order: large and tiny magnitudes of both signs. */
static float value(int rank, size_t i) {
    uint32_t h = (uint32_t)(i * 2654435761u) ^ (uint32_t)(rank * 40503u + 17u);
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    float mag = (h & 1) ? 1e7f : 1e-3f;
    return ((h >> 1) & 1 ? -mag : mag) * (float)(1 + (h >> 8) % 97) / 97.0f;
}

static void test_allreduce_rank_order(void **state) {
    const size_t n = ((size_t)1 << 20) + 4099; /* two chunks */
    float *buf = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) buf[i] = value(g_world.rank, i);
    assert_int_equal(comm_allreduce_sum_f32(&g_world, buf, n), 0);
    size_t differ_from_reverse = 0;
    for (size_t i = 0; i < n; i++) {
        float want = value(0, i), rev = value(g_world.size - 1, i);
        for (int r = 1; r < g_world.size; r++) want += value(r, i);
        for (int r = g_world.size - 2; r >= 0; r--) rev += value(r, i);
        if (memcmp(&buf[i], &want, sizeof(float)) != 0) fail_msg("element %zu: %.9g, rank-order sum %.9g", i, buf[i], want);
        differ_from_reverse += rev != want;
    }
    if (g_world.size >= 3) assert_true(differ_from_reverse > 0); /* the check could tell the orders apart */
    free(buf);
}

static void test_bcast_send_gather(void **state) {
    const int P = g_world.size, me = g_world.rank;
    char msg[32] = "";
    if (me == P - 1) strcpy(msg, "from the last rank");
    assert_int_equal(comm_bcast(&g_world, msg, sizeof msg, P - 1), 0);
    assert_string_equal(msg, "from the last rank");
    if (P > 1) { /* ring: send to the right with isend, receive from the left */
        int64_t out = 1000 + me, in = -1;
        CommReq rq;
        assert_int_equal(comm_isend(&g_world, &out, sizeof out, (me + 1) % P, 5, &rq), 0);
        assert_int_equal(comm_recv(&g_world, &in, sizeof in, (me + P - 1) % P, 5), 0);
        assert_int_equal(comm_wait(&rq), 0);
        assert_int_equal(in, 1000 + (me + P - 1) % P);
    }
    int *all = calloc((size_t)P * 3, sizeof(int));
    size_t cnt[8], dsp[8];
    for (int r = 0; r < P; r++) cnt[r] = 3 * sizeof(int), dsp[r] = (size_t)r * 3 * sizeof(int);
    for (int k = 0; k < 3; k++) all[me * 3 + k] = me * 10 + k;
    assert_int_equal(comm_allgatherv_inplace(&g_world, all, cnt, dsp), 0);
    for (int r = 0; r < P; r++)
        for (int k = 0; k < 3; k++) assert_int_equal(all[r * 3 + k], r * 10 + k);
    free(all);
    double mx[2] = {me, -me};
    assert_int_equal(comm_allreduce_max_f64(&g_world, mx, 2), 0);
    assert_true(mx[0] == P - 1 && mx[1] == 0);
    assert_int_equal(comm_barrier(&g_world), 0);
}

static void test_split(void **state) {
    Comm even, none;
    assert_int_equal(comm_split(&g_world, g_world.rank % 2, &even), 0);
    assert_int_equal(even.size, (g_world.size + 1 - g_world.rank % 2) / 2);
    assert_int_equal(even.rank, g_world.rank / 2);
    float v = (float)g_world.rank;
    assert_int_equal(comm_allreduce_sum_f32(&even, &v, 1), 0);
    float want = 0;
    for (int r = g_world.rank % 2; r < g_world.size; r += 2) want += (float)r;
    assert_true(v == want);
    assert_int_equal(comm_split(&g_world, -1, &none), 0);
    assert_int_equal(none.size, 0);
    comm_free(&none);
    comm_free(&even);
}

static void test_plain_process(void **state) {
    if (comm_mpi_up()) skip();
    assert_string_equal(g_world.ops->name, "self");
    assert_int_equal(g_world.size, 1);
    CommReq rq;
    assert_int_not_equal(comm_isend(&g_world, "x", 1, 0, 1, &rq), 0); /* nobody to send to */
}

int main(int argc, char **argv) {
    int size, rank;
    if (comm_init(&argc, &argv, &size, &rank) != 0 || comm_world(&g_world) != 0) return 1;
    if (g_world.size > 8) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allreduce_rank_order),
        cmocka_unit_test(test_bcast_send_gather),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_plain_process),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    comm_free(&g_world);
    comm_finalize();
    return failed;
}

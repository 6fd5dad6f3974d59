/* tests/core/test_tensor.c: named tensor tables: sizes, 64-byte aligned non-overlapping layout,
 * find by name, binding a base pointer, and the CHECKs on misuse.
 * labels: unit
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/tensor.h"

static void build(TensorTable *tt) {
    const int64_t emb[2] = {272, 128};  /* (V, C) f32: 139264 B, a multiple of 64 */
    const int64_t norm[1] = {5};        /* (C') f32: 20 B, forces padding after it */
    const int64_t ids[3] = {2, 3, 7};   /* (B, G, T) i32: 168 B */
    const int64_t half[4] = {1, 2, 3, 5}; /* bf16: 60 B */
    tensor_table_init(tt);
    assert_int_equal(tensor_table_add(tt, "embed.weight", DT_F32, 2, emb), 0);
    assert_int_equal(tensor_table_add(tt, "norm.weight", DT_F32, 1, norm), 1);
    assert_int_equal(tensor_table_add(tt, "ids", DT_I32, 3, ids), 2);
    assert_int_equal(tensor_table_add(tt, "half", DT_BF16, 4, half), 3);
    assert_int_equal(tensor_table_add(tt, "scalar", DT_F32, 0, NULL), 4);
}

static void test_sizes(void **state) {
    (void)state;
    assert_int_equal(dtype_size(DT_F32), 4);
    assert_int_equal(dtype_size(DT_I32), 4);
    assert_int_equal(dtype_size(DT_BF16), 2);
    TensorTable tt;
    build(&tt);
    assert_int_equal(tt.n, 5);
    assert_int_equal(tt.t[0].numel, 272 * 128);
    assert_int_equal(tt.t[2].numel, 42);
    assert_int_equal(tt.t[3].numel, 30);
    assert_int_equal(tt.t[4].numel, 1); /* a 0-d tensor holds one value */
    assert_int_equal(tt.t[2].ndim, 3);
    assert_int_equal(tt.t[2].shape[2], 7);
    tensor_table_free(&tt);
}

static void test_layout(void **state) {
    (void)state;
    TensorTable tt;
    build(&tt);
    size_t total = tensor_table_layout(&tt);
    /* Worked out by hand: 0, 139264, 139264+64, +192 (168 rounded up), +64 (60 rounded up). */
    const size_t expect[5] = {0, 139264, 139328, 139520, 139584};
    for (int i = 0; i < tt.n; i++) {
        assert_int_equal(tt.t[i].offset_bytes, expect[i]);
        assert_int_equal(tt.t[i].offset_bytes % 64, 0);
        size_t end = tt.t[i].offset_bytes + (size_t)tt.t[i].numel * dtype_size(tt.t[i].dtype);
        assert_true(end <= total);
        if (i + 1 < tt.n) assert_true(end <= tt.t[i + 1].offset_bytes);
    }
    assert_int_equal(total, 139648); /* 139584 + 4, rounded up to 64 */
    assert_int_equal(tt.total_bytes, total);
    tensor_table_free(&tt);
}

static void test_find_and_bind(void **state) {
    (void)state;
    TensorTable tt;
    build(&tt);
    tensor_table_layout(&tt);
    assert_int_equal(tensor_table_find(&tt, "ids"), 2);
    assert_int_equal(tensor_table_find(&tt, "embed.weight"), 0);
    assert_int_equal(tensor_table_find(&tt, "embed"), -1);
    assert_int_equal(tensor_table_find(&tt, ""), -1);
    void *base = aligned_alloc(64, tt.total_bytes);
    assert_non_null(base);
    tensor_table_bind(&tt, base, MEM_HOST);
    for (int i = 0; i < tt.n; i++) {
        assert_ptr_equal(tt.t[i].data, (char *)base + tt.t[i].offset_bytes);
        assert_int_equal((uintptr_t)tt.t[i].data % 64, 0);
        assert_int_equal(tt.t[i].space, MEM_HOST);
    }
    /* Writing every tensor in full stays inside the block (ASan would catch an overrun). */
    for (int i = 0; i < tt.n; i++) memset(tt.t[i].data, i, (size_t)tt.t[i].numel * dtype_size(tt.t[i].dtype));
    assert_int_equal(((unsigned char *)tt.t[1].data)[19], 1);
    assert_int_equal(((unsigned char *)tt.t[2].data)[0], 2);
    free(base);
    tensor_table_free(&tt);
    assert_int_equal(tt.n, 0);
    assert_null(tt.t);
    tensor_table_free(&tt); /* idempotent */
}

static void test_many_tensors_grow(void **state) {
    (void)state;
    TensorTable tt;
    tensor_table_init(&tt);
    char name[32];
    const int64_t shape[1] = {3};
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "layers.%d.w", i);
        assert_int_equal(tensor_table_add(&tt, name, DT_F32, 1, shape), i);
    }
    assert_int_equal(tensor_table_find(&tt, "layers.0.w"), 0);
    assert_int_equal(tensor_table_find(&tt, "layers.199.w"), 199);
    assert_int_equal(tensor_table_layout(&tt), 200 * 64);
    tensor_table_free(&tt);
}

static int child_status(void (*body)(void)) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, STDERR_FILENO);
        signal(SIGABRT, SIG_DFL);
        body();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return st;
}

static void add_duplicate(void) {
    TensorTable tt;
    const int64_t s[1] = {4};
    tensor_table_init(&tt);
    tensor_table_add(&tt, "w", DT_F32, 1, s);
    tensor_table_add(&tt, "w", DT_F32, 1, s);
}

static void add_zero_dim(void) {
    TensorTable tt;
    const int64_t s[2] = {4, 0};
    tensor_table_init(&tt);
    tensor_table_add(&tt, "w", DT_F32, 2, s);
}

static void add_too_many_dims(void) {
    TensorTable tt;
    const int64_t s[5] = {1, 1, 1, 1, 1};
    tensor_table_init(&tt);
    tensor_table_add(&tt, "w", DT_F32, 5, s);
}

static void test_checks(void **state) {
    (void)state;
    int st = child_status(add_duplicate);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    st = child_status(add_zero_dim);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    st = child_status(add_too_many_dims);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_find_and_bind),
        cmocka_unit_test(test_many_tensors_grow),
        cmocka_unit_test(test_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

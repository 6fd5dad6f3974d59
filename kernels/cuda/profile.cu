/* kernels/cuda/profile.cu: per-op GPU time of the CUDA backend (BENCHMARKS.md B9 breakdowns).
 *
 * With CISPO_CUDA_PROFILE set in the environment, kernels_cuda() hands out a copy of the table in
 * which every compute and copy op is wrapped: a CUDA event is recorded on the op's stream before and
 * after it, the host waits for the second, and the elapsed time is added to the op's row (and, for
 * GEMMs, to a row per shape and precision). Waiting after every op removes any overlap and adds
 * launch latency to wall time, but the event interval is the op's own GPU time, which is what a
 * breakdown needs. At exit (or at kernels_cuda_profile_report) the rows are printed to stderr, or
 * appended to the file named by CISPO_CUDA_PROFILE when it is not "1", sorted by total time.
 *
 * The wrappers are generated: Wrap<ID, Sig> forwards any signature (KernelCtx *, args...) to the
 * saved base op, so the list below names each member once.
 */
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_profile.h"

#include <string.h>

#include <type_traits>

namespace {

#define PROF_OPS(X)                                                                                        \
    X(copy_h2d) X(copy_d2h) X(copy_d2d) X(zero) X(axpby) X(scale) X(silu_forward) X(silu_backward)         \
    X(sigmoid_gate_forward) X(sigmoid_gate_backward) X(swiglu_forward) X(swiglu_backward)                  \
    X(embedding_forward) X(embedding_backward) X(rmsnorm_forward) X(rmsnorm_backward) X(rope_forward)      \
    X(rope_backward) X(lightning_forward) X(lightning_backward) X(lightning_decode) X(attention_forward)   \
    X(attention_backward) X(attention_decode) X(moe_route_forward) X(moe_route_backward) X(moe_sort)      \
    X(moe_permute_forward) X(moe_permute_backward) X(moe_combine_forward) X(moe_combine_backward)         \
    X(lm_head_forward) X(lm_head_backward) X(adamw) X(sumsq) X(adamw_fused) X(add_rmsnorm_forward)        \
    X(add_rmsnorm_backward) X(sample) X(moe_expert_gemm) X(moe_expert_gemm_dw) X(kv_append)

enum {
#define PROF_ENUM(name) OP_##name,
    PROF_OPS(PROF_ENUM)
#undef PROF_ENUM
    OP_gemm,
    N_OPS
};

const char *const op_names[N_OPS] = {
#define PROF_NAME(name) #name,
    PROF_OPS(PROF_NAME)
#undef PROF_NAME
    "gemm (all)",
};

struct Row {
    double ms;
    long calls;
};

#define PROF_SHAPES 512
struct ShapeRow {
    int used, ta, tb, m, n, k, bf16;
    double ms;
    long calls;
};

Row rows[N_OPS];
ShapeRow shapes[PROF_SHAPES];
KernelOps table;
const KernelOps *base_ops;
cudaEvent_t ev0, ev1;
const char *out_path;

void begin(KernelCtx *ctx) { CUDA_CHECK(cudaEventRecord(ev0, cuda_impl(ctx)->stream)); }

float end(KernelCtx *ctx) {
    CUDA_CHECK(cudaEventRecord(ev1, cuda_impl(ctx)->stream));
    CUDA_CHECK(cudaEventSynchronize(ev1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, ev0, ev1));
    return ms;
}

template <int ID, typename Sig> struct Wrap;
template <int ID, typename R, typename... A> struct Wrap<ID, R (*)(KernelCtx *, A...)> {
    static inline R (*fn)(KernelCtx *, A...) = nullptr;
    static R call(KernelCtx *ctx, A... a) {
        begin(ctx);
        if constexpr (std::is_void_v<R>) {
            fn(ctx, a...);
            rows[ID].ms += end(ctx);
            rows[ID].calls++;
        } else {
            R r = fn(ctx, a...);
            rows[ID].ms += end(ctx);
            rows[ID].calls++;
            return r;
        }
    }
};

void gemm_prof(KernelCtx *ctx, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    begin(ctx);
    base_ops->gemm(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    float ms = end(ctx);
    rows[OP_gemm].ms += ms;
    rows[OP_gemm].calls++;
    int bf16 = ctx->gemm_bf16 != 0;
    unsigned h = (unsigned)(M * 31 + N * 17 + K * 7 + ta * 3 + tb + bf16 * 5) % PROF_SHAPES;
    for (int probe = 0; probe < PROF_SHAPES; probe++) {
        ShapeRow *s = &shapes[(h + (unsigned)probe) % PROF_SHAPES];
        if (!s->used) *s = ShapeRow{1, ta, tb, M, N, K, bf16, 0.0, 0};
        if (s->ta == ta && s->tb == tb && s->m == M && s->n == N && s->k == K && s->bf16 == bf16) {
            s->ms += ms;
            s->calls++;
            return;
        }
    }
}

int cmp_row(const void *a, const void *b) {
    double x = rows[*(const int *)a].ms, y = rows[*(const int *)b].ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

int cmp_shape(const void *a, const void *b) {
    double x = ((const ShapeRow *)a)->ms, y = ((const ShapeRow *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

void report_atexit(void) { kernels_cuda_profile_report(); }

} // namespace

extern "C" void kernels_cuda_profile_report(void) {
    if (base_ops == NULL) return;
    FILE *f = stderr;
    if (out_path && strcmp(out_path, "1") != 0) {
        f = fopen(out_path, "a");
        if (!f) f = stderr;
    }
    int idx[N_OPS];
    double total = 0;
    for (int i = 0; i < N_OPS; i++) idx[i] = i, total += rows[i].ms;
    qsort(idx, N_OPS, sizeof(int), cmp_row);
    fprintf(f, "cuda profile: %.1f ms of GPU time in backend ops\n%-24s %10s %8s %7s\n", total, "op", "ms", "calls",
            "share");
    for (int i = 0; i < N_OPS; i++) {
        const Row *r = &rows[idx[i]];
        if (r->calls == 0) continue;
        fprintf(f, "%-24s %10.2f %8ld %6.1f%%\n", op_names[idx[i]], r->ms, r->calls, 100.0 * r->ms / total);
    }
    ShapeRow sorted[PROF_SHAPES];
    memcpy(sorted, shapes, sizeof(sorted));
    qsort(sorted, PROF_SHAPES, sizeof(ShapeRow), cmp_shape);
    fprintf(f, "gemm shapes (row-major C(M,N) = op(A) op(B), K inner), top 16:\n%-34s %10s %8s %9s\n", "ta tb M N K prec",
            "ms", "calls", "TFLOP/s");
    for (int i = 0; i < 16 && sorted[i].used; i++) {
        const ShapeRow *s = &sorted[i];
        double fl = 2.0 * s->m * (double)s->n * s->k * (double)s->calls;
        char name[64];
        snprintf(name, sizeof(name), "%d %d %d %d %d %s", s->ta, s->tb, s->m, s->n, s->k, s->bf16 ? "bf16" : "fp32");
        fprintf(f, "%-34s %10.2f %8ld %9.1f\n", name, s->ms, s->calls, s->ms > 0 ? fl / (s->ms * 1e9) : 0.0);
    }
    long cnt[5];
    gemm_cuda_counters(cnt);
    fprintf(f, "gemm events: %ld parameter-copy refreshes, %ld operand conversions, %ld plans built, %ld plans "
               "refused at the call's size, %ld cublasGemmEx fallbacks\n", cnt[0], cnt[1], cnt[2], cnt[3], cnt[4]);
    fflush(f);
    if (f != stderr) fclose(f);
    memset(rows, 0, sizeof(rows));
    memset(shapes, 0, sizeof(shapes));
}

extern "C" const KernelOps *kernels_cuda_profiled(const KernelOps *base) {
    if (base_ops != NULL) return &table;
    out_path = getenv("CISPO_CUDA_PROFILE");
    base_ops = base;
    table = *base;
    CUDA_CHECK(cudaEventCreate(&ev0));
    CUDA_CHECK(cudaEventCreate(&ev1));
#define PROF_INSTALL(name)                                                   \
    Wrap<OP_##name, decltype(table.name)>::fn = base->name;                  \
    table.name = &Wrap<OP_##name, decltype(table.name)>::call;
    PROF_OPS(PROF_INSTALL)
#undef PROF_INSTALL
    table.gemm = gemm_prof;
    atexit(report_atexit);
    return &table;
}

/* kernels/backend.c: backend-independent context lifecycle (kernel_ctx_init / kernel_ctx_free),
 * and the kernels_cuda() that reports "no CUDA backend" when it is not built (the real one lives in
 * kernels/cuda/ and is compiled only with -DCISPO_CUDA=ON, which defines CISPO_HAVE_CUDA).
 *
 * The context owns its backend handle (ctx->impl, made by ops->impl_init when the table has one)
 * and its workspace, allocated and freed through the table's own alloc/free so it lives in the
 * backend's memory space.
 */
#include "kernels/backend.h"

#include "core/error.h"

void kernel_ctx_init(KernelCtx *ctx, const KernelOps *ops, size_t ws_bytes) {
    CHECK(ctx != NULL && ops != NULL, "kernel_ctx_init needs a context and an ops table");
    ctx->ops = ops;
    ctx->impl = NULL;
    ctx->ws = NULL;
    ctx->ws_bytes = 0;
    ctx->gemm_bf16 = 0;
    ctx->head_bf16 = 0;
    if (ops->impl_init) ops->impl_init(ctx);
    if (ws_bytes > 0) {
        ctx->ws = ops->alloc(ctx, ws_bytes);
        ctx->ws_bytes = ws_bytes;
    }
}

void kernel_ctx_free(KernelCtx *ctx) {
    if (ctx == NULL) return;
    if (ctx->ops != NULL && ctx->ws != NULL) ctx->ops->free(ctx, ctx->ws);
    ctx->ws = NULL;
    ctx->ws_bytes = 0;
    if (ctx->ops != NULL && ctx->ops->impl_free && ctx->impl) ctx->ops->impl_free(ctx);
    ctx->impl = NULL;
}

#ifndef CISPO_HAVE_CUDA
const KernelOps *kernels_cuda(void) { return NULL; }
#endif

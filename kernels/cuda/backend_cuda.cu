/* kernels/cuda/backend_cuda.cu: the CUDA backend's KernelOps table and kernels_cuda().
 *
 * FP32 throughout (cuBLAS SGEMM without TF32, FP32 kernels with float64 where the CPU reference
 * sums in float64), so it matches the CPU reference (kernels/cpu/) to about 1e-6 relative; except
 * lightning forward/backward, chunked on TF32 tensor cores (~1e-3; lightning_chunk.cu). The ops
 * live in the other files of kernels/cuda/ (declared in cuda_ops.h); this file only wires them up.
 * kernels_cuda() returns NULL when no device is visible, so callers can fall back to the CPU; with
 * CISPO_CUDA_PROFILE set it returns the table with every op timed (profile.cu).
 */
#include "kernels/cuda/cuda_ops.h"
#include "kernels/cuda/cuda_profile.h"

static const KernelOps cuda_ops = {
    .name = "cuda",

    .alloc = alloc_cuda,
    .free = free_cuda,
    .copy_h2d = copy_h2d_cuda,
    .copy_d2h = copy_d2h_cuda,
    .copy_d2d = copy_d2d_cuda,
    .zero = zero_cuda,
    .sync = sync_cuda,

    .gemm = gemm_cuda,

    .axpby = axpby_cuda,
    .scale = scale_cuda,
    .silu_forward = silu_forward_cuda,
    .silu_backward = silu_backward_cuda,
    .sigmoid_gate_forward = sigmoid_gate_forward_cuda,
    .sigmoid_gate_backward = sigmoid_gate_backward_cuda,
    .swiglu_forward = swiglu_forward_cuda,
    .swiglu_backward = swiglu_backward_cuda,

    .embedding_forward = embedding_forward_cuda,
    .embedding_backward = embedding_backward_cuda,
    .rmsnorm_forward = rmsnorm_forward_cuda,
    .rmsnorm_backward = rmsnorm_backward_cuda,

    .rope_forward = rope_forward_cuda,
    .rope_backward = rope_backward_cuda,

    .lightning_forward = lightning_forward_chunk_cuda,   /* CISPO_CUDA_NAIVE_LIGHTNING=1: the naive ones */
    .lightning_backward = lightning_backward_chunk_cuda,
    .lightning_decode = lightning_decode_cuda,
    .lightning_ws_bytes = lightning_ws_bytes_chunk_cuda,

    /* flash_attn.cu; the naive softmax_attn.cu kernels with CISPO_CUDA_NAIVE_ATTN=1 */
    .attention_forward = flash_attention_forward_cuda,
    .attention_backward = flash_attention_backward_cuda,
    .attention_decode = flash_attention_decode_cuda,
    .attention_ws_bytes = flash_attention_ws_bytes_cuda,

    .moe_route_forward = moe_route_forward_cuda,
    .moe_route_backward = moe_route_backward_cuda,
    .moe_sort = moe_sort_cuda,
    .moe_permute_forward = moe_permute_forward_cuda,
    .moe_permute_backward = moe_permute_backward_cuda,
    .moe_combine_forward = moe_combine_forward_cuda,
    .moe_combine_backward = moe_combine_backward_cuda,

    .lm_head_forward = lm_head_forward_cuda,
    .lm_head_backward = lm_head_backward_cuda,
    .lm_head_ws_bytes = lm_head_ws_bytes_cuda,

    .adamw = adamw_cuda,
    .sumsq = sumsq_cuda,
    .params_register = params_register_cuda,

    .adamw_fused = adamw_fused_cuda,
    .add_rmsnorm_forward = add_rmsnorm_forward_cuda,
    .add_rmsnorm_backward = add_rmsnorm_backward_cuda,

    .sample = sample_cuda,
    .sample_ws_bytes = sample_ws_bytes_cuda,

    .moe_expert_gemm = moe_expert_gemm_cuda,
    .moe_expert_gemm_dw = moe_expert_gemm_dw_cuda,
    .kv_append = kv_append_cuda,

    .impl_init = impl_init_cuda,
    .impl_free = impl_free_cuda,
};

const KernelOps *kernels_cuda(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n <= 0) {
        (void)cudaGetLastError(); /* clear the error so later runtime calls do not see it */
        return NULL;
    }
    if (getenv("CISPO_CUDA_PROFILE") != NULL) return kernels_cuda_profiled(&cuda_ops); /* profile.cu */
    return &cuda_ops;
}

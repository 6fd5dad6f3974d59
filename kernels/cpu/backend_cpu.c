/* kernels/cpu/backend_cpu.c: the CPU backend's KernelOps table (plain C + OpenBLAS, FP32), the
 * reference every other backend is tested against. The ops themselves live in the other files
 * of kernels/cpu/ (declared in cpu_ops.h); this file only wires them up.
 */
#include "kernels/cpu/cpu_ops.h"

static const KernelOps cpu_ops = {
    .name = "cpu",

    .alloc = alloc_cpu,
    .free = free_cpu,
    .copy_h2d = copy_h2d_cpu,
    .copy_d2h = copy_d2h_cpu,
    .copy_d2d = copy_d2d_cpu,
    .zero = zero_cpu,
    .sync = sync_cpu,

    .gemm = gemm_cpu,

    .axpby = axpby_cpu,
    .scale = scale_cpu,
    .silu_forward = silu_forward_cpu,
    .silu_backward = silu_backward_cpu,
    .sigmoid_gate_forward = sigmoid_gate_forward_cpu,
    .sigmoid_gate_backward = sigmoid_gate_backward_cpu,
    .swiglu_forward = swiglu_forward_cpu,
    .swiglu_backward = swiglu_backward_cpu,

    .embedding_forward = embedding_forward_cpu,
    .embedding_backward = embedding_backward_cpu,
    .rmsnorm_forward = rmsnorm_forward_cpu,
    .rmsnorm_backward = rmsnorm_backward_cpu,

    .rope_forward = rope_forward_cpu,
    .rope_backward = rope_backward_cpu,

    .lightning_forward = lightning_forward_cpu,
    .lightning_backward = lightning_backward_cpu,
    .lightning_decode = lightning_decode_cpu,
    .lightning_ws_bytes = lightning_ws_bytes_cpu,

    .attention_forward = attention_forward_cpu,
    .attention_backward = attention_backward_cpu,
    .attention_decode = attention_decode_cpu,
    .attention_ws_bytes = attention_ws_bytes_cpu,

    .moe_route_forward = moe_route_forward_cpu,
    .moe_route_backward = moe_route_backward_cpu,
    .moe_sort = moe_sort_cpu,
    .moe_permute_forward = moe_permute_forward_cpu,
    .moe_permute_backward = moe_permute_backward_cpu,
    .moe_combine_forward = moe_combine_forward_cpu,
    .moe_combine_backward = moe_combine_backward_cpu,

    .lm_head_forward = lm_head_forward_cpu,
    .lm_head_backward = lm_head_backward_cpu,
    .lm_head_ws_bytes = lm_head_ws_bytes_cpu,

    .adamw = adamw_cpu,
    .sumsq = sumsq_cpu,
    .params_register = params_register_cpu,

    .adamw_fused = adamw_fused_cpu,
    .add_rmsnorm_forward = add_rmsnorm_forward_cpu,
    .add_rmsnorm_backward = add_rmsnorm_backward_cpu,

    .sample = sample_cpu,
    .sample_ws_bytes = sample_ws_bytes_cpu,

    .moe_expert_gemm = moe_expert_gemm_cpu,
    .moe_expert_gemm_dw = moe_expert_gemm_dw_cpu,
    .kv_append = kv_append_cpu,
};

const KernelOps *kernels_cpu(void) { return &cpu_ops; }

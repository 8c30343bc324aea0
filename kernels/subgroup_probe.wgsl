// Subgroup layout probe, run once by Gpu.acquire (src/gpu/device.ts) where the device has subgroups:
// out[i] = subgroup_invocation_id | subgroup_size << 16 for invocation i (local_invocation_index) of one
// workgroup. The subgroup kernels (matmul_subgroup.wgsl, *_subgroup.wgsl) take subgroups to be runs of
// consecutive invocations (id = i % size), which WGSL does not promise; where the probe finds otherwise,
// the device's subgroups go unused.
// Bindings: 0 out u32 [64].
// Workgroups: one of 64 invocations. Compiled with `enable subgroups;` in front first and without it
// second; the form that compiles is the one the other subgroup kernels get (see rms_norm_subgroup.wgsl).
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
  @builtin(subgroup_size) sg: u32,
) {
  out[lid] = sid | (sg << 16u);
}

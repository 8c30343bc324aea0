// Subgroup layout probe, run once by Gpu.acquire (src/gpu/device.ts) where the device has subgroups:
// for invocation i (local_invocation_index) of one workgroup,
//   out[i] = subgroup_invocation_id | subgroup_size << 8 | (lane 0 of its subgroup's i) << 16.
// The subgroup kernels take subgroups to be runs of consecutive invocations (id = i % size, lane 0 at
// i − id), which WGSL does not promise; where the probe finds otherwise, or does not compile, the
// device's subgroups go unused. The broadcast sits behind a condition that is uniform per subgroup but
// not per workgroup, the shape of matvec_subgroup.wgsl's early return, so a compiler that enforces
// WGSL's uniformity rules for subgroup operations rejects the probe and not, later, that kernel.
// Bindings: 0 out u32 [64].
// Workgroups: one of 64 invocations. Compiled with `enable subgroups;` in front first and without it
// second; the form that compiles is the one the other subgroup kernels get (see rows_subgroup.wgsl).
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
  @builtin(subgroup_size) sg: u32,
) {
  var first = 255u;
  if (lid - sid < 64u) {
    first = subgroupBroadcast(lid, 0u);
  }
  out[lid] = sid | (sg << 8u) | (first << 16u);
}

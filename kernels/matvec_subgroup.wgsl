// How matvec.wgsl runs on adapters with subgroups (of 4 or more invocations, runs of consecutive
// invocations: Gpu.acquire's probe), appended to it by kernels/sources.ts (pipeline matvec_subgroup): the
// lanes of a subgroup share the activations. Each step of 16 along K, lane s loads x[k + 4(s % 4) … + 3]
// (one vec4) and subgroupBroadcast hands the four vec4 to every lane, instead of every lane loading all
// four (CPU adapters load lane by lane). Measured on llvmpipe, bf16 [N, K], each lane loading → this
// (best of 6, alternating): 4096 × 1024 1,758 → 1,645 us, 1024 × 4096 1,696 → 1,598, 32768 × 1024 11,535
// → 10,205 (6–12% less time).
// A subgroup leaves only as a whole (when its first lane has no rows: matvec_main), so its broadcasts run
// with every lane. That return is uniform per subgroup, which WGSL's uniformity analysis (workgroup-wide)
// cannot see: subgroup_probe.wgsl has the same shape, so a compiler that rejects it leaves subgroups
// unused instead of failing here. No `enable subgroups;`: see rows_subgroup.wgsl.

// This invocation's index in its subgroup, for acts16 / acts8.
var<private> lane: u32;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  lane = sid;
  matvec_main(wid, lid, lid - sid);
}

fn acts16(i: u32) -> mat4x4<f32> {
  let v = x[i + (lane & 3u)];
  return mat4x4<f32>(
    subgroupBroadcast(v, 0u),
    subgroupBroadcast(v, 1u),
    subgroupBroadcast(v, 2u),
    subgroupBroadcast(v, 3u),
  );
}

fn acts8(i: u32) -> mat2x4<f32> {
  let v = x[i + (lane & 1u)];
  return mat2x4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u));
}

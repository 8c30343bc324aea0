// matvec.wgsl on adapters with subgroups (of 4 or more invocations, runs of consecutive invocations:
// Gpu.acquire's probe): the same products, but the lanes of a subgroup share the activations. Each step
// of 16 along K, lane s loads x[k + 4(s % 4) … + 3] (one vec4) and subgroupBroadcast hands the four
// vec4 to every lane, instead of every lane loading all four (CPU adapters load lane by lane).
// Measured on llvmpipe, bf16 [N, K], matvec.wgsl → this (best of 6, alternating): 4096 × 1024 1,758 →
// 1,645 us, 1024 × 4096 1,696 → 1,598, 32768 × 1024 11,535 → 10,205 (6–12% less time).
// Needs K % 8 == 0 and x_off % 4 == 0, like matvec.wgsl. Bindings: as matvec.wgsl.
// Workgroups: as matvec.wgsl. A subgroup whose first lane has no rows leaves at once (its lanes all have
// none: rows are handed out in lane order), so the broadcasts run in subgroups that stay whole; in a
// subgroup with some rows, lanes past the last row compute on the last row and store nothing.
// That return is uniform per subgroup, which WGSL's uniformity analysis (workgroup-wide) cannot see:
// subgroup_probe.wgsl has the same shape, so a compiler that rejects it leaves subgroups unused instead of
// failing here. No `enable subgroups;`: see rows_subgroup.wgsl.
@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  if (matvec_base(wid.x, lid - sid) >= p.rows) {
    return;
  }
  let n_base = matvec_base(wid.x, lid);
  let m = wid.y;
  // Bases (weight_row) of the invocation's weight rows (past the last row: the last row's).
  let rows = matvec_rows(min(n_base, p.rows - 1u));
  let wa = weight_rows4(rows.a, p.K);
  let wb = weight_rows4(rows.b, p.K);
  let xb = (p.x_off + m * p.K) / 4u;
  var acc_a = vec4<f32>(0.0);
  var acc_b = vec4<f32>(0.0);
  // Rows of a multiple of 16 elements: sixteen weights per step (weight16_scaled).
  let k_end16 = select(0u, p.K, (p.K & 15u) == 0u);
  for (var k = 0u; k < k_end16; k += 16u) {
    let v = x[xb + k / 4u + (sid & 3u)];
    let a = subgroupBroadcast(v, 0u);
    let b = subgroupBroadcast(v, 1u);
    let c = subgroupBroadcast(v, 2u);
    let e = subgroupBroadcast(v, 3u);
    acc_a += dot4x16(wa, k, a, b, c, e);
    acc_b += dot4x16(wb, k, a, b, c, e);
  }
  for (var k = k_end16; k < p.K; k += 8u) {
    let v = x[xb + k / 4u + (sid & 1u)];
    let a = subgroupBroadcast(v, 0u);
    let b = subgroupBroadcast(v, 1u);
    acc_a += dot4x8(wa, k, a, b);
    acc_b += dot4x8(wb, k, a, b);
  }
  if (n_base >= p.rows) {
    return;
  }
  matvec_store(m, n_base, acc_a, acc_b);
}

// Matrix multiplication for prefill on adapters with subgroups (of 8 to 64 invocations), the same
// product as matmul.wgsl: out[m, n0 + n] = Σ_k x[m, k] · W[n, k] (+ bias[n0 + n]). Parameters, bindings
// 1…4, dot4x8 and store: matmul_common.wgsl.
// Why: every lane of a tile row needs the same activations. In matmul.wgsl each lane loads them
// itself, and a CPU adapter (llvmpipe) turns each storage load into a loop over its 8 SIMD lanes with a
// bounds check per component, so the activations cost as much as the weights. Here lane s of a
// subgroup loads only token s % 8 of each group of 8 and subgroupBroadcast hands it to the others (a
// register move): 8× fewer activation loads, which makes a taller tile pay (16 tokens × 8 rows).
// Measured on llvmpipe, 128 tokens × 4096 × 1024 bf16: 42 GFLOP/s with matmul.wgsl; here, by tile
// (tokens × rows): 8×16 68, 16×8 79, 32×4 75, 16×12 58, 16×4 50, 32×8 62, 8×8 61.
// Needs K % 8 == 0, x_off % 4 == 0, x_stride % 4 == 0, subgroups of 8 to 64 invocations and lanes_x a
// multiple of the subgroup size (the lanes of a subgroup share their tokens), which ops.ts sees to; and
// subgroups made of consecutive invocations (local_invocation_index), which WGSL does not promise:
// Gpu.acquire runs a probe kernel and leaves subgroups off where that fails. No `enable subgroups;`:
// see rows_subgroup.wgsl.
// Bindings: 0 weight (snippet), 1…4 (matmul_common.wgsl).
// Workgroups: 64 invocations, lanes_x along the rows and 64 / lanes_x along the tokens: a workgroup
// covers 8 · lanes_x rows (x) and 16 · 64 / lanes_x tokens (y); z = batch. Every invocation runs the
// loop (the broadcasts need the whole subgroup); those past the last row or token store nothing.
// K/8 loop iterations per invocation.
@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  let n_base = (wid.x * p.lanes_x + lid % p.lanes_x) * 8u;
  let m_base = (wid.y * (64u / p.lanes_x) + lid / p.lanes_x) * 16u;
  // Weight row bases (weight_row) of the tile's rows (past the last row: the last row again, not stored).
  let wb0 = tile_rows4(n_base + 0u, wid.z);
  let wb1 = tile_rows4(n_base + 4u, wid.z);
  // The activation rows this lane loads for the subgroup: tokens m_base + s % 8 and m_base + 8 + s % 8
  // (past the last token: the last token again).
  let x_off = p.x_off + wid.z * p.x_z;
  let xm0 = (x_off + min(m_base + sid % 8u, p.M - 1u) * p.x_stride) / 4u;
  let xm1 = (x_off + min(m_base + 8u + sid % 8u, p.M - 1u) * p.x_stride) / 4u;
  // acc<t>_<g>: token t, rows 4g..4g+3 of the tile.
  var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0);
  var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0);
  var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0);
  var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0);
  var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0);
  var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0);
  var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0);
  var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0);
  var acc8_0 = vec4<f32>(0.0); var acc8_1 = vec4<f32>(0.0);
  var acc9_0 = vec4<f32>(0.0); var acc9_1 = vec4<f32>(0.0);
  var acc10_0 = vec4<f32>(0.0); var acc10_1 = vec4<f32>(0.0);
  var acc11_0 = vec4<f32>(0.0); var acc11_1 = vec4<f32>(0.0);
  var acc12_0 = vec4<f32>(0.0); var acc12_1 = vec4<f32>(0.0);
  var acc13_0 = vec4<f32>(0.0); var acc13_1 = vec4<f32>(0.0);
  var acc14_0 = vec4<f32>(0.0); var acc14_1 = vec4<f32>(0.0);
  var acc15_0 = vec4<f32>(0.0); var acc15_1 = vec4<f32>(0.0);
  for (var k = 0u; k < p.K; k += 8u) {
    let w00 = weight8(wb0.x, k); let w01 = weight8(wb0.y, k); let w02 = weight8(wb0.z, k); let w03 = weight8(wb0.w, k);
    let w10 = weight8(wb1.x, k); let w11 = weight8(wb1.y, k); let w12 = weight8(wb1.z, k); let w13 = weight8(wb1.w, k);
    // x[k..k+7] of this lane's two tokens; token t of the tile comes from lane t % 8.
    let v00 = x[xm0 + k / 4u]; let v01 = x[xm0 + k / 4u + 1u];
    let v10 = x[xm1 + k / 4u]; let v11 = x[xm1 + k / 4u + 1u];
    let a00 = subgroupBroadcast(v00, 0u); let a01 = subgroupBroadcast(v01, 0u);
    acc0_0 += dot4x8(w00, w01, w02, w03, a00, a01);
    acc0_1 += dot4x8(w10, w11, w12, w13, a00, a01);
    let a10 = subgroupBroadcast(v00, 1u); let a11 = subgroupBroadcast(v01, 1u);
    acc1_0 += dot4x8(w00, w01, w02, w03, a10, a11);
    acc1_1 += dot4x8(w10, w11, w12, w13, a10, a11);
    let a20 = subgroupBroadcast(v00, 2u); let a21 = subgroupBroadcast(v01, 2u);
    acc2_0 += dot4x8(w00, w01, w02, w03, a20, a21);
    acc2_1 += dot4x8(w10, w11, w12, w13, a20, a21);
    let a30 = subgroupBroadcast(v00, 3u); let a31 = subgroupBroadcast(v01, 3u);
    acc3_0 += dot4x8(w00, w01, w02, w03, a30, a31);
    acc3_1 += dot4x8(w10, w11, w12, w13, a30, a31);
    let a40 = subgroupBroadcast(v00, 4u); let a41 = subgroupBroadcast(v01, 4u);
    acc4_0 += dot4x8(w00, w01, w02, w03, a40, a41);
    acc4_1 += dot4x8(w10, w11, w12, w13, a40, a41);
    let a50 = subgroupBroadcast(v00, 5u); let a51 = subgroupBroadcast(v01, 5u);
    acc5_0 += dot4x8(w00, w01, w02, w03, a50, a51);
    acc5_1 += dot4x8(w10, w11, w12, w13, a50, a51);
    let a60 = subgroupBroadcast(v00, 6u); let a61 = subgroupBroadcast(v01, 6u);
    acc6_0 += dot4x8(w00, w01, w02, w03, a60, a61);
    acc6_1 += dot4x8(w10, w11, w12, w13, a60, a61);
    let a70 = subgroupBroadcast(v00, 7u); let a71 = subgroupBroadcast(v01, 7u);
    acc7_0 += dot4x8(w00, w01, w02, w03, a70, a71);
    acc7_1 += dot4x8(w10, w11, w12, w13, a70, a71);
    let a80 = subgroupBroadcast(v10, 0u); let a81 = subgroupBroadcast(v11, 0u);
    acc8_0 += dot4x8(w00, w01, w02, w03, a80, a81);
    acc8_1 += dot4x8(w10, w11, w12, w13, a80, a81);
    let a90 = subgroupBroadcast(v10, 1u); let a91 = subgroupBroadcast(v11, 1u);
    acc9_0 += dot4x8(w00, w01, w02, w03, a90, a91);
    acc9_1 += dot4x8(w10, w11, w12, w13, a90, a91);
    let a100 = subgroupBroadcast(v10, 2u); let a101 = subgroupBroadcast(v11, 2u);
    acc10_0 += dot4x8(w00, w01, w02, w03, a100, a101);
    acc10_1 += dot4x8(w10, w11, w12, w13, a100, a101);
    let a110 = subgroupBroadcast(v10, 3u); let a111 = subgroupBroadcast(v11, 3u);
    acc11_0 += dot4x8(w00, w01, w02, w03, a110, a111);
    acc11_1 += dot4x8(w10, w11, w12, w13, a110, a111);
    let a120 = subgroupBroadcast(v10, 4u); let a121 = subgroupBroadcast(v11, 4u);
    acc12_0 += dot4x8(w00, w01, w02, w03, a120, a121);
    acc12_1 += dot4x8(w10, w11, w12, w13, a120, a121);
    let a130 = subgroupBroadcast(v10, 5u); let a131 = subgroupBroadcast(v11, 5u);
    acc13_0 += dot4x8(w00, w01, w02, w03, a130, a131);
    acc13_1 += dot4x8(w10, w11, w12, w13, a130, a131);
    let a140 = subgroupBroadcast(v10, 6u); let a141 = subgroupBroadcast(v11, 6u);
    acc14_0 += dot4x8(w00, w01, w02, w03, a140, a141);
    acc14_1 += dot4x8(w10, w11, w12, w13, a140, a141);
    let a150 = subgroupBroadcast(v10, 7u); let a151 = subgroupBroadcast(v11, 7u);
    acc15_0 += dot4x8(w00, w01, w02, w03, a150, a151);
    acc15_1 += dot4x8(w10, w11, w12, w13, a150, a151);
  }
  let n_valid = select(0u, min(8u, p.rows - n_base), n_base < p.rows);
  let m_valid = select(0u, min(16u, p.M - m_base), m_base < p.M);
  let out_base = p.out_off + wid.z * p.out_z;
  if (0u < m_valid) {
    store(out_base, m_base + 0u, n_base + 0u, 0u, n_valid, acc0_0);
    store(out_base, m_base + 0u, n_base + 4u, 4u, n_valid, acc0_1);
  }
  if (1u < m_valid) {
    store(out_base, m_base + 1u, n_base + 0u, 0u, n_valid, acc1_0);
    store(out_base, m_base + 1u, n_base + 4u, 4u, n_valid, acc1_1);
  }
  if (2u < m_valid) {
    store(out_base, m_base + 2u, n_base + 0u, 0u, n_valid, acc2_0);
    store(out_base, m_base + 2u, n_base + 4u, 4u, n_valid, acc2_1);
  }
  if (3u < m_valid) {
    store(out_base, m_base + 3u, n_base + 0u, 0u, n_valid, acc3_0);
    store(out_base, m_base + 3u, n_base + 4u, 4u, n_valid, acc3_1);
  }
  if (4u < m_valid) {
    store(out_base, m_base + 4u, n_base + 0u, 0u, n_valid, acc4_0);
    store(out_base, m_base + 4u, n_base + 4u, 4u, n_valid, acc4_1);
  }
  if (5u < m_valid) {
    store(out_base, m_base + 5u, n_base + 0u, 0u, n_valid, acc5_0);
    store(out_base, m_base + 5u, n_base + 4u, 4u, n_valid, acc5_1);
  }
  if (6u < m_valid) {
    store(out_base, m_base + 6u, n_base + 0u, 0u, n_valid, acc6_0);
    store(out_base, m_base + 6u, n_base + 4u, 4u, n_valid, acc6_1);
  }
  if (7u < m_valid) {
    store(out_base, m_base + 7u, n_base + 0u, 0u, n_valid, acc7_0);
    store(out_base, m_base + 7u, n_base + 4u, 4u, n_valid, acc7_1);
  }
  if (8u < m_valid) {
    store(out_base, m_base + 8u, n_base + 0u, 0u, n_valid, acc8_0);
    store(out_base, m_base + 8u, n_base + 4u, 4u, n_valid, acc8_1);
  }
  if (9u < m_valid) {
    store(out_base, m_base + 9u, n_base + 0u, 0u, n_valid, acc9_0);
    store(out_base, m_base + 9u, n_base + 4u, 4u, n_valid, acc9_1);
  }
  if (10u < m_valid) {
    store(out_base, m_base + 10u, n_base + 0u, 0u, n_valid, acc10_0);
    store(out_base, m_base + 10u, n_base + 4u, 4u, n_valid, acc10_1);
  }
  if (11u < m_valid) {
    store(out_base, m_base + 11u, n_base + 0u, 0u, n_valid, acc11_0);
    store(out_base, m_base + 11u, n_base + 4u, 4u, n_valid, acc11_1);
  }
  if (12u < m_valid) {
    store(out_base, m_base + 12u, n_base + 0u, 0u, n_valid, acc12_0);
    store(out_base, m_base + 12u, n_base + 4u, 4u, n_valid, acc12_1);
  }
  if (13u < m_valid) {
    store(out_base, m_base + 13u, n_base + 0u, 0u, n_valid, acc13_0);
    store(out_base, m_base + 13u, n_base + 4u, 4u, n_valid, acc13_1);
  }
  if (14u < m_valid) {
    store(out_base, m_base + 14u, n_base + 0u, 0u, n_valid, acc14_0);
    store(out_base, m_base + 14u, n_base + 4u, 4u, n_valid, acc14_1);
  }
  if (15u < m_valid) {
    store(out_base, m_base + 15u, n_base + 0u, 0u, n_valid, acc15_0);
    store(out_base, m_base + 15u, n_base + 4u, 4u, n_valid, acc15_1);
  }
}

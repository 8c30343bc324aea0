// Matrix multiplication for prefill, y = x · Wᵀ (+ bias), for one row-chunk of W:
// out[m, n0 + n] = Σ_k x[m, k] · W[n, k] (+ bias[n0 + n]). Parameters, bindings 1…4, dot4x8 and store:
// matmul_common.wgsl. Adapters with subgroups of 8 to 64 invocations take matmul_subgroup.wgsl instead.
// Register tiles of 8 tokens × 16 weight rows per invocation: each step of 8 along K loads 16 × 8 weights
// (weight8) and 8 × 8 activations (vec4; every lane of a workgroup reads the same tokens) for 128
// eight-wide dot products. No workgroup memory: on CPU adapters it was slower.
// Tile sizes measured on llvmpipe (GFLOP/s, bf16, 128 tokens × 4096 × 1024): 8×4 23, 4×8 28, 8×8 27–31,
// 8×12 37, 8×16 39, 8×24 31, 16×16 37, 8×32 34 (beyond 8×16 the accumulators spill).
// The tile is written out (one variable per 4 results, not arrays) so that it stays in registers.
// Needs K % 8 == 0, x_off % 4 == 0 and x_stride % 4 == 0 (ops.ts falls back to linear.wgsl otherwise).
// Bindings: 0 weight (snippet), 1…4 (matmul_common.wgsl).
// Workgroups: 64 invocations, lanes_x (a power of two) along the rows and 64 / lanes_x along the tokens:
// a workgroup covers 16 · lanes_x rows (x) and 8 · 64 / lanes_x tokens (y); z = batch. Few rows (attention:
// 64 or 128) take few lanes along them, so that every lane has work and workgroups, which cost
// ~20 us each on llvmpipe, are few. K/8 loop iterations per invocation.
@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  // lanes_x invocations of the workgroup along the rows, 64 / lanes_x along the tokens.
  let n_base = (wid.x * p.lanes_x + lid % p.lanes_x) * 16u;
  let m_base = (wid.y * (64u / p.lanes_x) + lid / p.lanes_x) * 8u;
  if (n_base >= p.rows || m_base >= p.M) {
    return;
  }
  // Weight row bases (weight_row) of the tile's rows (past the last row: the last row again, not stored).
  let wb0 = tile_rows4(n_base + 0u, wid.z);
  let wb1 = tile_rows4(n_base + 4u, wid.z);
  let wb2 = tile_rows4(n_base + 8u, wid.z);
  let wb3 = tile_rows4(n_base + 12u, wid.z);
  // Activation rows of the tile's tokens (past the last token: the last token again).
  let x_off = p.x_off + wid.z * p.x_z;
  let xb0 = (x_off + min(m_base + 0u, p.M - 1u) * p.x_stride) / 4u;
  let xb1 = (x_off + min(m_base + 1u, p.M - 1u) * p.x_stride) / 4u;
  let xb2 = (x_off + min(m_base + 2u, p.M - 1u) * p.x_stride) / 4u;
  let xb3 = (x_off + min(m_base + 3u, p.M - 1u) * p.x_stride) / 4u;
  let xb4 = (x_off + min(m_base + 4u, p.M - 1u) * p.x_stride) / 4u;
  let xb5 = (x_off + min(m_base + 5u, p.M - 1u) * p.x_stride) / 4u;
  let xb6 = (x_off + min(m_base + 6u, p.M - 1u) * p.x_stride) / 4u;
  let xb7 = (x_off + min(m_base + 7u, p.M - 1u) * p.x_stride) / 4u;
  // acc<t>_<g>: token t, rows 4g..4g+3 of the tile.
  var acc0_0 = vec4<f32>(0.0); var acc0_1 = vec4<f32>(0.0); var acc0_2 = vec4<f32>(0.0); var acc0_3 = vec4<f32>(0.0);
  var acc1_0 = vec4<f32>(0.0); var acc1_1 = vec4<f32>(0.0); var acc1_2 = vec4<f32>(0.0); var acc1_3 = vec4<f32>(0.0);
  var acc2_0 = vec4<f32>(0.0); var acc2_1 = vec4<f32>(0.0); var acc2_2 = vec4<f32>(0.0); var acc2_3 = vec4<f32>(0.0);
  var acc3_0 = vec4<f32>(0.0); var acc3_1 = vec4<f32>(0.0); var acc3_2 = vec4<f32>(0.0); var acc3_3 = vec4<f32>(0.0);
  var acc4_0 = vec4<f32>(0.0); var acc4_1 = vec4<f32>(0.0); var acc4_2 = vec4<f32>(0.0); var acc4_3 = vec4<f32>(0.0);
  var acc5_0 = vec4<f32>(0.0); var acc5_1 = vec4<f32>(0.0); var acc5_2 = vec4<f32>(0.0); var acc5_3 = vec4<f32>(0.0);
  var acc6_0 = vec4<f32>(0.0); var acc6_1 = vec4<f32>(0.0); var acc6_2 = vec4<f32>(0.0); var acc6_3 = vec4<f32>(0.0);
  var acc7_0 = vec4<f32>(0.0); var acc7_1 = vec4<f32>(0.0); var acc7_2 = vec4<f32>(0.0); var acc7_3 = vec4<f32>(0.0);
  for (var k = 0u; k < p.K; k += 8u) {
    let w00 = weight8(wb0.x, k); let w01 = weight8(wb0.y, k); let w02 = weight8(wb0.z, k); let w03 = weight8(wb0.w, k);
    let w10 = weight8(wb1.x, k); let w11 = weight8(wb1.y, k); let w12 = weight8(wb1.z, k); let w13 = weight8(wb1.w, k);
    let w20 = weight8(wb2.x, k); let w21 = weight8(wb2.y, k); let w22 = weight8(wb2.z, k); let w23 = weight8(wb2.w, k);
    let w30 = weight8(wb3.x, k); let w31 = weight8(wb3.y, k); let w32 = weight8(wb3.z, k); let w33 = weight8(wb3.w, k);
    let a00 = x[xb0 + k / 4u];
    let a01 = x[xb0 + k / 4u + 1u];
    acc0_0 += dot4x8(w00, w01, w02, w03, a00, a01);
    acc0_1 += dot4x8(w10, w11, w12, w13, a00, a01);
    acc0_2 += dot4x8(w20, w21, w22, w23, a00, a01);
    acc0_3 += dot4x8(w30, w31, w32, w33, a00, a01);
    let a10 = x[xb1 + k / 4u];
    let a11 = x[xb1 + k / 4u + 1u];
    acc1_0 += dot4x8(w00, w01, w02, w03, a10, a11);
    acc1_1 += dot4x8(w10, w11, w12, w13, a10, a11);
    acc1_2 += dot4x8(w20, w21, w22, w23, a10, a11);
    acc1_3 += dot4x8(w30, w31, w32, w33, a10, a11);
    let a20 = x[xb2 + k / 4u];
    let a21 = x[xb2 + k / 4u + 1u];
    acc2_0 += dot4x8(w00, w01, w02, w03, a20, a21);
    acc2_1 += dot4x8(w10, w11, w12, w13, a20, a21);
    acc2_2 += dot4x8(w20, w21, w22, w23, a20, a21);
    acc2_3 += dot4x8(w30, w31, w32, w33, a20, a21);
    let a30 = x[xb3 + k / 4u];
    let a31 = x[xb3 + k / 4u + 1u];
    acc3_0 += dot4x8(w00, w01, w02, w03, a30, a31);
    acc3_1 += dot4x8(w10, w11, w12, w13, a30, a31);
    acc3_2 += dot4x8(w20, w21, w22, w23, a30, a31);
    acc3_3 += dot4x8(w30, w31, w32, w33, a30, a31);
    let a40 = x[xb4 + k / 4u];
    let a41 = x[xb4 + k / 4u + 1u];
    acc4_0 += dot4x8(w00, w01, w02, w03, a40, a41);
    acc4_1 += dot4x8(w10, w11, w12, w13, a40, a41);
    acc4_2 += dot4x8(w20, w21, w22, w23, a40, a41);
    acc4_3 += dot4x8(w30, w31, w32, w33, a40, a41);
    let a50 = x[xb5 + k / 4u];
    let a51 = x[xb5 + k / 4u + 1u];
    acc5_0 += dot4x8(w00, w01, w02, w03, a50, a51);
    acc5_1 += dot4x8(w10, w11, w12, w13, a50, a51);
    acc5_2 += dot4x8(w20, w21, w22, w23, a50, a51);
    acc5_3 += dot4x8(w30, w31, w32, w33, a50, a51);
    let a60 = x[xb6 + k / 4u];
    let a61 = x[xb6 + k / 4u + 1u];
    acc6_0 += dot4x8(w00, w01, w02, w03, a60, a61);
    acc6_1 += dot4x8(w10, w11, w12, w13, a60, a61);
    acc6_2 += dot4x8(w20, w21, w22, w23, a60, a61);
    acc6_3 += dot4x8(w30, w31, w32, w33, a60, a61);
    let a70 = x[xb7 + k / 4u];
    let a71 = x[xb7 + k / 4u + 1u];
    acc7_0 += dot4x8(w00, w01, w02, w03, a70, a71);
    acc7_1 += dot4x8(w10, w11, w12, w13, a70, a71);
    acc7_2 += dot4x8(w20, w21, w22, w23, a70, a71);
    acc7_3 += dot4x8(w30, w31, w32, w33, a70, a71);
  }
  let n_valid = min(16u, p.rows - n_base);
  let m_valid = min(8u, p.M - m_base);
  let out_base = p.out_off + wid.z * p.out_z;
  if (0u < m_valid) {
    store(out_base, m_base + 0u, n_base + 0u, 0u, n_valid, acc0_0);
    store(out_base, m_base + 0u, n_base + 4u, 4u, n_valid, acc0_1);
    store(out_base, m_base + 0u, n_base + 8u, 8u, n_valid, acc0_2);
    store(out_base, m_base + 0u, n_base + 12u, 12u, n_valid, acc0_3);
  }
  if (1u < m_valid) {
    store(out_base, m_base + 1u, n_base + 0u, 0u, n_valid, acc1_0);
    store(out_base, m_base + 1u, n_base + 4u, 4u, n_valid, acc1_1);
    store(out_base, m_base + 1u, n_base + 8u, 8u, n_valid, acc1_2);
    store(out_base, m_base + 1u, n_base + 12u, 12u, n_valid, acc1_3);
  }
  if (2u < m_valid) {
    store(out_base, m_base + 2u, n_base + 0u, 0u, n_valid, acc2_0);
    store(out_base, m_base + 2u, n_base + 4u, 4u, n_valid, acc2_1);
    store(out_base, m_base + 2u, n_base + 8u, 8u, n_valid, acc2_2);
    store(out_base, m_base + 2u, n_base + 12u, 12u, n_valid, acc2_3);
  }
  if (3u < m_valid) {
    store(out_base, m_base + 3u, n_base + 0u, 0u, n_valid, acc3_0);
    store(out_base, m_base + 3u, n_base + 4u, 4u, n_valid, acc3_1);
    store(out_base, m_base + 3u, n_base + 8u, 8u, n_valid, acc3_2);
    store(out_base, m_base + 3u, n_base + 12u, 12u, n_valid, acc3_3);
  }
  if (4u < m_valid) {
    store(out_base, m_base + 4u, n_base + 0u, 0u, n_valid, acc4_0);
    store(out_base, m_base + 4u, n_base + 4u, 4u, n_valid, acc4_1);
    store(out_base, m_base + 4u, n_base + 8u, 8u, n_valid, acc4_2);
    store(out_base, m_base + 4u, n_base + 12u, 12u, n_valid, acc4_3);
  }
  if (5u < m_valid) {
    store(out_base, m_base + 5u, n_base + 0u, 0u, n_valid, acc5_0);
    store(out_base, m_base + 5u, n_base + 4u, 4u, n_valid, acc5_1);
    store(out_base, m_base + 5u, n_base + 8u, 8u, n_valid, acc5_2);
    store(out_base, m_base + 5u, n_base + 12u, 12u, n_valid, acc5_3);
  }
  if (6u < m_valid) {
    store(out_base, m_base + 6u, n_base + 0u, 0u, n_valid, acc6_0);
    store(out_base, m_base + 6u, n_base + 4u, 4u, n_valid, acc6_1);
    store(out_base, m_base + 6u, n_base + 8u, 8u, n_valid, acc6_2);
    store(out_base, m_base + 6u, n_base + 12u, 12u, n_valid, acc6_3);
  }
  if (7u < m_valid) {
    store(out_base, m_base + 7u, n_base + 0u, 0u, n_valid, acc7_0);
    store(out_base, m_base + 7u, n_base + 4u, 4u, n_valid, acc7_1);
    store(out_base, m_base + 7u, n_base + 8u, 8u, n_valid, acc7_2);
    store(out_base, m_base + 7u, n_base + 12u, 12u, n_valid, acc7_3);
  }
}

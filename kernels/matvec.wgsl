// Matrix-vector products for decoding (few tokens), y = x · Wᵀ (+ bias), for one row-chunk of W:
// out[m, n0 + n] = Σ_k x[m, k] · W[n, k] (+ bias[n0 + n]), m < M (small), n < rows.
// Decoding reads every weight once per token, and on CPU adapters the cost is the number of load
// instructions (memory is loaded lane by lane): each invocation owns 8 consecutive weight rows of one
// token and reads 16 weights per step (weight16_scaled: two loads for bf16 / f16, one vec4 of values and
// one scale for q8 / q4, the scale applied once per 16 products; 8 per step with weight8 when
// K % 16 != 0) and 4 activations per load (x as vec4), x
// once per 8 rows (8 rows measured 16% faster than 4 on llvmpipe, 16 slower: register spills).
// Needs K % 8 == 0 and x_off % 4 == 0 (ops.ts falls back to linear.wgsl otherwise).
// Bindings: 0 weight (snippet); 1…5, the parameters (binding 6), the bias, accumulate and split rules in
// matvec_common.wgsl; dot4x16 and dot4x8 in matvec_dots.wgsl (both appended). Adapters with subgroups
// take matvec_subgroup.wgsl instead.
// Workgroups: 64 invocations along x, 8 rows each (wg_rows ≤ 512 rows per workgroup: matvec_base), y = token;
// K/16 (or K/8) loop iterations.

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n_base = matvec_base(wid.x, lid);
  let m = wid.y;
  if (n_base >= p.rows || m >= p.M) {
    return;
  }
  // Bases (weight_row) of the invocation's weight rows.
  let rows = matvec_rows(n_base);
  let wa = weight_rows4(rows.a, p.K);
  let wb = weight_rows4(rows.b, p.K);
  let xb = (p.x_off + m * p.K) / 4u;
  var acc_a = vec4<f32>(0.0);
  var acc_b = vec4<f32>(0.0);
  // Rows of a multiple of 16 elements: sixteen weights per step (weight16_scaled).
  let k_end16 = select(0u, p.K, (p.K & 15u) == 0u);
  for (var k = 0u; k < k_end16; k += 16u) {
    let a = x[xb + k / 4u];
    let b = x[xb + k / 4u + 1u];
    let c = x[xb + k / 4u + 2u];
    let e = x[xb + k / 4u + 3u];
    acc_a += dot4x16(wa, k, a, b, c, e);
    acc_b += dot4x16(wb, k, a, b, c, e);
  }
  for (var k = k_end16; k < p.K; k += 8u) {
    let a = x[xb + k / 4u];
    let b = x[xb + k / 4u + 1u];
    acc_a += dot4x8(wa, k, a, b);
    acc_b += dot4x8(wb, k, a, b);
  }
  matvec_store(m, n_base, acc_a, acc_b);
}

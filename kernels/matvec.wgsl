// Matrix-vector products for decoding (few tokens), y = x · Wᵀ (+ bias), for one row-chunk of W:
// out[m, n0 + n] = Σ_k x[m, k] · W[n, k] (+ bias[n0 + n]), m < M (small), n < rows.
// Decoding reads every weight once per token, and on CPU adapters the cost is the number of load
// instructions (memory is loaded lane by lane): each invocation owns 8 consecutive weight rows of one
// token and reads 16 weights per step (weight16_scaled: two loads for bf16 / f16, one vec4 of values and
// one scale for q8 / q4, the scale applied once per 16 products; 8 per step with weight8 when
// K % 16 != 0) and the step's activations, x once per 8 rows (8 rows measured 16% faster than 4 on
// llvmpipe, 16 slower: register spills).
// How an invocation gets its activations, and its entry point, come appended: matvec_lanes.wgsl (each
// lane loads them) or, where the adapter has subgroups, matvec_subgroup.wgsl (the lanes of a subgroup
// share them: pipeline matvec_subgroup). Both provide acts16 / acts8 and call matvec_main.
// Needs K % 8 == 0 and x_off % 4 == 0 (ops.ts falls back to linear.wgsl otherwise).
// Bindings: 0 weight (snippet); 1…5, the parameters (binding 6), the bias, accumulate and split rules in
// matvec_common.wgsl (appended).
// Workgroups: 64 invocations along x, 8 rows each (wg_rows ≤ 512 rows per workgroup: matvec_base), y = token;
// K/16 (or K/8) loop iterations.

// Four rows' 16 products with the activations x[k..k+15] = (a, b, c, e), each row's scale applied once
// (q8 / q4; 1.0, folded away, for float weights). `rows` holds the four rows' bases (weight_row), k the column.
fn dot4x16(rows: vec4<u32>, k: u32, a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, e: vec4<f32>) -> vec4<f32> {
  let w0 = weight16_scaled(rows.x, k);
  let w1 = weight16_scaled(rows.y, k);
  let w2 = weight16_scaled(rows.z, k);
  let w3 = weight16_scaled(rows.w, k);
  return vec4<f32>(
    w0.d * (dot(a, w0.w[0]) + dot(b, w0.w[1]) + dot(c, w0.w[2]) + dot(e, w0.w[3])),
    w1.d * (dot(a, w1.w[0]) + dot(b, w1.w[1]) + dot(c, w1.w[2]) + dot(e, w1.w[3])),
    w2.d * (dot(a, w2.w[0]) + dot(b, w2.w[1]) + dot(c, w2.w[2]) + dot(e, w2.w[3])),
    w3.d * (dot(a, w3.w[0]) + dot(b, w3.w[1]) + dot(c, w3.w[2]) + dot(e, w3.w[3])),
  );
}

// The same for 8 products (x[k..k+7] = (a, b)), for rows that are not a multiple of 16 long.
fn dot4x8(rows: vec4<u32>, k: u32, a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
  let w0 = weight8(rows.x, k);
  let w1 = weight8(rows.y, k);
  let w2 = weight8(rows.z, k);
  let w3 = weight8(rows.w, k);
  return vec4<f32>(
    dot(a, w0[0]) + dot(b, w0[1]),
    dot(a, w1[0]) + dot(b, w1[1]),
    dot(a, w2[0]) + dot(b, w2[1]),
    dot(a, w3[0]) + dot(b, w3[1]),
  );
}

@group(0) @binding(6) var<uniform> p: Params;

// The products of invocation lid of workgroup wid. It leaves at once if lane `first` has no rows (rows
// are handed out in lane order): itself, or the first lane of its subgroup where the subgroup must stay
// whole for its broadcasts; a lane past the last row that stays computes on the last row and stores
// nothing.
fn matvec_main(wid: vec3<u32>, lid: u32, first: u32) {
  if (matvec_base(wid.x, first) >= p.rows) {
    return;
  }
  let n_base = matvec_base(wid.x, lid);
  let m = wid.y;
  // Bases (weight_row) of the invocation's weight rows.
  let rows = matvec_rows(min(n_base, p.rows - 1u));
  let wa = weight_rows4(rows.a, p.K);
  let wb = weight_rows4(rows.b, p.K);
  let xb = (p.x_off + m * p.K) / 4u;
  var acc_a = vec4<f32>(0.0);
  var acc_b = vec4<f32>(0.0);
  // Rows of a multiple of 16 elements: sixteen weights per step (weight16_scaled).
  let k_end16 = select(0u, p.K, (p.K & 15u) == 0u);
  for (var k = 0u; k < k_end16; k += 16u) {
    let a = acts16(xb + k / 4u);
    acc_a += dot4x16(wa, k, a[0], a[1], a[2], a[3]);
    acc_b += dot4x16(wb, k, a[0], a[1], a[2], a[3]);
  }
  for (var k = k_end16; k < p.K; k += 8u) {
    let a = acts8(xb + k / 4u);
    acc_a += dot4x8(wa, k, a[0], a[1]);
    acc_b += dot4x8(wb, k, a[0], a[1]);
  }
  if (n_base >= p.rows) {
    return;
  }
  matvec_store(m, n_base, acc_a, acc_b);
}

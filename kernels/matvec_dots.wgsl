// What matvec.wgsl and matvec_subgroup.wgsl share, appended to them (then matvec_common.wgsl) by
// kernels/sources.ts: the four-row dot products of float (or scaled) weights and the parameters binding.

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

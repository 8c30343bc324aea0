// What matmul.wgsl and matmul_subgroup.wgsl share, appended to them by kernels/sources.ts: the
// parameters, bindings 1…4, the tile's weight rows, the eight-wide dot products and the stores.
// Bindings: 1 x vec4<f32> [M, x_stride / 4] (window), 2 out f32 [M, out_stride] (window), 3 bias f32
// [out_stride] (unused when has_bias = 0), 4 params.
// With accumulate = 1 the result is added to out (a residual connection folded into the projection).
// w_row0: the chunk's first row within its buffer (a weight sharing its buffer with others, see
// WeightStorage.slice).
// Batches (attention's heads, ops.ts attentionByMatmul): workgroup z = b multiplies x from
// x_off + b · x_z with the weight rows from w_row0 + ((b + z_shift) / z_group) · w_z_rows (grouped-query
// heads share a KV head) into out from out_off + b · out_z. A plain product has one batch, x_stride = K.
// lanes_x: invocations of a workgroup along the rows (a power of two); the other 64 / lanes_x go along
// the tokens.
struct Params {
  M: u32,
  K: u32,
  rows: u32,
  out_stride: u32,
  n0: u32,
  x_off: u32,
  out_off: u32,
  has_bias: u32,
  accumulate: u32,
  w_row0: u32,
  x_stride: u32,
  x_z: u32,
  out_z: u32,
  w_z_rows: u32,
  z_group: u32,
  z_shift: u32,
  lanes_x: u32,
}

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Weight row bases (weight_row) of rows n..n+3 of batch z's weight (past the last row: the last row
// again, computed but not stored).
fn tile_rows4(n: u32, z: u32) -> vec4<u32> {
  let w_row0 = p.w_row0 + ((z + p.z_shift) / p.z_group) * p.w_z_rows;
  return weight_rows4(min(vec4<u32>(n) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.rows - 1u)) + w_row0, p.K);
}

// Four rows' 8 products with one token's activations x[k..k+7] = (a0, a1).
fn dot4x8(w0: mat2x4<f32>, w1: mat2x4<f32>, w2: mat2x4<f32>, w3: mat2x4<f32>, a0: vec4<f32>, a1: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(
    dot(a0, w0[0]) + dot(a1, w0[1]),
    dot(a0, w1[0]) + dot(a1, w1[1]),
    dot(a0, w2[0]) + dot(a1, w2[1]),
    dot(a0, w3[0]) + dot(a1, w3[1]),
  );
}

// Writes the 4 results `acc` of token m, rows n..n+3 (those below n_valid, counted from the tile's j0),
// from out_base (the batch's out_off).
fn store(out_base: u32, m: u32, n: u32, j0: u32, n_valid: u32, acc: vec4<f32>) {
  let row = out_base + m * p.out_stride + p.n0 + n;
  for (var j = 0u; j < 4u && j0 + j < n_valid; j++) {
    var y = acc[j];
    if (p.has_bias != 0u) {
      y += bias[p.n0 + n + j];
    }
    // A branch, not select(): the load of out costs as much as the store on CPU adapters.
    if (p.accumulate != 0u) {
      y += out[row + j];
    }
    out[row + j] = y;
  }
}

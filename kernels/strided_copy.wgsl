// A batch of 2-D strided gathers, zero-padded: for batch z (workgroup z),
// out[out_off + z·out_z + r·out_cols + c] = c < cols ? src[src_off + z·src_z + r·row_stride + c·col_stride] : 0
// for r < rows, c < out_cols. Lays out the heads of v transposed (or of k, when they cannot be read in
// place) contiguously so that attention over many queries can run as two matrix products (ops.ts
// attentionByMatmul).
// Bindings: 0 src f32, 1 out f32 [batches, rows, out_cols] (window), 2 params.
// Workgroups: 64 invocations, one per output element of a batch, grid flattened over x and y; z = batch.
struct Params {
  rows: u32,
  cols: u32,
  out_cols: u32,
  src_off: u32,
  row_stride: u32,
  col_stride: u32,
  out_off: u32,
  src_z: u32,
  out_z: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.rows * p.out_cols) {
    return;
  }
  let r = i / p.out_cols;
  let c = i % p.out_cols;
  var value = 0.0;
  if (c < p.cols) {
    value = src[p.src_off + gid.z * p.src_z + r * p.row_stride + c * p.col_stride];
  }
  out[p.out_off + gid.z * p.out_z + i] = value;
}

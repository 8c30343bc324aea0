// Strided column copy for the projection head's feature concatenation: out[r, col0 + d · stride] =
// src[r, d]. With col0 = 0, stride = 1 it copies x; with col0 = D + j, stride = n_hidden it places hidden
// state j so that feature D + d·n_hidden + j is dimension d of hidden state j (torchtune stacks the
// hidden states on a new last axis and flattens it with D: interleaved, not blockwise).
// Bindings: 0 src f32 [rows, dim] (window), 1 out f32 [rows, out_dim] (window), 2 params.
// Workgroups: 64 invocations, one per source element, grid flattened over x and y.
struct Params {
  rows: u32,
  dim: u32,
  out_dim: u32,
  col0: u32,
  stride: u32,
  src_off: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.rows * p.dim) {
    return;
  }
  let r = i / p.dim;
  let d = i % p.dim;
  out[p.out_off + r * p.out_dim + p.col0 + d * p.stride] = src[p.src_off + i];
}

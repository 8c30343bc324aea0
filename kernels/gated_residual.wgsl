// Residual add with an optional TanhGate and the cross-attention skip of fully masked rows:
//   x[t, e] += skip[t] ? 0 : g · y[t, e],   g = tanh(gate[0]) if use_gate else 1.
// torchtune TransformerCrossAttentionLayer zeroes the attention and MLP outputs of text rows that may
// see no encoder position; self-attention layers use g = 1 and no skip.
// Bindings: 0 x f32 (window, read-write), 1 y f32 (window), 2 gate f32 [1], 3 skip u32 [T], 4 params.
// Workgroups: 64 invocations, one per element, grid flattened over x and y.
struct Params {
  n_tokens: u32,
  dim: u32,
  use_gate: u32,
  use_skip: u32,
  x_off: u32,
  y_off: u32,
  skip_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> skip: array<u32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n_tokens * p.dim) {
    return;
  }
  let t = i / p.dim;
  if (p.use_skip != 0u && skip[p.skip_off + t] != 0u) {
    return;
  }
  var g = 1.0;
  if (p.use_gate != 0u) {
    g = tanh(gate[0]);
  }
  x[p.x_off + i] += g * y[p.y_off + i];
}

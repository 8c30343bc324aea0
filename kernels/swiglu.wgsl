// SwiGLU gate of torchtune FeedForward: gate[i] = silu(gate[i]) * up[i], in place, where
// gate = w1(x) and up = w3(x); silu(a) = a · sigmoid(a).
// Bindings: 0 gate f32 (window, read-write), 1 up f32 (window), 2 params.
// Workgroups: 64 invocations, one per element, grid flattened over x and y.
struct Params {
  n: u32,
  gate_off: u32,
  up_off: u32,
}

@group(0) @binding(0) var<storage, read_write> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) {
    return;
  }
  let a = gate[p.gate_off + i];
  gate[p.gate_off + i] = a / (1.0 + exp(-a)) * up[p.up_off + i];
}

// SwiGLU gate of torchtune FeedForward, four elements per invocation: gate[i] = silu(gate[i]) * up[i], in
// place, where gate = w1(x) and up = w3(x); silu(a) = a · sigmoid(a). The same arithmetic as swiglu.wgsl,
// which serves lengths and offsets that are not multiples of 4: CPU adapters load memory lane by lane,
// so one vec4 load costs little more than one f32 load (bench_small prefill, llvmpipe: 15.7 → 10.7 ms).
// Bindings: 0 gate vec4<f32> (window, read-write), 1 up vec4<f32> (window), 2 params (n4 = n / 4, and the
// offsets in vec4s).
// Workgroups: 64 invocations, one per 4 elements, grid flattened over x and y.
struct Params {
  n4: u32,
  gate_off4: u32,
  up_off4: u32,
}

@group(0) @binding(0) var<storage, read_write> gate: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> up: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n4) {
    return;
  }
  let a = gate[p.gate_off4 + i];
  gate[p.gate_off4 + i] = a / (vec4<f32>(1.0) + exp(-a)) * up[p.up_off4 + i];
}

// Adds one gated vector to every row of a window (torchtune TilePositionalEmbedding after ln_post:
// each real tile's tokens get E_post[k//w, k%w] · tanh(gate)):  x[r, d] += tanh(gate[0]) · v[d].
// Bindings: 0 x f32 [rows, dim] (window, read-write), 1 v f32 [dim] (window), 2 gate f32 [1], 3 params.
// Workgroups: 64 invocations, one per element, grid flattened over x and y.
struct Params {
  rows: u32,
  dim: u32,
  x_off: u32,
  v_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.rows * p.dim) {
    return;
  }
  x[p.x_off + i] += tanh(gate[0]) * v[p.v_off + i % p.dim];
}

// Llama 3 scaled RoPE (torchtune Llama3ScaledRoPE), applied in place to x [T, n_heads, head_dim] with
// INTERLEAVED pairs (x[2i], x[2i+1]):
//   out[2i]   = x[2i]·cos_i − x[2i+1]·sin_i
//   out[2i+1] = x[2i+1]·cos_i + x[2i]·sin_i
// where (cos_i, sin_i) = table[pos[t], i], the float32 table torchtune precomputes [max_seq_len, head_dim/2, 2].
// Bindings: 0 x f32 (window), 1 positions i32 [T] (window), 2 table f32, 3 params.
// Workgroups: 64 invocations, one per pair, grid flattened over x and y.
struct Params {
  n_tokens: u32,
  n_heads: u32,
  half_dim: u32,
  x_off: u32,
  pos_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<i32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n_tokens * p.n_heads * p.half_dim) {
    return;
  }
  let pair = i % p.half_dim;
  let t = i / (p.half_dim * p.n_heads);
  let pos = u32(positions[p.pos_off + t]);
  let cs = (pos * p.half_dim + pair) * 2u;
  let c = table[cs];
  let s = table[cs + 1u];
  let j = p.x_off + 2u * i;
  let a = x[j];
  let b = x[j + 1u];
  x[j] = a * c - b * s;
  x[j + 1u] = b * c + a * s;
}

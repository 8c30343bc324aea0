// Self-attention's RoPE and KV cache write in one dispatch (rope.wgsl + kv_cache_update.wgsl), for
// layers without q_norm / k_norm:
//   q [T, n_heads, head_dim] gets RoPE in place (interleaved pairs, as rope.wgsl);
//   k [T, n_kv, head_dim] gets RoPE on its way into k_cache, v is copied into v_cache, at slots
//   slot0 … slot0+s−1 of the caches [b, n_kv, L, head_dim] (as kv_cache_update.wgsl; T = b·s).
// (cos, sin) = table[pos[t], i], torchtune's float32 table [max_seq_len, head_dim/2, 2].
// Bindings: 0 q f32 (window), 1 k f32 (window), 2 v f32 (window), 3 positions i32 [T] (window),
// 4 table f32, 5 k_cache f32, 6 v_cache f32, 7 params.
// Workgroups: 64 invocations, one per pair of elements of q, k or v (T · (n_heads + 2·n_kv) · head_dim/2
// of them), grid flattened over x and y.
struct Params {
  batch: u32,
  seq: u32,
  n_heads: u32,
  n_kv: u32,
  half_dim: u32,
  cache_len: u32,
  slot0: u32,
  q_off: u32,
  k_off: u32,
  v_off: u32,
  pos_off: u32,
}

@group(0) @binding(0) var<storage, read_write> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> positions: array<i32>;
@group(0) @binding(4) var<storage, read> table: array<f32>;
@group(0) @binding(5) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(6) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let per_token = (p.n_heads + 2u * p.n_kv) * p.half_dim;
  let T = p.batch * p.seq;
  if (i >= T * per_token) {
    return;
  }
  let t = i / per_token;
  let u = i % per_token;
  let head = u / p.half_dim;
  let pair = u % p.half_dim;
  let cs = (u32(positions[p.pos_off + t]) * p.half_dim + pair) * 2u;
  let c = table[cs];
  let s = table[cs + 1u];
  if (head < p.n_heads) {
    let j = p.q_off + (t * p.n_heads + head) * 2u * p.half_dim + 2u * pair;
    let a = q[j];
    let b = q[j + 1u];
    q[j] = a * c - b * s;
    q[j + 1u] = b * c + a * s;
    return;
  }
  let is_v = head >= p.n_heads + p.n_kv;
  let h = head - p.n_heads - select(0u, p.n_kv, is_v);
  let src = (t * p.n_kv + h) * 2u * p.half_dim + 2u * pair;
  let slot = (((t / p.seq) * p.n_kv + h) * p.cache_len + p.slot0 + t % p.seq) * 2u * p.half_dim + 2u * pair;
  if (is_v) {
    v_cache[slot] = v[p.v_off + src];
    v_cache[slot + 1u] = v[p.v_off + src + 1u];
  } else {
    let a = k[p.k_off + src];
    let b = k[p.k_off + src + 1u];
    k_cache[slot] = a * c - b * s;
    k_cache[slot + 1u] = b * c + a * s;
  }
}

// KV cache write (torchtune KVCache.update), keys and values in one dispatch: the new k and v
// [b, s, n_kv, head_dim] (the projections' [T, n_kv·head_dim] rows) go to slots slot0 … slot0+s−1 of
// k_cache and v_cache [b, n_kv, L, head_dim].
// Bindings: 0 k f32 (window), 1 v f32 (window), 2 k_cache f32, 3 v_cache f32, 4 params.
// Workgroups: 64 invocations, one per element of k (each also moves the element of v), grid flattened
// over x and y.
struct Params {
  batch: u32,
  seq: u32,
  n_kv: u32,
  head_dim: u32,
  cache_len: u32,
  slot0: u32,
  k_off: u32,
  v_off: u32,
}

@group(0) @binding(0) var<storage, read> k: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<f32>;
@group(0) @binding(2) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read_write> v_cache: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.batch * p.seq * p.n_kv * p.head_dim) {
    return;
  }
  let d = i % p.head_dim;
  let h = (i / p.head_dim) % p.n_kv;
  let t = i / (p.head_dim * p.n_kv);
  let bi = t / p.seq;
  let si = t % p.seq;
  let slot = ((bi * p.n_kv + h) * p.cache_len + p.slot0 + si) * p.head_dim + d;
  k_cache[slot] = k[p.k_off + i];
  v_cache[slot] = v[p.v_off + i];
}

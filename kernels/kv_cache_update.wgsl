// KV cache write (torchtune KVCache.update): new keys or values src [b, s, n_kv, head_dim] (the
// projection's [T, n_kv·head_dim] rows) go to slots slot0 … slot0+s−1 of cache [b, n_kv, L, head_dim].
// Bindings: 0 src f32 (window), 1 cache f32 [b, n_kv, L, head_dim], 2 params.
// Workgroups: 64 invocations, one per element of src, grid flattened over x and y.
struct Params {
  batch: u32,
  seq: u32,
  n_kv: u32,
  head_dim: u32,
  cache_len: u32,
  slot0: u32,
  src_off: u32,
}

@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> cache: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

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
  cache[((bi * p.n_kv + h) * p.cache_len + p.slot0 + si) * p.head_dim + d] = src[p.src_off + i];
}

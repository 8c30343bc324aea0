// Merges the key blocks of attention.wgsl into the attention output:
//   out[t, h, d] = Σ_b exp(m_b − M)·acc_b[d] / Σ_b exp(m_b − M)·l_b,   M = max_b m_b,
// and 0 for a row whose mask allowed no key (torchtune zeroes such cross-attention rows anyway).
// Bindings: 0 partial f32 [T, n_heads, n_blocks, head_dim + 2], 1 out f32 [T, n_heads·head_dim]
// (window), 2 params.
// Workgroups: 64 invocations, one per output element, grid flattened over x and y; each loops
// 2·n_blocks times.
struct Params {
  n_tokens: u32,
  n_heads: u32,
  head_dim: u32,
  n_blocks: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const NEG: f32 = -3.0e38;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n_tokens * p.n_heads * p.head_dim) {
    return;
  }
  let d = i % p.head_dim;
  let th = i / p.head_dim;
  let stride = p.head_dim + 2u;
  let base = th * p.n_blocks * stride;
  var m = NEG;
  for (var b = 0u; b < p.n_blocks; b++) {
    m = max(m, partial[base + b * stride + p.head_dim]);
  }
  var num = 0.0;
  var den = 0.0;
  if (m > NEG) {
    for (var b = 0u; b < p.n_blocks; b++) {
      let mb = partial[base + b * stride + p.head_dim];
      if (mb > NEG) {
        let w = exp(mb - m);
        num += partial[base + b * stride + d] * w;
        den += partial[base + b * stride + p.head_dim + 1u] * w;
      }
    }
  }
  var r = 0.0;
  if (den > 0.0) {
    r = num / den;
  }
  out[p.out_off + i] = r;
}

// Scaled dot-product attention, split over key blocks (flash-decoding): this kernel computes, for one
// query token, one query head and one block of keys, the block's running max m, its softmax
// denominator l and its unnormalised output Σ exp(s_j − m)·v_j; attention_combine.wgsl merges blocks.
//   s_j = (q · k_j) · scale, keys j of the cache that the mask allows.
// Grouped-query attention: query head h reads KV head h / (n_heads / n_kv) (consecutive grouping, as
// torchtune's repeat_interleave). Masks (attention_mask.wgsl, appended; True = attend): mode 0 none, 1 causal (key j ≤ query
// position in the sequence), 2 explicit bits [b, s, kv_len] packed 32 per u32 (row = token).
// Only keys below kv_used are visited: past the last key any mask row allows, nothing contributes, so
// the cost follows the positions in use rather than the cache length kv_len (the layout stride).
// Bindings: 0 q f32 [T, n_heads, head_dim] (window), 1 k [b, n_kv, kv_len, head_dim], 2 v (same),
// 3 mask bits (window), 4 partial f32 [T, n_heads, n_blocks, head_dim + 2], 5 params.
// Workgroups: 64 invocations; workgroup (block, head, token). Keys are scored 256 at a time into
// workgroup memory; head_dim ≤ 256 and block ≤ 2048, so an invocation loops at most a few thousand
// times (llvmpipe silently stops loops after 65,535 iterations).
struct Params {
  seq: u32,
  n_heads: u32,
  n_kv: u32,
  head_dim: u32,
  kv_len: u32,
  kv_used: u32,
  block: u32,
  n_blocks: u32,
  mask_mode: u32,
  mask_words: u32,
  t0: u32,
  q_off: u32,
  mask_off: u32,
  scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const NEG: f32 = -3.0e38;

var<workgroup> qs: array<f32, 256>;
var<workgroup> sc: array<f32, 256>;
var<workgroup> red: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kb = wid.x;
  let h = wid.y;
  let tl = wid.z;
  let t = p.t0 + tl;
  let bi = t / p.seq;
  let qi = t % p.seq;
  let hd = p.head_dim;
  let kvh = h / (p.n_heads / p.n_kv);
  let kv_base = (bi * p.n_kv + kvh) * p.kv_len * hd;
  for (var d = lid; d < hd; d += 64u) {
    qs[d] = q[p.q_off + (tl * p.n_heads + h) * hd + d];
  }
  workgroupBarrier();

  let d0 = lid;
  let d1 = lid + 64u;
  let d2 = lid + 128u;
  let d3 = lid + 192u;
  var acc0 = 0.0;
  var acc1 = 0.0;
  var acc2 = 0.0;
  var acc3 = 0.0;
  var m_run = NEG;
  var l_run = 0.0;
  let start = kb * p.block;
  let end = min(start + p.block, p.kv_used);
  for (var sub = start; sub < end; sub += 256u) {
    var local_max = NEG;
    for (var r = 0u; r < 4u; r++) {
      let jj = lid + 64u * r;
      let j = sub + jj;
      var s = NEG;
      if (j < end && allowed(tl, qi, j)) {
        let kb_j = kv_base + j * hd;
        var acc = 0.0;
        for (var d = 0u; d < hd; d++) {
          acc += qs[d] * k[kb_j + d];
        }
        s = acc * p.scale;
      }
      sc[jj] = s;
      local_max = max(local_max, s);
    }
    red[lid] = local_max;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
      if (lid < stride) {
        red[lid] = max(red[lid], red[lid + stride]);
      }
      workgroupBarrier();
    }
    let m_new = max(m_run, red[0]);
    workgroupBarrier();
    var local_sum = 0.0;
    for (var r = 0u; r < 4u; r++) {
      let jj = lid + 64u * r;
      let s = sc[jj];
      var e = 0.0;
      if (s > NEG) {
        e = exp(s - m_new);
      }
      sc[jj] = e;
      local_sum += e;
    }
    red[lid] = local_sum;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
      if (lid < stride) {
        red[lid] += red[lid + stride];
      }
      workgroupBarrier();
    }
    var corr = 0.0;
    if (m_run > NEG) {
      corr = exp(m_run - m_new);
    }
    l_run = l_run * corr + red[0];
    acc0 *= corr;
    acc1 *= corr;
    acc2 *= corr;
    acc3 *= corr;
    m_run = m_new;
    let n_sub = min(256u, end - sub);
    for (var i = 0u; i < n_sub; i++) {
      let e = sc[i];
      if (e != 0.0) {
        let vb = kv_base + (sub + i) * hd;
        if (d0 < hd) {
          acc0 += e * v[vb + d0];
        }
        if (d1 < hd) {
          acc1 += e * v[vb + d1];
        }
        if (d2 < hd) {
          acc2 += e * v[vb + d2];
        }
        if (d3 < hd) {
          acc3 += e * v[vb + d3];
        }
      }
    }
    workgroupBarrier();
  }
  let base = ((tl * p.n_heads + h) * p.n_blocks + kb) * (hd + 2u);
  if (d0 < hd) {
    partial[base + d0] = acc0;
  }
  if (d1 < hd) {
    partial[base + d1] = acc1;
  }
  if (d2 < hd) {
    partial[base + d2] = acc2;
  }
  if (d3 < hd) {
    partial[base + d3] = acc3;
  }
  if (lid == 0u) {
    partial[base + hd] = m_run;
    partial[base + hd + 1u] = l_run;
  }
}

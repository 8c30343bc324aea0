// attention.wgsl for head_dim % 4 == 0 and grouped-query heads: one workgroup serves up to four query
// heads that share a KV head, so each key and value is loaded once for all of them (CPU adapters load
// memory lane by lane: loads, not arithmetic, set the pace of decoding). Bindings, parameters and results
// as attention.wgsl, plus a direct mode for a single key block (no attention_combine dispatch).
//
// Scaled dot-product attention, split over key blocks (flash-decoding): this kernel computes, for one
// query token, a group of ≤ 4 query heads and one block of keys, each head's running max m, softmax
// denominator l and unnormalised output Σ exp(s_j − m)·v_j; attention_combine.wgsl merges blocks.
//   s_j = (q · k_j) · scale, keys j of the cache that the mask allows.
// Grouped-query attention: query head h reads KV head h / G, G = n_heads / n_kv (consecutive grouping,
// as torchtune's repeat_interleave). Masks (attention_mask.wgsl, appended; True = attend): mode 0 none, 1 causal (key j ≤ query
// position in the sequence), 2 explicit bits [b, s, kv_len] packed 32 per u32 (row = token).
// Only keys below kv_used are visited: past the last key any mask row allows, nothing contributes, so
// the cost follows the positions in use rather than the cache length kv_len (the layout stride).
// Bindings: 0 q f32 [T, n_heads, head_dim] (window), 1 k [b, n_kv, kv_len, head_dim], 2 v (same),
// 3 mask bits (window), 4 partial f32 [T, n_heads, n_blocks, head_dim + 2] (or, with direct = 1, the
// output f32 [T, n_heads · head_dim], window), 5 params (attention.wgsl's, then direct and out_off).
// Workgroups: 64 invocations; workgroup (block, kv head · ⌈G/4⌉ + head group, token). Scores: each
// invocation scores 4 of a sub-block's 256 keys for the 4 heads (a vec4 per key), side by side, so each
// query load from workgroup memory serves 4 keys (on llvmpipe cross-attention over 1601 keys took 25%
// less time; partial sub-blocks run the same loop, ~10% less time at 129 keys). Values: invocation
// (c, r) owns vec4 column c of head_dim and the keys i ≡ r (mod R), R = 64 / (head_dim / 4), and the
// R parts are summed at the end; the value loop takes 4 keys per iteration (each lane's 4 loads in
// flight together: 10–30% less time over 1601 keys). head_dim ≤ 256 and block ≤ 2048, so an invocation
// loops at most a few thousand times (llvmpipe silently stops loops after 65,535 iterations).
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
  // 1: a single key block, whose result goes straight to the output (bound as binding 4, from element
  // out_off) without attention_combine.wgsl.
  direct: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const NEG: f32 = -3.0e38;

// The group's queries: head g, column c at g · hd4 + c.
var<workgroup> qs: array<vec4<f32>, 256>;
// Scores, then weights exp(s − m), of the sub-block's keys: one vec4 (the 4 heads) per key.
var<workgroup> sc: array<vec4<f32>, 256>;
var<workgroup> red: array<vec4<f32>, 64>;
// End of the block: the R value parts (r · 4 + g) · hd4 + c and their denominators.
var<workgroup> parts: array<vec4<f32>, 256>;
var<workgroup> part_l: array<vec4<f32>, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kb = wid.x;
  let tl = wid.z;
  let t = p.t0 + tl;
  let bi = t / p.seq;
  let qi = t % p.seq;
  let hd = p.head_dim;
  let hd4 = hd / 4u;
  let group = p.n_heads / p.n_kv;
  let n_hg = (group + 3u) / 4u;
  let kvh = wid.y / n_hg;
  let g0 = (wid.y % n_hg) * 4u;
  let h0 = kvh * group + g0;
  let nh = min(4u, group - g0);
  let kv_base = (bi * p.n_kv + kvh) * p.kv_len * hd;
  // Heads past the group's last repeat its query (their results are not written).
  for (var i = lid; i < 4u * hd4; i += 64u) {
    let g = i / hd4;
    let qb = p.q_off + (tl * p.n_heads + h0 + min(g, nh - 1u)) * hd + 4u * (i % hd4);
    qs[i] = vec4<f32>(q[qb], q[qb + 1u], q[qb + 2u], q[qb + 3u]);
  }
  workgroupBarrier();

  let n_parts = 64u / hd4;
  let col = lid % hd4;
  let part = lid / hd4;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  var l_part = vec4<f32>(0.0);
  var m_run = vec4<f32>(NEG);
  let start = kb * p.block;
  let end = min(start + p.block, p.kv_used);
  for (var sub = start; sub < end; sub += 256u) {
    // The invocation's 4 keys share each load of the queries; past the block's end a key repeats the
    // last one (loaded, not used), so a partial sub-block runs the same loop.
    let last = end - 1u;
    let j0 = sub + lid;
    let kb0 = (kv_base + min(j0, last) * hd) / 4u;
    let kb1 = (kv_base + min(j0 + 64u, last) * hd) / 4u;
    let kb2 = (kv_base + min(j0 + 128u, last) * hd) / 4u;
    let kb3 = (kv_base + min(j0 + 192u, last) * hd) / 4u;
    var d0 = vec4<f32>(0.0);
    var d1 = vec4<f32>(0.0);
    var d2 = vec4<f32>(0.0);
    var d3 = vec4<f32>(0.0);
    for (var c = 0u; c < hd4; c++) {
      let q0 = qs[c];
      let q1 = qs[hd4 + c];
      let q2 = qs[2u * hd4 + c];
      let q3 = qs[3u * hd4 + c];
      let k0 = k[kb0 + c];
      let k1 = k[kb1 + c];
      let k2 = k[kb2 + c];
      let k3 = k[kb3 + c];
      d0 += vec4<f32>(dot(q0, k0), dot(q1, k0), dot(q2, k0), dot(q3, k0));
      d1 += vec4<f32>(dot(q0, k1), dot(q1, k1), dot(q2, k1), dot(q3, k1));
      d2 += vec4<f32>(dot(q0, k2), dot(q1, k2), dot(q2, k2), dot(q3, k2));
      d3 += vec4<f32>(dot(q0, k3), dot(q1, k3), dot(q2, k3), dot(q3, k3));
    }
    // allowed() gets the clamped key too: front ends that evaluate both sides of && stay in bounds.
    let s0 = select(vec4<f32>(NEG), d0 * p.scale, j0 < end && allowed(tl, qi, min(j0, last)));
    let s1 = select(vec4<f32>(NEG), d1 * p.scale, j0 + 64u < end && allowed(tl, qi, min(j0 + 64u, last)));
    let s2 = select(vec4<f32>(NEG), d2 * p.scale, j0 + 128u < end && allowed(tl, qi, min(j0 + 128u, last)));
    let s3 = select(vec4<f32>(NEG), d3 * p.scale, j0 + 192u < end && allowed(tl, qi, min(j0 + 192u, last)));
    sc[lid] = s0;
    sc[lid + 64u] = s1;
    sc[lid + 128u] = s2;
    sc[lid + 192u] = s3;
    let local_max = max(max(s0, s1), max(s2, s3));
    red[lid] = local_max;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
      if (lid < stride) {
        red[lid] = max(red[lid], red[lid + stride]);
      }
      workgroupBarrier();
    }
    let m_new = max(m_run, red[0]);
    for (var r = 0u; r < 4u; r++) {
      let jj = lid + 64u * r;
      let s = sc[jj];
      sc[jj] = select(vec4<f32>(0.0), exp(s - m_new), s > vec4<f32>(NEG));
    }
    let corr = select(vec4<f32>(0.0), exp(m_run - m_new), m_run > vec4<f32>(NEG));
    acc0 *= corr.x;
    acc1 *= corr.y;
    acc2 *= corr.z;
    acc3 *= corr.w;
    l_part *= corr;
    m_run = m_new;
    workgroupBarrier();
    if (part < n_parts) {
      let n_sub = min(256u, end - sub);
      let vstep = n_parts * hd4;
      var i = part;
      for (; i + 3u * n_parts < n_sub; i += 4u * n_parts) {
        let e0 = sc[i];
        let e1 = sc[i + n_parts];
        let e2 = sc[i + 2u * n_parts];
        let e3 = sc[i + 3u * n_parts];
        let vb = (kv_base + (sub + i) * hd) / 4u + col;
        let v0 = v[vb];
        let v1 = v[vb + vstep];
        let v2 = v[vb + 2u * vstep];
        let v3 = v[vb + 3u * vstep];
        acc0 += e0.x * v0 + e1.x * v1 + e2.x * v2 + e3.x * v3;
        acc1 += e0.y * v0 + e1.y * v1 + e2.y * v2 + e3.y * v3;
        acc2 += e0.z * v0 + e1.z * v1 + e2.z * v2 + e3.z * v3;
        acc3 += e0.w * v0 + e1.w * v1 + e2.w * v2 + e3.w * v3;
        l_part += (e0 + e1) + (e2 + e3);
      }
      for (; i < n_sub; i += n_parts) {
        let e = sc[i];
        let vv = v[(kv_base + (sub + i) * hd) / 4u + col];
        acc0 += e.x * vv;
        acc1 += e.y * vv;
        acc2 += e.z * vv;
        acc3 += e.w * vv;
        l_part += e;
      }
    }
    workgroupBarrier();
  }
  if (part < n_parts) {
    let pb = part * 4u * hd4 + col;
    parts[pb] = acc0;
    parts[pb + hd4] = acc1;
    parts[pb + 2u * hd4] = acc2;
    parts[pb + 3u * hd4] = acc3;
    if (col == 0u) {
      part_l[part] = l_part;
    }
  }
  workgroupBarrier();
  // One key block (direct = 1): the finished output, Σ exp(s_j − m)·v_j / Σ exp(s_j − m) (0 where the mask
  // allowed no key, as attention_combine.wgsl gives), straight into `partial`, which is then the output.
  let direct = p.direct != 0u;
  for (var i = lid; i < nh * hd4; i += 64u) {
    let g = i / hd4;
    let c = i % hd4;
    var sum = vec4<f32>(0.0);
    var l = 0.0;
    for (var r = 0u; r < n_parts; r++) {
      sum += parts[r * 4u * hd4 + i];
      l += part_l[r][g];
    }
    var base = ((tl * p.n_heads + h0 + g) * p.n_blocks + kb) * (hd + 2u) + 4u * c;
    if (direct) {
      sum = select(vec4<f32>(0.0), sum / l, l > 0.0);
      base = p.out_off + (tl * p.n_heads + h0 + g) * hd + 4u * c;
    }
    partial[base] = sum.x;
    partial[base + 1u] = sum.y;
    partial[base + 2u] = sum.z;
    partial[base + 3u] = sum.w;
  }
  if (lid < nh && !direct) {
    var l = 0.0;
    for (var r = 0u; r < n_parts; r++) {
      l += part_l[r][lid];
    }
    let base = ((tl * p.n_heads + h0 + lid) * p.n_blocks + kb) * (hd + 2u);
    partial[base + hd] = m_run[lid];
    partial[base + hd + 1u] = l;
  }
}

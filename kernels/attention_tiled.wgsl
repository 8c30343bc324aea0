// attention_vec4.wgsl for many queries (prefill, the vision encoder): a workgroup takes 8 consecutive
// query positions of one sequence and one head, so every key and value vector it loads serves 8 queries
// (CPU adapters load memory lane by lane: loads, not arithmetic, set the pace). Same parameters, same
// partial results [T, n_heads, n_blocks, head_dim + 2] as attention.wgsl; attention_combine.wgsl
// merges the key blocks. Needs head_dim % 4 == 0 and head_dim ≤ 256.
// Bindings: 0 q f32 [T, n_heads, head_dim] (window), 1 k vec4 [b, n_kv, kv_len, head_dim / 4], 2 v (same),
// 3 mask bits (window), 4 partial f32, 5 params.
// Workgroups: 64 invocations; workgroup (block, head, group of 8 queries of the range). Keys are
// scored 256 at a time; blocks are at most 1024 keys, so an invocation loops about 10,000 times at most.
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
  n_tokens: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mask: array<u32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const NEG: f32 = -3.0e38;
const TQ: u32 = 8u;

var<workgroup> qs: array<array<vec4<f32>, 64>, 8>;
var<workgroup> sc: array<array<f32, 256>, 8>;
var<workgroup> red: array<array<f32, 64>, 8>;

// Tree reductions of red[0..8][0..64] (max or sum), all 8 queries at once; result in red[q][0].
fn reduce_max(lid: u32) {
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) {
      for (var qq = 0u; qq < TQ; qq++) {
        red[qq][lid] = max(red[qq][lid], red[qq][lid + s]);
      }
    }
    workgroupBarrier();
  }
}

fn reduce_sum(lid: u32) {
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) {
      for (var qq = 0u; qq < TQ; qq++) {
        red[qq][lid] += red[qq][lid + s];
      }
    }
    workgroupBarrier();
  }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let kb = wid.x;
  let h = wid.y;
  // The caller's token range [t0, t0 + n_tokens) lies within one sequence; this group is its queries
  // tl0 … tl0 + nq − 1 (range-local), at positions s0 … of sequence bi.
  let bi = p.t0 / p.seq;
  let tl0 = wid.z * TQ;
  let s0 = p.t0 % p.seq + tl0;
  let nq = min(TQ, p.n_tokens - tl0);
  let hd = p.head_dim;
  let hd4 = hd / 4u;
  let kvh = h / (p.n_heads / p.n_kv);
  let kv_base4 = (bi * p.n_kv + kvh) * p.kv_len * hd4;
  for (var qq = 0u; qq < TQ; qq++) {
    if (lid < hd4) {
      let tq = tl0 + min(qq, nq - 1u);
      let qb = p.q_off + (tq * p.n_heads + h) * hd + 4u * lid;
      qs[qq][lid] = vec4<f32>(q[qb], q[qb + 1u], q[qb + 2u], q[qb + 3u]);
    }
  }
  workgroupBarrier();

  var acc: array<vec4<f32>, 8>;
  var m_run: array<f32, 8>;
  var l_run: array<f32, 8>;
  for (var qq = 0u; qq < TQ; qq++) {
    acc[qq] = vec4<f32>(0.0);
    m_run[qq] = NEG;
    l_run[qq] = 0.0;
  }
  let start = kb * p.block;
  let end = min(start + p.block, p.kv_used);
  for (var sub = start; sub < end; sub += 256u) {
    var local_max: array<f32, 8>;
    for (var qq = 0u; qq < TQ; qq++) {
      local_max[qq] = NEG;
    }
    for (var r = 0u; r < 4u; r++) {
      let jj = lid + 64u * r;
      let j = sub + jj;
      var dots: array<f32, 8>;
      for (var qq = 0u; qq < TQ; qq++) {
        dots[qq] = 0.0;
      }
      if (j < end) {
        let kj = kv_base4 + j * hd4;
        for (var c = 0u; c < hd4; c++) {
          let kv = k[kj + c];
          for (var qq = 0u; qq < TQ; qq++) {
            dots[qq] += dot(qs[qq][c], kv);
          }
        }
      }
      for (var qq = 0u; qq < TQ; qq++) {
        var s = NEG;
        if (j < end && qq < nq && allowed(tl0 + qq, s0 + qq, j)) {
          s = dots[qq] * p.scale;
        }
        sc[qq][jj] = s;
        local_max[qq] = max(local_max[qq], s);
      }
    }
    for (var qq = 0u; qq < TQ; qq++) {
      red[qq][lid] = local_max[qq];
    }
    workgroupBarrier();
    reduce_max(lid);
    var m_new: array<f32, 8>;
    for (var qq = 0u; qq < TQ; qq++) {
      m_new[qq] = max(m_run[qq], red[qq][0]);
    }
    workgroupBarrier();
    var local_sum: array<f32, 8>;
    for (var qq = 0u; qq < TQ; qq++) {
      local_sum[qq] = 0.0;
      for (var r = 0u; r < 4u; r++) {
        let jj = lid + 64u * r;
        let s = sc[qq][jj];
        var e = 0.0;
        if (s > NEG) {
          e = exp(s - m_new[qq]);
        }
        sc[qq][jj] = e;
        local_sum[qq] += e;
      }
      red[qq][lid] = local_sum[qq];
    }
    workgroupBarrier();
    reduce_sum(lid);
    for (var qq = 0u; qq < TQ; qq++) {
      var corr = 0.0;
      if (m_run[qq] > NEG) {
        corr = exp(m_run[qq] - m_new[qq]);
      }
      l_run[qq] = l_run[qq] * corr + red[qq][0];
      acc[qq] *= corr;
      m_run[qq] = m_new[qq];
    }
    if (lid < hd4) {
      let n_sub = min(256u, end - sub);
      for (var i = 0u; i < n_sub; i++) {
        let vv = v[kv_base4 + (sub + i) * hd4 + lid];
        for (var qq = 0u; qq < TQ; qq++) {
          acc[qq] += sc[qq][i] * vv;
        }
      }
    }
    workgroupBarrier();
  }
  for (var qq = 0u; qq < nq; qq++) {
    let base = (((tl0 + qq) * p.n_heads + h) * p.n_blocks + kb) * (hd + 2u);
    if (lid < hd4) {
      partial[base + 4u * lid] = acc[qq].x;
      partial[base + 4u * lid + 1u] = acc[qq].y;
      partial[base + 4u * lid + 2u] = acc[qq].z;
      partial[base + 4u * lid + 3u] = acc[qq].w;
    }
    if (lid == 0u) {
      partial[base + hd] = m_run[qq];
      partial[base + hd + 1u] = l_run[qq];
    }
  }
}

// Linear layer, y = x · Wᵀ (+ bias), for one row-chunk of W (nn.Linear weight [out, in]).
// out[m, n0 + n] = sum_k x[m, k] * W[n, k] (+ bias[n0 + n]) for m < M, n < rows (the chunk's rows), k < K.
// Bindings: 0 weight (snippet: f32, bf16 or f16), 1 x f32 [M, K] (window), 2 out f32 [M, out_stride]
// (window), 3 bias f32 [out_stride] (unused when has_bias = 0), 4 params.
// With accumulate = 1 the result is added to out (a residual connection folded into the projection).
// w_row0: the chunk's first row within its buffer (a weight sharing its buffer with others, see
// WeightStorage.slice).
// Workgroups: 64 invocations along x; each invocation computes a 4×4 tile (4 tokens × 4 weight rows),
// reading K in steps of 4, so its loop runs K/4 times (7168 for K = 28672: far below llvmpipe's cap).
struct Params {
  M: u32,
  K: u32,
  rows: u32,
  out_stride: u32,
  n0: u32,
  x_off: u32,
  out_off: u32,
  has_bias: u32,
  accumulate: u32,
  w_row0: u32,
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn x4(m: u32, k: u32) -> vec4<f32> {
  let b = p.x_off + m * p.K + k;
  return vec4<f32>(x[b], x[b + 1u], x[b + 2u], x[b + 3u]);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n_base = gid.x * 4u;
  let m_base = gid.y * 4u;
  if (n_base >= p.rows || m_base >= p.M) {
    return;
  }
  // Out-of-range rows and tokens are clamped to valid ones and their results dropped at the end.
  let n = vec4<u32>(n_base, min(n_base + 1u, p.rows - 1u), min(n_base + 2u, p.rows - 1u), min(n_base + 3u, p.rows - 1u));
  let m = vec4<u32>(m_base, min(m_base + 1u, p.M - 1u), min(m_base + 2u, p.M - 1u), min(m_base + 3u, p.M - 1u));
  let wb = weight_rows4(n + p.w_row0, p.K);
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  let k_end4 = p.K & ~3u;
  for (var k = 0u; k < k_end4; k += 4u) {
    let w0 = weight4(wb.x, k);
    let w1 = weight4(wb.y, k);
    let w2 = weight4(wb.z, k);
    let w3 = weight4(wb.w, k);
    let a0 = x4(m.x, k);
    let a1 = x4(m.y, k);
    let a2 = x4(m.z, k);
    let a3 = x4(m.w, k);
    acc0 += vec4<f32>(dot(a0, w0), dot(a0, w1), dot(a0, w2), dot(a0, w3));
    acc1 += vec4<f32>(dot(a1, w0), dot(a1, w1), dot(a1, w2), dot(a1, w3));
    acc2 += vec4<f32>(dot(a2, w0), dot(a2, w1), dot(a2, w2), dot(a2, w3));
    acc3 += vec4<f32>(dot(a3, w0), dot(a3, w1), dot(a3, w2), dot(a3, w3));
  }
  for (var k = k_end4; k < p.K; k++) {
    let w = vec4<f32>(weight_at(wb.x, k), weight_at(wb.y, k), weight_at(wb.z, k), weight_at(wb.w, k));
    acc0 += x[p.x_off + m.x * p.K + k] * w;
    acc1 += x[p.x_off + m.y * p.K + k] * w;
    acc2 += x[p.x_off + m.z * p.K + k] * w;
    acc3 += x[p.x_off + m.w * p.K + k] * w;
  }
  let n_valid = min(4u, p.rows - n_base);
  let m_valid = min(4u, p.M - m_base);
  var accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
  for (var i = 0u; i < m_valid; i++) {
    let row = p.out_off + (m_base + i) * p.out_stride + p.n0 + n_base;
    for (var j = 0u; j < n_valid; j++) {
      var b = 0.0;
      if (p.has_bias != 0u) {
        b = bias[p.n0 + n_base + j];
      }
      out[row + j] = accs[i][j] + b + select(0.0, out[row + j], p.accumulate != 0u);
    }
  }
}

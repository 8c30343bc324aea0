// Matrix multiplication for prefill, y = x · Wᵀ (+ bias), for one row-chunk of W:
// out[m, n0 + n] = Σ_k x[m, k] · W[n, k] (+ bias[n0 + n]).
// Register tiles of 8 tokens × 4 weight rows per invocation: each step of 8 along K loads 4 × 8 weights
// (weight8) and 8 × 8 activations (vec4; every lane of a workgroup reads the same tokens, so those
// loads broadcast) for 64 four-wide dot products. No workgroup memory: on CPU adapters it was slower.
// Needs K % 8 == 0 and x_off % 4 == 0 (ops.ts falls back to linear.wgsl otherwise).
// Bindings: 0 weight (snippet), 1 x vec4<f32> [M, K/4] (window), 2 out f32 [M, out_stride] (window),
// 3 bias f32 [out_stride] (unused when has_bias = 0), 4 params.
// With accumulate = 1 the result is added to out (a residual connection folded into the projection).
// w_row0: the chunk's first row within its buffer (a weight sharing its buffer with others, see
// WeightStorage.slice).
// Workgroups: 64 invocations along x (256 weight rows per workgroup), y = group of 8 tokens; K/8 loop
// iterations per invocation.
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

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n_base = gid.x * 4u;
  let m_base = gid.y * 8u;
  if (n_base >= p.rows || m_base >= p.M) {
    return;
  }
  let last = p.rows - 1u;
  let wb = (vec4<u32>(n_base, min(n_base + 1u, last), min(n_base + 2u, last), min(n_base + 3u, last)) + p.w_row0) * p.K;
  let xb0 = (p.x_off + min(m_base + 0u, p.M - 1u) * p.K) / 4u;
  let xb1 = (p.x_off + min(m_base + 1u, p.M - 1u) * p.K) / 4u;
  let xb2 = (p.x_off + min(m_base + 2u, p.M - 1u) * p.K) / 4u;
  let xb3 = (p.x_off + min(m_base + 3u, p.M - 1u) * p.K) / 4u;
  let xb4 = (p.x_off + min(m_base + 4u, p.M - 1u) * p.K) / 4u;
  let xb5 = (p.x_off + min(m_base + 5u, p.M - 1u) * p.K) / 4u;
  let xb6 = (p.x_off + min(m_base + 6u, p.M - 1u) * p.K) / 4u;
  let xb7 = (p.x_off + min(m_base + 7u, p.M - 1u) * p.K) / 4u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  var acc4 = vec4<f32>(0.0);
  var acc5 = vec4<f32>(0.0);
  var acc6 = vec4<f32>(0.0);
  var acc7 = vec4<f32>(0.0);
  for (var k = 0u; k < p.K; k += 8u) {
    let k4 = k / 4u;
    let w0 = weight8(wb.x + k);
    let w1 = weight8(wb.y + k);
    let w2 = weight8(wb.z + k);
    let w3 = weight8(wb.w + k);
    let a00 = x[xb0 + k4];
    let a01 = x[xb0 + k4 + 1u];
    acc0 += vec4<f32>(dot(a00, w0[0]) + dot(a01, w0[1]), dot(a00, w1[0]) + dot(a01, w1[1]), dot(a00, w2[0]) + dot(a01, w2[1]), dot(a00, w3[0]) + dot(a01, w3[1]));
    let a10 = x[xb1 + k4];
    let a11 = x[xb1 + k4 + 1u];
    acc1 += vec4<f32>(dot(a10, w0[0]) + dot(a11, w0[1]), dot(a10, w1[0]) + dot(a11, w1[1]), dot(a10, w2[0]) + dot(a11, w2[1]), dot(a10, w3[0]) + dot(a11, w3[1]));
    let a20 = x[xb2 + k4];
    let a21 = x[xb2 + k4 + 1u];
    acc2 += vec4<f32>(dot(a20, w0[0]) + dot(a21, w0[1]), dot(a20, w1[0]) + dot(a21, w1[1]), dot(a20, w2[0]) + dot(a21, w2[1]), dot(a20, w3[0]) + dot(a21, w3[1]));
    let a30 = x[xb3 + k4];
    let a31 = x[xb3 + k4 + 1u];
    acc3 += vec4<f32>(dot(a30, w0[0]) + dot(a31, w0[1]), dot(a30, w1[0]) + dot(a31, w1[1]), dot(a30, w2[0]) + dot(a31, w2[1]), dot(a30, w3[0]) + dot(a31, w3[1]));
    let a40 = x[xb4 + k4];
    let a41 = x[xb4 + k4 + 1u];
    acc4 += vec4<f32>(dot(a40, w0[0]) + dot(a41, w0[1]), dot(a40, w1[0]) + dot(a41, w1[1]), dot(a40, w2[0]) + dot(a41, w2[1]), dot(a40, w3[0]) + dot(a41, w3[1]));
    let a50 = x[xb5 + k4];
    let a51 = x[xb5 + k4 + 1u];
    acc5 += vec4<f32>(dot(a50, w0[0]) + dot(a51, w0[1]), dot(a50, w1[0]) + dot(a51, w1[1]), dot(a50, w2[0]) + dot(a51, w2[1]), dot(a50, w3[0]) + dot(a51, w3[1]));
    let a60 = x[xb6 + k4];
    let a61 = x[xb6 + k4 + 1u];
    acc6 += vec4<f32>(dot(a60, w0[0]) + dot(a61, w0[1]), dot(a60, w1[0]) + dot(a61, w1[1]), dot(a60, w2[0]) + dot(a61, w2[1]), dot(a60, w3[0]) + dot(a61, w3[1]));
    let a70 = x[xb7 + k4];
    let a71 = x[xb7 + k4 + 1u];
    acc7 += vec4<f32>(dot(a70, w0[0]) + dot(a71, w0[1]), dot(a70, w1[0]) + dot(a71, w1[1]), dot(a70, w2[0]) + dot(a71, w2[1]), dot(a70, w3[0]) + dot(a71, w3[1]));
  }
  var b = vec4<f32>(0.0);
  if (p.has_bias != 0u) {
    b = vec4<f32>(bias[p.n0 + n_base], bias[p.n0 + min(n_base + 1u, last)], bias[p.n0 + min(n_base + 2u, last)],
      bias[p.n0 + min(n_base + 3u, last)]);
  }
  let n_valid = min(4u, p.rows - n_base);
  let m_valid = min(8u, p.M - m_base);
  let accs = array<vec4<f32>, 8>(acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7);
  for (var i = 0u; i < m_valid; i++) {
    let row = p.out_off + (m_base + i) * p.out_stride + p.n0 + n_base;
    for (var j = 0u; j < n_valid; j++) {
      out[row + j] = accs[i][j] + b[j] + select(0.0, out[row + j], p.accumulate != 0u);
    }
  }
}

// Matrix-vector products for decoding (few tokens), y = x · Wᵀ (+ bias), for one row-chunk of W:
// out[m, n0 + n] = Σ_k x[m, k] · W[n, k] (+ bias[n0 + n]), m < M (small), n < rows.
// Decoding reads every weight once per token, so this kernel is about weight bandwidth: each
// invocation owns 4 consecutive weight rows of one token and streams them once (weight8 reads 8
// elements per load when rows are multiples of 8); x is read once per 4 rows, not once per row and
// token as in linear.wgsl.
// Bindings: 0 weight (snippet), 1 x f32 [M, K] (window), 2 out f32 [M, out_stride] (window),
// 3 bias f32 [out_stride] (unused when has_bias = 0), 4 params.
// Workgroups: 64 invocations along x (256 rows per workgroup), y = token; K/8 (or K/4) iterations.
struct Params {
  M: u32,
  K: u32,
  rows: u32,
  out_stride: u32,
  n0: u32,
  x_off: u32,
  out_off: u32,
  has_bias: u32,
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n_base = gid.x * 4u;
  let m = gid.y;
  if (n_base >= p.rows || m >= p.M) {
    return;
  }
  let last = p.rows - 1u;
  let wb = vec4<u32>(n_base, min(n_base + 1u, last), min(n_base + 2u, last), min(n_base + 3u, last)) * p.K;
  let xb = p.x_off + m * p.K;
  var acc = vec4<f32>(0.0);
  // Rows of a multiple of 8 elements: eight weights per load (weight8).
  let k_end8 = select(0u, p.K, (p.K & 7u) == 0u);
  for (var k = 0u; k < k_end8; k += 8u) {
    let a = vec4<f32>(x[xb + k], x[xb + k + 1u], x[xb + k + 2u], x[xb + k + 3u]);
    let b = vec4<f32>(x[xb + k + 4u], x[xb + k + 5u], x[xb + k + 6u], x[xb + k + 7u]);
    let w0 = weight8(wb.x + k);
    let w1 = weight8(wb.y + k);
    let w2 = weight8(wb.z + k);
    let w3 = weight8(wb.w + k);
    acc += vec4<f32>(
      dot(a, w0[0]) + dot(b, w0[1]),
      dot(a, w1[0]) + dot(b, w1[1]),
      dot(a, w2[0]) + dot(b, w2[1]),
      dot(a, w3[0]) + dot(b, w3[1]),
    );
  }
  let k_end4 = select(p.K & ~3u, 0u, k_end8 != 0u);
  for (var k = 0u; k < k_end4; k += 4u) {
    let a = vec4<f32>(x[xb + k], x[xb + k + 1u], x[xb + k + 2u], x[xb + k + 3u]);
    acc += vec4<f32>(dot(a, weight4(wb.x + k)), dot(a, weight4(wb.y + k)), dot(a, weight4(wb.z + k)), dot(a, weight4(wb.w + k)));
  }
  for (var k = max(k_end4, k_end8); k < p.K; k++) {
    acc += x[xb + k] * vec4<f32>(weight_at(wb.x + k), weight_at(wb.y + k), weight_at(wb.z + k), weight_at(wb.w + k));
  }
  let n_valid = min(4u, p.rows - n_base);
  let row = p.out_off + m * p.out_stride + p.n0 + n_base;
  for (var j = 0u; j < n_valid; j++) {
    var b = 0.0;
    if (p.has_bias != 0u) {
      b = bias[p.n0 + n_base + j];
    }
    out[row + j] = acc[j] + b;
  }
}

// matvec.wgsl for q8 weights and int8 activations (quantize_act_q8.wgsl): integer dot products.
// out[m, n0 + n] = Σ_g dw[n, g] · sx[m, g] · Σ_{k in group g} qw[n, k] · qx[m, k] (+ bias[n0 + n]),
// groups of 32. Each u32 holds four int8 of weights or activations in the same order, so a word pair
// is one dot4I8Packed: on CPU adapters (memory loaded lane by lane) that is 1.7× the weights per second
// of the float path, which unpacks every weight. The activations' rounding (≤ 1/254 of their group's
// largest value per element) is the price; README "Quantized weights" gives the resulting errors.
// Weights (src/gpu/buffers.ts, WeightStorage, q8): word 0 the word offset S of the scales; from vec4 1
// the values, row-major, 16 per vec4<u32>; from word S the f32 scales, one per row and group.
// Needs K % 32 == 0 and K ≤ 14336. Same params, outputs, split and accumulate rules as matvec.wgsl.
// Bindings: as matvec.wgsl: 0 weight (one row-chunk), 1 x vec4<f32> [M, K/4] (window), 2 out f32
// [M, out_stride] (window), 3 bias f32, 4 out_b, 5 out_c, 6 params. The workgroup first quantizes its
// token's x (quantize_act_q8.wgsl, appended).
// Workgroups: 64 invocations along x, 8 rows each; y = token; K/32 loop iterations.
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
  split_b: u32,
  split_c: u32,
  stride_b: u32,
  stride_c: u32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_c: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

// One row's group: 32 products of int8 (two vec4<u32> of weights from vec4 index w) with a, b, times the
// row's scale (word s) and the activations' scale sx.
fn group_dot(w: u32, s: u32, a: vec4<u32>, b: vec4<u32>, sx: f32) -> f32 {
  let u = weight[w];
  let v = weight[w + 1u];
  let d = dot4I8Packed(u.x, a.x) + dot4I8Packed(u.y, a.y) + dot4I8Packed(u.z, a.z) + dot4I8Packed(u.w, a.w) +
    dot4I8Packed(v.x, b.x) + dot4I8Packed(v.y, b.y) + dot4I8Packed(v.z, b.z) + dot4I8Packed(v.w, b.w);
  return f32(d) * (bitcast<f32>(weight[s >> 2u][s & 3u]) * sx);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n_base = gid.x * 8u;
  let m = gid.y;
  quantize_activations((p.x_off + m * p.K) / 4u, p.K, lid);
  if (n_base >= p.rows) {
    return;
  }
  let last = p.rows - 1u;
  let groups = p.K / 32u;
  let s0 = weight[0].x;
  // Rows of the invocation (past the last row: the last row again, not stored), as vec4 index of their
  // values and word index of their scales.
  let ra = vec4<u32>(n_base, min(n_base + 1u, last), min(n_base + 2u, last), min(n_base + 3u, last)) + p.w_row0;
  let rb = vec4<u32>(min(n_base + 4u, last), min(n_base + 5u, last), min(n_base + 6u, last), min(n_base + 7u, last)) +
    p.w_row0;
  let wa = 1u + ra * (p.K / 16u);
  let wb = 1u + rb * (p.K / 16u);
  let sa = s0 + ra * groups;
  let sb = s0 + rb * groups;
  var acc_a = vec4<f32>(0.0);
  var acc_b = vec4<f32>(0.0);
  for (var g = 0u; g < groups; g++) {
    let a = act_q[2u * g];
    let b = act_q[2u * g + 1u];
    let sx = act_s[g];
    let w2 = 2u * g;
    acc_a += vec4<f32>(
      group_dot(wa.x + w2, sa.x + g, a, b, sx),
      group_dot(wa.y + w2, sa.y + g, a, b, sx),
      group_dot(wa.z + w2, sa.z + g, a, b, sx),
      group_dot(wa.w + w2, sa.w + g, a, b, sx),
    );
    acc_b += vec4<f32>(
      group_dot(wb.x + w2, sb.x + g, a, b, sx),
      group_dot(wb.y + w2, sb.y + g, a, b, sx),
      group_dot(wb.z + w2, sb.z + g, a, b, sx),
      group_dot(wb.w + w2, sb.w + g, a, b, sx),
    );
  }
  let n_valid = min(8u, p.rows - n_base);
  let row = p.out_off + m * p.out_stride + p.n0 + n_base;
  for (var j = 0u; j < n_valid; j++) {
    let y = select(acc_b[j & 3u], acc_a[j & 3u], j < 4u);
    let g = p.n0 + n_base + j;
    if (g >= p.split_c) {
      out_c[m * p.stride_c + g - p.split_c] = y;
    } else if (g >= p.split_b) {
      out_b[m * p.stride_b + g - p.split_b] = y;
    } else {
      var bv = 0.0;
      if (p.has_bias != 0u) {
        bv = bias[g];
      }
      out[row + j] = y + bv + select(0.0, out[row + j], p.accumulate != 0u);
    }
  }
}

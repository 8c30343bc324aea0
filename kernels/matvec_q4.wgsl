// matvec.wgsl for q4 weights and int8 activations (quantize_act_q8.wgsl): integer dot products.
// out[m, n0 + n] = Σ_g dw[n, g] · sx[m, g] · Σ_{k in group g} qw[n, k] · qx[m, k] (+ bias[n0 + n]),
// groups of 32. A u32 of weights holds eight int4 (element 8j + i in bits 4i…4i+3, two's complement);
// (w & 0x0f0f0f0f) ^ 0x08080808 turns its even elements into bytes qw + 8 (0…15, valid int8), and the
// same of w >> 4 its odd ones, so each pairs with a word of the even or odd activations in one
// dot4I8Packed; the + 8 is taken back as 8 · Σ qx per group. On CPU adapters (memory loaded lane by lane)
// this reads one vec4 per 32 weights and unpacks nothing to f32.
// Weights (src/gpu/buffers.ts, WeightStorage, q4): word 0 the word offset S of the scales; from vec4 1
// the values, row-major, one group (32) per vec4<u32>; from word S the f32 scales, one per row and group.
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

// Activations of one group in the order of the q4 nibbles: even elements (e) and odd ones (o), four
// words each, from the eight words of x in element order.
struct Act4 {
  e: vec4<u32>,
  o: vec4<u32>,
}

fn split_even_odd(a: u32, b: u32) -> vec2<u32> {
  let e = (a & 0xffu) | ((a >> 8u) & 0xff00u) | ((b << 16u) & 0xff0000u) | ((b << 8u) & 0xff000000u);
  let o = ((a >> 8u) & 0xffu) | ((a >> 16u) & 0xff00u) | ((b << 8u) & 0xff0000u) | (b & 0xff000000u);
  return vec2<u32>(e, o);
}

// One row's group: the 32 products of int4 weights (one vec4<u32> at vec4 index w) with the activations,
// minus the offset, times the row's scale (word s) and the activations' scale sx.
fn group_dot(w: u32, s: u32, x: Act4, offset: i32, sx: f32) -> f32 {
  let u = weight[w];
  let lo = (u & vec4<u32>(0x0f0f0f0fu)) ^ vec4<u32>(0x08080808u);
  let hi = ((u >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu)) ^ vec4<u32>(0x08080808u);
  let d = dot4I8Packed(lo.x, x.e.x) + dot4I8Packed(hi.x, x.o.x) + dot4I8Packed(lo.y, x.e.y) +
    dot4I8Packed(hi.y, x.o.y) + dot4I8Packed(lo.z, x.e.z) + dot4I8Packed(hi.z, x.o.z) +
    dot4I8Packed(lo.w, x.e.w) + dot4I8Packed(hi.w, x.o.w) - offset;
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
  let wa = 1u + ra * groups;
  let wb = 1u + rb * groups;
  let sa = s0 + ra * groups;
  let sb = s0 + rb * groups;
  var acc_a = vec4<f32>(0.0);
  var acc_b = vec4<f32>(0.0);
  for (var g = 0u; g < groups; g++) {
    let a = act_q[2u * g];
    let b = act_q[2u * g + 1u];
    let p0 = split_even_odd(a.x, a.y);
    let p1 = split_even_odd(a.z, a.w);
    let p2 = split_even_odd(b.x, b.y);
    let p3 = split_even_odd(b.z, b.w);
    let x = Act4(vec4<u32>(p0.x, p1.x, p2.x, p3.x), vec4<u32>(p0.y, p1.y, p2.y, p3.y));
    let ones = 0x01010101u;
    let offset = 8 * (dot4I8Packed(a.x, ones) + dot4I8Packed(a.y, ones) + dot4I8Packed(a.z, ones) +
      dot4I8Packed(a.w, ones) + dot4I8Packed(b.x, ones) + dot4I8Packed(b.y, ones) + dot4I8Packed(b.z, ones) +
      dot4I8Packed(b.w, ones));
    let sx = act_s[g];
    acc_a += vec4<f32>(
      group_dot(wa.x + g, sa.x + g, x, offset, sx),
      group_dot(wa.y + g, sa.y + g, x, offset, sx),
      group_dot(wa.z + g, sa.z + g, x, offset, sx),
      group_dot(wa.w + g, sa.w + g, x, offset, sx),
    );
    acc_b += vec4<f32>(
      group_dot(wb.x + g, sb.x + g, x, offset, sx),
      group_dot(wb.y + g, sb.y + g, x, offset, sx),
      group_dot(wb.z + g, sb.z + g, x, offset, sx),
      group_dot(wb.w + g, sb.w + g, x, offset, sx),
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

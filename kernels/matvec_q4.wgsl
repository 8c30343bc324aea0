// matvec.wgsl for q4 weights and int8 activations (quantize_act_q8.wgsl): integer dot products.
// out[m, n0 + n] = Σ_g dw[n, g] · sx[m, g] · Σ_{k in group g} qw[n, k] · qx[m, k] (+ bias[n0 + n]),
// groups of 32. A u32 of weights holds eight int4 (element 8j + i in bits 4i…4i+3, two's complement);
// (w & 0x0f0f0f0f) ^ 0x08080808 turns its even elements into bytes qw + 8 (0…15, valid int8), and the
// same of w >> 4 its odd ones, so each pairs with a word of the even or odd activations in one
// dot4I8Packed; the + 8 is taken back as 8 · Σ qx per group. On CPU adapters (memory loaded lane by lane)
// this reads one vec4 per 32 weights and unpacks nothing to f32.
// Weights (src/gpu/buffers.ts, WeightStorage, q4): word 0 the word offset S of the scales; from vec4 1
// the values, row-major, one group (32) per vec4<u32>; from word S the f32 scales, one per row and group.
// Needs K % 32 == 0 and K ≤ 14336. Bindings: 0 weight (one row-chunk); 1…6 and the parameters, outputs,
// split and accumulate rules as matvec.wgsl (matvec_common.wgsl, appended). The workgroup first
// quantizes its token's x (quantize_act_q8.wgsl, appended).
// Workgroups: 64 invocations along x, 8 rows each; y = token; K/32 loop iterations.

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

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
  let groups = p.K / 32u;
  let s0 = weight[0].x;
  // The invocation's rows as vec4 index of their values and word index of their scales.
  let rows = matvec_rows(n_base);
  let wa = 1u + rows.a * groups;
  let wb = 1u + rows.b * groups;
  let sa = s0 + rows.a * groups;
  let sb = s0 + rows.b * groups;
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
  matvec_store(m, n_base, acc_a, acc_b);
}

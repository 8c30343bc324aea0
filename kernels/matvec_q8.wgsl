// matvec.wgsl for q8 weights and int8 activations (quantize_act_q8.wgsl): integer dot products.
// out[m, n0 + n] = Σ_g dw[n, g] · sx[m, g] · Σ_{k in group g} qw[n, k] · qx[m, k] (+ bias[n0 + n]),
// groups of 32. Each u32 holds four int8 of weights or activations in the same order, so a word pair
// is one dot4I8Packed: on llvmpipe about 5.5 G weights/s against 4.4–5.2 for the float path, which
// unpacks every weight to f32 (1.7× in a bare kernel without scales). The activations' rounding (≤ 1/254 of their group's
// largest value per element) is the price; README "Quantized weights" gives the resulting errors.
// Weights (src/gpu/buffers.ts, WeightStorage, q8): word 0 the word offset S of the scales; from vec4 1
// the values, row-major, 16 per vec4<u32>; from word S the f32 scales, one per row and group.
// Needs K % 32 == 0 and K ≤ 14336. Bindings: 0 weight (one row-chunk); 1…5, outputs, split and
// accumulate rules as matvec.wgsl (matvec_common.wgsl, appended). The workgroup first quantizes its
// token's x (quantize_act_q8.wgsl, appended: binding 6 SwiGLU's up, 7 the RMSNorm
// scale, 8 the parameters).
// Workgroups: 64 invocations along x, 8 rows each (wg_rows ≤ 512 rows per workgroup: matvec_base), y = token;
// K/32 loop iterations.

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

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
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n_base = matvec_base(wid.x, lid);
  let m = wid.y;
  quantize_activations(m, lid);
  if (n_base >= p.rows) {
    return;
  }
  let groups = p.K / 32u;
  let s0 = weight[0].x;
  // The invocation's rows as vec4 index of their values and word index of their scales.
  let rows = matvec_rows(n_base);
  let wa = 1u + rows.a * (p.K / 16u);
  let wb = 1u + rows.b * (p.K / 16u);
  let sa = s0 + rows.a * groups;
  let sb = s0 + rows.b * groups;
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
  matvec_store(m, n_base, acc_a, acc_b);
}

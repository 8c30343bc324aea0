// matvec.wgsl for q4 weights and int8 activations (quantize_act_q8.wgsl): integer dot products.
// out[m, n0 + n] = Σ_g dw[n, g] · sx[m, g] · Σ_{k in group g} qw[n, k] · qx[m, k] (+ bias[n0 + n]),
// groups of 32. A u32 of weights holds eight int4 (element 8j + i in bits 4i…4i+3, two's complement).
// Products without dot4I8Packed, which CPU adapters emulate at ~20 operations: nibbles i and i + 4 of a
// word, as q + 8 (0…15), make W = we + wf · 2^16, the activations of those elements A = af + ae · 2^16,
// and one 32-bit multiply A · W has ae·we + af·wf in its middle 16 bits (group_dot); the + 8 is taken
// back as 8 · Σ qx per group. On llvmpipe this and the blocked layout below made q4 decoding ~30% faster.
// Weights (src/gpu/buffers.ts, WeightStorage, q4; kernels/weight_q4.wgsl): word 0 the word offset S of
// the scales; from vec4 1 the values, one group (32) per vec4<u32>, rows in blocks of 8 with their groups
// interleaved (row r's group g at vec4 1 + slot(r) + 8g), so an invocation's 8 rows read 128 contiguous
// bytes per group; from word S the bf16 scales, two groups per word, so that a block's 8 rows have the
// scales of groups 2h and 2h + 1 in 8 contiguous words: two vec4 loads per pair of groups.
// Needs K % 64 == 0 and K ≤ 14336. Bindings: 0 weight (one row-chunk; declared by weight_q4.wgsl,
// prepended by kernels/sources.ts with its layout functions); 1…5, outputs, split and accumulate rules
// as matvec.wgsl (matvec_common.wgsl, appended). The workgroup first quantizes its token's x
// (quantize_act_q8.wgsl, appended: binding 6 SwiGLU's up, 7 the RMSNorm
// scale, 8 the parameters).
// Workgroups: 64 invocations along x, 8 rows each (wg_rows ≤ 512 rows per workgroup: matvec_base), y = token;
// K/64 loop iterations.

// Activations of one group as 16 pairs: P[i][j] = qx[8j + i + 4] + qx[8j + i] · 2^16 (mod 2^32), the
// two elements that nibbles i and i + 4 of weight word j multiply (see group_dot).
struct ActPairs {
  p0: vec4<u32>,
  p1: vec4<u32>,
  p2: vec4<u32>,
  p3: vec4<u32>,
}

// Pair i of the four words: lo holds bytes qx[8j…8j+3], hi bytes qx[8j+4…8j+7] (two's complement).
fn act_pair(lo: vec4<u32>, hi: vec4<u32>, i: u32) -> vec4<u32> {
  let sh = vec4<u32>(24u - 8u * i);
  let e = bitcast<vec4<i32>>(lo << sh) >> vec4<u32>(24u);
  let f = bitcast<vec4<i32>>(hi << sh) >> vec4<u32>(24u);
  return bitcast<vec4<u32>>(f + (e << vec4<u32>(16u)));
}

// The middle 16 bits of L + M · 2^16 (mod 2^32) as the signed M, for |L| < 2^15 and |M| < 2^15.
fn middle(s: u32) -> i32 {
  return bitcast<i32>(s + 0x8000u) >> 16u;
}

// One row's group: the 32 products of int4 weights (one vec4<u32> at vec4 index w) with the activations,
// minus the offset, times `scale` (the row's scale times the activations' scale sx).
// CPU adapters emulate dot4I8Packed (~20 operations each), so two products share one 32-bit multiply:
// with W = we + wf · 2^16 (nibbles i and i + 4 of a word, as q + 8 in 0…15) and the pair
// A = af + ae · 2^16, A · W = af·we + (ae·we + af·wf) · 2^16 (mod 2^32). Two words' sums stay within the
// bounds of `middle`: |L| ≤ 8 · 127 · 15 and |M| ≤ 16 · 127 · 15, both < 2^15.
fn group_dot(w: u32, scale: f32, x: ActPairs, offset: i32) -> f32 {
  let b = weight[w] ^ vec4<u32>(0x88888888u);
  let m = vec4<u32>(0x000f000fu);
  let t = (b & m) * x.p0 + ((b >> vec4<u32>(4u)) & m) * x.p1 + ((b >> vec4<u32>(8u)) & m) * x.p2 +
    ((b >> vec4<u32>(12u)) & m) * x.p3;
  let d = middle(t.x + t.y) + middle(t.z + t.w) - offset;
  return f32(d) * scale;
}

// The products of the invocation's 8 rows (rows a: the first four) with group g.
struct RowDots {
  a: vec4<f32>,
  b: vec4<f32>,
}

// Group g of the 8 rows whose values are at vec4 wa / wb in group 0, with their scales (f32 bits).
fn rows_group(g: u32, wa: vec4<u32>, wb: vec4<u32>, da: vec4<u32>, db: vec4<u32>) -> RowDots {
  let a = act_q[2u * g];
  let b = act_q[2u * g + 1u];
  // Words 2j (lo) and 2j + 1 (hi) of the group hold the bytes of weight word j's elements.
  let lo = vec4<u32>(a.x, a.z, b.x, b.z);
  let hi = vec4<u32>(a.y, a.w, b.y, b.w);
  let x = ActPairs(act_pair(lo, hi, 0u), act_pair(lo, hi, 1u), act_pair(lo, hi, 2u), act_pair(lo, hi, 3u));
  // 8 · Σ qx of the group: Σ A = F + E · 2^16 over the pairs, times 1 + 2^16, has E + F in the middle.
  let sum = x.p0 + x.p1 + x.p2 + x.p3;
  let offset = 8 * middle((sum.x + sum.y + sum.z + sum.w) * 0x10001u);
  let sx = act_s[g];
  let sa = bitcast<vec4<f32>>(da) * sx;
  let sb = bitcast<vec4<f32>>(db) * sx;
  let gs = 8u * g;
  return RowDots(
    vec4<f32>(
      group_dot(wa.x + gs, sa.x, x, offset),
      group_dot(wa.y + gs, sa.y, x, offset),
      group_dot(wa.z + gs, sa.z, x, offset),
      group_dot(wa.w + gs, sa.w, x, offset),
    ),
    vec4<f32>(
      group_dot(wb.x + gs, sb.x, x, offset),
      group_dot(wb.y + gs, sb.y, x, offset),
      group_dot(wb.z + gs, sb.z, x, offset),
      group_dot(wb.w + gs, sb.w, x, offset),
    ),
  );
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n_base = matvec_base(wid.x, lid);
  let m = wid.y;
  quantize_activations(m, lid);
  if (n_base >= p.rows) {
    return;
  }
  // The invocation's rows as vec4 index of their values in group 0 (group g is 8g further: weight_rows4
  // and q4_group in weight_q4.wgsl) and word index of their scales of groups 0 and 1 (pair h is 8h
  // further: q4_scale_word).
  let rows = matvec_rows(n_base);
  let slot_a = weight_rows4(rows.a, p.K);
  let slot_b = weight_rows4(rows.b, p.K);
  let wa = 1u + slot_a;
  let wb = 1u + slot_b;
  let sa = vec4<u32>(q4_scale_word(slot_a.x), q4_scale_word(slot_a.y), q4_scale_word(slot_a.z), q4_scale_word(slot_a.w));
  let sb = vec4<u32>(q4_scale_word(slot_b.x), q4_scale_word(slot_b.y), q4_scale_word(slot_b.z), q4_scale_word(slot_b.w));
  // An invocation's 8 rows start at a multiple of 8 (matvec_base): where the weight starts at a whole
  // block of its buffer, they are one block, whose scale words are one aligned run (S, a multiple of 4,
  // and the block's words, of 8), read as two vec4. Past the last row they are the block's other
  // (padding) rows: products not stored.
  let whole = (p.w_row0 & 7u) == 0u;
  var acc_a = vec4<f32>(0.0);
  var acc_b = vec4<f32>(0.0);
  for (var h = 0u; h < p.K / 64u; h++) {
    let so = 8u * h;
    var da: vec4<u32>;
    var db: vec4<u32>;
    if (whole) {
      let v = (sa.x + so) >> 2u;
      da = weight[v];
      db = weight[v + 1u];
    } else {
      da = vec4<u32>(weight_word(sa.x + so), weight_word(sa.y + so), weight_word(sa.z + so), weight_word(sa.w + so));
      db = vec4<u32>(weight_word(sb.x + so), weight_word(sb.y + so), weight_word(sb.z + so), weight_word(sb.w + so));
    }
    // Groups 2h and 2h + 1: the low and the high halves, each moved to the top of an f32.
    let even = rows_group(2u * h, wa, wb, da << vec4<u32>(16u), db << vec4<u32>(16u));
    let odd = rows_group(2u * h + 1u, wa, wb, da & vec4<u32>(0xffff0000u), db & vec4<u32>(0xffff0000u));
    acc_a += even.a + odd.a;
    acc_b += even.b + odd.b;
  }
  matvec_store(m, n_base, acc_a, acc_b);
}

// Weight access for q4 weights (quantized at load by src/checkpoint/quantize.ts). Each row is cut into
// groups of 32 elements (cols % 64 == 0) with one bf16 scale d each; element = f32(q) · d, q a
// two's-complement int4 (−7…7). The bound row-chunk's buffer is (src/gpu/buffers.ts, WeightStorage):
//   word 0: the word offset S of the scales (words 1..3 unused), so the values start at vec4 1;
//   from vec4 1: the values, one vec4<u32> per group (element 8j + n of the group in bits 4n…4n+3 of word
//     j), rows in blocks of 8 whose groups interleave, [row / 8][group][row % 8]: row r's group g is at
//     vec4 1 + slot + 8g, slot = (r / 8) · 8 · (cols / 32) + r % 8 (q4Slot in buffers.ts), so the 8 rows a
//     matvec invocation owns are 128 contiguous bytes per group (CPU adapters load memory lane by lane,
//     and one stream per lane is faster than eight);
//   from word S: the scales, those of groups 2h and 2h + 1 of a row in the low and high half of one word,
//     blocks of 8 rows as [row / 8][h][row % 8]: the row with slot rb has group g's scale in word
//     S + (rb - rb % 8) / 2 + 8 · (g / 2) + rb % 8 (q4ScaleWord in buffers.ts).
// Binding 0: the row-chunk, read as vec4<u32>.
// weight_row(row, cols): the row's slot; weight_rows4: four rows' slots. Then, for the elements at
// column k of the row with slot rb: weight_at(rb, k); weight4, weight8(rb, k): elements k..k+3 / k+7 for
// k a multiple of 4 / 8; weight16_scaled(rb, k): elements k..k+15 for k % 16 == 0 as s.w · s.d (half a
// vec4 of values and the group's scale), so a dot product can apply the scale once instead of per element. (The other layouts are
// row-major and share this interface through weight_flat.wgsl.)
struct WeightScaled16 {
  w: mat4x4<f32>,
  d: f32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

fn weight_row(row: u32, cols: u32) -> u32 {
  return (row >> 3u) * (cols >> 2u) + (row & 7u);
}

fn weight_rows4(rows: vec4<u32>, cols: u32) -> vec4<u32> {
  return (rows >> vec4<u32>(3u)) * (cols >> 2u) + (rows & vec4<u32>(7u));
}

// The slot of the group holding column k of the row with slot rb: its values' vec4 index minus 1.
fn q4_group(rb: u32, k: u32) -> u32 {
  return rb + 8u * (k >> 5u);
}

// The word holding the scales of groups 0 and 1 of the row with slot rb (groups 2h and 2h + 1: 8h words
// further; q4ScaleWord in buffers.ts).
fn q4_scale_word(rb: u32) -> u32 {
  return weight[0].x + ((rb & ~7u) >> 1u) + (rb & 7u);
}

// Word s of the buffer.
fn weight_word(s: u32) -> u32 {
  return weight[s >> 2u][s & 3u];
}

// The scale of group g of the row with slot rb as f32 bits: a bf16 (half of a word) moved to the top.
fn q4_scale_bits(rb: u32, g: u32) -> u32 {
  let w = weight_word(q4_scale_word(rb) + 8u * (g >> 1u));
  return select(w << 16u, w & 0xffff0000u, (g & 1u) != 0u);
}

fn q4_scale(rb: u32, k: u32) -> f32 {
  return bitcast<f32>(q4_scale_bits(rb, k >> 5u)) * (1.0 / 268435456.0);
}

// Nibbles 0..3 (lo) or 4..7 (hi) of a u32 as f32, times 2^28: each nibble moved to the top (the rest
// cleared) is q · 2^28 as an i32, exact in f32; q4_scale folds the 2^-28 back in (exact: powers of two).
// This skips the sign-extending shift: fewer instructions per weight on CPU adapters.
fn q4_lo(w: u32) -> vec4<f32> {
  let v = (vec4<u32>(w) << vec4<u32>(28u, 24u, 20u, 16u)) & vec4<u32>(0xf0000000u);
  return vec4<f32>(bitcast<vec4<i32>>(v));
}

fn q4_hi(w: u32) -> vec4<f32> {
  let v = (vec4<u32>(w) << vec4<u32>(12u, 8u, 4u, 0u)) & vec4<u32>(0xf0000000u);
  return vec4<f32>(bitcast<vec4<i32>>(v));
}

fn q4_word(rb: u32, k: u32) -> u32 {
  return weight[1u + q4_group(rb, k)][(k >> 3u) & 3u];
}

fn weight_at(rb: u32, k: u32) -> f32 {
  let q = bitcast<i32>((q4_word(rb, k) << (28u - 4u * (k & 7u))) & 0xf0000000u);
  return f32(q) * q4_scale(rb, k);
}

fn weight4(rb: u32, k: u32) -> vec4<f32> {
  let w = q4_word(rb, k);
  return select(q4_lo(w), q4_hi(w), (k & 4u) != 0u) * q4_scale(rb, k);
}

fn weight8(rb: u32, k: u32) -> mat2x4<f32> {
  let w = q4_word(rb, k);
  let d = q4_scale(rb, k);
  return mat2x4<f32>(q4_lo(w) * d, q4_hi(w) * d);
}

fn weight16_scaled(rb: u32, k: u32) -> WeightScaled16 {
  let v = weight[1u + q4_group(rb, k)];
  let w = select(v.xy, v.zw, (k & 16u) != 0u);
  return WeightScaled16(mat4x4<f32>(q4_lo(w.x), q4_hi(w.x), q4_lo(w.y), q4_hi(w.y)), q4_scale(rb, k));
}

// Weight access for q4 weights (quantized at load by src/checkpoint/quantize.ts). Each row is cut into
// groups of 32 elements (cols % 32 == 0) with one f32 scale d each; element = f32(q) · d, q a
// two's-complement int4 (−7…7). Index i is the flat element index row·cols + col within the bound
// row-chunk, whose buffer is (src/gpu/buffers.ts, WeightStorage):
//   word 0: the word offset S of the scales (words 1..3 unused), so the values start at vec4 1;
//   from word 4: the values of all rows, row-major, eight per u32 (element i in bits 4(i % 8)…4(i % 8)+3 of
//     word 4 + i / 8): one vec4<u32> holds exactly one group, elements 32v..32v+31 (CPU adapters load
//     memory lane by lane: few, wide loads);
//   from word S: the scales, row-major (group i / 32 at word S + i / 32).
// Binding 0: the row-chunk, read as vec4<u32>.
// weight_at(i): element i; weight4(i), weight8(i), weight16(i): elements i..i+3 / i+7 / i+15 for i a
// multiple of 4 / 8 / 16 (weight16: one vec4 of values and one scale);
// weight16_scaled(i): the same 16 elements as s.w · s.d (a common factor, 1.0 for float weights), so a
// dot product can apply a quantization scale once instead of per element.
struct WeightScaled16 {
  w: mat4x4<f32>,
  d: f32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

fn q4_scale(i: u32) -> f32 {
  let s = weight[0].x + (i >> 5u);
  return bitcast<f32>(weight[s >> 2u][s & 3u]) * (1.0 / 268435456.0);
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

fn q4_word(i: u32) -> u32 {
  return weight[1u + (i >> 5u)][(i >> 3u) & 3u];
}

fn weight_at(i: u32) -> f32 {
  let q = bitcast<i32>((q4_word(i) << (28u - 4u * (i & 7u))) & 0xf0000000u);
  return f32(q) * q4_scale(i);
}

fn weight4(i: u32) -> vec4<f32> {
  let w = q4_word(i);
  return select(q4_lo(w), q4_hi(w), (i & 4u) != 0u) * q4_scale(i);
}

fn weight8(i: u32) -> mat2x4<f32> {
  let w = q4_word(i);
  let d = q4_scale(i);
  return mat2x4<f32>(q4_lo(w) * d, q4_hi(w) * d);
}

fn weight16_scaled(i: u32) -> WeightScaled16 {
  let v = weight[1u + (i >> 5u)];
  let w = select(v.xy, v.zw, (i & 16u) != 0u);
  return WeightScaled16(mat4x4<f32>(q4_lo(w.x), q4_hi(w.x), q4_lo(w.y), q4_hi(w.y)), q4_scale(i));
}

fn weight16(i: u32) -> mat4x4<f32> {
  let s = weight16_scaled(i);
  return s.w * s.d;
}

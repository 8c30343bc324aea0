// Weight access for q4 weights (quantized at load by src/checkpoint/quantize.ts). Each row is cut into
// groups of 32 elements (cols % 32 == 0); group g is 5 u32 at word 5g: word 0 the f32 scale d (its bits),
// words 1..4 the values as two's-complement int4 (−7…7), eight per u32, element 8j+n of the group in bits
// 4n…4n+3 of word 1+j. Element = f32(q) · d. Index i is the flat element index row·cols + col within the
// bound row-chunk.
// Binding 0: the weight (or one row-chunk of it), row-major.
// weight_at(i): element i as f32; weight4(i): elements i..i+3 for i % 4 == 0 (one half of a u32);
// weight8(i): elements i..i+7 for i % 8 == 0.
@group(0) @binding(0) var<storage, read> weight: array<u32>;

fn weight_at(i: u32) -> f32 {
  let base = (i >> 5u) * 5u;
  let w = weight[base + 1u + ((i & 31u) >> 3u)];
  // Move the wanted nibble to the top, then an arithmetic shift sign-extends it.
  let q = bitcast<i32>(w << (28u - 4u * (i & 7u))) >> 28u;
  return f32(q) * bitcast<f32>(weight[base]);
}

fn weight4(i: u32) -> vec4<f32> {
  let base = (i >> 5u) * 5u;
  let w = weight[base + 1u + ((i & 31u) >> 3u)];
  let s = vec4<u32>((i & 4u) << 2u); // 0: nibbles 0..3, 16: nibbles 4..7
  let q = bitcast<vec4<i32>>(vec4<u32>(w) << (vec4<u32>(28u, 24u, 20u, 16u) - s)) >> vec4<u32>(28u);
  return vec4<f32>(q) * bitcast<f32>(weight[base]);
}

// Elements i..i+7 for i % 8 == 0: one scale and one value word.
fn weight8(i: u32) -> mat2x4<f32> {
  let base = (i >> 5u) * 5u;
  let d = bitcast<f32>(weight[base]);
  let w = vec4<u32>(weight[base + 1u + ((i & 31u) >> 3u)]);
  let lo = bitcast<vec4<i32>>(w << vec4<u32>(28u, 24u, 20u, 16u)) >> vec4<u32>(28u);
  let hi = bitcast<vec4<i32>>(w << vec4<u32>(12u, 8u, 4u, 0u)) >> vec4<u32>(28u);
  return mat2x4<f32>(vec4<f32>(lo) * d, vec4<f32>(hi) * d);
}

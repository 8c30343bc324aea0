// Weight access for q8 weights (quantized at load by src/checkpoint/quantize.ts). Each row is cut into
// groups of 32 elements (cols % 32 == 0); group g is 9 u32 at word 9g: word 0 the f32 scale d (its bits),
// words 1..8 the values as int8 (−127…127), four per u32, element 4j+b of the group in byte b of word 1+j.
// Element = f32(q) · d. Index i is the flat element index row·cols + col within the bound row-chunk.
// Binding 0: the weight (or one row-chunk of it), row-major.
// weight_at(i): element i as f32; weight4(i): elements i..i+3 for i % 4 == 0 (one u32 of values);
// weight8(i): elements i..i+7 for i % 8 == 0.
@group(0) @binding(0) var<storage, read> weight: array<u32>;

fn weight_at(i: u32) -> f32 {
  let base = (i >> 5u) * 9u;
  let w = weight[base + 1u + ((i & 31u) >> 2u)];
  // Move the wanted byte to the top, then an arithmetic shift sign-extends it.
  let q = bitcast<i32>(w << (24u - 8u * (i & 3u))) >> 24u;
  return f32(q) * bitcast<f32>(weight[base]);
}

fn weight4(i: u32) -> vec4<f32> {
  let base = (i >> 5u) * 9u;
  let w = weight[base + 1u + ((i & 31u) >> 2u)];
  let q = bitcast<vec4<i32>>(vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
  return vec4<f32>(q) * bitcast<f32>(weight[base]);
}

// Elements i..i+7 for i % 8 == 0: one scale and two value words.
fn weight8(i: u32) -> mat2x4<f32> {
  let base = (i >> 5u) * 9u;
  let d = bitcast<f32>(weight[base]);
  let j = base + 1u + ((i & 31u) >> 2u);
  let sh = vec4<u32>(24u, 16u, 8u, 0u);
  let a = bitcast<vec4<i32>>(vec4<u32>(weight[j]) << sh) >> vec4<u32>(24u);
  let b = bitcast<vec4<i32>>(vec4<u32>(weight[j + 1u]) << sh) >> vec4<u32>(24u);
  return mat2x4<f32>(vec4<f32>(a) * d, vec4<f32>(b) * d);
}

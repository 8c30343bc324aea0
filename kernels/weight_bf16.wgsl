// Weight access for bf16 weights kept as stored: two per u32, element 2j in the low half (little-endian).
// A bf16 is the top 16 bits of an f32, so widening is a shift; all arithmetic happens in f32.
// Binding 0: the weight (or one row-chunk of it), row-major.
// weight_at(i): element i as f32; weight4(i): elements i..i+3.
@group(0) @binding(0) var<storage, read> weight: array<u32>;

fn bf16_pair(u: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u));
}

fn weight_at(i: u32) -> f32 {
  return bf16_pair(weight[i >> 1u])[i & 1u];
}

fn weight4(i: u32) -> vec4<f32> {
  let w = i >> 1u;
  if ((i & 1u) == 0u) {
    return vec4<f32>(bf16_pair(weight[w]), bf16_pair(weight[w + 1u]));
  }
  let b = bf16_pair(weight[w + 1u]);
  return vec4<f32>(bf16_pair(weight[w]).y, b.x, b.y, bf16_pair(weight[w + 2u]).x);
}

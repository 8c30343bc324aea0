// Weight access for f32 weights, prepended to kernels that read a weight.
// Binding 0: the weight (or one row-chunk of it) as stored, row-major, read as vec4 (one load per four
// elements: CPU adapters load memory lane by lane, so fewer, wider loads are faster).
// weight_at_i(i): element i; weight4_i(i): elements i..i+3; weight8_i(i): elements i..i+7 for i % 8 == 0;
// weight16_scaled_i(i): elements i..i+15 for i % 16 == 0 as s.w · s.d (column j of s.w: elements
// i+4j..i+4j+3; d = 1.0, the interface quantized weights share), built on weight16_i. Kernels call these through
// the (row base, column) interface of weight_flat.wgsl, appended by kernels/sources.ts.
struct WeightScaled16 {
  w: mat4x4<f32>,
  d: f32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<f32>>;

fn weight_at_i(i: u32) -> f32 {
  return weight[i >> 2u][i & 3u];
}

fn weight4_i(i: u32) -> vec4<f32> {
  if ((i & 3u) == 0u) {
    return weight[i >> 2u];
  }
  return vec4<f32>(weight_at_i(i), weight_at_i(i + 1u), weight_at_i(i + 2u), weight_at_i(i + 3u));
}

fn weight8_i(i: u32) -> mat2x4<f32> {
  return mat2x4<f32>(weight[i >> 2u], weight[(i >> 2u) + 1u]);
}

fn weight16_i(i: u32) -> mat4x4<f32> {
  let j = i >> 2u;
  return mat4x4<f32>(weight[j], weight[j + 1u], weight[j + 2u], weight[j + 3u]);
}

fn weight16_scaled_i(i: u32) -> WeightScaled16 {
  return WeightScaled16(weight16_i(i), 1.0);
}

// Weight access for f32 weights, prepended to kernels that read a weight.
// Binding 0: the weight (or one row-chunk of it) as stored, row-major, read as vec4 (one load per four
// elements: CPU adapters load memory lane by lane, so fewer, wider loads are faster).
// weight_at(i): element i; weight4(i): elements i..i+3; weight8(i): elements i..i+7 for i % 8 == 0.
@group(0) @binding(0) var<storage, read> weight: array<vec4<f32>>;

fn weight_at(i: u32) -> f32 {
  return weight[i >> 2u][i & 3u];
}

fn weight4(i: u32) -> vec4<f32> {
  if ((i & 3u) == 0u) {
    return weight[i >> 2u];
  }
  return vec4<f32>(weight_at(i), weight_at(i + 1u), weight_at(i + 2u), weight_at(i + 3u));
}

fn weight8(i: u32) -> mat2x4<f32> {
  return mat2x4<f32>(weight[i >> 2u], weight[(i >> 2u) + 1u]);
}

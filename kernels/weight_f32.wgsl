// Weight access for f32 weights, prepended to kernels that read a weight.
// Binding 0: the weight (or one row-chunk of it) as stored, row-major.
// weight_at(i): element i as f32; weight4(i): elements i..i+3.
@group(0) @binding(0) var<storage, read> weight: array<f32>;

fn weight_at(i: u32) -> f32 {
  return weight[i];
}

fn weight4(i: u32) -> vec4<f32> {
  return vec4<f32>(weight[i], weight[i + 1u], weight[i + 2u], weight[i + 3u]);
}

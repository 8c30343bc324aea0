// Weight access for bf16 weights kept as stored: two per u32, element 2j in the low half (little-endian).
// A bf16 is the top 16 bits of an f32, so widening is a shift; all arithmetic happens in f32.
// Binding 0: the weight (or one row-chunk of it), row-major, read as vec4<u32> (eight elements per load:
// CPU adapters load memory lane by lane, so fewer, wider loads are faster).
// weight_at_i(i): element i; weight4_i(i): elements i..i+3; weight8_i(i): elements i..i+7 for i % 8 == 0;
// weight16_scaled_i(i): elements i..i+15 for i % 16 == 0 as s.w · s.d (column j of s.w: elements
// i+4j..i+4j+3; d = 1.0, the interface quantized weights share), built on weight16_i. Kernels call these through
// the (row base, column) interface of weight_flat.wgsl, appended by kernels/sources.ts.
struct WeightScaled16 {
  w: mat4x4<f32>,
  d: f32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

fn bf16_pair(u: u32) -> vec2<f32> {
  return vec2<f32>(bitcast<f32>(u << 16u), bitcast<f32>(u & 0xffff0000u));
}

fn weight_at_i(i: u32) -> f32 {
  return bf16_pair(weight[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}

fn weight4_i(i: u32) -> vec4<f32> {
  if ((i & 3u) == 0u) {
    let u = weight[i >> 3u];
    if ((i & 4u) == 0u) {
      return vec4<f32>(bf16_pair(u.x), bf16_pair(u.y));
    }
    return vec4<f32>(bf16_pair(u.z), bf16_pair(u.w));
  }
  return vec4<f32>(weight_at_i(i), weight_at_i(i + 1u), weight_at_i(i + 2u), weight_at_i(i + 3u));
}

fn weight8_i(i: u32) -> mat2x4<f32> {
  let u = weight[i >> 3u];
  return mat2x4<f32>(vec4<f32>(bf16_pair(u.x), bf16_pair(u.y)), vec4<f32>(bf16_pair(u.z), bf16_pair(u.w)));
}

fn weight16_i(i: u32) -> mat4x4<f32> {
  let u = weight[i >> 3u];
  let v = weight[(i >> 3u) + 1u];
  return mat4x4<f32>(
    vec4<f32>(bf16_pair(u.x), bf16_pair(u.y)),
    vec4<f32>(bf16_pair(u.z), bf16_pair(u.w)),
    vec4<f32>(bf16_pair(v.x), bf16_pair(v.y)),
    vec4<f32>(bf16_pair(v.z), bf16_pair(v.w)),
  );
}

fn weight16_scaled_i(i: u32) -> WeightScaled16 {
  return WeightScaled16(weight16_i(i), 1.0);
}

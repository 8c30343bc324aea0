// Weight access for f16 weights kept as stored: two per u32, unpacked with the core builtin
// unpack2x16float (no shader-f16 feature needed). All arithmetic happens in f32.
// Binding 0: the weight (or one row-chunk of it), row-major, read as vec4<u32> (eight elements per load).
// weight_at_i(i): element i; weight4_i(i): elements i..i+3; weight8_i(i): elements i..i+7 for i % 8 == 0;
// weight16_scaled_i(i): elements i..i+15 for i % 16 == 0 as s.w · s.d (column j of s.w: elements
// i+4j..i+4j+3; d = 1.0, the interface quantized weights share), built on weight16_i. Kernels call these through
// the (row base, column) interface of weight_flat.wgsl, appended by kernels/sources.ts.
struct WeightScaled16 {
  w: mat4x4<f32>,
  d: f32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

fn weight_at_i(i: u32) -> f32 {
  return unpack2x16float(weight[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}

fn weight4_i(i: u32) -> vec4<f32> {
  if ((i & 3u) == 0u) {
    let u = weight[i >> 3u];
    if ((i & 4u) == 0u) {
      return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
    }
    return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
  }
  return vec4<f32>(weight_at_i(i), weight_at_i(i + 1u), weight_at_i(i + 2u), weight_at_i(i + 3u));
}

fn weight8_i(i: u32) -> mat2x4<f32> {
  let u = weight[i >> 3u];
  return mat2x4<f32>(
    vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)),
    vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w)),
  );
}

fn weight16_i(i: u32) -> mat4x4<f32> {
  let u = weight[i >> 3u];
  let v = weight[(i >> 3u) + 1u];
  return mat4x4<f32>(
    vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)),
    vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w)),
    vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y)),
    vec4<f32>(unpack2x16float(v.z), unpack2x16float(v.w)),
  );
}

fn weight16_scaled_i(i: u32) -> WeightScaled16 {
  return WeightScaled16(weight16_i(i), 1.0);
}

// Weight access for f16 weights kept as stored: two per u32, unpacked with the core builtin
// unpack2x16float (no shader-f16 feature needed). All arithmetic happens in f32.
// Binding 0: the weight (or one row-chunk of it), row-major, read as vec4<u32> (eight elements per load).
// weight_at(i): element i; weight4(i): elements i..i+3; weight8(i): elements i..i+7 for i % 8 == 0.
@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

fn weight_at(i: u32) -> f32 {
  return unpack2x16float(weight[i >> 3u][(i >> 1u) & 3u])[i & 1u];
}

fn weight4(i: u32) -> vec4<f32> {
  if ((i & 3u) == 0u) {
    let u = weight[i >> 3u];
    if ((i & 4u) == 0u) {
      return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
    }
    return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
  }
  return vec4<f32>(weight_at(i), weight_at(i + 1u), weight_at(i + 2u), weight_at(i + 3u));
}

fn weight8(i: u32) -> mat2x4<f32> {
  let u = weight[i >> 3u];
  return mat2x4<f32>(
    vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y)),
    vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w)),
  );
}

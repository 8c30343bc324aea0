// Weight access for f16 weights kept as stored: two per u32, unpacked with the core builtin
// unpack2x16float (no shader-f16 feature needed). All arithmetic happens in f32.
// Binding 0: the weight (or one row-chunk of it), row-major.
// weight_at(i): element i as f32; weight4(i): elements i..i+3.
@group(0) @binding(0) var<storage, read> weight: array<u32>;

fn weight_at(i: u32) -> f32 {
  return unpack2x16float(weight[i >> 1u])[i & 1u];
}

fn weight4(i: u32) -> vec4<f32> {
  let w = i >> 1u;
  if ((i & 1u) == 0u) {
    return vec4<f32>(unpack2x16float(weight[w]), unpack2x16float(weight[w + 1u]));
  }
  let b = unpack2x16float(weight[w + 1u]);
  return vec4<f32>(unpack2x16float(weight[w]).y, b.x, b.y, unpack2x16float(weight[w + 2u]).x);
}

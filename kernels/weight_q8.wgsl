// Weight access for q8 weights (quantized at load by src/checkpoint/quantize.ts). Each row is cut into
// groups of 32 elements (cols % 32 == 0) with one f32 scale d each; element = f32(q) · d, q an int8
// (−127…127). Index i is the flat element index row·cols + col within the bound row-chunk, whose buffer
// is (src/gpu/buffers.ts, WeightStorage):
//   word 0: the word offset S of the scales (words 1..3 unused), so the values start at vec4 1;
//   from word 4: the values of all rows, row-major, four per u32 (element i in byte i % 4 of word 4 + i / 4):
//     one vec4<u32> holds elements 16v..16v+15 (CPU adapters load memory lane by lane: few, wide loads);
//   from word S: the scales, row-major (group i / 32 at word S + i / 32).
// Binding 0: the row-chunk, read as vec4<u32>.
// weight_at_i(i): element i; weight4_i(i), weight8_i(i): elements i..i+3 / i+7 for i a multiple of 4 / 8;
// weight16_scaled_i(i): elements i..i+15 for i % 16 == 0 as s.w · s.d (one vec4 of values and the group's
// scale), so a dot product can apply the scale once instead of per element. Kernels call these through
// the (row base, column) interface of weight_flat.wgsl, appended by kernels/sources.ts.
struct WeightScaled16 {
  w: mat4x4<f32>,
  d: f32,
}

@group(0) @binding(0) var<storage, read> weight: array<vec4<u32>>;

fn q8_scale(i: u32) -> f32 {
  let s = weight[0].x + (i >> 5u);
  return bitcast<f32>(weight[s >> 2u][s & 3u]) * (1.0 / 16777216.0);
}

// Four int8 of a u32 (byte b → component b) as f32, times 2^24: each byte moved to the top (the rest
// cleared) is q · 2^24 as an i32, exact in f32; q8_scale folds the 2^-24 back in (exact: powers of two).
// This skips the sign-extending shift: fewer instructions per weight on CPU adapters.
fn q8_unpack(w: u32) -> vec4<f32> {
  let v = (vec4<u32>(w) << vec4<u32>(24u, 16u, 8u, 0u)) & vec4<u32>(0xff000000u);
  return vec4<f32>(bitcast<vec4<i32>>(v));
}

fn weight_at_i(i: u32) -> f32 {
  let w = weight[1u + (i >> 4u)][(i >> 2u) & 3u];
  let q = bitcast<i32>((w << (24u - 8u * (i & 3u))) & 0xff000000u);
  return f32(q) * q8_scale(i);
}

fn weight4_i(i: u32) -> vec4<f32> {
  return q8_unpack(weight[1u + (i >> 4u)][(i >> 2u) & 3u]) * q8_scale(i);
}

fn weight8_i(i: u32) -> mat2x4<f32> {
  // Two words, not the vec4 that holds them: CPU adapters load lane by lane, word by word.
  let v = 1u + (i >> 4u);
  let c = (i >> 2u) & 2u;
  let d = q8_scale(i);
  return mat2x4<f32>(q8_unpack(weight[v][c]) * d, q8_unpack(weight[v][c + 1u]) * d);
}

fn weight16_scaled_i(i: u32) -> WeightScaled16 {
  let v = weight[1u + (i >> 4u)];
  let w = mat4x4<f32>(q8_unpack(v.x), q8_unpack(v.y), q8_unpack(v.z), q8_unpack(v.w));
  return WeightScaled16(w, q8_scale(i));
}

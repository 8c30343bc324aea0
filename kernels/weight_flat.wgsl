// The weight interface the kernels call, for the row-major layouts (f32, bf16, f16, q8), appended by
// kernels/sources.ts to their snippets, which read by flat element index i = row · cols + col
// (weight_at_i, weight4_i, …). A kernel asks once per row for the row's base, weight_row(row, cols), and
// then for the elements at column k of it: weight_at(rb, k), weight4(rb, k), weight8(rb, k),
// weight16_scaled(rb, k) (k a multiple of 4 / 8 / 16 for the wider ones). The q4
// layout keeps rows in blocks (weight_q4.wgsl), so its base is no flat index: kernels never add rows to it.
fn weight_row(row: u32, cols: u32) -> u32 {
  return row * cols;
}

fn weight_rows4(rows: vec4<u32>, cols: u32) -> vec4<u32> {
  return rows * cols;
}

fn weight_at(rb: u32, k: u32) -> f32 {
  return weight_at_i(rb + k);
}

fn weight4(rb: u32, k: u32) -> vec4<f32> {
  return weight4_i(rb + k);
}

fn weight8(rb: u32, k: u32) -> mat2x4<f32> {
  return weight8_i(rb + k);
}

fn weight16_scaled(rb: u32, k: u32) -> WeightScaled16 {
  return weight16_scaled_i(rb + k);
}

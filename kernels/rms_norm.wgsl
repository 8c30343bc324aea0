// RMSNorm (torchtune RMSNorm): out[r, :] = x[r, :] * (1 / sqrt(mean(x[r, :]²) + eps)) * scale, in f32.
// Also serves q_norm / k_norm (rows = tokens × heads, dim = head_dim, one scale shared by the heads).
// Bindings: 0 x f32 [rows, dim] (window), 1 scale f32 [dim], 2 out f32 [rows, dim] (window; a buffer other than x), 3 params.
// Workgroups: a row per workgroup (rows_workgroup.wgsl) or per subgroup (rows_subgroup.wgsl: pipeline
// rms_norm_subgroup), appended; each of a row's lanes sums dim / lanes squares, then row_sum.
struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  x_off: u32,
  out_off: u32,
  rows_per_wg: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn row_main(row: u32, has_row: bool, lane: u32, lanes: u32) {
  let base = p.x_off + row * p.dim;
  var sum = 0.0;
  for (var d = lane; d < p.dim; d += lanes) {
    let v = x[base + d];
    sum += v * v;
  }
  let inv = 1.0 / sqrt(row_sum(sum) / f32(p.dim) + p.eps);
  if (!has_row) {
    return;
  }
  let obase = p.out_off + row * p.dim;
  for (var d = lane; d < p.dim; d += lanes) {
    out[obase + d] = x[base + d] * inv * scale[d];
  }
}

// LayerNorm (nn.LayerNorm, as torchtune's Fp32LayerNorm computes it, in f32):
//   out[r, :] = (x[r, :] − mean) / sqrt(var + eps) · weight + bias,  var = mean((x − mean)²).
// Bindings: 0 x f32 [rows, dim] (window), 1 weight f32 [dim], 2 bias f32 [dim], 3 out f32 (window; a
// buffer other than x), 4 params.
// Workgroups: a row per workgroup (rows_workgroup.wgsl) or per subgroup (rows_subgroup.wgsl: pipeline
// layer_norm_subgroup), appended; two row_sum reductions (mean, then variance).
struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  x_off: u32,
  out_off: u32,
  rows_per_wg: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

fn row_main(row: u32, has_row: bool, lane: u32, lanes: u32) {
  let base = p.x_off + row * p.dim;
  var s = 0.0;
  for (var d = lane; d < p.dim; d += lanes) {
    s += x[base + d];
  }
  let mean = row_sum(s) / f32(p.dim);
  var v = 0.0;
  for (var d = lane; d < p.dim; d += lanes) {
    let c = x[base + d] - mean;
    v += c * c;
  }
  let inv = 1.0 / sqrt(row_sum(v) / f32(p.dim) + p.eps);
  if (!has_row) {
    return;
  }
  let obase = p.out_off + row * p.dim;
  for (var d = lane; d < p.dim; d += lanes) {
    out[obase + d] = (x[base + d] - mean) * inv * weight[d] + bias[d];
  }
}

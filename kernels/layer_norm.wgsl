// LayerNorm (nn.LayerNorm, as torchtune's Fp32LayerNorm computes it, in f32):
//   out[r, :] = (x[r, :] − mean) / sqrt(var + eps) · weight + bias,  var = mean((x − mean)²).
// Bindings: 0 x f32 [rows, dim] (window), 1 weight f32 [dim], 2 bias f32 [dim], 3 out f32 (window; a
// buffer other than x), 4 params.
// Workgroups: 64 invocations per row (two reduce_sum: workgroup_reduce.wgsl, appended); rows flattened
// over x and y.
struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  x_off: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let row = wid.x + wid.y * nwg.x;
  let live = row < p.rows;
  let base = p.x_off + row * p.dim;
  var s = 0.0;
  if (live) {
    for (var d = lid; d < p.dim; d += 64u) {
      s += x[base + d];
    }
  }
  let mean = reduce_sum(lid, s) / f32(p.dim);
  var v = 0.0;
  if (live) {
    for (var d = lid; d < p.dim; d += 64u) {
      let c = x[base + d] - mean;
      v += c * c;
    }
  }
  let inv = 1.0 / sqrt(reduce_sum(lid, v) / f32(p.dim) + p.eps);
  if (!live) {
    return;
  }
  let obase = p.out_off + row * p.dim;
  for (var d = lid; d < p.dim; d += 64u) {
    out[obase + d] = (x[base + d] - mean) * inv * weight[d] + bias[d];
  }
}

// LayerNorm as layer_norm.wgsl (nn.LayerNorm, as torchtune's Fp32LayerNorm computes it, in f32):
//   out[r, :] = (x[r, :] − mean) / sqrt(var + eps) · weight + bias,  var = mean((x − mean)²),
// on adapters with subgroups: one subgroup per row, both sums reduced with subgroupAdd. No workgroup
// memory and no barrier (on llvmpipe a barrier switches between the workgroup's SIMD groups; the same
// change made RMSNorm ~3× faster there, see rms_norm_subgroup.wgsl).
// Bindings: 0 x f32 [rows, dim] (window), 1 weight f32 [dim], 2 bias f32 [dim], 3 out f32 (window; a
// buffer other than x), 4 params.
// Workgroups: 64 invocations, rows_per_wg rows each, one per subgroup (subgroup_row: subgroup_rows.wgsl,
// appended), flattened over x and y. Each lane loops 3 · dim / subgroup size times.
// No `enable subgroups;`: see rms_norm_subgroup.wgsl.
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

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(subgroup_size) sg: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  let at = subgroup_row(wid, nwg, lid, sg, p.rows_per_wg, p.rows);
  let row = at.row;
  let base = p.x_off + row * p.dim;
  var s = 0.0;
  for (var d = sid; d < p.dim; d += sg) {
    s += x[base + d];
  }
  let mean = subgroupAdd(s) / f32(p.dim);
  var v = 0.0;
  for (var d = sid; d < p.dim; d += sg) {
    let c = x[base + d] - mean;
    v += c * c;
  }
  let inv = 1.0 / sqrt(subgroupAdd(v) / f32(p.dim) + p.eps);
  if (!at.has_row) {
    return;
  }
  let obase = p.out_off + row * p.dim;
  for (var d = sid; d < p.dim; d += sg) {
    out[obase + d] = (x[base + d] - mean) * inv * weight[d] + bias[d];
  }
}

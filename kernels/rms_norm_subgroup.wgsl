// RMSNorm as rms_norm.wgsl (out[r, :] = x[r, :] * (1 / sqrt(mean(x[r, :]²) + eps)) * scale, in f32), on
// adapters with subgroups: one subgroup per row, the sum of squares reduced with subgroupAdd. No
// workgroup memory and no barrier; on llvmpipe 8 rows share a workgroup instead of one (its
// workgroups and barriers cost more than the arithmetic of a 1,024-wide row).
// Bindings: 0 x f32 [rows, dim] (window), 1 scale f32 [dim], 2 out f32 [rows, dim] (window; a buffer other than x), 3 params.
// Workgroups: 64 invocations, rows_per_wg rows each, one per subgroup (subgroup_row: subgroup_rows.wgsl,
// appended), flattened over x and y. Each lane loops 2 · dim / subgroup size times.
// `enable subgroups;` is not written here: the pipeline cache starts the module with it where the WGSL
// compiler takes it (Gpu.subgroupDirective); the Naga of Deno 2.9 rejects the directive ("not yet
// supported") and takes the builtins on the device's `subgroups` feature alone.
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
  var sum = 0.0;
  for (var d = sid; d < p.dim; d += sg) {
    let v = x[base + d];
    sum += v * v;
  }
  let total = subgroupAdd(sum);
  let inv = 1.0 / sqrt(total / f32(p.dim) + p.eps);
  if (!at.has_row) {
    return;
  }
  let obase = p.out_off + row * p.dim;
  for (var d = sid; d < p.dim; d += sg) {
    out[obase + d] = x[base + d] * inv * scale[d];
  }
}

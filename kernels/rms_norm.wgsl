// RMSNorm (torchtune RMSNorm): out[r, :] = x[r, :] * (1 / sqrt(mean(x[r, :]²) + eps)) * scale, in f32.
// Also serves q_norm / k_norm (rows = tokens × heads, dim = head_dim, one scale shared by the heads).
// Bindings: 0 x f32 [rows, dim] (window), 1 scale f32 [dim], 2 out f32 [rows, dim] (window; a buffer other than x), 3 params.
// Workgroups: 64 invocations per row; each sums dim/64 squares, then reduce_sum (workgroup_reduce.wgsl,
// appended). Rows are flattened over the x and y workgroup grid.
struct Params {
  rows: u32,
  dim: u32,
  eps: f32,
  x_off: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> scale: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

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
  var sum = 0.0;
  if (live) {
    for (var d = lid; d < p.dim; d += 64u) {
      let v = x[base + d];
      sum += v * v;
    }
  }
  let total = reduce_sum(lid, sum);
  if (!live) {
    return;
  }
  let inv = 1.0 / sqrt(total / f32(p.dim) + p.eps);
  let obase = p.out_off + row * p.dim;
  for (var d = lid; d < p.dim; d += 64u) {
    out[obase + d] = x[base + d] * inv * scale[d];
  }
}

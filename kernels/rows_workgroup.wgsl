// How a row kernel (rms_norm.wgsl, layer_norm.wgsl, softmax_rows.wgsl) runs without subgroups, appended
// to it with workgroup_reduce.wgsl by kernels/sources.ts: a workgroup of WG invocations per row, rows
// flattened over the x and y workgroup grid, and row_sum / row_max as tree reductions in workgroup memory.
// The kernel defines Params (with `rows`) as `p` and row_main(row, has_row, lane, lanes): lane of lanes
// invocations sharing the row. Workgroups past the last row work on the last row and must store nothing
// (has_row false); every invocation reaches the reductions (they hold barriers), so none returns before.
// rows_subgroup.wgsl is the same interface with a subgroup per row.
const WG: u32 = 64u;

// This invocation's index in its workgroup, for the reductions.
var<private> row_lane: u32;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  row_lane = lid;
  let row = wid.x + wid.y * nwg.x;
  row_main(min(row, p.rows - 1u), row < p.rows, lid, WG);
}

fn row_sum(v: f32) -> f32 {
  return reduce_sum(row_lane, v);
}

fn row_max(v: f32) -> f32 {
  return reduce_max(row_lane, v);
}

// How a row kernel (rms_norm.wgsl, layer_norm.wgsl, softmax_rows.wgsl) runs on adapters with subgroups,
// appended to it by kernels/sources.ts: a subgroup per row, row_sum / row_max as subgroupAdd /
// subgroupMax, no workgroup memory and no barrier. On llvmpipe a barrier switches between the
// workgroup's 8 SIMD groups, and a workgroup per row left SIMD groups idle on short rows (bench_small
// prefill, same run: softmax 112 → 38 ms, RMSNorm 55 → 17 ms).
// Workgroup w (flattened over x and y) takes rows w · rows_per_wg … + rows_per_wg − 1 (`p.rows_per_wg` =
// 64 / the largest subgroup size: ops.ts rowsPerWorkgroup), one per subgroup of consecutive invocations
// (Gpu.acquire's probe checks that layout). A subgroup without a row (past rows_per_wg when subgroups come
// smaller, or past the last row) works on the last row and must store nothing (has_row false): subgroup
// operations must be reached by every lane, so no lane returns before them. Same interface as
// rows_workgroup.wgsl. No `enable subgroups;` here: the pipeline cache puts it in front where the WGSL
// compiler takes it (Gpu.subgroupDirective); the Naga of Deno 2.9 rejects the directive ("not yet
// supported") and takes the builtins on the device's `subgroups` feature alone.
@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(subgroup_size) sg: u32,
  @builtin(subgroup_invocation_id) sid: u32,
) {
  let sub = lid / sg;
  let row = (wid.x + wid.y * nwg.x) * p.rows_per_wg + sub;
  row_main(min(row, p.rows - 1u), sub < p.rows_per_wg && row < p.rows, sid, sg);
}

fn row_sum(v: f32) -> f32 {
  return subgroupAdd(v);
}

fn row_max(v: f32) -> f32 {
  return subgroupMax(v);
}

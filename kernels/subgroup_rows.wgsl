// Which row a subgroup works on in the row kernels that reduce within a subgroup (rms_norm_subgroup.wgsl,
// layer_norm_subgroup.wgsl, softmax_rows_subgroup.wgsl), appended to them by kernels/sources.ts.
// Workgroup w (flattened over x and y) takes rows w · rows_per_wg … + rows_per_wg − 1, one per subgroup of
// consecutive invocations (rows_per_wg = 64 / the largest subgroup size: ops.ts rowsPerWorkgroup). A
// subgroup without a row (past rows_per_wg when subgroups come smaller, or past the last row) works on the
// last row and must store nothing (has_row false): subgroup operations must be reached by every lane
// (uniform control flow), so no lane returns before them.
struct SubgroupRow {
  row: u32,
  has_row: bool,
}

fn subgroup_row(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg: u32, rows_per_wg: u32, rows: u32) -> SubgroupRow {
  let sub = lid / sg;
  let wanted = (wid.x + wid.y * nwg.x) * rows_per_wg + sub;
  return SubgroupRow(min(wanted, rows - 1u), sub < rows_per_wg && wanted < rows);
}

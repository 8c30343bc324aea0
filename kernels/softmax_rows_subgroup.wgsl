// Row-wise softmax in place of scaled scores, as softmax_rows.wgsl (same rows, masks and padding), on
// adapters with subgroups: one subgroup per row, reduced with subgroupMax / subgroupAdd. No workgroup
// memory and no barrier: on llvmpipe a barrier switches between the workgroup's 8 SIMD groups, and the
// workgroup-per-row layout ran 8 SIMD groups on rows of 128 keys (self-attention) with half idle.
// Masks: attention_mask.wgsl (appended).
// Bindings: 0 x vec4<f32> [rows, stride / 4] (window, read-write; x_off and stride multiples of 4),
// 1 mask bits (window), 2 params.
// Workgroups: 64 invocations, rows_per_wg rows each, one per subgroup (subgroup_row: subgroup_rows.wgsl,
// appended), flattened over x and y. Each lane takes 4 keys at a time and loops
// 3 · stride / (4 · subgroup size) times. No `enable subgroups;`: see rms_norm_subgroup.wgsl.
struct Params {
  rows: u32,
  cols: u32,
  stride: u32,
  scale: f32,
  x_off: u32,
  mask_mode: u32,
  mask_words: u32,
  mask_off: u32,
  q0: u32,
  head_rows: u32,
  rows_per_wg: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const NEG: f32 = -3.0e38;

// Which of keys j..j+3 row r (query position qi) attends to: allowed and not padding.
fn keys4(r: u32, qi: u32, j: u32) -> vec4<bool> {
  return allowed4(r, qi, j) & (vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.cols));
}

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
  let r = row % p.head_rows;
  let base = (p.x_off + row * p.stride) / 4u;
  let n4 = p.stride / 4u;
  var m = NEG;
  for (var c = sid; 4u * c < p.cols; c += sg) {
    let v = select(vec4<f32>(NEG), x[base + c] * p.scale, keys4(r, p.q0 + r, 4u * c));
    m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
  }
  let mx = subgroupMax(m);
  var sum = 0.0;
  // Masked keys and padding become 0 here, so the last pass only scales.
  for (var c = sid; c < n4; c += sg) {
    var e = vec4<f32>(0.0);
    if (4u * c < p.cols) {
      e = select(vec4<f32>(0.0), exp(x[base + c] * p.scale - mx), keys4(r, p.q0 + r, 4u * c));
    }
    if (at.has_row) {
      x[base + c] = e;
    }
    sum += (e.x + e.y) + (e.z + e.w);
  }
  let total = subgroupAdd(sum);
  // No allowed key: every e is 0, and so is the row.
  let inv = select(0.0, 1.0 / total, total > 0.0);
  if (!at.has_row) {
    return;
  }
  for (var c = sid; c < n4; c += sg) {
    x[base + c] *= inv;
  }
}

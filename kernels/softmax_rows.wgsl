// Row-wise softmax in place of scaled scores, for attention run as matrix products:
//   x[r, j] = exp(scale·x[r, j] − max) / Σ  for allowed j < cols;  x[r, j] = 0 for masked keys and for
//   cols ≤ j < stride (padding); a row with no allowed key is all 0 (as the attention kernels give).
// Rows are head_rows queries of each head in turn (attention's heads batched: ops.ts attentionByMatmul):
// row r is query r % head_rows, at position q0 + r % head_rows, with that query's mask row.
// Masks: attention_mask.wgsl (appended).
// Bindings: 0 x vec4<f32> [rows, stride / 4] (window, read-write; x_off and stride multiples of 4),
// 1 mask bits (window), 2 params.
// Workgroups: a row per workgroup (rows_workgroup.wgsl) or per subgroup (rows_subgroup.wgsl: pipeline
// softmax_rows_subgroup), appended; each lane takes 4 keys at a time (CPU adapters load lane by lane: one
// vec4 load costs little more than one f32 load) and loops 3 · stride / (4 · lanes) times.
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

fn row_main(row: u32, has_row: bool, lane: u32, lanes: u32) {
  let r = row % p.head_rows;
  let base = (p.x_off + row * p.stride) / 4u;
  let n4 = p.stride / 4u;
  var m = NEG;
  for (var c = lane; 4u * c < p.cols; c += lanes) {
    let v = select(vec4<f32>(NEG), x[base + c] * p.scale, keys4(r, p.q0 + r, 4u * c));
    m = max(m, max(max(v.x, v.y), max(v.z, v.w)));
  }
  let mx = row_max(m);
  var sum = 0.0;
  // Masked keys and padding become 0 here, so the last pass only scales.
  for (var c = lane; c < n4; c += lanes) {
    var e = vec4<f32>(0.0);
    if (4u * c < p.cols) {
      e = select(vec4<f32>(0.0), exp(x[base + c] * p.scale - mx), keys4(r, p.q0 + r, 4u * c));
    }
    if (has_row) {
      x[base + c] = e;
    }
    sum += (e.x + e.y) + (e.z + e.w);
  }
  let total = row_sum(sum);
  // No allowed key: every e is 0, and so is the row.
  let inv = select(0.0, 1.0 / total, total > 0.0);
  if (!has_row) {
    return;
  }
  for (var c = lane; c < n4; c += lanes) {
    x[base + c] *= inv;
  }
}

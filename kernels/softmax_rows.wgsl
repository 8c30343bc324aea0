// Row-wise softmax in place of scaled scores, for attention run as matrix products:
//   x[r, j] = exp(scale·x[r, j] − max) / Σ  for allowed j < cols;  x[r, j] = 0 for masked keys and for
//   cols ≤ j < stride (padding); a row with no allowed key is all 0 (as the attention kernels give).
// Masks: attention_mask.wgsl (appended), the query position of row r being q0 + r.
// Bindings: 0 x f32 [rows, stride] (window, read-write), 1 mask bits (window), 2 params.
// Workgroups: 64 invocations per row (reduce_max and reduce_sum: workgroup_reduce.wgsl, appended), rows
// flattened over x and y; each invocation loops 3 · cols / 64 times.
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
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 64u;

const NEG: f32 = -3.0e38;

@compute @workgroup_size(64)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
  @builtin(num_workgroups) nwg: vec3<u32>,
) {
  let row = wid.x + wid.y * nwg.x;
  let live = row < p.rows;
  let base = p.x_off + row * p.stride;
  var m = NEG;
  if (live) {
    for (var j = lid; j < p.cols; j += 64u) {
      if (allowed(row, p.q0 + row, j)) {
        m = max(m, x[base + j] * p.scale);
      }
    }
  }
  let mx = reduce_max(lid, m);
  var sum = 0.0;
  if (live) {
    for (var j = lid; j < p.cols; j += 64u) {
      var e = 0.0;
      if (allowed(row, p.q0 + row, j)) {
        e = exp(x[base + j] * p.scale - mx);
      }
      x[base + j] = e;
      sum += e;
    }
  }
  let total = reduce_sum(lid, sum);
  // No allowed key: every e is 0, and so is the row.
  let inv = select(0.0, 1.0 / total, total > 0.0);
  if (!live) {
    return;
  }
  for (var j = lid; j < p.stride; j += 64u) {
    if (j < p.cols) {
      x[base + j] *= inv;
    } else {
      x[base + j] = 0.0;
    }
  }
}

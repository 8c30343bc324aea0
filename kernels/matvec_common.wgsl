// What matvec.wgsl, matvec_q8.wgsl and matvec_q4.wgsl share, appended to them by kernels/sources.ts:
// the parameters, bindings 1…6, the invocation's weight rows and the stores. Each invocation owns 8
// consecutive output rows n_base…n_base+7 of one token m.
// Bindings: 1 x vec4<f32> [M, K/4] (window), 2 out f32 [M, out_stride] (window), 3 bias f32 [out_stride]
// (unused when has_bias = 0), 4 out_b f32 [M, stride_b], 5 out_c f32 [M, stride_c]; then the parameters
// p (Params), declared by the kernel: binding 6 in matvec.wgsl, 8 in the int8 kernels, whose bindings 6
// and 7 are SwiGLU's up and the RMSNorm scale (quantize_act_q8.wgsl; swiglu, up_off, norm and norm_eps
// are theirs).
// With accumulate = 1 the result is added to out (a residual connection folded into the projection).
// w_row0: the chunk's first row within its buffer (a weight sharing its buffer with others, see
// WeightStorage.slice).
// Split outputs (q, k and v, or w1 and w3, as one weight): weight rows from split_b go to out_b and from
// split_c to out_c (row split_b is column 0 of out_b); unsplit products set both past the last row.
struct Params {
  M: u32,
  K: u32,
  rows: u32,
  out_stride: u32,
  n0: u32,
  x_off: u32,
  out_off: u32,
  has_bias: u32,
  accumulate: u32,
  w_row0: u32,
  split_b: u32,
  split_c: u32,
  stride_b: u32,
  stride_c: u32,
  wg_rows: u32,
  swiglu: u32,
  up_off: u32,
  norm: u32,
  norm_eps: f32,
}

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out_b: array<f32>;
@group(0) @binding(5) var<storage, read_write> out_c: array<f32>;

// The first output row of invocation lid of workgroup wx: each workgroup owns wg_rows rows (a multiple of
// 8, at most 512), so that the host can even out the work of the workgroups (ops.ts matvecWorkgroupRows);
// invocations past them get p.rows (no rows).
fn matvec_base(wx: u32, lid: u32) -> u32 {
  return select(p.rows, wx * p.wg_rows + lid * 8u, lid * 8u < p.wg_rows);
}

// The buffer rows of output rows n_base…n_base+3 (a) and n_base+4…n_base+7 (b); past the last row, the
// last row again (its products are not stored).
struct MatvecRows {
  a: vec4<u32>,
  b: vec4<u32>,
}

fn matvec_rows(n_base: u32) -> MatvecRows {
  let last = vec4<u32>(p.rows - 1u);
  return MatvecRows(
    min(vec4<u32>(n_base) + vec4<u32>(0u, 1u, 2u, 3u), last) + p.w_row0,
    min(vec4<u32>(n_base) + vec4<u32>(4u, 5u, 6u, 7u), last) + p.w_row0,
  );
}

// Stores the results of rows n_base…n_base+7 (acc_a: the first four) of token m: into out (plus bias, or
// added), or past a split point into out_b / out_c.
fn matvec_store(m: u32, n_base: u32, acc_a: vec4<f32>, acc_b: vec4<f32>) {
  let n_valid = min(8u, p.rows - n_base);
  let row = p.out_off + m * p.out_stride + p.n0 + n_base;
  for (var j = 0u; j < n_valid; j++) {
    let y = select(acc_b[j & 3u], acc_a[j & 3u], j < 4u);
    let g = p.n0 + n_base + j;
    if (g >= p.split_c) {
      out_c[m * p.stride_c + g - p.split_c] = y;
    } else if (g >= p.split_b) {
      out_b[m * p.stride_b + g - p.split_b] = y;
    } else {
      var bv = 0.0;
      if (p.has_bias != 0u) {
        bv = bias[g];
      }
      out[row + j] = y + bv + select(0.0, out[row + j], p.accumulate != 0u);
    }
  }
}

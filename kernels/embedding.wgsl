// Embedding gather for one row-chunk of a table (FusionEmbedding: the base table's chunks and the
// fusion table are separate dispatches). out[t, e] = table[tokens[t] - row_start, e] for tokens whose
// id falls in [row_start, row_start + row_count); other tokens are left to the other dispatches.
// Bindings: 0 weight (snippet), 1 tokens i32 [T] (window), 2 out f32 [T, dim] (window), 3 params.
// Workgroups: 64 invocations, one per output element, grid flattened over x and y.
struct Params {
  n_tokens: u32,
  dim: u32,
  row_start: u32,
  row_count: u32,
  out_off: u32,
  tok_off: u32,
}

@group(0) @binding(1) var<storage, read> tokens: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n_tokens * p.dim) {
    return;
  }
  let t = i / p.dim;
  let e = i % p.dim;
  let row = tokens[p.tok_off + t] - i32(p.row_start);
  if (row < 0 || row >= i32(p.row_count)) {
    return;
  }
  out[p.out_off + i] = weight_at(weight_row(u32(row), p.dim), e);
}

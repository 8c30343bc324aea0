// Token assembly and position embeddings of one tile of torchtune's VisionTransformer:
//   token 0 = CLS, token t > 0 = patch t−1 (+ pre-tile embedding E_pre[k//w, k%w] · tanh(g_pre) on real
//   tiles); then every token + local[t] · (1 − tanh(g)) and, on real tiles, + global[k//w, k%w][t] · tanh(g).
//   (With max_num_tiles = 1 there is no tiling: an ungated local embedding only, `tiled` = 0.)
// Bindings: 0 patches f32 [g², D] of this tile (window), 1 cls f32 [D], 2 local f32 [n_tok, D],
// 3 global row f32 [n_tok, D] (window), 4 pre-tile row f32 [D] (window), 5 gates f32 [2] (token gate,
// pre-tile gate), 6 out f32 [n_tok, D] (window), 7 params.
// Workgroups: 64 invocations, one per output element, grid flattened over x and y.
struct Params {
  n_tok: u32,
  dim: u32,
  real: u32,
  tiled: u32,
  patch_off: u32,
  global_off: u32,
  pre_off: u32,
  out_off: u32,
}

@group(0) @binding(0) var<storage, read> patches: array<f32>;
@group(0) @binding(1) var<storage, read> cls: array<f32>;
@group(0) @binding(2) var<storage, read> local: array<f32>;
@group(0) @binding(3) var<storage, read> global_row: array<f32>;
@group(0) @binding(4) var<storage, read> pre_row: array<f32>;
@group(0) @binding(5) var<storage, read> gates: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n_tok * p.dim) {
    return;
  }
  let t = i / p.dim;
  let d = i % p.dim;
  var v: f32;
  if (t == 0u) {
    v = cls[d];
  } else {
    v = patches[p.patch_off + (t - 1u) * p.dim + d];
    if (p.tiled != 0u && p.real != 0u) {
      v += pre_row[p.pre_off + d] * tanh(gates[1]);
    }
  }
  if (p.tiled != 0u) {
    let g = tanh(gates[0]);
    v += local[i] * (1.0 - g);
    if (p.real != 0u) {
      v += global_row[p.global_off + i] * g;
    }
  } else {
    v += local[i];
  }
  out[p.out_off + i] = v;
}

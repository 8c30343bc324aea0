// Patch extraction for the CLIP patch embedding (a Conv2d with kernel = stride = patch, as a matmul):
// images [n, C, T, T] → patches [n · g², C · P · P], patch index row·g + col (row-major), features in
// the conv weight's order (c, py, px), so that patches · conv_weightᵀ is the convolution.
// Bindings: 0 images f32 [n, C, T, T] (window), 1 patches f32 (window), 2 params.
// Workgroups: 64 invocations, one per output element, grid flattened over x and y.
struct Params {
  n_images: u32,
  channels: u32,
  tile: u32,
  patch_size: u32,
  out_off: u32,
  in_off: u32,
}

@group(0) @binding(0) var<storage, read> images: array<f32>;
@group(0) @binding(1) var<storage, read_write> patches: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  let g = p.tile / p.patch_size;
  let feat = p.channels * p.patch_size * p.patch_size;
  if (i >= p.n_images * g * g * feat) {
    return;
  }
  let f = i % feat;
  let row = i / feat;
  let img = row / (g * g);
  let pidx = row % (g * g);
  let c = f / (p.patch_size * p.patch_size);
  let py = (f / p.patch_size) % p.patch_size;
  let px = f % p.patch_size;
  let y = (pidx / g) * p.patch_size + py;
  let xx = (pidx % g) * p.patch_size + px;
  patches[p.out_off + i] = images[p.in_off + ((img * p.channels + c) * p.tile + y) * p.tile + xx];
}

// Exact GELU in place (nn.GELU(), approximate="none"): x · Φ(x) = 0.5 · x · erfc(−x / √2).
// WGSL has no erf: erfc by Numerical Recipes' Chebyshev fit (relative error < 1.2e-7 everywhere),
// which keeps the relative error small also for negative x, where 1 + erf(x/√2) would cancel.
// Bindings: 0 x f32 (window, read-write), 1 params.
// Workgroups: 64 invocations, one per element, grid flattened over x and y.
struct Params {
  n: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

fn erfc(v: f32) -> f32 {
  let z = abs(v);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(
    -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
      t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
  );
  return select(2.0 - r, r, v >= 0.0);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * 64u;
  if (i >= p.n) {
    return;
  }
  let v = x[p.x_off + i];
  x[p.x_off + i] = 0.5 * v * erfc(-v * 0.70710678118654752);
}

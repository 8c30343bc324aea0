// Activations to int8 for matvec_q8.wgsl: each group of 32 values of a row of x gets one f32 scale
// s = max|x| / 127 and values q = round(x / s) in −127…127, packed four per u32 (value k in byte k % 4,
// two's complement), the layout of the q8 weights, so a product of the two is dot4I8Packed per word.
// out_q[m, k / 4] packs x[m, k..k+3]; out_s[m, g] is group g's scale (0 for an all-zero group).
// Bindings: 0 x vec4<f32> [M, K/4] (window), 1 out_q vec4<u32> [M, K/16], 2 out_s f32 [M, K/32], 3 params.
// Workgroups: 64 invocations, one group of 32 values each; flat over the x and y workgroup grid.
struct Params {
  M: u32,
  K: u32,
  x_off: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out_q: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out_s: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

fn pack(v: vec4<f32>, inv: f32) -> u32 {
  let q = vec4<u32>(bitcast<vec4<u32>>(vec4<i32>(round(v * inv)))) & vec4<u32>(0xffu);
  return q.x | (q.y << 8u) | (q.z << 16u) | (q.w << 24u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let groups = p.K / 32u;
  let idx = gid.x + gid.y * nwg.x * 64u;
  if (idx >= p.M * groups) {
    return;
  }
  let m = idx / groups;
  let g = idx % groups;
  let base = (p.x_off + m * p.K + g * 32u) / 4u;
  var v: array<vec4<f32>, 8>;
  var amax = vec4<f32>(0.0);
  for (var i = 0u; i < 8u; i++) {
    v[i] = x[base + i];
    amax = max(amax, abs(v[i]));
  }
  let mx = max(max(amax.x, amax.y), max(amax.z, amax.w));
  let s = mx / 127.0;
  let inv = select(0.0, 127.0 / mx, mx > 0.0);
  out_s[idx] = s;
  let ob = (m * p.K + g * 32u) / 16u;
  out_q[ob] = vec4<u32>(pack(v[0], inv), pack(v[1], inv), pack(v[2], inv), pack(v[3], inv));
  out_q[ob + 1u] = vec4<u32>(pack(v[4], inv), pack(v[5], inv), pack(v[6], inv), pack(v[7], inv));
}

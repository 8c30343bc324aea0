// Streaming read (the memory roofline of the adapter, for benchmarks): each invocation sums a strided
// slice of a large buffer as vec4s and writes one value, so the kernel's time is the time to read the
// buffer once. out[i] = Σ_j data[i + j · stride] (vec4 components summed).
// Bindings: 0 data vec4<f32> (window), 1 out f32 [invocations], 2 params.
// Workgroups: 256 invocations; each loops n_vec4 / total_invocations times.
struct Params {
  n_vec4: u32,
  stride: u32,
}

@group(0) @binding(0) var<storage, read> data: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var acc = vec4<f32>(0.0);
  for (var j = gid.x; j < p.n_vec4; j += p.stride) {
    acc += data[j];
  }
  out[gid.x] = acc.x + acc.y + acc.z + acc.w;
}

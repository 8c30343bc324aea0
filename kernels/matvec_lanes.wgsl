// How matvec.wgsl runs without subgroups, appended to it by kernels/sources.ts: every invocation loads
// its step's activations itself (x[i … i+3] as vec4, from vec4 index i), and leaves at once if it has no
// rows.
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  matvec_main(wid, lid, lid);
}

fn acts16(i: u32) -> mat4x4<f32> {
  return mat4x4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

fn acts8(i: u32) -> mat2x4<f32> {
  return mat2x4<f32>(x[i], x[i + 1u]);
}

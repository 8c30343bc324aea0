// Tree reductions over the WG invocations of one workgroup, appended by kernels/sources.ts to the kernels
// that use them; the kernel defines `const WG: u32` (a power of two, its workgroup size). Every
// invocation passes its value and gets the result; all must call, in uniform control flow. Each ends with
// a barrier, so the scratch arrays can be reused at once.
var<workgroup> red_f: array<f32, WG>;
var<workgroup> red_u: array<u32, WG>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_f[lid] += red_f[lid + s];
    }
    workgroupBarrier();
  }
  let r = red_f[0];
  workgroupBarrier();
  return r;
}

fn reduce_max(lid: u32, v: f32) -> f32 {
  red_f[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      red_f[lid] = max(red_f[lid], red_f[lid + s]);
    }
    workgroupBarrier();
  }
  let r = red_f[0];
  workgroupBarrier();
  return r;
}

// Argmax over (score, index): the larger score wins, then the smaller index.
fn reduce_argmax(lid: u32, score: f32, idx: u32) -> u32 {
  red_f[lid] = score;
  red_u[lid] = idx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let a = red_f[lid];
      let b = red_f[lid + s];
      if (b > a || (b == a && red_u[lid + s] < red_u[lid])) {
        red_f[lid] = b;
        red_u[lid] = red_u[lid + s];
      }
    }
    workgroupBarrier();
  }
  let r = red_u[0];
  workgroupBarrier();
  return r;
}

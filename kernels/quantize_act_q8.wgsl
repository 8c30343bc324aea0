// Activations to int8 inside matvec_q8.wgsl / matvec_q4.wgsl (appended to them by sources.ts): each
// workgroup quantizes its token's row of x into workgroup memory before its products, so decoding needs
// no extra dispatch per projection (41 per bench_small step, ~2.5 ms on llvmpipe, as a separate kernel).
// Each group of 32 values gets one f32 scale s = max|x| / 127 and values q = round(x / s) in −127…127,
// packed four per u32 (value k in byte k % 4, two's complement): the layout of the q8 weights.
// Folded into it, one dispatch fewer each (what the row quantized is instead of x):
// - p.swiglu = 1: silu(x) ⊙ up, the SwiGLU of torchtune FeedForward as swiglu.wgsl computes it (the down
//   projection takes w1 x and w3 x as they are);
// - p.norm = 1: RMSNorm(x) = x / sqrt(mean(x²) + norm_eps) ⊙ norm_w, as rms_norm.wgsl computes it (the
//   projections after sa_norm and mlp_norm take the residual stream as it is).
// Needs the kernel's `x: array<vec4<f32>>` binding and K ≤ 14336 (ops.ts MAX_INT8_K; 16,128 bytes of
// workgroup memory, within WebGPU's guaranteed 16,384). Declares binding 6, up vec4<f32> [M, K/4]
// (window; unused when swiglu = 0), binding 7, norm_w vec4<f32> [K/4] (the RMSNorm scale; unused when
// norm = 0), and binding 8, the parameters (matvec_common.wgsl's Params).
@group(0) @binding(6) var<storage, read> up: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> norm_w: array<vec4<f32>>;
@group(0) @binding(8) var<uniform> p: Params;

var<workgroup> act_q: array<vec4<u32>, 896>;
var<workgroup> act_s: array<f32, 448>;

fn pack_int8(v: vec4<f32>, inv: f32) -> u32 {
  let q = bitcast<vec4<u32>>(vec4<i32>(round(v * inv))) & vec4<u32>(0xffu);
  return q.x | (q.y << 8u) | (q.z << 16u) | (q.w << 24u);
}

// Four values of the row: x[i]; with p.swiglu = 1, silu(x[i]) ⊙ up[i − base4 + up4]; with p.norm = 1,
// x[i] · inv_rms ⊙ norm_w[i − base4].
fn act_in(i: u32, base4: u32, up4: u32, inv_rms: f32) -> vec4<f32> {
  let a = x[i];
  if (p.norm != 0u) {
    return a * inv_rms * norm_w[i - base4];
  }
  if (p.swiglu == 0u) {
    return a;
  }
  return a / (vec4<f32>(1.0) + exp(-a)) * up[i - base4 + up4];
}

// 1 / sqrt(mean(x²) + norm_eps) over x[base4 .. base4 + K/4), summed by the whole workgroup in act_s
// (free until quantize_activations writes the scales): workgroup_reduce.wgsl's arrays would take these
// kernels past the 16,384 bytes of workgroup memory WebGPU guarantees.
fn inverse_rms(base4: u32, K: u32, lid: u32) -> f32 {
  var ss = 0.0;
  for (var i = lid; i < K / 4u; i += 64u) {
    let v = x[base4 + i];
    ss += dot(v, v);
  }
  act_s[lid] = ss;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s >>= 1u) {
    if (lid < s) {
      act_s[lid] += act_s[lid + s];
    }
    workgroupBarrier();
  }
  let total = act_s[0];
  workgroupBarrier();
  return 1.0 / sqrt(total / f32(K) + p.norm_eps);
}

// Quantizes token m's row of x (p.x_off + m · K as a flat index; with swiglu, up's from p.up_off) into
// act_q / act_s; call from uniform control flow (it ends with a barrier), with lid the local invocation
// index of a 64-wide workgroup.
fn quantize_activations(m: u32, lid: u32) {
  let K = p.K;
  let base4 = (p.x_off + m * K) / 4u;
  let up4 = (p.up_off + m * K) / 4u;
  var inv_rms = 1.0;
  if (p.norm != 0u) {
    inv_rms = inverse_rms(base4, K, lid);
  }
  for (var g = lid; g < K / 32u; g += 64u) {
    let b = base4 + 8u * g;
    var v: array<vec4<f32>, 8>;
    var amax = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
      v[i] = act_in(b + i, base4, up4, inv_rms);
      amax = max(amax, abs(v[i]));
    }
    let mx = max(max(amax.x, amax.y), max(amax.z, amax.w));
    act_s[g] = mx / 127.0;
    let inv = select(0.0, 127.0 / mx, mx > 0.0);
    act_q[2u * g] = vec4<u32>(
      pack_int8(v[0], inv),
      pack_int8(v[1], inv),
      pack_int8(v[2], inv),
      pack_int8(v[3], inv),
    );
    act_q[2u * g + 1u] = vec4<u32>(
      pack_int8(v[4], inv),
      pack_int8(v[5], inv),
      pack_int8(v[6], inv),
      pack_int8(v[7], inv),
    );
  }
  workgroupBarrier();
}

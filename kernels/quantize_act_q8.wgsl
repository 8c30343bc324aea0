// Activations to int8 inside matvec_q8.wgsl / matvec_q4.wgsl (appended to them by sources.ts): each
// workgroup quantizes its token's row of x into workgroup memory before its products, so decoding needs
// no extra dispatch per projection (41 per bench_small step, ~2.5 ms on llvmpipe, as a separate kernel).
// Each group of 32 values gets one f32 scale s = max|x| / 127 and values q = round(x / s) in −127…127,
// packed four per u32 (value k in byte k % 4, two's complement): the layout of the q8 weights.
// Needs the kernel's `x: array<vec4<f32>>` binding and K ≤ 14336 (ops.ts MAX_INT8_K; 16,128 bytes of
// workgroup memory, within WebGPU's guaranteed 16,384).
var<workgroup> act_q: array<vec4<u32>, 896>;
var<workgroup> act_s: array<f32, 448>;

fn pack_int8(v: vec4<f32>, inv: f32) -> u32 {
  let q = bitcast<vec4<u32>>(vec4<i32>(round(v * inv))) & vec4<u32>(0xffu);
  return q.x | (q.y << 8u) | (q.z << 16u) | (q.w << 24u);
}

// Quantizes x[base4 .. base4 + K/4) (vec4 index) into act_q / act_s; call from uniform control flow
// (it ends with a barrier), with lid the local invocation index of a 64-wide workgroup.
fn quantize_activations(base4: u32, K: u32, lid: u32) {
  for (var g = lid; g < K / 32u; g += 64u) {
    var amax = vec4<f32>(0.0);
    for (var i = 0u; i < 8u; i++) {
      amax = max(amax, abs(x[base4 + 8u * g + i]));
    }
    let mx = max(max(amax.x, amax.y), max(amax.z, amax.w));
    act_s[g] = mx / 127.0;
    let inv = select(0.0, 127.0 / mx, mx > 0.0);
    let b = base4 + 8u * g;
    act_q[2u * g] = vec4<u32>(
      pack_int8(x[b], inv),
      pack_int8(x[b + 1u], inv),
      pack_int8(x[b + 2u], inv),
      pack_int8(x[b + 3u], inv),
    );
    act_q[2u * g + 1u] = vec4<u32>(
      pack_int8(x[b + 4u], inv),
      pack_int8(x[b + 5u], inv),
      pack_int8(x[b + 6u], inv),
      pack_int8(x[b + 7u], inv),
    );
  }
  workgroupBarrier();
}

// Greedy decoding (temperature 0 or top_k 1, see sample.wgsl): next[row] = the first index of the
// largest logit of the row. Its own kernel rather than a branch of sample.wgsl: CPU adapters run both
// sides of a branch under a mask, so the sampler's ~60 barriers cost a greedy step about 1.3 ms there.
// Bindings: 0 logits f32 [rows, V] (window), 1 next i32 [rows] (the next step's input tokens, also
// what the host reads back), 2 params.
// Workgroups: 256 invocations per row (workgroup x = row), each visiting V/256 logits (≈ 500 loop
// iterations for V = 128,256), then reduce_argmax (workgroup_reduce.wgsl, appended).
struct Params {
  vocab: u32,
  logits_off: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> next: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  let base = p.logits_off + row * p.vocab;
  var best = -3.0e38;
  var best_i = 0xffffffffu;
  for (var j = lid; j < p.vocab; j += WG) {
    let v = logits[base + j];
    if (v > best) {
      best = v;
      best_i = j;
    }
  }
  let token = reduce_argmax(lid, best, best_i);
  if (lid == 0u) {
    next[row] = i32(token);
  }
}

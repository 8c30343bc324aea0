// Token sampling on the GPU, as torchtune's generation.sample does it, plus top-p:
//   x = logits / max(temperature, 1e-5); top_k keeps x ≥ the k-th largest value (ties survive);
//   p = softmax over the kept; top_p keeps the smallest set of largest p whose mass reaches top_p
//   (ties with the last kept p survive);
//   token = argmax_j p_j / q_j with q_j ~ Exp(1) (the exponential race: a multinomial draw).
// Greedy decoding (temperature 0 or top_k 1) is argmax.wgsl. Reductions: workgroup_reduce.wgsl (appended).
// q_j = −log(u_j) with u_j from a counter-based hash of (seed, step, row, j): reproducible per seed.
// Both cuts are radix selects on an order-preserving u32 key of x, 8 bits a pass from the top: top_k
// counts logits per bin; top_p sums their probabilities per bin, in fixed point (p · 2^31, u32
// atomics: WGSL has no float atomics), so the nucleus costs 4 passes where a bisection on p took 31.
// p is monotone in x, so "the largest x cut whose mass reaches top_p" is the nucleus; the fixed-point
// mass differs from the float sum by at most V · 2^-31.
// Bindings: 0 logits f32 [rows, V] (window), 1 next i32 [rows] (the next step's input tokens, also
// what the host reads back), 2 params.
// Workgroups: 256 invocations per row (workgroup x = row). Each invocation visits V/256 logits per
// pass: 1 max pass, 4 radix passes for top_k, 1 sum pass, 4 radix passes for top_p, 1 race pass —
// about 5,500 loop iterations for V = 128,256, far under llvmpipe's 65,535 cap.
struct Params {
  vocab: u32,
  temperature: f32,
  top_k: u32,
  top_p: f32,
  seed: u32,
  step: u32,
  logits_off: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> next: array<i32>;
@group(0) @binding(2) var<uniform> p: Params;

const WG: u32 = 256u;
const NEG: f32 = -3.0e38;
// Fixed-point scale of probabilities in the top_p histogram: p · 2^31 fits a u32, and so does the sum.
const FIX: f32 = 2147483648.0;

var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> shared_u: array<u32, 2>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Order-preserving map from f32 to u32 (larger float → larger key).
fn key_of(f: f32) -> u32 {
  let b = bitcast<u32>(f);
  return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

// Radix select, 8 bits a round from the top, of the largest key t with weight(keys ≥ t) ≥ need, among
// keys ≥ floor (the earlier cut): weight 1 per logit and need = count (top_k), or its probability in
// fixed point and need = share of the total weight (top_p). need is kept in [1, total], so the chosen
// bin is never empty.
fn radix_select(lid: u32, base: u32, inv_t: f32, m: f32, sum: f32, floor: u32, count: u32, share: f32, by_mass: bool) -> u32 {
  let V = p.vocab;
  var prefix = 0u;
  var remaining = count;
  for (var round = 0u; round < 4u; round++) {
    let shift = 24u - 8u * round;
    let mask_hi = select(0xffffffffu << (shift + 8u), 0u, round == 0u);
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    for (var j = lid; j < V; j += WG) {
      let x = logits[base + j] * inv_t;
      let k = key_of(x);
      if (k >= floor && (k & mask_hi) == (prefix & mask_hi)) {
        var w = 1u;
        if (by_mass) {
          w = u32(exp(x - m) / sum * FIX);
        }
        atomicAdd(&hist[(k >> shift) & 255u], w);
      }
    }
    workgroupBarrier();
    if (lid == 0u) {
      if (by_mass && round == 0u) {
        var total = 0u;
        for (var b = 0u; b < 256u; b++) {
          total += atomicLoad(&hist[b]);
        }
        remaining = clamp(u32(share * f32(total)), 1u, total);
      }
      var acc = 0u;
      var bin = 255u;
      loop {
        let c = atomicLoad(&hist[bin]);
        if (acc + c >= remaining || bin == 0u) {
          shared_u[0] = bin;
          shared_u[1] = remaining - acc;
          break;
        }
        acc += c;
        bin -= 1u;
      }
    }
    workgroupBarrier();
    prefix = prefix | (shared_u[0] << shift);
    remaining = shared_u[1];
    workgroupBarrier();
  }
  return prefix;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  let base = p.logits_off + row * p.vocab;
  let V = p.vocab;
  let inv_t = 1.0 / max(p.temperature, 1e-5);
  var m = NEG;
  for (var j = lid; j < V; j += WG) {
    m = max(m, logits[base + j] * inv_t);
  }
  m = reduce_max(lid, m);

  // top_k: the k-th largest key.
  var cut = 0u;
  if (p.top_k > 0u && p.top_k < V) {
    cut = radix_select(lid, base, inv_t, m, 1.0, 0u, p.top_k, 0.0, false);
  }

  var sum = 0.0;
  for (var j = lid; j < V; j += WG) {
    let x = logits[base + j] * inv_t;
    if (key_of(x) >= cut) {
      sum += exp(x - m);
    }
  }
  sum = reduce_sum(lid, sum);

  // top_p: the largest key whose kept mass (keys ≥ it) reaches top_p, in fixed point.
  if (p.top_p < 1.0) {
    cut = radix_select(lid, base, inv_t, m, sum, cut, 0u, p.top_p, true);
  }

  var best = -1.0;
  var best_i = 0xffffffffu;
  for (var j = lid; j < V; j += WG) {
    let x = logits[base + j] * inv_t;
    if (key_of(x) >= cut) {
      let pj = exp(x - m) / sum;
      let h = pcg(p.seed ^ pcg(p.step ^ pcg(row ^ pcg(j))));
      let u = f32(h >> 8u) * (1.0 / 16777216.0);
      let q = -log(u);
      let score = pj / q;
      if (score > best) {
        best = score;
        best_i = j;
      }
    }
  }
  let token = reduce_argmax(lid, best, best_i);
  if (lid == 0u) {
    next[row] = i32(token);
  }
}

/**
 * Plain TypeScript references for the WGSL kernels (f64 accumulation), a seeded PRNG and a
 * tolerance check shared by the kernel tests.
 *
 * @module
 */
import assert from "node:assert/strict";

/** A seeded PRNG (mulberry32) with uniform and normal draws. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Standard normal (Box–Muller). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }
  /** `n` normal values times `scale`, as f32. */
  normals(n: number, scale = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
}

/** Random bf16 bit patterns (magnitudes 2^-7 … 2^2, random sign) and their exact f32 values. */
export function randomBf16(rng: Rng, n: number): { bits: Uint16Array; values: Float32Array } {
  const bits = new Uint16Array(n);
  const values = new Float32Array(n);
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  for (let i = 0; i < n; i++) {
    bits[i] = (rng.int(2) << 15) | ((120 + rng.int(9)) << 7) | rng.int(128);
    u32[0] = bits[i] << 16;
    values[i] = f32[0];
  }
  return { bits, values };
}

/** Random f16 bit patterns (normal numbers, magnitudes 2^-5 … 2^2, random sign) and their exact values. */
export function randomF16(rng: Rng, n: number): { bits: Uint16Array; values: Float32Array } {
  const bits = new Uint16Array(n);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const sign = rng.int(2);
    const exp = 10 + rng.int(7);
    const mant = rng.int(1024);
    bits[i] = (sign << 15) | (exp << 10) | mant;
    values[i] = (sign ? -1 : 1) * 2 ** (exp - 15) * (1 + mant / 1024);
  }
  return { bits, values };
}

/** FusionEmbedding: ids < V read `base[id]`, the others `fusion[id − V]`. */
export function embeddingRef(
  base: ArrayLike<number>,
  fusion: ArrayLike<number>,
  vocab: number,
  dim: number,
  ids: ArrayLike<number>,
): Float64Array {
  const out = new Float64Array(ids.length * dim);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    const [table, row] = id < vocab ? [base, id] : [fusion, id - vocab];
    for (let e = 0; e < dim; e++) out[t * dim + e] = table[row * dim + e];
  }
  return out;
}

/**
 * quantize_act_q8.wgsl: each group of 32 values of `x` (f32) as int8 `q = round(x · 127 / max|x|)` (ties
 * to even, as WGSL's round) times the group's scale `max|x| / 127`; returns those dequantized values.
 */
export function quantizeActivationsRef(x: Float32Array): Float32Array {
  const f = Math.fround;
  const out = new Float32Array(x.length);
  for (let g = 0; g < x.length; g += 32) {
    let mx = 0;
    for (let i = g; i < g + 32; i++) mx = Math.max(mx, Math.abs(x[i]));
    const s = f(mx / 127);
    const inv = mx > 0 ? f(127 / mx) : 0;
    for (let i = g; i < g + 32; i++) {
      const v = f(x[i] * inv);
      let q = Math.round(v);
      if (Math.abs(v % 1) === 0.5 && q % 2 !== 0) q -= 1; // Math.round takes ties up; WGSL to even
      out[i] = q * s;
    }
  }
  return out;
}

/**
 * Whether `linear` rounds its input to int8 (quantize_act_q8.wgsl) for a `dtype` weight with rows of `K`
 * and `M` tokens: decoding (fewer than 4 tokens) with q8 / q4 weights, rows of at most 14,336.
 */
export function roundsActivations(dtype: string, M: number, K: number): boolean {
  return (dtype === "q8" || dtype === "q4") && M < 4 && K % 32 === 0 && K <= 14336;
}

/** `x[M, K] · W[N, K]ᵀ`. */
export function linearRef(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  M: number,
  K: number,
  N: number,
): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[m * K + k] * w[n * K + k];
      out[m * N + n] = acc;
    }
  }
  return out;
}

/** RMSNorm over rows of `dim`. */
export function rmsNormRef(
  x: ArrayLike<number>,
  rows: number,
  dim: number,
  scale: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[r * dim + d] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d] * inv * scale[d];
  }
  return out;
}

/** Interleaved-pair RoPE of `x` `[T, H, hd]` with table `[maxSeq, hd/2, 2]` of (cos, sin). */
export function ropeRef(
  x: ArrayLike<number>,
  T: number,
  H: number,
  hd: number,
  positions: ArrayLike<number>,
  table: ArrayLike<number>,
): Float64Array {
  const out = Float64Array.from(x);
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < half; i++) {
        const c = table[(positions[t] * half + i) * 2];
        const s = table[(positions[t] * half + i) * 2 + 1];
        const j = (t * H + h) * hd + 2 * i;
        const a = x[j];
        const b = x[j + 1];
        out[j] = a * c - b * s;
        out[j + 1] = b * c + a * s;
      }
    }
  }
  return out;
}

/** Writes `src` `[b, s, nKv, hd]` into a copy of `cache` `[b, nKv, L, hd]` at slots `slot0…`. */
export function kvCacheUpdateRef(
  cache: ArrayLike<number>,
  src: ArrayLike<number>,
  b: number,
  s: number,
  nKv: number,
  hd: number,
  L: number,
  slot0: number,
): Float64Array {
  const out = Float64Array.from(cache);
  for (let bi = 0; bi < b; bi++) {
    for (let si = 0; si < s; si++) {
      for (let h = 0; h < nKv; h++) {
        for (let d = 0; d < hd; d++) {
          out[((bi * nKv + h) * L + slot0 + si) * hd + d] = src[((bi * s + si) * nKv + h) * hd + d];
        }
      }
    }
  }
  return out;
}

/**
 * SDPA with grouped-query heads (query head h reads KV head ⌊h / (nHeads / nKv)⌋), scale 1/√hd and
 * `allowed(token, key)`; a row that may see no key is 0.
 */
export function attentionRef(
  q: ArrayLike<number>,
  b: number,
  s: number,
  nHeads: number,
  nKv: number,
  hd: number,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  kvLen: number,
  allowed: (token: number, key: number) => boolean,
): Float64Array {
  const out = new Float64Array(b * s * nHeads * hd);
  const scale = 1 / Math.sqrt(hd);
  const scores = new Float64Array(kvLen);
  for (let t = 0; t < b * s; t++) {
    const bi = Math.floor(t / s);
    for (let h = 0; h < nHeads; h++) {
      const kvh = Math.floor(h / (nHeads / nKv));
      const base = (bi * nKv + kvh) * kvLen * hd;
      const qb = (t * nHeads + h) * hd;
      let max = -Infinity;
      for (let j = 0; j < kvLen; j++) {
        if (!allowed(t, j)) {
          scores[j] = -Infinity;
          continue;
        }
        let acc = 0;
        for (let d = 0; d < hd; d++) acc += q[qb + d] * k[base + j * hd + d];
        scores[j] = acc * scale;
        max = Math.max(max, scores[j]);
      }
      if (max === -Infinity) continue;
      let den = 0;
      const num = new Float64Array(hd);
      for (let j = 0; j < kvLen; j++) {
        if (scores[j] === -Infinity) continue;
        const e = Math.exp(scores[j] - max);
        den += e;
        for (let d = 0; d < hd; d++) num[d] += e * v[base + j * hd + d];
      }
      for (let d = 0; d < hd; d++) out[qb + d] = num[d] / den;
    }
  }
  return out;
}

/** `silu(gate) · up`. */
export function swigluRef(gate: ArrayLike<number>, up: ArrayLike<number>): Float64Array {
  return Float64Array.from(gate, (a, i) => a / (1 + Math.exp(-a)) * up[i]);
}

/** `x + g·y` per token unless skipped, `g = tanh(gate)` or 1. */
export function gatedResidualRef(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  dim: number,
  gate: number | null,
  skip: ArrayLike<number> | null,
): Float64Array {
  const g = gate === null ? 1 : Math.tanh(gate);
  return Float64Array.from(x, (a, i) => (skip && skip[Math.floor(i / dim)] ? a : a + g * y[i]));
}

/** Worst errors seen by {@link assertClose}, by check name (for the summary). */
export const ERRORS = new Map<string, { abs: number; rel: number }>();

/**
 * Asserts `|got − ref| ≤ rtol · (|ref| + rms(ref))` elementwise: relative error, with entries near
 * zero judged against the tensor's RMS (default rtol 1e-5). Records the worst absolute error and the
 * worst error relative to `|ref| + rms(ref)`.
 */
export function assertClose(name: string, got: ArrayLike<number>, ref: ArrayLike<number>, rtol = 1e-5): void {
  assert.equal(got.length, ref.length, `${name}: length`);
  let ss = 0;
  for (let i = 0; i < ref.length; i++) ss += ref[i] * ref[i];
  const rms = Math.sqrt(ss / Math.max(1, ref.length));
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const rel = err / (Math.abs(ref[i]) + rms || 1);
    if (!(rel <= maxRel)) {
      maxRel = Number.isNaN(rel) ? Infinity : rel;
      worst = i;
    }
    maxAbs = Math.max(maxAbs, Number.isNaN(err) ? Infinity : err);
  }
  const prev = ERRORS.get(name);
  ERRORS.set(name, { abs: Math.max(maxAbs, prev?.abs ?? 0), rel: Math.max(maxRel, prev?.rel ?? 0) });
  assert.ok(
    maxRel <= rtol,
    `${name}: element ${worst} is ${got[worst]}, expected ${ref[worst]} (relative error ${
      maxRel.toExponential(2)
    } > ${rtol})`,
  );
}

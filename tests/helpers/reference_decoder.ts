/**
 * A plain float64 TypeScript re-implementation of torchtune's `llama3_2_vision_decoder` forward (full
 * sequence, no KV cache), written as a readable spec of the conventions in
 * shared/docs/llama3_2_vision.md §1–8. It reads torchtune-named weights (`layers.{t}.attn.q_proj.weight`,
 * `layers.{t}.fusion_layer.*`, …) and is independent of `src/` except for the RoPE table, which is checked
 * against the golden fixture.
 *
 * KV-cached decoding in torchtune equals a full recompute, so cached runs are checked against this
 * function applied to the whole sequence (prompt + fed tokens) with a causal mask.
 *
 * @module
 */
import { llama3ScaledTheta, ropeCache } from "../../src/modules/position_embeddings.ts";

/** torchtune `llama3_2_vision_decoder` keyword arguments (what the reference needs of them). */
export interface RefDecoderArgs {
  vocab_size: number;
  num_layers: number;
  fusion_interval: number;
  num_special_tokens: number;
  num_heads: number;
  /** Falsy means MHA (`num_heads`). */
  num_kv_heads: number | null;
  embed_dim: number;
  max_seq_len: number;
  rope_base?: number;
  /** `scale_hidden_dim_for_mlp(embed_dim)` when absent or null. */
  intermediate_dim?: number | null;
}

/** torchtune-named weights (f32 or f64 values, row-major `[out, in]` for linears). */
export type RefWeights = Map<string, ArrayLike<number>>;

/** A host tensor. */
export interface RefTensor<T = ArrayLike<number>> {
  data: T;
  shape: number[];
}

/** Keyword arguments of `TransformerDecoder.forward`, full-sequence form. */
export interface RefForwardOptions {
  /** Self-attention mask `[b, s, s]`, True/1 = attend; default causal. */
  mask?: RefTensor<ArrayLike<number | boolean>> | null;
  /** Encoder output `[b, S, E]`; without it every fusion layer is skipped. */
  encoder_input?: RefTensor | null;
  /** Cross-attention mask `[b, s, S]`; default: attend everything. */
  encoder_mask?: RefTensor<ArrayLike<number | boolean>> | null;
  /** RoPE positions `[b, s]` (or `[s]`); default `0…s−1`. */
  input_pos?: RefTensor | null;
}

/** `4·floor(2·dim/3)` rounded up to a multiple of 256 (torchtune `scale_hidden_dim_for_mlp`). */
export function scaleHiddenDimForMlp(dim: number, multipleOf = 256): number {
  const hidden = 4 * Math.floor(2 * dim / 3);
  return multipleOf * Math.ceil(hidden / multipleOf);
}

/** The derived sizes of a config. */
export function refDims(args: RefDecoderArgs) {
  const H = args.num_heads;
  const KV = args.num_kv_heads || H;
  const E = args.embed_dim;
  const hd = E / H;
  const F = args.intermediate_dim ?? scaleHiddenDimForMlp(E);
  /** Tune indices `t` with `(t + 1) % fusion_interval == 0`. */
  const fusion: number[] = [];
  for (let t = 0; t < args.num_layers; t++) if ((t + 1) % args.fusion_interval === 0) fusion.push(t);
  return { H, KV, E, hd, F, V: args.vocab_size, fusion };
}

/** Every torchtune decoder parameter name → shape (doc §10). */
export function tuneShapes(args: RefDecoderArgs): Map<string, number[]> {
  const { H, KV, E, hd, F, V, fusion } = refDims(args);
  const m = new Map<string, number[]>();
  m.set("tok_embeddings.weight", [V, E]);
  m.set("tok_embeddings.fusion_embedding.weight", [args.num_special_tokens, E]);
  const attn = (p: string) => {
    m.set(`${p}.q_proj.weight`, [H * hd, E]);
    m.set(`${p}.k_proj.weight`, [KV * hd, E]);
    m.set(`${p}.v_proj.weight`, [KV * hd, E]);
    m.set(`${p}.output_proj.weight`, [E, H * hd]);
  };
  const mlp = (p: string) => {
    m.set(`${p}.w1.weight`, [F, E]);
    m.set(`${p}.w2.weight`, [E, F]);
    m.set(`${p}.w3.weight`, [F, E]);
  };
  for (let t = 0; t < args.num_layers; t++) {
    if (fusion.includes(t)) {
      const p = `layers.${t}.fusion_layer`;
      attn(`${p}.attn`);
      m.set(`${p}.attn.q_norm.scale`, [hd]);
      m.set(`${p}.attn.k_norm.scale`, [hd]);
      mlp(`${p}.mlp`);
      m.set(`${p}.ca_norm.scale`, [E]);
      m.set(`${p}.mlp_norm.scale`, [E]);
      m.set(`${p}.ca_scale.scale`, [1]);
      m.set(`${p}.mlp_scale.scale`, [1]);
    }
    attn(`layers.${t}.attn`);
    mlp(`layers.${t}.mlp`);
    m.set(`layers.${t}.sa_norm.scale`, [E]);
    m.set(`layers.${t}.mlp_norm.scale`, [E]);
  }
  m.set("norm.scale", [E]);
  m.set("output.weight", [V, E]);
  return m;
}

// ---- building blocks on row-major Float64Arrays ----

/** `x [M, K] · W [N, K]ᵀ`. */
function linear(x: Float64Array, w: ArrayLike<number>, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let acc = 0;
      for (let k = 0; k < K; k++) acc += x[m * K + k] * w[n * K + k];
      y[m * N + n] = acc;
    }
  }
  return y;
}

/** RMSNorm over consecutive groups of `dim` values: `x · rsqrt(mean(x²) + eps) · scale`. */
function rmsNorm(x: Float64Array, dim: number, scale: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / dim; r++) {
    let ss = 0;
    for (let d = 0; d < dim; d++) ss += x[r * dim + d] ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let d = 0; d < dim; d++) y[r * dim + d] = x[r * dim + d] * inv * scale[d];
  }
  return y;
}

/** SwiGLU: `w2(silu(w1 x) ⊙ w3 x)` over `T` rows. */
function feedForward(x: Float64Array, w: RefWeights, p: string, T: number, E: number, F: number) {
  const g = linear(x, get(w, `${p}.w1.weight`), T, E, F);
  const u = linear(x, get(w, `${p}.w3.weight`), T, E, F);
  for (let i = 0; i < g.length; i++) g[i] = g[i] / (1 + Math.exp(-g[i])) * u[i];
  return linear(g, get(w, `${p}.w2.weight`), T, F, E);
}

/** Interleaved-pair RoPE on `x [b, s, nh, hd]` in place, at `pos[b·s]`, with table `[maxSeq, hd/2, 2]`. */
function rope(
  x: Float64Array,
  T: number,
  nh: number,
  hd: number,
  pos: ArrayLike<number>,
  table: Float32Array,
) {
  const half = hd / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < half; i++) {
        const c = table[(pos[t] * half + i) * 2];
        const s = table[(pos[t] * half + i) * 2 + 1];
        const j = (t * nh + h) * hd + 2 * i;
        const a = x[j];
        const b = x[j + 1];
        x[j] = a * c - b * s;
        x[j + 1] = b * c + a * s;
      }
    }
  }
}

/**
 * SDPA for `q [b, s, H, hd]` against `k, v [b, Skv, KV, hd]` (GQA: query head h reads KV head
 * ⌊h / (H/KV)⌋, consecutive grouping), scale 1/√hd, `allowed(batch, i, j)`. Returns `[b, s, H·hd]`.
 * A row that may see nothing is left 0 (callers only use it for skipped rows, which are zeroed).
 */
function sdpa(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  b: number,
  s: number,
  Skv: number,
  H: number,
  KV: number,
  hd: number,
  allowed: (bi: number, i: number, j: number) => boolean,
): Float64Array {
  const out = new Float64Array(b * s * H * hd);
  const scale = 1 / Math.sqrt(hd);
  const group = H / KV;
  for (let bi = 0; bi < b; bi++) {
    for (let i = 0; i < s; i++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        const qo = ((bi * s + i) * H + h) * hd;
        const scores = new Float64Array(Skv).fill(-Infinity);
        let max = -Infinity;
        for (let j = 0; j < Skv; j++) {
          if (!allowed(bi, i, j)) continue;
          const ko = ((bi * Skv + j) * KV + kvh) * hd;
          let acc = 0;
          for (let d = 0; d < hd; d++) acc += q[qo + d] * k[ko + d];
          scores[j] = acc * scale;
          max = Math.max(max, scores[j]);
        }
        if (max === -Infinity) continue;
        let den = 0;
        for (let j = 0; j < Skv; j++) {
          if (scores[j] === -Infinity) continue;
          const p = Math.exp(scores[j] - max);
          den += p;
          const vo = ((bi * Skv + j) * KV + kvh) * hd;
          for (let d = 0; d < hd; d++) out[qo + d] += p * v[vo + d];
        }
        for (let d = 0; d < hd; d++) out[qo + d] /= den;
      }
    }
  }
  return out;
}

function get(w: RefWeights, name: string): ArrayLike<number> {
  const t = w.get(name);
  if (!t) throw new Error(`reference decoder: missing weight ${name}`);
  return t;
}

/**
 * torchtune `TransformerDecoder.forward(tokens, mask=, encoder_input=, encoder_mask=, input_pos=)` for
 * the decoder built by `llama3_2_vision_decoder(args)`, without caches. Returns float64 logits `[b, s, V]`.
 */
export function referenceForward(
  weights: RefWeights,
  args: RefDecoderArgs,
  tokens: RefTensor,
  opts: RefForwardOptions = {},
): Float64Array {
  const { H, KV, E, hd, F, V, fusion } = refDims(args);
  const [b, s] = tokens.shape;
  const T = b * s;
  if (s > args.max_seq_len) throw new Error(`s ${s} > max_seq_len ${args.max_seq_len}`);
  const table = ropeCache(llama3ScaledTheta(hd, args.rope_base ?? 500000), args.max_seq_len);

  // RoPE positions per token: input_pos [b, s] or [s], default arange(s).
  const pos = new Int32Array(T);
  for (let t = 0; t < T; t++) {
    const ip = opts.input_pos;
    pos[t] = !ip ? t % s : ip.data.length === T ? ip.data[t] : ip.data[t % s];
    if (pos[t] >= args.max_seq_len) throw new Error(`position ${pos[t]} ≥ max_seq_len`);
  }
  const selfAllowed = opts.mask
    ? (bi: number, i: number, j: number) => Boolean(opts.mask!.data[(bi * s + i) * s + j])
    : (_bi: number, i: number, j: number) => j <= i;

  // 1. FusionEmbedding: ids < V read tok_embeddings.weight, ids ≥ V read fusion_embedding row id − V.
  let x = new Float64Array(T * E);
  const base = get(weights, "tok_embeddings.weight");
  const special = get(weights, "tok_embeddings.fusion_embedding.weight");
  for (let t = 0; t < T; t++) {
    const id = tokens.data[t];
    if (id < 0 || id >= V + args.num_special_tokens) throw new Error(`token id ${id} out of range`);
    const [table2, row] = id < V ? [base, id] : [special, id - V];
    for (let e = 0; e < E; e++) x[t * E + e] = table2[row * E + e];
  }

  // Encoder inputs (cross-attention): S positions, skip rows = rows whose encoder_mask is all False.
  const enc = opts.encoder_input ?? null;
  const S = enc ? enc.shape[1] : 0;
  const given = (bi: number, i: number, j: number) =>
    !opts.encoder_mask || Boolean(opts.encoder_mask.data[(bi * s + i) * S + j]);
  const skip = new Uint8Array(T);
  for (let r = 0; r < (enc ? T : 0); r++) {
    let any = false;
    for (let j = 0; j < S; j++) any ||= given(Math.floor(r / s), r % s, j);
    skip[r] = any ? 0 : 1;
  }
  // A skipped row attends to everything (only to avoid NaNs); its output is zeroed below.
  const encAllowed = (bi: number, i: number, j: number) => skip[bi * s + i] === 1 || given(bi, i, j);

  for (let t = 0; t < args.num_layers; t++) {
    // 2a. FusionLayer: the cross-attention layer runs BEFORE the self-attention layer (fusion_first).
    if (fusion.includes(t) && enc) {
      const p = `layers.${t}.fusion_layer`;
      const xn = rmsNorm(x, E, get(weights, `${p}.ca_norm.scale`), 1e-6);
      const q = rmsNorm(
        linear(xn, get(weights, `${p}.attn.q_proj.weight`), T, E, H * hd),
        hd,
        get(weights, `${p}.attn.q_norm.scale`),
        1e-5,
      );
      const y = Float64Array.from(enc.data);
      const k = rmsNorm(
        linear(y, get(weights, `${p}.attn.k_proj.weight`), b * S, E, KV * hd),
        hd,
        get(weights, `${p}.attn.k_norm.scale`),
        1e-5,
      );
      const v = linear(y, get(weights, `${p}.attn.v_proj.weight`), b * S, E, KV * hd);
      const o = sdpa(q, k, v, b, s, S, H, KV, hd, encAllowed);
      const a = linear(o, get(weights, `${p}.attn.output_proj.weight`), T, H * hd, E);
      const ga = Math.tanh(get(weights, `${p}.ca_scale.scale`)[0]);
      const h = new Float64Array(T * E);
      for (let i = 0; i < T * E; i++) h[i] = x[i] + (skip[Math.floor(i / E)] ? 0 : ga * a[i]);
      const m = feedForward(
        rmsNorm(h, E, get(weights, `${p}.mlp_norm.scale`), 1e-6),
        weights,
        `${p}.mlp`,
        T,
        E,
        F,
      );
      const gm = Math.tanh(get(weights, `${p}.mlp_scale.scale`)[0]);
      for (let i = 0; i < T * E; i++) h[i] += skip[Math.floor(i / E)] ? 0 : gm * m[i];
      x = h;
    }
    // 2b. Self-attention layer: h = x + attn(sa_norm(x)); out = h + mlp(mlp_norm(h)).
    const p = `layers.${t}`;
    const xn = rmsNorm(x, E, get(weights, `${p}.sa_norm.scale`), 1e-5);
    const q = linear(xn, get(weights, `${p}.attn.q_proj.weight`), T, E, H * hd);
    const k = linear(xn, get(weights, `${p}.attn.k_proj.weight`), T, E, KV * hd);
    const v = linear(xn, get(weights, `${p}.attn.v_proj.weight`), T, E, KV * hd);
    rope(q, T, H, hd, pos, table);
    rope(k, T, KV, hd, pos, table);
    const o = sdpa(q, k, v, b, s, s, H, KV, hd, selfAllowed);
    const a = linear(o, get(weights, `${p}.attn.output_proj.weight`), T, H * hd, E);
    for (let i = 0; i < T * E; i++) x[i] += a[i];
    const m = feedForward(
      rmsNorm(x, E, get(weights, `${p}.mlp_norm.scale`), 1e-5),
      weights,
      `${p}.mlp`,
      T,
      E,
      F,
    );
    for (let i = 0; i < T * E; i++) x[i] += m[i];
  }

  // 3–4. Final norm (eps 1e-5) and the untied output projection to the V base tokens.
  return linear(rmsNorm(x, E, get(weights, "norm.scale"), 1e-5), get(weights, "output.weight"), T, E, V);
}

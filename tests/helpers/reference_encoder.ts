/**
 * A plain float64 TypeScript reference of torchtune's `Llama3VisionEncoder.forward` (the encoder built by
 * `llama3_2_vision_encoder`), following the Llama 3.2 Vision doc §12 step by step. It is the specification the
 * GPU port is tested against, so it favours clarity over speed: every step is a separate loop on flat arrays.
 *
 * @module
 */
import {
  type Llama3VisionEncoderArgs,
  type ResolvedEncoderArgs,
  resolveEncoderArgs,
} from "../../src/models/llama3_2_vision/encoder_args.ts";
import { expectedEncoderShapes } from "../../src/models/llama3_2_vision/convert_vision_weights.ts";

/** torchtune-named encoder weights (`clip.conv.weight`, …; an `encoder.` prefix is accepted too). */
export type RefEncoderWeights = Map<string, ArrayLike<number>>;

/** A float64 result tensor (flat, row-major). */
export interface RefEncoderTensor {
  data: Float64Array;
  shape: number[];
}

/** What {@link referenceEncoderForward} returns. */
export interface RefEncoderOutput {
  /** The saved CLIP hidden states, one per `clip_hidden_states` index: `[b, n_imgs, n_tiles, n_tok, D]`. */
  hidden_states: RefEncoderTensor[];
  /** The CLIP output (after `ln_post` and the post-tile embedding): `[b, n_imgs, n_tiles, n_tok, D]`. */
  clip_output: RefEncoderTensor;
  /** The encoder output (decoder cross-attention input): `[b, n_imgs·n_tiles·n_tok, decoder_embed_dim]`. */
  output: RefEncoderTensor;
}

const LN_EPS = 1e-5;

/**
 * erf in float64 (≈1e-16 relative): for |x| < 3 the all-positive series
 * `erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (2n+1)!!` (no cancellation), beyond it the erfc continued fraction.
 */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let term = ax; // 2ⁿ x^(2n+1) / (2n+1)!!, n = 0
    let sum = ax;
    for (let n = 1; n < 200 && term > 1e-17 * sum; n++) {
      term *= (2 * ax * ax) / (2 * n + 1);
      sum += term;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
  }
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail.
  let t = ax;
  for (let n = 120; n >= 1; n--) t = ax + (n / 2) / t;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / t;
  return Math.sign(x) * (1 - erfc);
}

/** Exact GELU: `x · ½ (1 + erf(x / √2))` (torch's `nn.GELU()` default). */
export function geluExact(x: number): number {
  return 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** LayerNorm over the last dim of `[rows, D]` with weight and bias (biased variance, eps 1e-5). */
function layerNorm(x: Float64Array, D: number, w: ArrayLike<number>, b: ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let mean = 0;
    for (let d = 0; d < D; d++) mean += x[r * D + d];
    mean /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[r * D + d] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + LN_EPS);
    for (let d = 0; d < D; d++) out[r * D + d] = (x[r * D + d] - mean) * inv * w[d] + b[d];
  }
  return out;
}

/** `y = x · Wᵀ (+ bias)` for `x` `[rows, inDim]` and `W` `[outDim, inDim]`. */
function linear(
  x: Float64Array,
  inDim: number,
  W: ArrayLike<number>,
  outDim: number,
  bias?: ArrayLike<number>,
): Float64Array {
  const rows = x.length / inDim;
  const out = new Float64Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outDim; o++) {
      let s = bias ? bias[o] : 0;
      for (let i = 0; i < inDim; i++) s += x[r * inDim + i] * W[o * inDim + i];
      out[r * outDim + o] = s;
    }
  }
  return out;
}

/** Multi-head self-attention on one sequence `[S, D]`: no biases, no mask, no RoPE, scale `1/√hd`. */
function attention(
  x: Float64Array,
  D: number,
  H: number,
  w: (n: string) => ArrayLike<number>,
  p: string,
): Float64Array {
  const S = x.length / D;
  const hd = D / H;
  const q = linear(x, D, w(`${p}.attn.q_proj.weight`), D);
  const k = linear(x, D, w(`${p}.attn.k_proj.weight`), D);
  const v = linear(x, D, w(`${p}.attn.v_proj.weight`), D);
  const ctx = new Float64Array(S * D);
  const scores = new Float64Array(S);
  const scale = 1 / Math.sqrt(hd);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < S; i++) {
      let max = -Infinity;
      for (let j = 0; j < S; j++) {
        let s = 0;
        for (let d = 0; d < hd; d++) s += q[i * D + h * hd + d] * k[j * D + h * hd + d];
        scores[j] = s * scale;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j < S; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let j = 0; j < S; j++) {
        const a = scores[j] / sum;
        for (let d = 0; d < hd; d++) ctx[i * D + h * hd + d] += a * v[j * D + h * hd + d];
      }
    }
  }
  return linear(ctx, D, w(`${p}.attn.output_proj.weight`), D);
}

/** fc2(GELU(fc1(x))) with biases. */
function mlp(
  x: Float64Array,
  D: number,
  F: number,
  w: (n: string) => ArrayLike<number>,
  p: string,
): Float64Array {
  const hidden = linear(x, D, w(`${p}.mlp.w1.weight`), F, w(`${p}.mlp.w1.bias`));
  for (let i = 0; i < hidden.length; i++) hidden[i] = geluExact(hidden[i]);
  return linear(hidden, F, w(`${p}.mlp.w2.weight`), D, w(`${p}.mlp.w2.bias`));
}

/**
 * One pre-norm transformer layer on one sequence, in place: `x += g_a·attn(LN(x))`, then
 * `x += g_m·mlp(LN(x))`, the gates being 1 (CLIP) or `tanh(sa_scale)`, `tanh(mlp_scale)` (projection head).
 */
function transformerLayer(
  x: Float64Array,
  a: ResolvedEncoderArgs,
  w: (n: string) => ArrayLike<number>,
  p: string,
  gated: boolean,
): void {
  const D = a.clip_embed_dim;
  const gAttn = gated ? Math.tanh(w(`${p}.sa_scale.scale`)[0]) : 1;
  const gMlp = gated ? Math.tanh(w(`${p}.mlp_scale.scale`)[0]) : 1;
  const h = attention(
    layerNorm(x, D, w(`${p}.sa_norm.weight`), w(`${p}.sa_norm.bias`)),
    D,
    a.num_heads,
    w,
    p,
  );
  for (let i = 0; i < x.length; i++) x[i] += gAttn * h[i];
  const m = mlp(layerNorm(x, D, w(`${p}.mlp_norm.weight`), w(`${p}.mlp_norm.bias`)), D, a.mlp_dim, w, p);
  for (let i = 0; i < x.length; i++) x[i] += gMlp * m[i];
}

/**
 * torchtune `Llama3VisionEncoder.forward(images, aspect_ratio)` in float64.
 *
 * - `images`: `[b, n_imgs, n_tiles, C, T, T]` (padding tiles all zero);
 * - `aspectRatio`: `[b, n_imgs, 2]`, `(h, w)` tiles of each image (padding images `(1, 1)`);
 * - `weights`: torchtune names (see `expectedEncoderShapes`), checked for presence and size.
 */
export function referenceEncoderForward(
  args: Llama3VisionEncoderArgs | ResolvedEncoderArgs,
  weights: RefEncoderWeights,
  images: { data: ArrayLike<number>; shape: number[] },
  aspectRatio: { data: ArrayLike<number>; shape: number[] },
): RefEncoderOutput {
  const a = resolveEncoderArgs({
    patch_size: args.patch_size,
    num_heads: args.num_heads,
    clip_embed_dim: args.clip_embed_dim,
    clip_num_layers: args.clip_num_layers,
    clip_hidden_states: args.clip_hidden_states,
    num_layers_projection: args.num_layers_projection,
    decoder_embed_dim: args.decoder_embed_dim,
    tile_size: args.tile_size,
    max_num_tiles: args.max_num_tiles,
    in_channels: args.in_channels,
  });
  const shapes = expectedEncoderShapes(a);
  const w = (name: string): ArrayLike<number> => {
    const t = weights.get(name) ?? weights.get(`encoder.${name}`);
    if (t === undefined) throw new Error(`reference encoder: missing weight ${name}`);
    const want = shapes.get(name);
    if (want === undefined) throw new Error(`reference encoder: ${name} is not an encoder weight`);
    const n = want.reduce((x, y) => x * y, 1);
    if (t.length !== n) {
      throw new Error(`reference encoder: ${name} has ${t.length} values, expected ${JSON.stringify(want)}`);
    }
    return t;
  };
  for (const name of shapes.keys()) w(name);

  const [b, nImgs, nTiles, C, T, T2] = images.shape;
  if (images.shape.length !== 6 || C !== a.in_channels || T !== a.tile_size || T2 !== a.tile_size) {
    throw new Error(
      `reference encoder: images must be [b, n_imgs, n_tiles, ${a.in_channels}, ${a.tile_size}, ` +
        `${a.tile_size}], got ${JSON.stringify(images.shape)}`,
    );
  }
  if (JSON.stringify(aspectRatio.shape) !== JSON.stringify([b, nImgs, 2])) {
    throw new Error(`reference encoder: aspect_ratio must be [${b}, ${nImgs}, 2], got ${aspectRatio.shape}`);
  }
  const D = a.clip_embed_dim;
  const P = a.patch_size;
  const g = a.patch_grid_size;
  const N = a.tokens_per_tile; // g² patches + CLS
  const M = a.max_num_tiles;
  const B = b * nImgs; // images are independent from here on
  const ratio = (img: number): [number, number] => {
    const h = Number(aspectRatio.data[2 * img]);
    const wd = Number(aspectRatio.data[2 * img + 1]);
    if (!(h >= 1 && wd >= 1 && h * wd <= nTiles && (!a.tiled || h * wd <= M))) {
      throw new Error(`reference encoder: aspect ratio (${h}, ${wd}) of image ${img} does not fit the tiles`);
    }
    return [h, wd];
  };
  // x[img][tile][token][d], token 0 = CLS
  const at = (img: number, tile: number, tok: number) => ((img * nTiles + tile) * N + tok) * D;
  const x = new Float64Array(B * nTiles * N * D);

  // 1. Conv2d (kernel = stride = P, no bias) as a matmul over each patch; patches in row-major order.
  const conv = w("clip.conv.weight"); // [D, C, P, P]
  for (let img = 0; img < B; img++) {
    for (let tile = 0; tile < nTiles; tile++) {
      const pix = (img * nTiles + tile) * C * T * T;
      for (let pr = 0; pr < g; pr++) {
        for (let pc = 0; pc < g; pc++) {
          const o = at(img, tile, 1 + pr * g + pc);
          for (let d = 0; d < D; d++) {
            let s = 0;
            for (let c = 0; c < C; c++) {
              for (let py = 0; py < P; py++) {
                for (let px = 0; px < P; px++) {
                  s += conv[((d * C + c) * P + py) * P + px] *
                    images.data[pix + (c * T + pr * P + py) * T + pc * P + px];
                }
              }
            }
            x[o + d] = s;
          }
        }
      }
    }
  }

  // Tile embeddings: entry [k // w, k % w] of a [M, M, rows, D] table for the real tiles k < h·w only.
  const addTileTable = (table: ArrayLike<number>, rows: number, gate: number, fromTok: number) => {
    for (let img = 0; img < B; img++) {
      const [h, wd] = ratio(img);
      for (let k = 0; k < h * wd; k++) {
        const entry = (Math.floor(k / wd) * M + (k % wd)) * rows * D;
        for (let tok = fromTok; tok < N; tok++) {
          const src = entry + (rows === 1 ? 0 : tok * D);
          for (let d = 0; d < D; d++) x[at(img, k, tok) + d] += table[src + d] * gate;
        }
      }
    }
  };

  // 2. Pre-tile position embedding (patch tokens only: the CLS token is inserted afterwards).
  if (a.tiled) {
    addTileTable(
      w("clip.pre_tile_pos_embed.embedding"),
      1,
      Math.tanh(w("clip.pre_tile_pos_embed.gate")[0]),
      1,
    );
  }
  // 3. CLS first.
  const cls = w("clip.cls_token_embedding.weight");
  for (let img = 0; img < B; img++) {
    for (let tile = 0; tile < nTiles; tile++) for (let d = 0; d < D; d++) x[at(img, tile, 0) + d] = cls[d];
  }
  // 4. Token position embedding: local·(1 − tanh g) on every tile, global·tanh g on the real tiles.
  if (a.tiled) {
    const gate = Math.tanh(w("clip.token_pos_embedding.gate")[0]);
    const local = w("clip.token_pos_embedding.local_token_positional_embedding");
    for (let i = 0; i < x.length; i++) x[i] += local[i % (N * D)] * (1 - gate);
    addTileTable(w("clip.token_pos_embedding.global_token_positional_embedding"), N, gate, 0);
  } else {
    const pos = w("clip.token_pos_embedding.positional_embedding");
    for (let i = 0; i < x.length; i++) x[i] += pos[i % (N * D)];
  }
  // 5. ln_pre.
  let h = layerNorm(x, D, w("clip.ln_pre.weight"), w("clip.ln_pre.bias"));

  // 6. CLIP layers on each image's [n_tiles·N, D] sequence; save the inputs of the listed layers.
  const seq = nTiles * N * D;
  const saved = a.clip_hidden_states.map(() => new Float64Array(B * seq));
  const save = (layer: number, img: number, s: Float64Array) => {
    a.clip_hidden_states.forEach((idx, j) => {
      if (idx === layer) saved[j].set(s, img * seq);
    });
  };
  for (let img = 0; img < B; img++) {
    const s = h.slice(img * seq, (img + 1) * seq);
    for (let l = 0; l < a.clip_num_layers; l++) {
      save(l, img, s);
      transformerLayer(s, a, w, `clip.layers.${l}`, false);
    }
    save(a.clip_num_layers, img, s); // index == clip_num_layers: the last layer's output, before ln_post
    h.set(s, img * seq);
  }
  // 7. ln_post, then the post-tile embedding (all tokens, CLS included).
  h = layerNorm(h, D, w("clip.ln_post.weight"), w("clip.ln_post.bias"));
  x.set(h);
  if (a.tiled) {
    addTileTable(
      w("clip.post_tile_pos_embed.embedding"),
      1,
      Math.tanh(w("clip.post_tile_pos_embed.gate")[0]),
      0,
    );
  }
  const clipOut = x.slice();

  // Projection head 1. gated layers on each image's sequence.
  for (let img = 0; img < B; img++) {
    const s = x.slice(img * seq, (img + 1) * seq);
    for (let l = 0; l < a.num_layers_projection; l++) {
      transformerLayer(s, a, w, `projection.layers.${l}`, true);
    }
    x.set(s, img * seq);
  }
  // 2. Concatenate x with the hidden states interleaved: feature D + d·n_hidden + j = dim d of state j.
  const nh = a.num_hidden_states;
  const K = a.projection_in_dim;
  const tokens = B * nTiles * N;
  const feats = new Float64Array(tokens * K);
  for (let t = 0; t < tokens; t++) {
    for (let d = 0; d < D; d++) {
      feats[t * K + d] = x[t * D + d];
      for (let j = 0; j < nh; j++) feats[t * K + D + d * nh + j] = saved[j][t * D + d];
    }
  }
  // 3. Output linear with bias → [b, n_imgs·n_tiles·N, E].
  const E = a.decoder_embed_dim;
  const out = linear(feats, K, w("projection.output.weight"), E, w("projection.output.bias"));

  const tileShape = [b, nImgs, nTiles, N, D];
  return {
    hidden_states: saved.map((data) => ({ data, shape: tileShape })),
    clip_output: { data: clipOut, shape: tileShape },
    output: { data: out, shape: [b, nImgs * nTiles * N, E] },
  };
}

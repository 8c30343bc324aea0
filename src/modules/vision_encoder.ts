/**
 * torchtune's `Llama3VisionProjectionHead` and `Llama3VisionEncoder`
 * (`models/llama3_2_vision/_encoder.py`).
 *
 * @module
 */
import type { Recorder } from "../gpu/ops.ts";
import { interleaveColumns } from "../gpu/ops_vision.ts";
import type { VisionEncoderInput } from "./decoder_inputs.ts";
import type { Linear } from "./linear.ts";
import { Module, type Parameter } from "./module.ts";
import type { LayerCall, TransformerSelfAttentionLayer } from "./transformer.ts";
import type { VisionTransformer } from "./vision_transformer.ts";

/**
 * Mirrors torchtune `Llama3VisionProjectionHead(layers, output, num_hidden_inputs)`: gated transformer
 * layers over the CLIP output, then the hidden states stacked on a new last axis (interleaved:
 * feature `D + d·n_hidden + j` is dimension `d` of hidden state `j`) appended to the features, and
 * the `output` projection (with bias) to the decoder width.
 */
export class Llama3VisionProjectionHead extends Module {
  /** `layers`: pre-norm layers with `sa_scale`/`mlp_scale` TanhGates. */
  readonly layers: TransformerSelfAttentionLayer[];
  /** `output`: `[decoder_embed_dim, D·(1 + n_hidden)]` with bias. */
  readonly output: Linear;
  /** Number of CLIP hidden states appended. */
  readonly num_hidden_inputs: number;

  /** Same arguments as torchtune. */
  constructor(opts: { layers: TransformerSelfAttentionLayer[]; output: Linear; num_hidden_inputs: number }) {
    super();
    this.layers = opts.layers;
    this.output = opts.output;
    this.num_hidden_inputs = opts.num_hidden_inputs;
  }

  /** State-dict names `layers.{i}.*`, `output.*`. */
  override named_parameters(prefix = ""): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    this.layers.forEach((l, i) => out.push(...l.named_parameters(`${prefix}layers.${i}.`)));
    out.push(...this.output.named_parameters(`${prefix}output.`));
    return out;
  }

  /**
   * `x` `[images·seq, D]` (modified in place) and the hidden states → `[images·seq, decoder_embed_dim]`
   * in a buffer the caller owns.
   */
  record(rec: Recorder, x: GPUBuffer, hidden: GPUBuffer[], nImages: number, seq: number): GPUBuffer {
    const D = this.output.in_dim / (1 + this.num_hidden_inputs);
    const rows = nImages * seq;
    const call: LayerCall = {
      rec,
      batch: nImages,
      seq,
      positions: null,
      mask: { kind: "none" },
      encoder: null,
      encoder_mask: { kind: "none" },
      skip: null,
    };
    for (const layer of this.layers) layer.forward(call, x);
    const width = this.output.in_dim;
    const features = rec.scratch(rows * width * 4, "projection features");
    interleaveColumns(rec, x, rows, D, features, width, 0, 1);
    hidden.forEach((h, j) => interleaveColumns(rec, h, rows, D, features, width, D + j, hidden.length));
    const out = rec.output(rows * this.output.out_dim * 4, "encoder output");
    this.output.forward(rec, features, rows, out);
    return out;
  }
}

/**
 * Mirrors torchtune `Llama3VisionEncoder(clip, projection_head)`: images `[b, n_imgs, n_tiles, C, T, T]`
 * → `[b, n_imgs·n_tiles·n_tok, decoder_embed_dim]`, the decoder's cross-attention input.
 */
export class Llama3VisionEncoder extends Module {
  /** `clip`: the vision transformer. */
  readonly clip: VisionTransformer;
  /** `projection`: the projection head. */
  readonly projection: Llama3VisionProjectionHead;

  /** Same arguments as torchtune. */
  constructor(opts: { clip: VisionTransformer; projection_head: Llama3VisionProjectionHead }) {
    super();
    this.clip = opts.clip;
    this.projection = opts.projection_head;
  }

  /** Children `clip`, `projection`. */
  protected override children(): Record<string, Module> {
    return { clip: this.clip, projection: this.projection };
  }

  /** Checks the inputs; returns `[b, n_imgs, n_tiles]` and the tile layouts. */
  check(input: VisionEncoderInput): { dims: [number, number, number]; aspect: [number, number][] } {
    const { images, aspect_ratio } = input;
    const c = this.clip;
    const s = images?.shape;
    if (
      !Array.isArray(s) || s.length !== 6 || s[3] !== c.in_channels || s[4] !== c.tile_size ||
      s[5] !== c.tile_size
    ) {
      throw new RangeError(
        `images must be [b, n_imgs, n_tiles, ${c.in_channels}, ${c.tile_size}, ${c.tile_size}], got [${s}]`,
      );
    }
    const [b, n, t] = s;
    if (!(images.data instanceof Float32Array) || images.data.length !== s.reduce((x, y) => x * y, 1)) {
      throw new RangeError(`images.data must be a Float32Array of ${s.reduce((x, y) => x * y, 1)} values`);
    }
    if (b < 1 || n < 1 || t < 1 || t > c.max_num_tiles) {
      throw new RangeError(`images has ${t} tiles per image; the encoder takes 1 to ${c.max_num_tiles}`);
    }
    const a = aspect_ratio?.shape;
    if (!Array.isArray(a) || a.length !== 3 || a[0] !== b || a[1] !== n || a[2] !== 2) {
      throw new RangeError(`aspect_ratio must be [${b}, ${n}, 2], got [${a}]`);
    }
    const aspect: [number, number][] = [];
    for (let i = 0; i < b * n; i++) {
      const h = Number(aspect_ratio.data[2 * i]), w = Number(aspect_ratio.data[2 * i + 1]);
      if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1 || h * w > t) {
        throw new RangeError(`aspect_ratio (${h}, ${w}) of image ${i} does not fit ${t} tiles`);
      }
      aspect.push([h, w]);
    }
    return { dims: [b, n, t], aspect };
  }

  /** Records the encoder; returns `[b, n_imgs·n_tiles·n_tok, E]` in a buffer the caller owns. */
  record(rec: Recorder, input: VisionEncoderInput): { buffer: GPUBuffer; shape: [number, number, number] } {
    const { dims: [b, n, t], aspect } = this.check(input);
    const images = rec.temps.upload(input.images.data, "images");
    const { x, hidden } = this.clip.record(rec, images, b * n, t, aspect);
    const seq = t * this.clip.n_tok;
    const out = this.projection.record(rec, x, hidden, b * n, seq);
    return { buffer: out, shape: [b, n * seq, this.projection.output.out_dim] };
  }
}

/**
 * torchtune's CLIP `VisionTransformer` with its tiled position embeddings
 * (`TilePositionalEmbedding`, `TiledTokenPositionalEmbedding`, `TokenPositionalEmbedding`).
 *
 * @module
 */
import type { Recorder } from "../gpu/ops.ts";
import { broadcastAdd, patchify, type RowRef, visionEmbed } from "../gpu/ops_vision.ts";
import type { LayerNorm } from "./layer_norm.ts";
import type { Linear } from "./linear.ts";
import { Module, Parameter } from "./module.ts";
import type { LayerCall, TransformerSelfAttentionLayer } from "./transformer.ts";

/**
 * Mirrors torchtune `TilePositionalEmbedding(max_num_tiles, embed_dim)`: `embedding`
 * `[max_num_tiles, max_num_tiles, 1, D]` and a `gate` `[1]`; tile `k` of an image with aspect ratio
 * `(h, w)` gets `embedding[k // w, k % w] · tanh(gate)` (real tiles only).
 */
export class TilePositionalEmbedding extends Module {
  /** `embedding` `[max_num_tiles, max_num_tiles, 1, D]` (f32). */
  readonly embedding: Parameter;
  /** `gate` `[1]`. */
  readonly gate: Parameter = new Parameter([1], true);
  /** Tiles per image at most. */
  readonly max_num_tiles: number;
  /** Width `D`. */
  readonly embed_dim: number;

  /**
   * Builds the table; empty until loaded.
   *
   * @param max_num_tiles tiles per image at most
   * @param embed_dim width `D`
   */
  constructor(max_num_tiles: number, embed_dim: number) {
    super();
    this.max_num_tiles = max_num_tiles;
    this.embed_dim = embed_dim;
    this.embedding = new Parameter([max_num_tiles, max_num_tiles, 1, embed_dim], true);
  }

  /** State-dict entries `embedding`, `gate`. */
  protected override params(): Record<string, Parameter> {
    return { embedding: this.embedding, gate: this.gate };
  }

  /** The table entry `[i, j]` `[D]`. */
  entry(i: number, j: number): RowRef {
    return this.embedding.storage.rowRange(i, j * this.embed_dim, this.embed_dim);
  }
}

/**
 * Mirrors torchtune `TiledTokenPositionalEmbedding(max_num_tiles, embed_dim, tile_size, patch_size)`:
 * `local_token_positional_embedding` `[n_tok, D]` for every tile, scaled by `1 − tanh(gate)`, plus
 * `global_token_positional_embedding[k // w, k % w]` `[n_tok, D]` scaled by `tanh(gate)` on real tiles.
 */
export class TiledTokenPositionalEmbedding extends Module {
  /** `local_token_positional_embedding` `[n_tok, D]`. */
  readonly local_token_positional_embedding: Parameter;
  /** `global_token_positional_embedding` `[max_num_tiles, max_num_tiles, n_tok, D]`. */
  readonly global_token_positional_embedding: Parameter;
  /** `gate` `[1]`. */
  readonly gate: Parameter = new Parameter([1], true);
  /** Tokens per tile (patches + CLS). */
  readonly n_tok: number;
  /** Width `D`. */
  readonly embed_dim: number;

  /**
   * Builds the tables; empty until loaded.
   *
   * @param max_num_tiles tiles per image at most
   * @param embed_dim width `D`
   * @param n_tok tokens per tile, `(tile_size / patch_size)² + 1`
   */
  constructor(max_num_tiles: number, embed_dim: number, n_tok: number) {
    super();
    this.n_tok = n_tok;
    this.embed_dim = embed_dim;
    this.local_token_positional_embedding = new Parameter([n_tok, embed_dim], true);
    this.global_token_positional_embedding = new Parameter(
      [max_num_tiles, max_num_tiles, n_tok, embed_dim],
      true,
    );
  }

  /** State-dict entries. */
  protected override params(): Record<string, Parameter> {
    return {
      local_token_positional_embedding: this.local_token_positional_embedding,
      global_token_positional_embedding: this.global_token_positional_embedding,
      gate: this.gate,
    };
  }

  /** The global table entry `[i, j]` `[n_tok, D]`. */
  entry(i: number, j: number): RowRef {
    const size = this.n_tok * this.embed_dim;
    return this.global_token_positional_embedding.storage.rowRange(i, j * size, size);
  }
}

/**
 * Mirrors torchtune `TokenPositionalEmbedding(embed_dim, tile_size, patch_size)`, the ungated
 * `positional_embedding` `[n_tok, D]` used when `max_num_tiles == 1`.
 */
export class TokenPositionalEmbedding extends Module {
  /** `positional_embedding` `[n_tok, D]`. */
  readonly positional_embedding: Parameter;

  /**
   * Builds the table; empty until loaded.
   *
   * @param embed_dim width `D`
   * @param n_tok tokens per tile
   */
  constructor(embed_dim: number, n_tok: number) {
    super();
    this.positional_embedding = new Parameter([n_tok, embed_dim], true);
  }

  /** State-dict entry `positional_embedding`. */
  protected override params(): Record<string, Parameter> {
    return { positional_embedding: this.positional_embedding };
  }
}

/** Output of {@link VisionTransformer.record}: the final tokens and the saved hidden states. */
export interface VisionTransformerOutput {
  /** `[images·n_tiles·n_tok, D]` after `ln_post` and the post-tile embedding. */
  x: GPUBuffer;
  /** One `[images·n_tiles·n_tok, D]` buffer per entry of `out_indices`, in that order. */
  hidden: GPUBuffer[];
}

/**
 * Mirrors torchtune `modules.vision_transformer.VisionTransformer` as `llama3_2_vision_encoder` builds
 * it: a Conv2d patch embedding (as a matmul), CLS token, tiled position embeddings, `ln_pre`,
 * `layers` (pre-norm, LayerNorm, unmasked attention, GELU MLP), hidden states saved at the inputs of
 * `out_indices` (index `layers.length` = the last output), `ln_post`, and the post-tile embedding.
 */
export class VisionTransformer extends Module {
  /** `conv`: the patch embedding weight `[D, C, P, P]`, applied as `patches · Wᵀ`. */
  readonly conv: Linear;
  /** `cls_token_embedding.weight` `[D]`. */
  readonly cls_token_embedding: Parameter;
  /** `token_pos_embedding`: tiled (max_num_tiles > 1) or plain. */
  readonly token_pos_embedding: TiledTokenPositionalEmbedding | TokenPositionalEmbedding;
  /** `pre_tile_pos_embed` (null when max_num_tiles == 1). */
  readonly pre_tile_pos_embed: TilePositionalEmbedding | null;
  /** `post_tile_pos_embed` (null when max_num_tiles == 1). */
  readonly post_tile_pos_embed: TilePositionalEmbedding | null;
  /** `ln_pre`. */
  readonly ln_pre: LayerNorm;
  /** `ln_post`. */
  readonly ln_post: LayerNorm;
  /** `layers`: the CLIP transformer layers. */
  readonly layers: TransformerSelfAttentionLayer[];
  /** Layer indices whose inputs are saved as hidden states. */
  readonly out_indices: number[];
  /** `patch_size`. */
  readonly patch_size: number;
  /** `tile_size`. */
  readonly tile_size: number;
  /** Input channels. */
  readonly in_channels: number;
  /** `max_num_tiles`. */
  readonly max_num_tiles: number;
  /** Width `D`. */
  readonly embed_dim: number;

  /** Same parts as torchtune's constructor, already built. */
  constructor(opts: {
    conv: Linear;
    token_pos_embedding: TiledTokenPositionalEmbedding | TokenPositionalEmbedding;
    pre_tile_pos_embed: TilePositionalEmbedding | null;
    post_tile_pos_embed: TilePositionalEmbedding | null;
    ln_pre: LayerNorm;
    ln_post: LayerNorm;
    layers: TransformerSelfAttentionLayer[];
    out_indices: number[];
    patch_size: number;
    tile_size: number;
    in_channels: number;
    max_num_tiles: number;
    embed_dim: number;
  }) {
    super();
    this.conv = opts.conv;
    this.cls_token_embedding = new Parameter([opts.embed_dim], true);
    this.token_pos_embedding = opts.token_pos_embedding;
    this.pre_tile_pos_embed = opts.pre_tile_pos_embed;
    this.post_tile_pos_embed = opts.post_tile_pos_embed;
    this.ln_pre = opts.ln_pre;
    this.ln_post = opts.ln_post;
    this.layers = opts.layers;
    this.out_indices = opts.out_indices;
    this.patch_size = opts.patch_size;
    this.tile_size = opts.tile_size;
    this.in_channels = opts.in_channels;
    this.max_num_tiles = opts.max_num_tiles;
    this.embed_dim = opts.embed_dim;
  }

  /** Patches per tile side, `tile_size / patch_size`. */
  get grid(): number {
    return this.tile_size / this.patch_size;
  }

  /** Tokens per tile, patches + CLS. */
  get n_tok(): number {
    return this.grid * this.grid + 1;
  }

  /** torchtune state-dict names (`conv.weight`, `cls_token_embedding.weight`, …). */
  override named_parameters(prefix = ""): [string, Parameter][] {
    const out: [string, Parameter][] = [
      [`${prefix}conv.weight`, this.conv.weight],
      [`${prefix}cls_token_embedding.weight`, this.cls_token_embedding],
    ];
    const children: [string, Module | null][] = [
      ["token_pos_embedding", this.token_pos_embedding],
      ["pre_tile_pos_embed", this.pre_tile_pos_embed],
      ["post_tile_pos_embed", this.post_tile_pos_embed],
      ["ln_pre", this.ln_pre],
      ["ln_post", this.ln_post],
    ];
    for (const [name, m] of children) if (m) out.push(...m.named_parameters(`${prefix}${name}.`));
    this.layers.forEach((l, i) => out.push(...l.named_parameters(`${prefix}layers.${i}.`)));
    return out;
  }

  /**
   * Records the CLIP forward for `nImages` images of `nTiles` tiles each: `images` f32
   * `[nImages·nTiles, C, T, T]`, `aspect` the `(h, w)` tile layout of each image.
   */
  record(
    rec: Recorder,
    images: GPUBuffer,
    nImages: number,
    nTiles: number,
    aspect: [number, number][],
  ): VisionTransformerOutput {
    const D = this.embed_dim, g2 = this.grid * this.grid, nTok = this.n_tok;
    const tiles = nImages * nTiles;
    const rows = tiles * nTok;
    const patches = rec.scratch(tiles * g2 * this.in_channels * this.patch_size ** 2 * 4, "clip patches");
    patchify(rec, images, tiles, this.in_channels, this.tile_size, this.patch_size, patches);
    const embedded = rec.scratch(tiles * g2 * D * 4, "clip patch embeddings");
    this.conv.forward(rec, patches, tiles * g2, embedded);

    const tiled = this.token_pos_embedding instanceof TiledTokenPositionalEmbedding;
    const gates = rec.scratch(8, "clip gates");
    if (this.token_pos_embedding instanceof TiledTokenPositionalEmbedding) {
      rec.copy(this.token_pos_embedding.gate.buffer, 0, gates, 0, 4);
      rec.copy(this.pre_tile_pos_embed!.gate.buffer, 0, gates, 4, 4);
    }
    const local = this.token_pos_embedding instanceof TiledTokenPositionalEmbedding
      ? this.token_pos_embedding.local_token_positional_embedding.buffer
      : this.token_pos_embedding.positional_embedding.buffer;
    const x0 = rec.scratch(rows * D * 4, "clip tokens");
    for (let i = 0; i < nImages; i++) {
      const [h, w] = aspect[i];
      for (let k = 0; k < nTiles; k++) {
        const tile = i * nTiles + k;
        const real = tiled && k < h * w;
        visionEmbed(rec, {
          patches: { buffer: embedded, byteOffset: tile * g2 * D * 4, bytes: g2 * D * 4 },
          cls: this.cls_token_embedding.buffer,
          local,
          global: real
            ? (this.token_pos_embedding as TiledTokenPositionalEmbedding).entry(Math.floor(k / w), k % w)
            : null,
          pre: real ? this.pre_tile_pos_embed!.entry(Math.floor(k / w), k % w) : null,
          gates,
          out: { buffer: x0, byteOffset: tile * nTok * D * 4, bytes: nTok * D * 4 },
          nTok,
          dim: D,
          tiled,
        });
      }
    }
    const x = rec.scratch(rows * D * 4, "clip x");
    this.ln_pre.forward(rec, x0, rows, x);
    const call: LayerCall = {
      rec,
      batch: nImages,
      seq: nTiles * nTok,
      positions: null,
      mask: { kind: "none" },
      encoder: null,
      encoder_mask: { kind: "none" },
      skip: null,
    };
    const hidden: GPUBuffer[] = [];
    const save = (j: number) => {
      const copy = rec.scratch(rows * D * 4, `clip hidden ${j}`);
      rec.copy(x, 0, copy, 0, rows * D * 4);
      return copy;
    };
    const saved = new Map<number, GPUBuffer>();
    this.layers.forEach((layer, l) => {
      if (this.out_indices.includes(l)) saved.set(l, save(l));
      layer.forward(call, x);
    });
    if (this.out_indices.includes(this.layers.length)) {
      saved.set(this.layers.length, save(this.layers.length));
    }
    for (const j of this.out_indices) hidden.push(saved.get(j)!);
    const out = rec.scratch(rows * D * 4, "clip out");
    this.ln_post.forward(rec, x, rows, out);
    if (this.post_tile_pos_embed) {
      for (let i = 0; i < nImages; i++) {
        const [h, w] = aspect[i];
        for (let k = 0; k < Math.min(nTiles, h * w); k++) {
          const tile = i * nTiles + k;
          broadcastAdd(
            rec,
            { buffer: out, byteOffset: tile * nTok * D * 4, bytes: nTok * D * 4 },
            nTok,
            D,
            this.post_tile_pos_embed.entry(Math.floor(k / w), k % w),
            this.post_tile_pos_embed.gate.buffer,
          );
        }
      }
    }
    return { x: out, hidden };
  }
}

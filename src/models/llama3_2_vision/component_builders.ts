/**
 * torchtune's `llama3_2_vision_decoder` builder (`models/llama3_2_vision/_component_builders.py`).
 *
 * @module
 */
import { MultiHeadAttention } from "../../modules/attention.ts";
import { FeedForward } from "../../modules/feed_forward.ts";
import { Linear } from "../../modules/linear.ts";
import { FusionEmbedding, FusionLayer } from "../../modules/model_fusion.ts";
import { Llama3ScaledRoPE } from "../../modules/position_embeddings.ts";
import { RMSNorm } from "../../modules/rms_norm.ts";
import { TanhGate } from "../../modules/tanh_gate.ts";
import { TransformerCrossAttentionLayer, TransformerSelfAttentionLayer } from "../../modules/transformer.ts";
import { TransformerDecoder } from "../../modules/transformer_decoder.ts";
import { MAX_HEAD_DIM } from "../../gpu/ops.ts";
import { LayerNorm } from "../../modules/layer_norm.ts";
import { Llama3VisionEncoder, Llama3VisionProjectionHead } from "../../modules/vision_encoder.ts";
import {
  TiledTokenPositionalEmbedding,
  TilePositionalEmbedding,
  TokenPositionalEmbedding,
  VisionTransformer,
} from "../../modules/vision_transformer.ts";
import {
  type Llama3VisionEncoderArgs,
  type ResolvedEncoderArgs,
  resolveEncoderArgs,
} from "./encoder_args.ts";
import { type Llama3VisionDecoderArgs, resolveDecoderArgs } from "./decoder_args.ts";

/** torchtune's `llama3_mlp(dim, hidden_dim)`: SwiGLU without biases. */
export function llama3_mlp(dim: number, hidden_dim: number): FeedForward {
  return new FeedForward({
    gate_proj: new Linear(dim, hidden_dim),
    down_proj: new Linear(hidden_dim, dim),
    up_proj: new Linear(dim, hidden_dim),
  });
}

/**
 * Builds the Llama 3.2 Vision text decoder exactly as torchtune's `llama3_2_vision_decoder` does:
 * `num_layers` self-attention layers (GQA, Llama 3 scaled RoPE, RMSNorm eps 1e-5), with a
 * cross-attention layer (RMSNorm eps 1e-6, q/k norms eps 1e-5, tanh gates, no RoPE) fused before every
 * `fusion_interval`-th one, a final RMSNorm and the untied output projection. The weights are empty
 * until loaded (`loadCheckpoint` or `load_state_dict`).
 */
export function llama3_2_vision_decoder(args: Llama3VisionDecoderArgs): TransformerDecoder {
  const a = resolveDecoderArgs(args);
  if (a.head_dim > MAX_HEAD_DIM) {
    throw new RangeError(
      `llama3_2_vision_decoder: head_dim ${a.head_dim} exceeds the supported ${MAX_HEAD_DIM}`,
    );
  }
  const hd = a.head_dim;
  const rope = new Llama3ScaledRoPE(hd, a.max_seq_len, a.rope_base);
  const layers: (TransformerSelfAttentionLayer | FusionLayer)[] = [];
  for (let idx = 1; idx <= a.num_layers; idx++) {
    const self_attn = new MultiHeadAttention({
      embed_dim: a.embed_dim,
      num_heads: a.num_heads,
      num_kv_heads: a.num_kv_heads,
      head_dim: hd,
      pos_embeddings: rope,
      max_seq_len: a.max_seq_len,
      is_causal: true,
    });
    const decoder_layer = new TransformerSelfAttentionLayer({
      attn: self_attn,
      mlp: llama3_mlp(a.embed_dim, a.intermediate_dim),
      sa_norm: new RMSNorm(a.embed_dim, 1e-5),
      mlp_norm: new RMSNorm(a.embed_dim, 1e-5),
    });
    if (idx % a.fusion_interval === 0) {
      const attn = new MultiHeadAttention({
        embed_dim: a.embed_dim,
        num_heads: a.num_heads,
        num_kv_heads: a.num_kv_heads,
        head_dim: hd,
        q_norm: new RMSNorm(hd, 1e-5),
        k_norm: new RMSNorm(hd, 1e-5),
        max_seq_len: a.encoder_max_seq_len,
        is_causal: false,
      });
      const xattn_layer = new TransformerCrossAttentionLayer({
        attn,
        mlp: llama3_mlp(a.embed_dim, a.intermediate_dim),
        // torchtune leaves these at RMSNorm's default eps, 1e-6 (not the 1e-5 of HF and Meta).
        ca_norm: new RMSNorm(a.embed_dim),
        mlp_norm: new RMSNorm(a.embed_dim),
        ca_scale: new TanhGate(),
        mlp_scale: new TanhGate(),
      });
      layers.push(new FusionLayer(decoder_layer, xattn_layer));
    } else {
      layers.push(decoder_layer);
    }
  }
  return new TransformerDecoder({
    tok_embeddings: new FusionEmbedding(a.vocab_size, a.num_special_tokens, a.embed_dim),
    layers,
    max_seq_len: a.max_seq_len,
    num_heads: a.num_heads,
    head_dim: hd,
    norm: new RMSNorm(a.embed_dim, 1e-5),
    output: new Linear(a.embed_dim, a.vocab_size),
    rope,
  });
}

/** torchtune's `clip_mlp`: `fc2(GELU(fc1 x))`, both with biases. */
function clip_mlp(dim: number, hidden_dim: number): FeedForward {
  return new FeedForward({
    gate_proj: new Linear(dim, hidden_dim, { bias: true }),
    down_proj: new Linear(hidden_dim, dim, { bias: true }),
    activation: "gelu",
  });
}

/** A pre-norm vision layer (LayerNorm eps 1e-5, unmasked attention without biases, GELU MLP). */
function vision_layer(a: ResolvedEncoderArgs, gated: boolean): TransformerSelfAttentionLayer {
  const D = a.clip_embed_dim;
  return new TransformerSelfAttentionLayer({
    attn: new MultiHeadAttention({
      embed_dim: D,
      num_heads: a.num_heads,
      num_kv_heads: a.num_heads,
      head_dim: a.head_dim,
      max_seq_len: a.max_num_tiles * a.tokens_per_tile,
      is_causal: false,
    }),
    mlp: clip_mlp(D, a.mlp_dim),
    sa_norm: new LayerNorm(D, 1e-5),
    mlp_norm: new LayerNorm(D, 1e-5),
    sa_scale: gated ? new TanhGate() : null,
    mlp_scale: gated ? new TanhGate() : null,
  });
}

/**
 * Builds the Llama 3.2 Vision encoder exactly as torchtune's `llama3_2_vision_encoder` does: the CLIP
 * `VisionTransformer` (patch embedding, CLS, tiled position embeddings, `clip_num_layers` layers,
 * hidden states at `clip_hidden_states`) and the gated projection head to `decoder_embed_dim`.
 */
export function llama3_2_vision_encoder(args: Llama3VisionEncoderArgs): Llama3VisionEncoder {
  const a = resolveEncoderArgs(args);
  if (a.head_dim > MAX_HEAD_DIM) {
    throw new RangeError(
      `llama3_2_vision_encoder: head_dim ${a.head_dim} exceeds the supported ${MAX_HEAD_DIM}`,
    );
  }
  const D = a.clip_embed_dim;
  const clip = new VisionTransformer({
    // Conv2d(C → D, kernel = stride = P, no bias) as a matmul over extracted patches.
    conv: new Linear(a.in_channels * a.patch_size * a.patch_size, D, {
      weight_shape: [D, a.in_channels, a.patch_size, a.patch_size],
    }),
    token_pos_embedding: a.tiled
      ? new TiledTokenPositionalEmbedding(a.max_num_tiles, D, a.tokens_per_tile)
      : new TokenPositionalEmbedding(D, a.tokens_per_tile),
    pre_tile_pos_embed: a.tiled ? new TilePositionalEmbedding(a.max_num_tiles, D) : null,
    post_tile_pos_embed: a.tiled ? new TilePositionalEmbedding(a.max_num_tiles, D) : null,
    ln_pre: new LayerNorm(D, 1e-5),
    ln_post: new LayerNorm(D, 1e-5),
    layers: Array.from({ length: a.clip_num_layers }, () => vision_layer(a, false)),
    out_indices: a.clip_hidden_states,
    patch_size: a.patch_size,
    tile_size: a.tile_size,
    in_channels: a.in_channels,
    max_num_tiles: a.max_num_tiles,
    embed_dim: D,
  });
  const projection_head = new Llama3VisionProjectionHead({
    layers: Array.from({ length: a.num_layers_projection }, () => vision_layer(a, true)),
    output: new Linear(a.projection_in_dim, a.decoder_embed_dim, { bias: true }),
    num_hidden_inputs: a.num_hidden_states,
  });
  return new Llama3VisionEncoder({ clip, projection_head });
}

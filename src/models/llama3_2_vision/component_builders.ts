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
import { type Llama3VisionDecoderArgs, resolveDecoderArgs } from "./decoder_args.ts";

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
      mlp: new FeedForward(a.embed_dim, a.intermediate_dim),
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
        mlp: new FeedForward(a.embed_dim, a.intermediate_dim),
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

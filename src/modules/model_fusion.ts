/** @module torchtune `FusionEmbedding` and `FusionLayer` (`modules/model_fusion`). */
import { embedding, type Recorder } from "../gpu/ops.ts";
import { Module, Parameter } from "./module.ts";
import type {
  LayerCall,
  TransformerCrossAttentionLayer,
  TransformerSelfAttentionLayer,
} from "./transformer.ts";

/**
 * Mirrors torchtune `FusionEmbedding(vocab_size, fusion_vocab_size, embed_dim)`: ids below
 * `vocab_size` read `embedding` `[vocab_size, E]` (state dict `tok_embeddings.weight`), ids
 * `vocab_size + j` read row `j` of `fusion_embedding` `[fusion_vocab_size, E]`.
 */
export class FusionEmbedding extends Module {
  /** torchtune `vocab_size`: ids below it read `weight`. */
  readonly vocab_size: number;
  /** torchtune `fusion_vocab_size`: ids from `vocab_size` on read `fusion_embedding`. */
  readonly fusion_vocab_size: number;
  /** torchtune `embed_dim` (`E`). */
  readonly embed_dim: number;
  /** The base table (state-dict name `weight`: torchtune's hook strips `embedding.`). */
  readonly weight: Parameter;
  /** The special-token table (`fusion_embedding.weight`). */
  readonly fusion_embedding: Parameter;

  /**
   * Builds both tables; they are empty until loaded.
   *
   * @param vocab_size base ids
   * @param fusion_vocab_size special ids
   * @param embed_dim width
   */
  constructor(vocab_size: number, fusion_vocab_size: number, embed_dim: number) {
    super();
    this.vocab_size = vocab_size;
    this.fusion_vocab_size = fusion_vocab_size;
    this.embed_dim = embed_dim;
    this.weight = new Parameter([vocab_size, embed_dim]);
    this.fusion_embedding = new Parameter([fusion_vocab_size, embed_dim]);
  }

  /** `weight` and `fusion_embedding.weight` under `prefix`, as in torchtune's state dict. */
  override named_parameters(prefix = ""): [string, Parameter][] {
    return [[`${prefix}weight`, this.weight], [`${prefix}fusion_embedding.weight`, this.fusion_embedding]];
  }

  /** `out[T, E]` = embeddings of the i32 token ids `tokens` `[T]` (already range-checked). */
  forward(rec: Recorder, tokens: GPUBuffer, T: number, out: GPUBuffer): void {
    embedding(rec, this.weight.storage, 0, tokens, T, out);
    embedding(rec, this.fusion_embedding.storage, this.vocab_size, tokens, T, out);
  }
}

/**
 * Mirrors torchtune `FusionLayer(layer, fusion_layer, fusion_first=True)`: the cross-attention layer
 * runs first, then the wrapped self-attention layer. Its state dict stores the wrapped layer's
 * parameters without the `layer.` prefix, plus `fusion_layer.*`.
 */
export class FusionLayer extends Module {
  /** torchtune `layer`: the wrapped self-attention layer. */
  readonly layer: TransformerSelfAttentionLayer;
  /** torchtune `fusion_layer`: the cross-attention layer. */
  readonly fusion_layer: TransformerCrossAttentionLayer;
  /** torchtune `fusion_first`: always true here (`fusion_layer` runs before `layer`). */
  readonly fusion_first = true;

  /**
   * Wraps `layer` with `fusion_layer` in front.
   *
   * @param layer the self-attention layer
   * @param fusion_layer the cross-attention layer fused before it
   */
  constructor(layer: TransformerSelfAttentionLayer, fusion_layer: TransformerCrossAttentionLayer) {
    super();
    this.layer = layer;
    this.fusion_layer = fusion_layer;
  }

  /** `layer`'s parameters under `prefix` (no `layer.`), then `fusion_layer.*`. */
  override named_parameters(prefix = ""): [string, Parameter][] {
    return [
      ...this.layer.named_parameters(prefix),
      ...this.fusion_layer.named_parameters(`${prefix}fusion_layer.`),
    ];
  }

  /** Cross-attention, then self-attention, on `x` `[b·s, E]` in place. */
  forward(call: LayerCall, x: GPUBuffer): void {
    this.fusion_layer.forward(call, x);
    this.layer.forward(call, x);
  }
}

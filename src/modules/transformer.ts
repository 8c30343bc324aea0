/** @module torchtune `TransformerSelfAttentionLayer`, `TransformerCrossAttentionLayer`. */
import { type AttentionMask, gatedResidual, type Recorder } from "../gpu/ops.ts";
import type { AttentionInput, MultiHeadAttention } from "./attention.ts";
import type { FeedForward } from "./feed_forward.ts";
import { Module } from "./module.ts";
import type { LayerNorm } from "./layer_norm.ts";
import type { RMSNorm } from "./rms_norm.ts";
import type { TanhGate } from "./tanh_gate.ts";

/** A normalisation module: RMSNorm in the decoder, LayerNorm in the vision encoder. */
export type Norm = RMSNorm | LayerNorm;

/** What every layer of one forward call receives (torchtune passes the same kwargs to every layer). */
export interface LayerCall {
  /** Where the layers record their dispatches. */
  rec: Recorder;
  /** Batch size `b`. */
  batch: number;
  /** Tokens per batch row `s`. */
  seq: number;
  /** i32 `[b·s]` RoPE positions (null where no layer uses RoPE: the vision encoder). */
  positions: GPUBuffer | null;
  /** Self-attention mask (causal, or explicit bits over the key length). */
  mask: AttentionMask;
  /** Projected encoder output `[b, S, E]`, or null (text-only, or decode steps with a filled cache). */
  encoder: AttentionInput | null;
  /** Cross-attention mask over the cross-attention key length. */
  encoder_mask: AttentionMask;
  /** u32 `[b·s]`: 1 for text rows whose encoder mask has no True (zeroed by cross-attention). */
  skip: GPUBuffer | null;
}

/**
 * Mirrors torchtune `modules.TransformerSelfAttentionLayer` (pre-norm, no gates):
 * `h = x + attn(sa_norm(x)); out = h + mlp(mlp_norm(h))`.
 */
export class TransformerSelfAttentionLayer extends Module {
  /** torchtune `attn`: causal self-attention with RoPE (decoder) or unmasked attention (CLIP). */
  readonly attn: MultiHeadAttention;
  /** torchtune `mlp`. */
  readonly mlp: FeedForward;
  /** torchtune `sa_norm`: RMSNorm (decoder) or LayerNorm (vision encoder) before `attn`. */
  readonly sa_norm: Norm;
  /** torchtune `mlp_norm`: the norm before `mlp`. */
  readonly mlp_norm: Norm;
  /** torchtune `sa_scale`: a TanhGate on the attention branch (vision projection head), else identity. */
  readonly sa_scale: TanhGate | null;
  /** torchtune `mlp_scale`: a TanhGate on the MLP branch, else identity. */
  readonly mlp_scale: TanhGate | null;

  /** Same arguments as torchtune (`sa_scale`/`mlp_scale` absent means identity, as for Llama). */
  constructor(opts: {
    attn: MultiHeadAttention;
    mlp: FeedForward;
    sa_norm: Norm;
    mlp_norm: Norm;
    sa_scale?: TanhGate | null;
    mlp_scale?: TanhGate | null;
  }) {
    super();
    this.attn = opts.attn;
    this.mlp = opts.mlp;
    this.sa_norm = opts.sa_norm;
    this.mlp_norm = opts.mlp_norm;
    this.sa_scale = opts.sa_scale ?? null;
    this.mlp_scale = opts.mlp_scale ?? null;
  }

  /** Children `attn`, `mlp`, `sa_norm`, `mlp_norm` (and the gates). */
  protected override children(): Record<string, Module | null> {
    return {
      attn: this.attn,
      mlp: this.mlp,
      sa_norm: this.sa_norm,
      mlp_norm: this.mlp_norm,
      sa_scale: this.sa_scale,
      mlp_scale: this.mlp_scale,
    };
  }

  /** Updates `x` `[b·s, E]` in place. */
  forward(call: LayerCall, x: GPUBuffer): void {
    const { rec, batch, seq } = call;
    const T = batch * seq;
    const E = this.attn.embed_dim;
    // A branch buffer only for gated layers; ungated ones add into x inside the output projections.
    const branch = () => rec.scratch(T * E * 4, "branch");
    // attn and mlp apply their norm themselves: an RMSNorm folds into their first product when it can.
    const attnCall = { batch, seq, y: { buffer: x, seq }, mask: call.mask, positions: call.positions };
    // Without a gate the residual add is folded into the output projection (out += …).
    if (this.sa_scale) {
      const b = branch();
      this.attn.forward(rec, x, attnCall, b, false, this.sa_norm);
      gatedResidual(rec, x, b, T, E, this.sa_scale.scale.buffer, null);
    } else {
      this.attn.forward(rec, x, attnCall, x, true, this.sa_norm);
    }
    if (this.mlp_scale) {
      const b = branch();
      this.mlp.forward(rec, x, T, b, false, this.mlp_norm);
      gatedResidual(rec, x, b, T, E, this.mlp_scale.scale.buffer, null);
    } else {
      this.mlp.forward(rec, x, T, x, true, this.mlp_norm);
    }
  }
}

/**
 * Mirrors torchtune `modules.TransformerCrossAttentionLayer`:
 * `h = x + tanh(ca_scale) · attn(ca_norm(x), encoder); out = h + tanh(mlp_scale) · mlp(mlp_norm(h))`,
 * with both branches zeroed for text rows that may see no encoder position, and the whole layer
 * skipped when there is no encoder input and no filled cache (the text-only path).
 */
export class TransformerCrossAttentionLayer extends Module {
  /** torchtune `attn`: attention from the text to the encoder output, with q/k norms and no RoPE. */
  readonly attn: MultiHeadAttention;
  /** torchtune `mlp`. */
  readonly mlp: FeedForward;
  /** torchtune `ca_norm`: RMSNorm before `attn`. */
  readonly ca_norm: RMSNorm;
  /** torchtune `mlp_norm`: RMSNorm before `mlp`. */
  readonly mlp_norm: RMSNorm;
  /** torchtune `ca_scale`: gate on the attention branch. */
  readonly ca_scale: TanhGate;
  /** torchtune `mlp_scale`: gate on the MLP branch. */
  readonly mlp_scale: TanhGate;

  /** Same arguments as torchtune. */
  constructor(opts: {
    attn: MultiHeadAttention;
    mlp: FeedForward;
    ca_norm: RMSNorm;
    mlp_norm: RMSNorm;
    ca_scale: TanhGate;
    mlp_scale: TanhGate;
  }) {
    super();
    this.attn = opts.attn;
    this.mlp = opts.mlp;
    this.ca_norm = opts.ca_norm;
    this.mlp_norm = opts.mlp_norm;
    this.ca_scale = opts.ca_scale;
    this.mlp_scale = opts.mlp_scale;
  }

  /** Children `attn`, `mlp`, `ca_norm`, `mlp_norm`, `ca_scale`, `mlp_scale`. */
  protected override children(): Record<string, Module> {
    return {
      attn: this.attn,
      mlp: this.mlp,
      ca_norm: this.ca_norm,
      mlp_norm: this.mlp_norm,
      ca_scale: this.ca_scale,
      mlp_scale: this.mlp_scale,
    };
  }

  /** Whether this call does anything: torchtune returns x unchanged with no encoder input and an empty cache. */
  active(encoder: AttentionInput | null): boolean {
    const cache = this.attn.kv_cache;
    return encoder !== null || (cache !== null && cache.size > 0);
  }

  /** Updates `x` `[b·s, E]` in place. */
  forward(call: LayerCall, x: GPUBuffer): void {
    if (!this.active(call.encoder)) return;
    const { rec, batch, seq } = call;
    const T = batch * seq;
    const E = this.attn.embed_dim;
    const branch = rec.scratch(T * E * 4, "branch");
    this.attn.forward(
      rec,
      x,
      {
        batch,
        seq,
        y: call.encoder,
        mask: call.encoder_mask,
        positions: null,
      },
      branch,
      false,
      this.ca_norm,
    );
    gatedResidual(rec, x, branch, T, E, this.ca_scale.scale.buffer, call.skip);
    this.mlp.forward(rec, x, T, branch, false, this.mlp_norm);
    gatedResidual(rec, x, branch, T, E, this.mlp_scale.scale.buffer, call.skip);
  }
}

/** @module torchtune `MultiHeadAttention`. */
import {
  attention,
  type AttentionMask,
  canLinearSplit,
  kvCacheUpdate,
  linearSplit,
  type Recorder,
} from "../gpu/ops.ts";
import type { KVCache } from "./kv_cache.ts";
import { Linear } from "./linear.ts";
import { Module, StackedWeights } from "./module.ts";
import type { Llama3ScaledRoPE } from "./position_embeddings.ts";
import { normInput, type RMSNorm } from "./rms_norm.ts";
import type { Norm } from "./transformer.ts";

/** The second input of an attention call: keys/values come from `y` `[b, s_y, E]` (T_y = b·s_y rows). */
export interface AttentionInput {
  /** f32 `y` `[b·s_y, E]`, row-major by token. */
  buffer: GPUBuffer;
  /** Tokens per batch row. */
  seq: number;
}

/** Per-call arguments of {@link MultiHeadAttention.forward}. */
export interface AttentionCall {
  /** Batch size `b`. */
  batch: number;
  /** Query tokens per batch row. */
  seq: number;
  /** Keys/values source, or null to use the filled cache as is (cross-attention decode steps). */
  y: AttentionInput | null;
  /** torchtune `mask`: which keys each query token may attend to. */
  mask: AttentionMask;
  /** i32 `[b·s]` RoPE positions (self-attention only). */
  positions: GPUBuffer | null;
}

/**
 * Mirrors torchtune `modules.MultiHeadAttention` with grouped-query attention (KV head `h / (H/KV)`
 * serves query head `h`), optional RoPE (`pos_embeddings`), optional `q_norm`/`k_norm` over head_dim,
 * and an optional {@link KVCache}. No biases, no dropout.
 */
export class MultiHeadAttention extends Module {
  /** torchtune `embed_dim` (`E`). */
  readonly embed_dim: number;
  /** torchtune `num_heads` (query heads `H`). */
  readonly num_heads: number;
  /** torchtune `num_kv_heads` (key/value heads `KV`, dividing `H`). */
  readonly num_kv_heads: number;
  /** torchtune `head_dim`. */
  readonly head_dim: number;
  /** torchtune `q_proj`, weight `[H·head_dim, E]`. */
  readonly q_proj: Linear;
  /** torchtune `k_proj`, weight `[KV·head_dim, E]`. */
  readonly k_proj: Linear;
  /** torchtune `v_proj`, weight `[KV·head_dim, E]`. */
  readonly v_proj: Linear;
  /** torchtune `output_proj`, weight `[E, H·head_dim]`. */
  readonly output_proj: Linear;
  /** torchtune `pos_embeddings`: RoPE applied to q and k, or null (cross-attention). */
  readonly pos_embeddings: Llama3ScaledRoPE | null;
  /** torchtune `q_norm`: RMSNorm over `head_dim` of each query head, or null. */
  readonly q_norm: RMSNorm | null;
  /** torchtune `k_norm`: RMSNorm over `head_dim` of each key head, or null. */
  readonly k_norm: RMSNorm | null;
  /** torchtune's `max_seq_len` attribute; for cross-attention this is `encoder_max_seq_len`. */
  readonly max_seq_len: number;
  /** Causal when no mask and no cache are given (self-attention). */
  readonly is_causal: boolean;
  /** Set by `setup_cache`; null when caches are off. */
  kv_cache: KVCache | null = null;
  /** q, k and v weights stacked: a self-attention decode step projects them in one dispatch. */
  readonly #qkv: StackedWeights;

  /** Same keyword arguments as torchtune (projections are built here from the sizes). */
  constructor(opts: {
    embed_dim: number;
    num_heads: number;
    num_kv_heads: number;
    head_dim: number;
    pos_embeddings?: Llama3ScaledRoPE | null;
    q_norm?: RMSNorm | null;
    k_norm?: RMSNorm | null;
    max_seq_len: number;
    is_causal: boolean;
  }) {
    super();
    this.embed_dim = opts.embed_dim;
    this.num_heads = opts.num_heads;
    this.num_kv_heads = opts.num_kv_heads;
    this.head_dim = opts.head_dim;
    this.q_proj = new Linear(opts.embed_dim, opts.num_heads * opts.head_dim);
    this.k_proj = new Linear(opts.embed_dim, opts.num_kv_heads * opts.head_dim);
    this.v_proj = new Linear(opts.embed_dim, opts.num_kv_heads * opts.head_dim);
    this.output_proj = new Linear(opts.num_heads * opts.head_dim, opts.embed_dim);
    this.pos_embeddings = opts.pos_embeddings ?? null;
    this.q_norm = opts.q_norm ?? null;
    this.k_norm = opts.k_norm ?? null;
    this.max_seq_len = opts.max_seq_len;
    this.is_causal = opts.is_causal;
    this.#qkv = new StackedWeights([this.q_proj.weight, this.k_proj.weight, this.v_proj.weight]);
  }

  /** Children `q_proj`, `k_proj`, `v_proj`, `output_proj`, `q_norm`, `k_norm` (RoPE has no parameters). */
  protected override children(): Record<string, Module | null> {
    return {
      q_proj: this.q_proj,
      k_proj: this.k_proj,
      v_proj: this.v_proj,
      output_proj: this.output_proj,
      q_norm: this.q_norm,
      k_norm: this.k_norm,
    };
  }

  /** Length of the keys the next call attends over (the cache length with a cache). */
  keyLength(y: AttentionInput | null): number {
    if (this.kv_cache) return this.kv_cache.max_seq_len;
    if (!y) throw new Error("internal: attention without keys and without a cache");
    return y.seq;
  }

  /**
   * `out[b·s, E] = attn(x, y)` for `x` `[b·s, E]`. With `norm`, attention is over `norm(x)` (and `y`, when
   * it is `x`, is normalised too): the layer's `sa_norm` or `ca_norm`, folded into the first product of
   * `x` (q, k and v stacked; q alone when `y` is another input) when that quantizes its input (quantized
   * decoding), and applied here otherwise.
   */
  forward(
    rec: Recorder,
    x: GPUBuffer,
    call: AttentionCall,
    out: GPUBuffer,
    accumulate = false,
    norm: Norm | null = null,
  ): void {
    const { batch, seq } = call;
    let y = call.y;
    const T = batch * seq;
    const H = this.num_heads, KV = this.num_kv_heads, hd = this.head_dim;
    let q = rec.scratch(T * H * hd * 4, "q");
    const kvLen = this.keyLength(y);
    const Ty = y ? batch * y.seq : 0;
    let k = y ? rec.scratch(Ty * KV * hd * 4, "k") : null;
    const v = y ? rec.scratch(Ty * KV * hd * 4, "v") : null;
    // Self-attention over a few tokens (decoding): q, k and v in one product over the stacked weights.
    const self = y !== null && y.buffer === x && y.seq === seq;
    const stacked = self ? this.#qkv.storage : null;
    const split = stacked !== null && k !== null && v !== null && canLinearSplit(stacked, T);
    // Self-attention's q, k and v read the normalised input: it folds only into their one stacked product.
    const input = normInput(rec, norm, x, T, split ? stacked : self ? null : this.q_proj.weight.storage);
    if (self && y) y = { buffer: input.x, seq: y.seq };
    x = input.x;
    if (split && k && v) {
      linearSplit(rec, stacked, x, T, [
        { buffer: q, rows: H * hd },
        { buffer: k, rows: KV * hd },
        { buffer: v, rows: KV * hd },
      ], input.fold);
    } else {
      this.q_proj.forward(rec, x, T, q, false, { rmsNorm: input.fold });
      if (y && k && v) {
        this.k_proj.forward(rec, y.buffer, Ty, k);
        this.v_proj.forward(rec, y.buffer, Ty, v);
      }
    }
    let kBuf: GPUBuffer, vBuf: GPUBuffer;
    const rope = this.pos_embeddings && call.positions
      ? { module: this.pos_embeddings, positions: call.positions }
      : null;
    if (
      self && k && v && rope && this.kv_cache && !this.q_norm && !this.k_norm &&
      this.kv_cache.updateWithRope(rec, q, H, k, v, seq, {
        positions: rope.positions,
        table: rope.module.table,
      })
    ) {
      // RoPE on q and k and the cache write in one dispatch.
      kBuf = this.kv_cache.k_cache;
      vBuf = this.kv_cache.v_cache;
    } else {
      if (rope) rope.module.forward(rec, q, T, H, rope.positions);
      if (this.q_norm) {
        const qn = rec.scratch(T * H * hd * 4, "q normed");
        this.q_norm.forward(rec, q, T * H, qn);
        q = qn;
      }
      if (y && k && v) {
        if (rope) rope.module.forward(rec, k, Ty, KV, rope.positions);
        if (this.k_norm) {
          const kn = rec.scratch(Ty * KV * hd * 4, "k normed");
          this.k_norm.forward(rec, k, Ty * KV, kn);
          k = kn;
        }
        if (this.kv_cache) {
          this.kv_cache.update(rec, k, v, y.seq);
          kBuf = this.kv_cache.k_cache;
          vBuf = this.kv_cache.v_cache;
        } else {
          // Without a cache, lay k/v out as a cache of exactly s_y slots: the kernel reads one layout.
          kBuf = rec.scratch(Ty * KV * hd * 4, "k heads");
          vBuf = rec.scratch(Ty * KV * hd * 4, "v heads");
          kvLayout(rec, k, v, batch, y.seq, KV, hd, { k: kBuf, v: vBuf });
        }
      } else {
        if (!this.kv_cache) throw new Error("internal: attention without keys and without a cache");
        kBuf = this.kv_cache.k_cache;
        vBuf = this.kv_cache.v_cache;
      }
    }
    const attnOut = rec.scratch(T * H * hd * 4, "attention output");
    attention(rec, q, batch, seq, H, KV, hd, kBuf, vBuf, kvLen, call.mask, attnOut);
    this.output_proj.forward(rec, attnOut, T, out, accumulate);
  }
}

/** Copies k/v `[b·s, KV·hd]` into the `[b, KV, s, hd]` layout the attention kernel reads. */
function kvLayout(
  rec: Recorder,
  k: GPUBuffer,
  v: GPUBuffer,
  batch: number,
  seq: number,
  nKv: number,
  hd: number,
  into: { k: GPUBuffer; v: GPUBuffer },
): void {
  kvCacheUpdate(rec, k, v, batch, seq, nKv, hd, into.k, into.v, seq, 0);
}

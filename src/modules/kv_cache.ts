/** @module torchtune `KVCache`. */
import { BufferOwner, clearBuffers } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { kvCacheUpdate, type Recorder, ropeKvUpdate } from "../gpu/ops.ts";

/**
 * Mirrors torchtune `modules.KVCache`: `k_cache` and `v_cache` `[batch_size, num_kv_heads, max_seq_len,
 * head_dim]`, zero-initialised, written at a running slot counter (`size`, torchtune's `cache_pos[0]`)
 * that is independent of the RoPE positions. Attention always spans all `max_seq_len` slots; the
 * caller's mask hides the unwritten ones.
 */
export class KVCache {
  /** torchtune `batch_size`: the batch every call must have. */
  readonly batch_size: number;
  /** torchtune `max_seq_len`: cache slots per batch row and head. */
  readonly max_seq_len: number;
  /** torchtune `num_kv_heads`. */
  readonly num_kv_heads: number;
  /** torchtune `head_dim`. */
  readonly head_dim: number;
  /** torchtune `k_cache`: f32 `[batch_size, num_kv_heads, max_seq_len, head_dim]`. */
  readonly k_cache: GPUBuffer;
  /** torchtune `v_cache`: f32 `[batch_size, num_kv_heads, max_seq_len, head_dim]`. */
  readonly v_cache: GPUBuffer;
  /** Slots written so far. */
  size = 0;
  #owner: BufferOwner;

  /** Allocates both caches on `gpu`. */
  constructor(gpu: Gpu, batch_size: number, max_seq_len: number, num_kv_heads: number, head_dim: number) {
    this.batch_size = batch_size;
    this.max_seq_len = max_seq_len;
    this.num_kv_heads = num_kv_heads;
    this.head_dim = head_dim;
    const bytes = batch_size * num_kv_heads * max_seq_len * head_dim * 4;
    if (bytes > gpu.limits.maxBindingBytes) {
      throw new RangeError(
        `a KV cache of ${batch_size}×${num_kv_heads}×${max_seq_len}×${head_dim} floats (${bytes} bytes) exceeds ` +
          `this adapter's largest storage binding (${gpu.limits.maxBindingBytes} bytes); pass a smaller ` +
          "decoder_max_seq_len / encoder_max_seq_len to setup_caches (prompt + new tokens is enough)",
      );
    }
    this.#owner = new BufferOwner(gpu);
    this.k_cache = this.#owner.storage(bytes, "k_cache");
    this.v_cache = this.#owner.storage(bytes, "v_cache");
  }

  /** Records the write of `k`/`v` `[batch·seq, num_kv_heads·head_dim]` at the next `seq` slots and advances. */
  update(rec: Recorder, k: GPUBuffer, v: GPUBuffer, seq: number): void {
    this.#checkRoom(seq);
    kvCacheUpdate(
      rec,
      k,
      v,
      this.batch_size,
      seq,
      this.num_kv_heads,
      this.head_dim,
      this.k_cache,
      this.v_cache,
      this.max_seq_len,
      this.size,
    );
    this.size += seq;
  }

  /**
   * {@link KVCache.update} with RoPE fused in: `q` `[batch·seq, nHeads·head_dim]` gets RoPE in place and
   * `k` gets it on its way into the cache (positions i32 `[batch·seq]`, the RoPE module's table), in
   * one dispatch. Returns false, writing nothing, when the sizes need the separate kernels.
   */
  updateWithRope(
    rec: Recorder,
    q: GPUBuffer,
    nHeads: number,
    k: GPUBuffer,
    v: GPUBuffer,
    seq: number,
    rope: { positions: GPUBuffer; table: GPUBuffer },
  ): boolean {
    this.#checkRoom(seq);
    const done = ropeKvUpdate(
      rec,
      { q, k, v },
      this.batch_size,
      seq,
      nHeads,
      this.num_kv_heads,
      this.head_dim,
      rope,
      { k: this.k_cache, v: this.v_cache, len: this.max_seq_len, slot0: this.size },
    );
    if (done) this.size += seq;
    return done;
  }

  #checkRoom(seq: number): void {
    if (this.size + seq > this.max_seq_len) {
      throw new RangeError(
        `KV cache overflow: ${this.size} slots used + ${seq} new > ${this.max_seq_len}; ` +
          "call reset_caches() or set up larger caches",
      );
    }
  }

  /** Zeroes both caches and rewinds the slot counter (torchtune `reset`). */
  reset(): void {
    clearBuffers(this.#owner.gpu, [this.k_cache, this.v_cache]);
    this.size = 0;
  }

  /** Frees the cache memory. */
  destroy(): void {
    this.#owner.destroy();
  }
}

/** @module torchtune `Llama3ScaledRoPE`. */
import type { BufferOwner } from "../gpu/buffers.ts";
import { type Recorder, rope } from "../gpu/ops.ts";
import { Module } from "./module.ts";

const f32 = Math.fround;

/**
 * The llama3-scaled inverse frequencies `theta_i`, `i < dim/2`, computed in float32 step by step as
 * torchtune's `Llama3ScaledRoPE.apply_scaling` does (scale_factor 8, low_freq_factor 1,
 * high_freq_factor 4, old_context_len 8192: hard-wired, as in torchtune).
 */
export function llama3ScaledTheta(dim: number, base: number): Float32Array {
  const half = dim / 2;
  const theta = new Float32Array(half);
  const scaleFactor = 8, lowFreqFactor = 1, highFreqFactor = 4, oldContextLen = 8192;
  const lowFreqWavelen = oldContextLen / lowFreqFactor;
  const highFreqWavelen = oldContextLen / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const freq = f32(1 / f32(Math.pow(base, f32(f32(2 * i) / dim))));
    const wavelen = f32(f32(2 * Math.PI) / freq);
    if (wavelen < highFreqWavelen) theta[i] = freq;
    else if (wavelen > lowFreqWavelen) theta[i] = f32(freq / scaleFactor);
    else {
      const smooth = f32(
        f32(f32(oldContextLen / wavelen) - lowFreqFactor) / (highFreqFactor - lowFreqFactor),
      );
      theta[i] = f32(f32(f32(f32(1 - smooth) * freq) / scaleFactor) + f32(smooth * freq));
    }
  }
  return theta;
}

/** torchtune's RoPE cache `[max_seq_len, dim/2, 2]` of `(cos, sin)(p · theta_i)` in float32. */
export function ropeCache(theta: Float32Array, maxSeqLen: number): Float32Array {
  const half = theta.length;
  const cache = new Float32Array(maxSeqLen * half * 2);
  for (let p = 0; p < maxSeqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(p * theta[i]);
      cache[(p * half + i) * 2] = Math.cos(angle);
      cache[(p * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return cache;
}

/**
 * Mirrors torchtune `models.llama3_1._position_embeddings.Llama3ScaledRoPE(dim, max_seq_len, base)`:
 * rotary embeddings on interleaved pairs `(x[2i], x[2i+1])` with Llama 3.1 frequency scaling. It has
 * no parameters; its table is uploaded on first use and shared by every self-attention layer.
 */
export class Llama3ScaledRoPE extends Module {
  /** torchtune `dim`: the head dimension rotated. */
  readonly dim: number;
  /** torchtune `max_seq_len`: rows of the cos/sin table; positions must be below it. */
  readonly max_seq_len: number;
  /** torchtune `base` (theta, the decoder's `rope_base`). */
  readonly base: number;
  #table: GPUBuffer | null = null;

  /**
   * Builds the module; the table is computed and uploaded by {@link Llama3ScaledRoPE.upload}.
   *
   * @param dim head_dim
   * @param max_seq_len table rows
   * @param base theta (rope_base)
   */
  constructor(dim: number, max_seq_len: number, base: number) {
    super();
    this.dim = dim;
    this.max_seq_len = max_seq_len;
    this.base = base;
  }

  /** Builds and uploads the table (on the model's buffer owner). */
  upload(owner: BufferOwner): void {
    this.#table ??= owner.upload(
      ropeCache(llama3ScaledTheta(this.dim, this.base), this.max_seq_len),
      "rope cache",
    );
  }

  /** The uploaded cos/sin table f32 `[max_seq_len, dim/2, 2]` (for kernels that apply RoPE themselves). */
  get table(): GPUBuffer {
    if (!this.#table) throw new Error("internal: RoPE table not uploaded");
    return this.#table;
  }

  /** Rotates `x` `[T, n_heads, dim]` in place at positions i32 `[T]`. */
  forward(rec: Recorder, x: GPUBuffer, T: number, nHeads: number, positions: GPUBuffer): void {
    if (!this.#table) throw new Error("internal: RoPE table not uploaded");
    rope(rec, x, T, nHeads, this.dim, positions, this.#table);
  }
}

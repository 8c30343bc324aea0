/**
 * Sampling settings: torchtune's `generation.sample` arguments (temperature, top_k) plus top_p and a
 * seed, checked with messages that say the valid range.
 *
 * @module
 */
import type { SampleSettings } from "../gpu/ops.ts";

/** User-facing sampling options; every field optional. */
export interface SamplingOptions {
  /** Softmax temperature ≥ 0 (torchtune default 1.0); 0 means greedy. */
  temperature?: number;
  /** Keep only the k most likely tokens (ties with the k-th survive); null or undefined = off. */
  top_k?: number | null;
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p, in (0, 1]. */
  top_p?: number | null;
  /** Seed for reproducible sampling (default: random). */
  seed?: number | null;
}

/** Validates sampling options and fills defaults (temperature 1, no top_k, top_p 1, a random seed). */
export function resolveSampling(opts: SamplingOptions = {}): SampleSettings {
  const temperature = opts.temperature ?? 1.0;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    throw new RangeError(`temperature must be a finite number ≥ 0 (0 = greedy), got ${temperature}`);
  }
  const top_k = opts.top_k ?? null;
  if (top_k !== null && (!Number.isInteger(top_k) || top_k < 1)) {
    throw new RangeError(`top_k must be an integer ≥ 1 (or unset), got ${top_k}`);
  }
  const top_p = opts.top_p ?? 1;
  if (typeof top_p !== "number" || !(top_p > 0 && top_p <= 1)) {
    throw new RangeError(`top_p must be in (0, 1] (1 = off), got ${top_p}`);
  }
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  return { temperature, top_k, top_p, seed };
}

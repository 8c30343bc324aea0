/**
 * The two fixed benchmark configurations (random bf16 weights, batch 1): one 560-pixel tile of vision
 * tokens (1601) that every text position attends to, a 128-token prompt whose first token is the image
 * token, then 64 decode steps.
 *
 * @module
 */
import type { Llama3VisionDecoderArgs } from "../mod.ts";

/** A benchmark configuration. */
export interface BenchConfig {
  /** Name used by `bench/run.ts --config`. */
  name: string;
  /** What it models. */
  description: string;
  /** The decoder's builder arguments (`llama3_2_vision_decoder`). */
  args: Llama3VisionDecoderArgs & { num_special_tokens: number; rope_base: number };
  /** Encoder (vision) tokens: one 560-pixel tile = (560 / 14)² + 1 = 1601. */
  encoder_seq_len: number;
  /** Prompt tokens; the first is the image token (id `vocab_size`). */
  prompt_len: number;
  /** Decode steps after the prefill (each a forward pass of one token). */
  decode_steps: number;
}

const COMMON = {
  num_special_tokens: 8,
  max_seq_len: 4096,
  encoder_max_seq_len: 1601,
  rope_base: 500000,
} as const;

/** The configurations by name. */
export const BENCH_CONFIGS = {
  bench_small: {
    name: "bench_small",
    description: "8 layers (2 fused), embed 1024, vocab 32768: 219M parameters",
    args: {
      ...COMMON,
      vocab_size: 32768,
      num_layers: 8,
      fusion_interval: 4,
      num_heads: 16,
      num_kv_heads: 4,
      embed_dim: 1024,
      intermediate_dim: 4096,
    },
    encoder_seq_len: 1601,
    prompt_len: 128,
    decode_steps: 64,
  },
  bench_11b_slice: {
    name: "bench_11b_slice",
    description: "the 11B decoder's layer shapes with 4 layers (1 fused), vocab 128256: 2.1B parameters",
    args: {
      ...COMMON,
      vocab_size: 128256,
      num_layers: 4,
      fusion_interval: 4,
      num_heads: 32,
      num_kv_heads: 8,
      embed_dim: 4096,
      intermediate_dim: 14336,
    },
    encoder_seq_len: 1601,
    prompt_len: 128,
    decode_steps: 64,
  },
} as const satisfies Record<string, BenchConfig>;

/** A configuration's name. */
export type BenchConfigName = keyof typeof BENCH_CONFIGS;

/** The configuration called `name`, or an error listing the known ones. */
export function benchConfig(name: string): BenchConfig {
  if (!Object.hasOwn(BENCH_CONFIGS, name)) {
    throw new Error(`unknown config ${name}; expected one of ${Object.keys(BENCH_CONFIGS).join(", ")}`);
  }
  return BENCH_CONFIGS[name as BenchConfigName];
}

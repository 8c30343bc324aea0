/**
 * The keyword arguments of torchtune's `llama3_2_vision_decoder`, their defaults and their checks.
 *
 * Kept apart from the builder so that the checkpoint code (config.json → arguments) can use them
 * without pulling in the GPU modules.
 *
 * @module
 */

/**
 * Keyword arguments of torchtune's `llama3_2_vision_decoder`
 * (`torchtune.models.llama3_2_vision._component_builders`), same names and meaning.
 */
export interface Llama3VisionDecoderArgs {
  /** Number of base text tokens; also the number of output logits. */
  vocab_size: number;
  /** Number of self-attention layers (cross-attention layers are not counted). */
  num_layers: number;
  /** A cross-attention layer is fused before every `fusion_interval`-th self-attention layer. */
  fusion_interval: number;
  /** Extra learnable embedding rows for ids `vocab_size … vocab_size + num_special_tokens - 1`. */
  num_special_tokens: number;
  /** Query heads. */
  num_heads: number;
  /** Key/value heads (grouped-query attention); falsy means `num_heads` (MHA). */
  num_kv_heads: number | null;
  /** Model width `E`; `head_dim = embed_dim / num_heads`. */
  embed_dim: number;
  /** RoPE table size and the longest sequence `forward` accepts. */
  max_seq_len: number;
  /** Stored on the cross-attention modules only; never used in computation (as in torchtune). */
  encoder_max_seq_len: number;
  /** RoPE theta. Default 500000. */
  rope_base?: number;
  /** MLP hidden size; `scale_hidden_dim_for_mlp(embed_dim)` when absent or null. */
  intermediate_dim?: number | null;
}

/** {@link Llama3VisionDecoderArgs} with every default applied and every derived size computed. */
export interface ResolvedDecoderArgs {
  /** As {@link Llama3VisionDecoderArgs.vocab_size}. */
  vocab_size: number;
  /** As {@link Llama3VisionDecoderArgs.num_layers}. */
  num_layers: number;
  /** As {@link Llama3VisionDecoderArgs.fusion_interval}. */
  fusion_interval: number;
  /** As {@link Llama3VisionDecoderArgs.num_special_tokens}. */
  num_special_tokens: number;
  /** As {@link Llama3VisionDecoderArgs.num_heads}. */
  num_heads: number;
  /** Key/value heads; `num_heads` when the argument was falsy. */
  num_kv_heads: number;
  /** As {@link Llama3VisionDecoderArgs.embed_dim}. */
  embed_dim: number;
  /** As {@link Llama3VisionDecoderArgs.max_seq_len}. */
  max_seq_len: number;
  /** As {@link Llama3VisionDecoderArgs.encoder_max_seq_len}. */
  encoder_max_seq_len: number;
  /** RoPE theta; 500000 when not given. */
  rope_base: number;
  /** MLP hidden size; `scale_hidden_dim_for_mlp(embed_dim)` when not given. */
  intermediate_dim: number;
  /** `embed_dim / num_heads`. */
  head_dim: number;
  /** 0-based layer indices `i` with `(i + 1) % fusion_interval == 0`, which carry a cross-attention layer. */
  fusion_layer_indices: number[];
}

/**
 * torchtune's `scale_hidden_dim_for_mlp(dim, multiple_of=256)`: `4 * floor(2 * dim / 3)` rounded up
 * to a multiple of `multiple_of`.
 */
export function scale_hidden_dim_for_mlp(dim: number, multiple_of = 256): number {
  const hidden = 4 * Math.floor((2 * dim) / 3);
  return multiple_of * Math.ceil(hidden / multiple_of);
}

/** Far above any Llama 3.2 Vision model; larger values are corrupt and would only end in out-of-memory. */
const DECODER_LIMITS: Readonly<Record<string, number>> = {
  vocab_size: 1 << 22,
  num_layers: 1024,
  fusion_interval: 1024,
  num_special_tokens: 1 << 16,
  num_heads: 1024,
  num_kv_heads: 1024,
  embed_dim: 65536,
  max_seq_len: 1 << 20,
  encoder_max_seq_len: 1 << 24,
  intermediate_dim: 1 << 20,
};

function positiveInt(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `llama3_2_vision_decoder: ${name} must be a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  const max = DECODER_LIMITS[name];
  if (max !== undefined && value > max) {
    throw new RangeError(
      `llama3_2_vision_decoder: ${name} is ${value}, above ${max}, the most this implementation accepts ` +
        `(far beyond any Llama 3.2 Vision model)`,
    );
  }
  return value;
}

/** Applies torchtune's defaults and rejects arguments torchtune would fail on, with messages that say the fix. */
export function resolveDecoderArgs(args: Llama3VisionDecoderArgs): ResolvedDecoderArgs {
  if (args === null || typeof args !== "object") {
    throw new TypeError("llama3_2_vision_decoder: pass the keyword arguments as one object");
  }
  const known = new Set([
    "vocab_size",
    "num_layers",
    "fusion_interval",
    "num_special_tokens",
    "num_heads",
    "num_kv_heads",
    "embed_dim",
    "max_seq_len",
    "encoder_max_seq_len",
    "rope_base",
    "intermediate_dim",
  ]);
  for (const key of Object.keys(args)) {
    if (!known.has(key)) {
      throw new TypeError(
        `llama3_2_vision_decoder: unknown argument "${key}"; expected one of ${[...known].join(", ")}`,
      );
    }
  }
  const vocab_size = positiveInt("vocab_size", args.vocab_size);
  const num_layers = positiveInt("num_layers", args.num_layers);
  const fusion_interval = positiveInt("fusion_interval", args.fusion_interval);
  const num_special_tokens = positiveInt("num_special_tokens", args.num_special_tokens);
  const num_heads = positiveInt("num_heads", args.num_heads);
  const num_kv_heads = args.num_kv_heads ? positiveInt("num_kv_heads", args.num_kv_heads) : num_heads;
  const embed_dim = positiveInt("embed_dim", args.embed_dim);
  const max_seq_len = positiveInt("max_seq_len", args.max_seq_len);
  const encoder_max_seq_len = positiveInt("encoder_max_seq_len", args.encoder_max_seq_len);
  const rope_base = args.rope_base ?? 500000;
  if (typeof rope_base !== "number" || !(rope_base > 1) || !Number.isFinite(rope_base)) {
    throw new RangeError(
      `llama3_2_vision_decoder: rope_base must be a finite number > 1, got ${JSON.stringify(rope_base)}`,
    );
  }
  const intermediate_dim = args.intermediate_dim == null
    ? scale_hidden_dim_for_mlp(embed_dim)
    : positiveInt("intermediate_dim", args.intermediate_dim);
  if (num_heads % num_kv_heads !== 0) {
    throw new RangeError(
      `llama3_2_vision_decoder: num_heads (${num_heads}) must be a multiple of num_kv_heads (${num_kv_heads})`,
    );
  }
  if (embed_dim % num_heads !== 0) {
    throw new RangeError(
      `llama3_2_vision_decoder: embed_dim (${embed_dim}) must be divisible by num_heads (${num_heads})`,
    );
  }
  const head_dim = embed_dim / num_heads;
  if (head_dim % 2 !== 0) {
    throw new RangeError(
      `llama3_2_vision_decoder: head_dim = embed_dim / num_heads = ${head_dim} must be even for RoPE pairs`,
    );
  }
  const fusion_layer_indices: number[] = [];
  for (let i = 0; i < num_layers; i++) if ((i + 1) % fusion_interval === 0) fusion_layer_indices.push(i);
  return {
    vocab_size,
    num_layers,
    fusion_interval,
    num_special_tokens,
    num_heads,
    num_kv_heads,
    embed_dim,
    max_seq_len,
    encoder_max_seq_len,
    rope_base,
    intermediate_dim,
    head_dim,
    fusion_layer_indices,
  };
}

/**
 * Hugging Face `MllamaConfig` / `MllamaTextConfig` → the keyword arguments of torchtune's
 * `llama3_2_vision_decoder`, and the argument sets of torchtune's 11B / 90B builders.
 *
 * @module
 */

import { join } from "node:path";
import type { Llama3VisionDecoderArgs } from "./decoder_args.ts";

/** The decoder arguments torchtune's `llama3_2_vision_11b` passes to `llama3_2_vision_decoder`. */
export const LLAMA3_2_VISION_11B_DECODER_ARGS: Llama3VisionDecoderArgs = Object.freeze({
  vocab_size: 128256,
  num_layers: 32,
  fusion_interval: 4,
  num_special_tokens: 8,
  num_heads: 32,
  num_kv_heads: 8,
  embed_dim: 4096,
  max_seq_len: 131072,
  encoder_max_seq_len: 128080,
  rope_base: 500000,
  intermediate_dim: 14336,
});

/** The decoder arguments torchtune's `llama3_2_vision_90b` passes to `llama3_2_vision_decoder`. */
export const LLAMA3_2_VISION_90B_DECODER_ARGS: Llama3VisionDecoderArgs = Object.freeze({
  vocab_size: 128256,
  num_layers: 80,
  fusion_interval: 4,
  num_special_tokens: 8,
  num_heads: 64,
  num_kv_heads: 8,
  embed_dim: 8192,
  max_seq_len: 131072,
  encoder_max_seq_len: 128080,
  rope_base: 500000,
  intermediate_dim: 28672,
});

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * Upper bounds on config sizes, far above any Llama 3.2 Vision checkpoint (90B: hidden 8192, 100 layers, vocab
 * 128256, intermediate 28672, 131072 positions). A corrupt config (hidden_size 1e12) is refused here, before
 * anything is allocated from it, instead of surfacing as an out-of-memory error later.
 */
export const CONFIG_LIMITS: Readonly<Record<string, number>> = Object.freeze({
  num_hidden_layers: 1024,
  hidden_size: 65536,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  vocab_size: 1 << 22,
  intermediate_size: 1 << 20,
  max_position_embeddings: 1 << 20,
  max_num_tiles: 64,
  image_size: 4096,
  patch_size: 4096,
});

function posInt(obj: Record<string, unknown>, field: string, where: string): number {
  const v = obj[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(
      `${where}: field "${field}" must be a positive integer, got ${
        v === undefined ? "nothing" : JSON.stringify(v)
      }`,
    );
  }
  const max = CONFIG_LIMITS[field];
  if (max !== undefined && v > max) {
    throw new Error(
      `${where}: field "${field}" is ${v}, above ${max}, the most this implementation accepts (far beyond any ` +
        `Llama 3.2 Vision model): the config is corrupt or not a Llama 3.2 Vision config`,
    );
  }
  return v;
}

/**
 * torchtune's Llama3ScaledRoPE hard-wires these; a checkpoint trained with other values would silently get the
 * wrong positions, so anything else is refused.
 */
function checkRopeScaling(rs: unknown, where: string): void {
  if (rs === undefined || rs === null) return;
  const ok = isObject(rs) && (rs.rope_type ?? rs.type) === "llama3" && rs.factor === 8 &&
    rs.low_freq_factor === 1 && rs.high_freq_factor === 4 && rs.original_max_position_embeddings === 8192;
  if (!ok) {
    throw new Error(
      `${where}: field "rope_scaling" is ${
        JSON.stringify(rs)
      }, but torchtune's Llama3ScaledRoPE hard-wires ` +
        `{rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, ` +
        `original_max_position_embeddings: 8192}; other scalings are not supported`,
    );
  }
}

/**
 * Maps a Hugging Face Mllama config to torchtune `llama3_2_vision_decoder` arguments (the inverse of the
 * config mapping in the Llama 3.2 Vision docs, §11).
 *
 * Accepts a full `mllama` config (text fields under `text_config`, optional `vision_config`) or a bare
 * `mllama_text_model` config. `source` names the config in error messages.
 */
export function decoderArgsFromConfig(config: unknown, source = "config.json"): Llama3VisionDecoderArgs {
  if (!isObject(config)) throw new Error(`${source}: config must be a JSON object`);
  let text: Record<string, unknown> = config;
  let where = source;
  if ("text_config" in config) {
    if (!isObject(config.text_config)) throw new Error(`${source}: field "text_config" must be an object`);
    text = config.text_config;
    where = `${source} (text_config)`;
  }
  const numHidden = posInt(text, "num_hidden_layers", where);
  const embed_dim = posInt(text, "hidden_size", where);
  const num_heads = posInt(text, "num_attention_heads", where);
  const num_kv_heads = text.num_key_value_heads == null
    ? num_heads
    : posInt(text, "num_key_value_heads", where);
  const vocab_size = posInt(text, "vocab_size", where);
  const intermediate_dim = posInt(text, "intermediate_size", where);
  const max_seq_len = posInt(text, "max_position_embeddings", where);
  if (num_heads > embed_dim || embed_dim % num_heads !== 0) {
    throw new Error(
      `${where}: hidden_size (${embed_dim}) must be a multiple of num_attention_heads (${num_heads})`,
    );
  }
  if (num_kv_heads > num_heads || num_heads % num_kv_heads !== 0) {
    throw new Error(
      `${where}: num_attention_heads (${num_heads}) must be a multiple of num_key_value_heads (${num_kv_heads})`,
    );
  }
  const rope_base = text.rope_theta ?? 500000;
  if (typeof rope_base !== "number" || !Number.isFinite(rope_base) || rope_base <= 1) {
    throw new Error(
      `${where}: field "rope_theta" must be a finite number > 1, got ${JSON.stringify(rope_base)}`,
    );
  }
  checkRopeScaling(text.rope_scaling, where);

  const cal = text.cross_attention_layers ?? [];
  if (!Array.isArray(cal) || !cal.every((c) => Number.isSafeInteger(c) && c >= 0)) {
    throw new Error(
      `${where}: field "cross_attention_layers" must be a list of layer indices, got ${JSON.stringify(cal)}`,
    );
  }
  const cross = cal as number[];
  const num_layers = numHidden - cross.length;
  if (num_layers <= 0) {
    throw new Error(
      `${where}: num_hidden_layers (${numHidden}) must exceed the number of cross_attention_layers (${cross.length})`,
    );
  }
  // torchtune places the k-th cross-attention layer before tune layer t_k = (k+1)·fi − 1, which HF numbers
  // t_k + k; any other spacing cannot be expressed with a single fusion_interval.
  let fusion_interval = num_layers + 1;
  if (cross.length > 0) {
    fusion_interval = cross[0] + 1;
    // torchtune also fuses at every multiple of the interval up to num_layers, so the count must match too.
    const count = Math.floor(num_layers / fusion_interval);
    const consistent = cross.every((c, k) => c - k === (k + 1) * fusion_interval - 1) &&
      cross.length === count;
    if (!consistent) {
      const want = Array.from({ length: count }, (_, k) => (k + 1) * fusion_interval - 1 + k);
      throw new Error(
        `${where}: field "cross_attention_layers" ${
          JSON.stringify(cross)
        } (num_hidden_layers ${numHidden}) is not ` +
          `evenly spaced as torchtune's fusion_interval requires; with fusion_interval ${fusion_interval} it ` +
          `would be ${JSON.stringify(want)}`,
      );
    }
  }

  // torchtune's 11B builder uses 20 images × tiles × (patches + CLS) here; the value is never used in
  // computation, so for text-only configs the decoder's own length is as good as any.
  let encoder_max_seq_len = max_seq_len;
  if (isObject(config.vision_config)) {
    const vwhere = `${source} (vision_config)`;
    const v = config.vision_config;
    const tiles = posInt(v, "max_num_tiles", vwhere);
    const image = posInt(v, "image_size", vwhere);
    const patch = posInt(v, "patch_size", vwhere);
    const perSide = Math.floor(image / patch);
    encoder_max_seq_len = 20 * tiles * (perSide * perSide + 1);
  }

  return {
    vocab_size,
    num_layers,
    fusion_interval,
    num_special_tokens: 8, // HF's embed_tokens always has vocab_size + 8 rows.
    num_heads,
    num_kv_heads,
    embed_dim,
    max_seq_len,
    encoder_max_seq_len,
    rope_base,
    intermediate_dim,
  };
}

/** Reads `dir/config.json` and maps it with {@link decoderArgsFromConfig}. */
export async function readConfig(
  dir: string,
): Promise<{ config: Record<string, unknown>; args: Llama3VisionDecoderArgs }> {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(await Deno.readFile(path));
  } catch (e) {
    throw new Error(`${path}: cannot read the model config: ${(e as Error).message}`);
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(config)) throw new Error(`${path}: config must be a JSON object`);
  return { config, args: decoderArgsFromConfig(config, path) };
}

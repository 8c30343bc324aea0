/**
 * `info`: the WebGPU adapter and its limits, and for a model its configuration, parameter count and
 * the memory it needs.
 *
 * @module
 */
import { Checkpoint } from "../checkpoint/safetensors.ts";
import { getGpu } from "../gpu/device.ts";
import { readConfig } from "../models/llama3_2_vision/config.ts";
import { resolveDecoderArgs } from "../models/llama3_2_vision/decoder_args.ts";
import { encoderArgsFromConfig, resolveEncoderArgs } from "../models/llama3_2_vision/encoder_args.ts";
import { resolveModelDir } from "../hub/resolve.ts";
import { progressReporter } from "../hub/progress.ts";
import { BUNDLED_MODEL, isBundledModel } from "./bundled.ts";

const GiB = 1024 ** 3;
const fmt = (bytes: number) =>
  bytes >= GiB ? `${(bytes / GiB).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Prints adapter and (optionally) model information to stdout. */
export async function infoCommand(
  opts: { model?: string; revision?: string; context?: number },
): Promise<void> {
  const gpu = await getGpu({ quiet: true });
  const l = gpu.limits;
  console.log(`adapter: ${gpu.description}${gpu.isFallbackAdapter ? " (CPU fallback)" : ""}`);
  console.log(`  shader-f16: ${gpu.hasShaderF16 ? "yes" : "no"}`);
  const sg = gpu.subgroupSizes;
  console.log(
    `  subgroups: ${sg ? `yes, ${sg.min === sg.max ? sg.min : `${sg.min}–${sg.max}`} invocations` : "no"}`,
  );
  console.log(`  max storage binding: ${fmt(l.maxBindingBytes)}, max buffer: ${fmt(l.maxBufferSize)}`);
  console.log(
    `  storage buffers per stage: ${l.maxStorageBuffersPerShaderStage}, ` +
      `workgroups per dimension: ${l.maxWorkgroupsPerDimension}`,
  );
  if (!opts.model) return;
  const dir = isBundledModel(opts.model)
    ? BUNDLED_MODEL
    : await resolveModelDir(opts.model, { revision: opts.revision, onProgress: progressReporter() });
  const { args, config } = await readConfig(dir);
  const a = resolveDecoderArgs(args);
  console.log(`model: ${dir}`);
  console.log(
    `  decoder: ${a.num_layers} layers (${a.fusion_layer_indices.length} with cross-attention, every ` +
      `${a.fusion_interval}), embed_dim ${a.embed_dim}, ${a.num_heads} heads / ${a.num_kv_heads} KV heads ` +
      `(head_dim ${a.head_dim}), MLP ${a.intermediate_dim}, vocab ${a.vocab_size} + ${a.num_special_tokens} special, ` +
      `max_seq_len ${a.max_seq_len}, rope_base ${a.rope_base}`,
  );
  const ckpt = await Checkpoint.open(dir);
  let params = 0, bytes = 0, visionParams = 0;
  const dtypes = new Set<string>();
  for (const t of ckpt.tensors.values()) {
    const n = t.shape.reduce((x, y) => x * y, 1);
    if (/^(model\.)?(vision_model|multi_modal_projector)\./.test(t.name)) visionParams += n;
    else params += n;
    bytes += t.byteLength;
    dtypes.add(t.dtype);
  }
  ckpt.close();
  const context = opts.context ?? Math.min(a.max_seq_len, 4096);
  const kv = 2 * a.num_layers * a.num_kv_heads * context * a.head_dim * 4;
  console.log(
    `  parameters: ${(params / 1e6).toFixed(2)} M decoder` +
      (visionParams ? ` + ${(visionParams / 1e6).toFixed(2)} M vision` : "") + ` (${[...dtypes].join(", ")})`,
  );
  console.log(
    `  GPU memory: weights ${fmt(bytes)} + KV cache ${fmt(kv)} for ${context} tokens (f32) ≈ ${
      fmt(bytes + kv)
    }`,
  );
  if ((config as { vision_config?: unknown }).vision_config && visionParams > 0) {
    const e = resolveEncoderArgs(encoderArgsFromConfig(config, `${dir}/config.json`));
    const perImage = e.tokens_per_image;
    const xattn = 2 * a.fusion_layer_indices.length * a.num_kv_heads * perImage * a.head_dim * 4;
    console.log(
      `  encoder: CLIP ${e.clip_num_layers} layers, width ${e.clip_embed_dim}, ${e.num_heads} heads, ` +
        `${e.tile_size}-pixel tiles of ${e.patch_size}-pixel patches, up to ${e.max_num_tiles} tiles, hidden states ` +
        `[${e.clip_hidden_states}], ${e.num_layers_projection} projection layers → ${e.decoder_embed_dim}`,
    );
    console.log(
      `  per image: ${perImage} encoder tokens, cross-attention cache ${fmt(xattn)}, encoder activations ` +
        `≈ ${fmt(perImage * (e.projection_in_dim + 4 * e.mlp_dim) * 4)}`,
    );
  }
}

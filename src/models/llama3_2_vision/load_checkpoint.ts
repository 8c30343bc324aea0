/**
 * `loadCheckpoint(dir)`: a Hugging Face Mllama checkpoint folder → a ready {@link TransformerDecoder},
 * or a {@link DeepFusionModel} when the checkpoint has vision weights.
 *
 * @module
 */
import { Checkpoint } from "../../checkpoint/safetensors.ts";
import { type LoadProgress, type ParamSource, uploadParameters } from "../../checkpoint/upload.ts";
import { getGpu, type Gpu } from "../../gpu/device.ts";
import { DeepFusionModel } from "../../modules/deep_fusion_model.ts";
import type { TransformerDecoder } from "../../modules/transformer_decoder.ts";
import { llama3_2_vision_decoder, llama3_2_vision_encoder } from "./component_builders.ts";
import { hfToTuneVisionPlan, isHfVisionTensor, readVisionTensorBytes } from "./convert_vision_weights.ts";
import { encoderArgsFromConfig, resolveEncoderArgs } from "./encoder_args.ts";
import { readConfig } from "./config.ts";
import { hfToTunePlan, readTuneTensorBytes, type TuneTensorSource } from "./convert_weights.ts";
import { resolveDecoderArgs } from "./decoder_args.ts";

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Device to load onto (default: the shared one from `getGpu()`). */
  gpu?: Gpu;
  /** Called after each tensor with bytes uploaded so far and in total. */
  onProgress?: LoadProgress;
  /**
   * What weights are stored as on the GPU: `"auto"` (default) keeps the checkpoint's dtype, `"bf16"`
   * converts f32 / f16 weights, `"q8"` / `"q4"` quantize every weight matrix whose rows are a multiple of
   * 32 long at load time (embeddings and the output projection included; see src/checkpoint/quantize.ts).
   */
  dtype?: "auto" | "bf16" | "q8" | "q4";
}

const ITEM = { F32: 4, BF16: 2, F16: 2 } as const;

/** What {@link loadCheckpoint} returns: the decoder alone, or the fusion model when there are vision weights. */
export type Llama3VisionModel = TransformerDecoder | DeepFusionModel;

/**
 * Builds the model described by `dir/config.json` (a full `mllama` config or a bare text config)
 * and uploads its weights from `dir/model.safetensors` or the shards listed in
 * `dir/model.safetensors.index.json`, converting Hugging Face names and q/k row order to torchtune's.
 * Weights keep their stored dtype (bf16 stays bf16) unless `options.dtype` asks for bf16, q8 or q4. With a `vision_config` and `vision_model.*`
 * weights the result is a {@link DeepFusionModel} (torchtune's `llama3_2_vision_11b` and friends),
 * otherwise the {@link TransformerDecoder}; both have `forward`, `setup_caches`, `reset_caches`,
 * `caches_are_enabled`, `destroy` and `.decoder`.
 */
export async function loadCheckpoint(
  dir: string,
  options: LoadCheckpointOptions = {},
): Promise<Llama3VisionModel> {
  const { config, args } = await readConfig(dir);
  const resolved = resolveDecoderArgs(args);
  const decoder = llama3_2_vision_decoder(args);
  const ckpt = await Checkpoint.open(dir);
  try {
    const { plan } = hfToTunePlan(ckpt.tensors.keys(), resolved);
    const sources = decoderSources(ckpt, plan, decoder);
    let model: Llama3VisionModel = decoder;
    const hasVisionWeights = [...ckpt.tensors.keys()].some(isHfVisionTensor);
    const visionConfig = (config as { vision_config?: unknown }).vision_config;
    if (hasVisionWeights && visionConfig) {
      const encArgs = encoderArgsFromConfig(config, `${dir}/config.json`);
      const encResolved = resolveEncoderArgs(encArgs);
      const encoder = llama3_2_vision_encoder(encArgs);
      model = new DeepFusionModel({ decoder, encoder });
      const prefixed = new Map<string, ParamSource>();
      for (const [name, src] of sources) prefixed.set(`decoder.${name}`, src);
      for (const [tuneName, src] of hfToTuneVisionPlan(ckpt.tensors.keys(), encResolved)) {
        const entry = ckpt.tensors.get(src.hfName)!;
        const rowBytes = (src.shape.length < 2 ? src.shape : src.shape.slice(1)).reduce(
          (a, b) => a * b,
          ITEM[entry.dtype],
        );
        let whole: Promise<Uint8Array> | null = null;
        prefixed.set(`encoder.${tuneName}`, {
          dtype: entry.dtype,
          shape: src.shape,
          describe: `${entry.file}: tensor "${src.hfName}"`,
          // Vision tensors are modest (≤ 63 MB in bf16 for 11B) and tile tables need rearranging: read whole.
          read: async (rowStart, rowCount) => {
            whole ??= readVisionTensorBytes(ckpt, tuneName, src, encResolved).then((r) => r.data);
            return (await whole).subarray(rowStart * rowBytes, (rowStart + rowCount) * rowBytes);
          },
        });
      }
      const gpu = options.gpu ?? await getGpu();
      await uploadParameters(model, prefixed, gpu, options.onProgress, { dtype: options.dtype });
      return model;
    }
    if (hasVisionWeights) {
      console.warn(`warning: ${dir}/config.json has no vision_config: the vision weights are not loaded`);
    }
    const gpu = options.gpu ?? await getGpu();
    await uploadParameters(model, sources, gpu, options.onProgress, { dtype: options.dtype });
    return model;
  } finally {
    ckpt.close();
  }
}

/** Streaming sources for the decoder's parameters, following the HF → torchtune plan. */
function decoderSources(
  ckpt: Checkpoint,
  plan: Map<string, TuneTensorSource>,
  decoder: TransformerDecoder,
): Map<string, ParamSource> {
  const sources = new Map<string, ParamSource>();
  const expected = new Map(decoder.named_parameters().map(([n, p]) => [n, p.shape]));
  for (const [tuneName, src] of plan) {
    const entry = ckpt.tensors.get(src.hfName)!;
    const shape = expected.get(tuneName) ?? entry.shape;
    // Parameters are read by rows of dim 0; a 1-D tensor (norm scale, gate) is one row.
    const rowBytes = entry.shape.length < 2
      ? entry.byteLength
      : entry.shape.slice(1).reduce((a, b) => a * b, ITEM[entry.dtype]);
    const rowBase = src.rows ? src.rows[0] : 0;
    const describe = `${entry.file}: tensor "${src.hfName}"`;
    if (src.permuteHeads !== undefined) {
      // q/k rows are permuted within each head: read the whole (modest) tensor, then slice rows.
      let whole: Promise<Uint8Array> | null = null;
      sources.set(tuneName, {
        dtype: entry.dtype,
        shape: entry.shape,
        describe,
        read: async (rowStart, rowCount) => {
          whole ??= readTuneTensorBytes(ckpt, tuneName, src, shape).then((r) => r.data);
          return (await whole).subarray(rowStart * rowBytes, (rowStart + rowCount) * rowBytes);
        },
      });
    } else {
      const rows = src.rows ? src.rows[1] - src.rows[0] : entry.shape.length < 2 ? 1 : entry.shape[0];
      if (src.rows && entry.shape[0] < src.rows[1]) {
        throw new Error(
          `${describe} has ${entry.shape[0]} rows, ${tuneName} needs rows ${src.rows[0]}…${src.rows[1] - 1}`,
        );
      }
      sources.set(tuneName, {
        dtype: entry.dtype,
        shape: entry.shape.length >= 2 ? [rows, ...entry.shape.slice(1)] : entry.shape,
        describe,
        read: (rowStart, rowCount, into) =>
          ckpt.read(entry, (rowBase + rowStart) * rowBytes, rowCount * rowBytes, into),
      });
    }
  }
  return sources;
}

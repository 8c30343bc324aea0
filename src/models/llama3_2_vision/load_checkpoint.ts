/**
 * `loadCheckpoint(dir)`: a Hugging Face Mllama checkpoint folder → a ready {@link TransformerDecoder}.
 *
 * @module
 */
import { Checkpoint } from "../../checkpoint/safetensors.ts";
import { type LoadProgress, type ParamSource, uploadParameters } from "../../checkpoint/upload.ts";
import { getGpu, type Gpu } from "../../gpu/device.ts";
import type { TransformerDecoder } from "../../modules/transformer_decoder.ts";
import { llama3_2_vision_decoder } from "./component_builders.ts";
import { readConfig } from "./config.ts";
import { hfToTunePlan, readTuneTensorBytes } from "./convert_weights.ts";
import { resolveDecoderArgs } from "./decoder_args.ts";

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Device to load onto (default: the shared one from `getGpu()`). */
  gpu?: Gpu;
  /** Called after each tensor with bytes uploaded so far and in total. */
  onProgress?: LoadProgress;
}

const ITEM = { F32: 4, BF16: 2, F16: 2 } as const;

/**
 * Builds the decoder described by `dir/config.json` (a full `mllama` config or a bare text config)
 * and uploads its weights from `dir/model.safetensors` or the shards listed in
 * `dir/model.safetensors.index.json`, converting Hugging Face names and q/k row order to torchtune's.
 * Weights keep their stored dtype (bf16 stays bf16). Vision tensors are not loaded here.
 */
export async function loadCheckpoint(
  dir: string,
  options: LoadCheckpointOptions = {},
): Promise<TransformerDecoder> {
  const { args } = await readConfig(dir);
  const resolved = resolveDecoderArgs(args);
  const model = llama3_2_vision_decoder(args);
  const ckpt = await Checkpoint.open(dir);
  try {
    const { plan } = hfToTunePlan(ckpt.tensors.keys(), resolved);
    const sources = new Map<string, ParamSource>();
    const expected = new Map(model.named_parameters().map(([n, p]) => [n, p.shape]));
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
            `${describe} has ${entry.shape[0]} rows, ${tuneName} needs rows ${src.rows[0]}…${
              src.rows[1] - 1
            }`,
          );
        }
        sources.set(tuneName, {
          dtype: entry.dtype,
          shape: entry.shape.length >= 2 ? [rows, ...entry.shape.slice(1)] : entry.shape,
          describe,
          read: (rowStart, rowCount) =>
            ckpt.read(entry, (rowBase + rowStart) * rowBytes, rowCount * rowBytes),
        });
      }
    }
    const gpu = options.gpu ?? await getGpu();
    await uploadParameters(model, sources, gpu, options.onProgress);
    return model;
  } finally {
    ckpt.close();
  }
}

/**
 * Random torchtune-named vision-encoder weights (statistics of the fixtures' "randomization") and their HF
 * Mllama counterparts (`vision_model.*`, `multi_modal_projector.*`, tile tables in HF's per-aspect-ratio
 * layout), written independently of `src/models/llama3_2_vision/convert_vision_weights.ts` so that tests of the
 * converter are not circular. Combine with `hf_writer.ts` (the decoder side) to write Hub-style checkpoints.
 *
 * @module
 */
import { Rng } from "./reference.ts";
import { type F32Tensor, roundBf16 } from "./hf_writer.ts";
import type { TensorSpec } from "./safetensors_writer.ts";
import {
  type Llama3VisionEncoderArgs,
  type ResolvedEncoderArgs,
  resolveEncoderArgs,
} from "../../src/models/llama3_2_vision/encoder_args.ts";
import { expectedEncoderShapes } from "../../src/models/llama3_2_vision/convert_vision_weights.ts";

/** The tile tables of a torchtune encoder and the size of one `[i, j]` entry. */
function tileTables(a: ResolvedEncoderArgs): Map<string, number> {
  const D = a.clip_embed_dim;
  return new Map([
    ["clip.pre_tile_pos_embed.embedding", D],
    ["clip.post_tile_pos_embed.embedding", D],
    ["clip.token_pos_embedding.global_token_positional_embedding", a.tokens_per_tile * D],
  ]);
}

/**
 * Random torchtune encoder weights (names without the `encoder.` prefix), drawn in sorted-name order: linear
 * weights N(0, 0.05) except `mlp.w1` N(0, 0.3); LayerNorm weight N(1, 0.1), bias N(0, 0.02); conv N(0, 0.05);
 * CLS and position embeddings N(0, 0.2); gates U(0.2, 0.8); linear biases N(0, 0.02). Tile-table entries
 * `(i, j)` with `(i+1)(j+1) > max_num_tiles` are zero (never used, not representable in HF).
 */
export function randomTuneEncoderWeights(
  args: Llama3VisionEncoderArgs | ResolvedEncoderArgs,
  seed: number,
): Map<string, F32Tensor> {
  const a = resolveEncoderArgs(plainArgs(args));
  const rng = new Rng(seed);
  const shapes = expectedEncoderShapes(a);
  const out = new Map<string, F32Tensor>();
  for (const name of [...shapes.keys()].sort()) {
    const shape = shapes.get(name)!;
    const n = shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    const normal = (mean: number, std: number) => {
      for (let i = 0; i < n; i++) data[i] = mean + std * rng.normal();
    };
    if (/(\.gate|_scale\.scale)$/.test(name)) {
      for (let i = 0; i < n; i++) data[i] = rng.uniform(0.2, 0.8);
    } else if (/(norm|ln_pre|ln_post)\.weight$/.test(name)) normal(1, 0.1);
    else if (name.endsWith(".bias")) normal(0, 0.02);
    else if (name === "clip.conv.weight") normal(0, 0.05);
    else if (/(cls_token_embedding\.weight|embedding)$/.test(name)) normal(0, 0.2);
    else if (name.endsWith(".mlp.w1.weight")) normal(0, 0.3);
    else if (name.endsWith(".weight")) normal(0, 0.05);
    else throw new Error(`randomTuneEncoderWeights: no init rule for ${name}`);
    const entry = tileTables(a).get(name);
    if (entry !== undefined) {
      const M = a.max_num_tiles;
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < M; j++) {
          if ((i + 1) * (j + 1) > M) data.fill(0, (i * M + j) * entry, (i * M + j + 1) * entry);
        }
      }
    }
    out.set(name, { data, shape });
  }
  return out;
}

function plainArgs(a: Llama3VisionEncoderArgs | ResolvedEncoderArgs): Llama3VisionEncoderArgs {
  return {
    patch_size: a.patch_size,
    num_heads: a.num_heads,
    clip_embed_dim: a.clip_embed_dim,
    clip_num_layers: a.clip_num_layers,
    clip_hidden_states: a.clip_hidden_states,
    num_layers_projection: a.num_layers_projection,
    decoder_embed_dim: a.decoder_embed_dim,
    tile_size: a.tile_size,
    max_num_tiles: a.max_num_tiles,
    in_channels: a.in_channels,
  };
}

/**
 * torchtune `[M, M, entry]` table → HF `[n_ar + 1, M·entry]`: row 0 zero, row `r + 1` holding, for tile
 * `k < h·w` of `supported_aspect_ratios[r] = (h, w)`, entry `[k // w, k % w]`, zeros after.
 */
export function tuneTableToHfRows(t: Float32Array, a: ResolvedEncoderArgs, entry: number): Float32Array {
  const M = a.max_num_tiles;
  const rows = a.supported_aspect_ratios;
  const out = new Float32Array((rows.length + 1) * M * entry);
  rows.forEach(([h, w], r) => {
    for (let k = 0; k < h * w; k++) {
      const i = Math.floor(k / w);
      const j = k % w;
      out.set(t.subarray((i * M + j) * entry, (i * M + j + 1) * entry), ((r + 1) * M + k) * entry);
    }
  });
  return out;
}

/**
 * Renames torchtune encoder weights (with or without the `encoder.` prefix) to HF Mllama names, converting
 * the tile tables. `spelling` "hub" gives the on-disk names (`vision_model.*`, `multi_modal_projector.*`),
 * "transformers" the newer in-memory ones (`model.vision_model.*`, `model.multi_modal_projector.*`).
 */
export function tuneEncoderToHf(
  w: Map<string, F32Tensor>,
  args: Llama3VisionEncoderArgs | ResolvedEncoderArgs,
  spelling: "hub" | "transformers" = "hub",
): Map<string, F32Tensor> {
  const a = resolveEncoderArgs(plainArgs(args));
  if (!a.tiled) throw new Error("tuneEncoderToHf: HF vision weights need max_num_tiles > 1");
  const get = (n: string): F32Tensor => {
    const t = w.get(n) ?? w.get(`encoder.${n}`);
    if (!t) throw new Error(`tuneEncoderToHf: missing ${n}`);
    return t;
  };
  const pre = spelling === "hub" ? "" : "model.";
  const v = `${pre}vision_model.`;
  const out = new Map<string, F32Tensor>();
  const tables = tileTables(a);
  const table = (hf: string, tune: string) => {
    const entry = tables.get(tune)!;
    const data = tuneTableToHfRows(get(tune).data, a, entry);
    out.set(hf, { data, shape: [a.supported_aspect_ratios.length + 1, a.max_num_tiles * entry] });
  };
  out.set(`${v}patch_embedding.weight`, get("clip.conv.weight"));
  out.set(`${v}class_embedding`, get("clip.cls_token_embedding.weight"));
  out.set(
    `${v}gated_positional_embedding.embedding`,
    get("clip.token_pos_embedding.local_token_positional_embedding"),
  );
  out.set(`${v}gated_positional_embedding.gate`, get("clip.token_pos_embedding.gate"));
  table(
    `${v}gated_positional_embedding.tile_embedding.weight`,
    "clip.token_pos_embedding.global_token_positional_embedding",
  );
  for (const which of ["pre", "post"]) {
    table(
      `${v}${which}_tile_positional_embedding.embedding.weight`,
      `clip.${which}_tile_pos_embed.embedding`,
    );
    out.set(`${v}${which}_tile_positional_embedding.gate`, get(`clip.${which}_tile_pos_embed.gate`));
    out.set(`${v}layernorm_${which}.weight`, get(`clip.ln_${which}.weight`));
    out.set(`${v}layernorm_${which}.bias`, get(`clip.ln_${which}.bias`));
  }
  const layer = (hp: string, tp: string) => {
    for (const x of ["q", "k", "v"]) {
      out.set(`${hp}.self_attn.${x}_proj.weight`, get(`${tp}.attn.${x}_proj.weight`));
    }
    out.set(`${hp}.self_attn.o_proj.weight`, get(`${tp}.attn.output_proj.weight`));
    for (const [h, t] of [["fc1", "w1"], ["fc2", "w2"]]) {
      for (const s of ["weight", "bias"]) out.set(`${hp}.mlp.${h}.${s}`, get(`${tp}.mlp.${t}.${s}`));
    }
    for (const [h, t] of [["input_layernorm", "sa_norm"], ["post_attention_layernorm", "mlp_norm"]]) {
      for (const s of ["weight", "bias"]) out.set(`${hp}.${h}.${s}`, get(`${tp}.${t}.${s}`));
    }
  };
  for (let i = 0; i < a.clip_num_layers; i++) layer(`${v}transformer.layers.${i}`, `clip.layers.${i}`);
  for (let i = 0; i < a.num_layers_projection; i++) {
    const hp = `${v}global_transformer.layers.${i}`;
    layer(hp, `projection.layers.${i}`);
    out.set(`${hp}.gate_attn`, get(`projection.layers.${i}.sa_scale.scale`));
    out.set(`${hp}.gate_ffn`, get(`projection.layers.${i}.mlp_scale.scale`));
  }
  out.set(`${pre}multi_modal_projector.weight`, get("projection.output.weight"));
  out.set(`${pre}multi_modal_projector.bias`, get("projection.output.bias"));
  return out;
}

/** HF `MllamaVisionConfig`-shaped `vision_config` for `args` (fields as in transformers). */
export function hfVisionConfig(args: Llama3VisionEncoderArgs | ResolvedEncoderArgs): Record<string, unknown> {
  const a = resolveEncoderArgs(plainArgs(args));
  return {
    model_type: "mllama_vision_model",
    hidden_size: a.clip_embed_dim,
    hidden_act: "gelu",
    num_hidden_layers: a.clip_num_layers,
    num_global_layers: a.num_layers_projection,
    attention_heads: a.num_heads,
    num_channels: a.in_channels,
    intermediate_size: a.mlp_dim,
    vision_output_dim: a.projection_in_dim,
    image_size: a.tile_size,
    patch_size: a.patch_size,
    norm_eps: 1e-5,
    max_num_tiles: a.max_num_tiles,
    intermediate_layers_indices: a.clip_hidden_states,
    supported_aspect_ratios: a.supported_aspect_ratios,
    initializer_range: 0.02,
  };
}

/** f32 tensors → safetensors specs (F32, or BF16 rounded to nearest even), for `writeSafetensors`. */
export function toTensorSpecs(
  tensors: Map<string, F32Tensor>,
  opts: { bf16?: boolean } = {},
): Map<string, TensorSpec> {
  const out = new Map<string, TensorSpec>();
  for (const [name, t] of tensors) {
    let data: Uint8Array;
    if (opts.bf16) {
      const u = new Uint32Array(roundBf16(t.data).buffer);
      const h = new Uint16Array(u.length);
      for (let i = 0; i < u.length; i++) h[i] = u[i] >>> 16;
      data = new Uint8Array(h.buffer);
    } else {
      data = new Uint8Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
    }
    out.set(name, { dtype: opts.bf16 ? "BF16" : "F32", shape: t.shape, data });
  }
  return out;
}

/**
 * Random encoder weights for `args` from `seed`: the torchtune tensors (for the reference) and the HF-named
 * tensors as safetensors specs, ready to merge with the decoder's into a Hub-style `model.safetensors`.
 */
export function randomHfVisionTensors(
  args: Llama3VisionEncoderArgs | ResolvedEncoderArgs,
  seed: number,
  opts: { bf16?: boolean; spelling?: "hub" | "transformers" } = {},
): { tune: Map<string, F32Tensor>; hf: Map<string, TensorSpec> } {
  const tune = randomTuneEncoderWeights(args, seed);
  const hf = toTensorSpecs(tuneEncoderToHf(tune, args, opts.spelling), opts);
  return { tune, hf };
}

/**
 * The WGSL sources, imported as text so that they ship with the package (`deno publish` includes
 * the `.wgsl` files) and need no read permission at run time.
 *
 * @module
 */
import weightF32 from "./weight_f32.wgsl" with { type: "text" };
import weightBf16 from "./weight_bf16.wgsl" with { type: "text" };
import weightF16 from "./weight_f16.wgsl" with { type: "text" };
import weightQ8 from "./weight_q8.wgsl" with { type: "text" };
import weightQ4 from "./weight_q4.wgsl" with { type: "text" };
import weightFlat from "./weight_flat.wgsl" with { type: "text" };
import embedding from "./embedding.wgsl" with { type: "text" };
import linear from "./linear.wgsl" with { type: "text" };
import matvec from "./matvec.wgsl" with { type: "text" };
import matvecSubgroup from "./matvec_subgroup.wgsl" with { type: "text" };
import matvecLanes from "./matvec_lanes.wgsl" with { type: "text" };
import matvecCommon from "./matvec_common.wgsl" with { type: "text" };
import matvecQ8 from "./matvec_q8.wgsl" with { type: "text" };
import matvecQ4 from "./matvec_q4.wgsl" with { type: "text" };
import quantizeActQ8 from "./quantize_act_q8.wgsl" with { type: "text" };
import matmul from "./matmul.wgsl" with { type: "text" };
import matmulSubgroup from "./matmul_subgroup.wgsl" with { type: "text" };
import matmulCommon from "./matmul_common.wgsl" with { type: "text" };
import rmsNorm from "./rms_norm.wgsl" with { type: "text" };
import rope from "./rope.wgsl" with { type: "text" };
import kvCacheUpdate from "./kv_cache_update.wgsl" with { type: "text" };
import ropeKvUpdate from "./rope_kv_update.wgsl" with { type: "text" };
import attention from "./attention.wgsl" with { type: "text" };
import attentionVec4 from "./attention_vec4.wgsl" with { type: "text" };
import attentionTiled from "./attention_tiled.wgsl" with { type: "text" };
import attentionCombine from "./attention_combine.wgsl" with { type: "text" };
import swiglu from "./swiglu.wgsl" with { type: "text" };
import swigluVec4 from "./swiglu_vec4.wgsl" with { type: "text" };
import gatedResidual from "./gated_residual.wgsl" with { type: "text" };
import sample from "./sample.wgsl" with { type: "text" };
import argmax from "./argmax.wgsl" with { type: "text" };
import layerNorm from "./layer_norm.wgsl" with { type: "text" };
import gelu from "./gelu.wgsl" with { type: "text" };
import patchify from "./patchify.wgsl" with { type: "text" };
import visionEmbed from "./vision_embed.wgsl" with { type: "text" };
import broadcastAdd from "./broadcast_add.wgsl" with { type: "text" };
import interleaveColumns from "./interleave_columns.wgsl" with { type: "text" };
import streamRead from "./stream_read.wgsl" with { type: "text" };
import subgroupProbe from "./subgroup_probe.wgsl" with { type: "text" };
import stridedCopy from "./strided_copy.wgsl" with { type: "text" };
import softmaxRows from "./softmax_rows.wgsl" with { type: "text" };
import attentionMask from "./attention_mask.wgsl" with { type: "text" };
import workgroupReduce from "./workgroup_reduce.wgsl" with { type: "text" };
import rowsWorkgroup from "./rows_workgroup.wgsl" with { type: "text" };
import rowsSubgroup from "./rows_subgroup.wgsl" with { type: "text" };

/** A matrix-vector kernel followed by its parameters, bindings 1…6 and stores (matvec_common.wgsl). */
const withMatvecCommon = (source: string): string => `${source}\n${matvecCommon}`;

/** A matrix-vector kernel for quantized weights, plus `quantize_activations` (quantize_act_q8.wgsl). */
const withInt8Activations = (source: string): string => `${withMatvecCommon(source)}\n${quantizeActQ8}`;

/** A matrix multiplication kernel followed by its parameters, bindings 1…4 and stores (matmul_common.wgsl). */
const withMatmulCommon = (source: string): string => `${source}\n${matmulCommon}`;

/** A kernel followed by the attention mask function `allowed` (attention_mask.wgsl) it calls. */
const withMask = (source: string): string => `${source}\n${attentionMask}`;

/** A row kernel (its row_main) with a workgroup per row: rows_workgroup.wgsl and the tree reductions. */
const perWorkgroupRow = (source: string): string => `${source}\n${rowsWorkgroup}\n${workgroupReduce}`;

/** A row kernel (its row_main) with a subgroup per row (rows_subgroup.wgsl). */
const perSubgroupRow = (source: string): string => `${source}\n${rowsSubgroup}`;

/** A kernel followed by the workgroup tree reductions (workgroup_reduce.wgsl) it calls; it defines `WG`. */
const withReduce = (source: string): string => `${source}\n${workgroupReduce}`;

/** Kernels by name; those that read a weight need a snippet from {@link WEIGHT_SNIPPETS} in front. */
export const KERNELS: Record<KernelName, string> = {
  embedding,
  linear,
  matvec: withMatvecCommon(`${matvec}\n${matvecLanes}`),
  matvec_subgroup: withMatvecCommon(`${matvec}\n${matvecSubgroup}`),
  matvec_q8: withInt8Activations(matvecQ8),
  // The q4 weight snippet first: its binding and weight_rows4, the one WGSL statement of the q4 layout.
  matvec_q4: withInt8Activations(`${weightQ4}\n${matvecQ4}`),
  matmul: withMatmulCommon(matmul),
  matmul_subgroup: withMatmulCommon(matmulSubgroup),
  rms_norm: perWorkgroupRow(rmsNorm),
  rms_norm_subgroup: perSubgroupRow(rmsNorm),
  rope,
  kv_cache_update: kvCacheUpdate,
  rope_kv_update: ropeKvUpdate,
  attention: withMask(attention),
  attention_vec4: withMask(attentionVec4),
  attention_tiled: withMask(attentionTiled),
  attention_combine: attentionCombine,
  swiglu,
  swiglu_vec4: swigluVec4,
  gated_residual: gatedResidual,
  sample: withReduce(sample),
  argmax: withReduce(argmax),
  layer_norm: perWorkgroupRow(layerNorm),
  layer_norm_subgroup: perSubgroupRow(layerNorm),
  gelu,
  patchify,
  vision_embed: visionEmbed,
  broadcast_add: broadcastAdd,
  interleave_columns: interleaveColumns,
  stream_read: streamRead,
  subgroup_probe: subgroupProbe,
  strided_copy: stridedCopy,
  softmax_rows: withMask(perWorkgroupRow(softmaxRows)),
  softmax_rows_subgroup: withMask(perSubgroupRow(softmaxRows)),
};

/** A kernel's name. */
export type KernelName =
  | "embedding"
  | "linear"
  | "matvec"
  | "matvec_subgroup"
  | "matvec_q8"
  | "matvec_q4"
  | "matmul"
  | "matmul_subgroup"
  | "rms_norm"
  | "rms_norm_subgroup"
  | "rope"
  | "kv_cache_update"
  | "rope_kv_update"
  | "attention"
  | "attention_vec4"
  | "attention_tiled"
  | "attention_combine"
  | "swiglu"
  | "swiglu_vec4"
  | "gated_residual"
  | "sample"
  | "argmax"
  | "layer_norm"
  | "layer_norm_subgroup"
  | "gelu"
  | "patchify"
  | "vision_embed"
  | "broadcast_add"
  | "interleave_columns"
  | "stream_read"
  | "subgroup_probe"
  | "strided_copy"
  | "softmax_rows"
  | "softmax_rows_subgroup";

/**
 * The kernels that use subgroup builtins (only run where the device has usable subgroups: Gpu.subgroupSizes);
 * their modules start with the device's `Gpu.subgroupDirective`.
 */
export const SUBGROUP_KERNELS: ReadonlySet<KernelName> = new Set<KernelName>([
  "matmul_subgroup",
  "matvec_subgroup",
  "rms_norm_subgroup",
  "layer_norm_subgroup",
  "softmax_rows_subgroup",
  "subgroup_probe",
]);

/** A row-major weight snippet followed by the (row base, column) interface over it (weight_flat.wgsl). */
const withFlat = (source: string): string => `${source}\n${weightFlat}`;

/** Binding 0, `weight_row` and `weight_at` / `weight4` / … for each way a weight is stored. */
export const WEIGHT_SNIPPETS: Record<"f32" | "bf16" | "f16" | "q8" | "q4", string> = {
  f32: withFlat(weightF32),
  bf16: withFlat(weightBf16),
  f16: withFlat(weightF16),
  q8: withFlat(weightQ8),
  q4: weightQ4,
};

/**
 * Hugging Face Mllama vision weights (`vision_model.*`, `multi_modal_projector.*`) → torchtune
 * `llama3_2_vision_encoder` state-dict names (`encoder.*` in a `DeepFusionModel`), as torchtune's
 * `llama3_vision_hf_to_tune` does it (doc §10 "Vision keys").
 *
 * Almost every tensor is a plain rename. The exceptions are HF's precomputed tile tables, which hold one row
 * per supported aspect ratio; torchtune stores `[max_tiles, max_tiles, …]` tables instead. The conversion is
 * expressed as a plan (tune name → HF tensor + optional table transform) so that a loader can stream one tensor
 * at a time; the table transforms work on raw bytes too, so a bf16 checkpoint stays bf16.
 *
 * @module
 */

import type { ResolvedEncoderArgs } from "./encoder_args.ts";
import { type Checkpoint, type SafetensorsDtype, toFloat32 } from "../../checkpoint/safetensors.ts";

/** Where one torchtune encoder tensor comes from in an HF checkpoint. */
export interface VisionTensorSource {
  /** HF tensor name. */
  hfName: string;
  /**
   * `tile_table`: HF `[n_ar + 1, max_tiles·D]` → torchtune `[max_tiles, max_tiles, 1, D]`;
   * `token_table`: HF `[n_ar + 1, max_tiles·n_tok·D]` → torchtune `[max_tiles, max_tiles, n_tok, D]`.
   * Absent: the tensor is copied as is.
   */
  transform?: "tile_table" | "token_table";
  /** The torchtune shape. */
  shape: number[];
  /** The shape the HF tensor must have. */
  hfShape: number[];
}

/**
 * Every torchtune encoder state-dict name (without the `encoder.` prefix a `DeepFusionModel` adds) → shape, in
 * torchtune's state-dict order. With `max_num_tiles = 1` torchtune builds no tile embeddings and a plain
 * `token_pos_embedding.positional_embedding`.
 */
export function expectedEncoderShapes(args: ResolvedEncoderArgs): Map<string, number[]> {
  const { clip_embed_dim: D, max_num_tiles: M, tokens_per_tile: N, mlp_dim: F } = args;
  const m = new Map<string, number[]>();
  if (args.tiled) {
    m.set("clip.pre_tile_pos_embed.embedding", [M, M, 1, D]);
    m.set("clip.pre_tile_pos_embed.gate", [1]);
    m.set("clip.post_tile_pos_embed.embedding", [M, M, 1, D]);
    m.set("clip.post_tile_pos_embed.gate", [1]);
    m.set("clip.token_pos_embedding.local_token_positional_embedding", [N, D]);
    m.set("clip.token_pos_embedding.global_token_positional_embedding", [M, M, N, D]);
    m.set("clip.token_pos_embedding.gate", [1]);
  } else {
    m.set("clip.token_pos_embedding.positional_embedding", [N, D]);
  }
  const layer = (p: string) => {
    for (const x of ["q", "k", "v", "output"]) m.set(`${p}.attn.${x}_proj.weight`, [D, D]);
    m.set(`${p}.mlp.w1.weight`, [F, D]);
    m.set(`${p}.mlp.w1.bias`, [F]);
    m.set(`${p}.mlp.w2.weight`, [D, F]);
    m.set(`${p}.mlp.w2.bias`, [D]);
    for (const n of ["sa_norm", "mlp_norm"]) {
      m.set(`${p}.${n}.weight`, [D]);
      m.set(`${p}.${n}.bias`, [D]);
    }
  };
  for (let i = 0; i < args.clip_num_layers; i++) layer(`clip.layers.${i}`);
  m.set("clip.conv.weight", [D, args.in_channels, args.patch_size, args.patch_size]);
  m.set("clip.ln_post.weight", [D]);
  m.set("clip.ln_post.bias", [D]);
  m.set("clip.ln_pre.weight", [D]);
  m.set("clip.ln_pre.bias", [D]);
  m.set("clip.cls_token_embedding.weight", [D]);
  for (let i = 0; i < args.num_layers_projection; i++) {
    layer(`projection.layers.${i}`);
    m.set(`projection.layers.${i}.sa_scale.scale`, [1]);
    m.set(`projection.layers.${i}.mlp_scale.scale`, [1]);
  }
  m.set("projection.output.weight", [args.decoder_embed_dim, args.projection_in_dim]);
  m.set("projection.output.bias", [args.decoder_embed_dim]);
  return m;
}

/** HF name prefixes of the two spellings: on-disk Hub shards, and recent transformers' in-memory names. */
const SPELLINGS = [
  { vision: "vision_model.", projector: "multi_modal_projector." },
  { vision: "model.vision_model.", projector: "model.multi_modal_projector." },
] as const;

const VISION_RE = /^(model\.)?(vision_model|multi_modal_projector)\./;

/** Whether `name` is an HF vision-tower or projector tensor (either spelling). */
export function isHfVisionTensor(name: string): boolean {
  return VISION_RE.test(name);
}

function list(names: string[], max = 10): string {
  return names.slice(0, max).join(", ") + (names.length > max ? `, and ${names.length - max} more` : "");
}

/**
 * Plans torchtune's `llama3_vision_hf_to_tune` for the vision encoder: maps every torchtune encoder name (as
 * {@link expectedEncoderShapes}, no `encoder.` prefix) to its HF source. Names outside the vision tower and
 * projector (the language model) are ignored.
 *
 * Throws when a torchtune tensor has no HF source (naming both), when an HF vision tensor is not used (naming
 * it), when the two spellings are mixed, and for `max_num_tiles = 1` (HF always stores tile tables, torchtune
 * then has none).
 */
export function hfToTuneVisionPlan(
  hfNames: Iterable<string>,
  args: ResolvedEncoderArgs,
): Map<string, VisionTensorSource> {
  if (!args.tiled) {
    throw new Error(
      "HF vision weights need max_num_tiles > 1: with max_num_tiles = 1 torchtune builds an ungated token " +
        "position embedding and no tile embeddings, which HF's gated precomputed tables do not map to",
    );
  }
  const names = [...hfNames].filter(isHfVisionTensor);
  const present = SPELLINGS.filter((s) =>
    names.some((n) => n.startsWith(s.vision) || n.startsWith(s.projector))
  );
  if (present.length > 1) {
    throw new Error(
      `HF checkpoint mixes the "${SPELLINGS[0].vision}*" and "${SPELLINGS[1].vision}*" spellings of the ` +
        "vision weights; use one of them",
    );
  }
  const { vision: v, projector: mm } = present[0] ?? SPELLINGS[0];
  const shapes = expectedEncoderShapes(args);
  const { clip_embed_dim: D, max_num_tiles: M, tokens_per_tile: N } = args;
  const nAr = args.supported_aspect_ratios.length;

  const plan = new Map<string, VisionTensorSource>();
  const put = (tune: string, hfName: string, transform?: "tile_table" | "token_table") => {
    const shape = shapes.get(tune);
    if (shape === undefined) throw new Error(`internal: ${tune} is not an encoder tensor`);
    const hfShape = transform === "tile_table"
      ? [nAr + 1, M * D]
      : transform === "token_table"
      ? [nAr + 1, M * N * D]
      : shape;
    plan.set(tune, transform ? { hfName, transform, shape, hfShape } : { hfName, shape, hfShape });
  };
  for (const which of ["pre", "post"]) {
    put(
      `clip.${which}_tile_pos_embed.embedding`,
      `${v}${which}_tile_positional_embedding.embedding.weight`,
      "tile_table",
    );
    put(`clip.${which}_tile_pos_embed.gate`, `${v}${which}_tile_positional_embedding.gate`);
  }
  put(
    "clip.token_pos_embedding.local_token_positional_embedding",
    `${v}gated_positional_embedding.embedding`,
  );
  put(
    "clip.token_pos_embedding.global_token_positional_embedding",
    `${v}gated_positional_embedding.tile_embedding.weight`,
    "token_table",
  );
  put("clip.token_pos_embedding.gate", `${v}gated_positional_embedding.gate`);
  const layer = (tp: string, hp: string) => {
    for (const x of ["q", "k", "v"]) put(`${tp}.attn.${x}_proj.weight`, `${hp}.self_attn.${x}_proj.weight`);
    put(`${tp}.attn.output_proj.weight`, `${hp}.self_attn.o_proj.weight`);
    for (const [t, h] of [["w1", "fc1"], ["w2", "fc2"]]) {
      put(`${tp}.mlp.${t}.weight`, `${hp}.mlp.${h}.weight`);
      put(`${tp}.mlp.${t}.bias`, `${hp}.mlp.${h}.bias`);
    }
    for (const [t, h] of [["sa_norm", "input_layernorm"], ["mlp_norm", "post_attention_layernorm"]]) {
      put(`${tp}.${t}.weight`, `${hp}.${h}.weight`);
      put(`${tp}.${t}.bias`, `${hp}.${h}.bias`);
    }
  };
  for (let i = 0; i < args.clip_num_layers; i++) layer(`clip.layers.${i}`, `${v}transformer.layers.${i}`);
  put("clip.conv.weight", `${v}patch_embedding.weight`);
  for (const which of ["pre", "post"]) {
    put(`clip.ln_${which}.weight`, `${v}layernorm_${which}.weight`);
    put(`clip.ln_${which}.bias`, `${v}layernorm_${which}.bias`);
  }
  put("clip.cls_token_embedding.weight", `${v}class_embedding`);
  for (let i = 0; i < args.num_layers_projection; i++) {
    const hp = `${v}global_transformer.layers.${i}`;
    layer(`projection.layers.${i}`, hp);
    put(`projection.layers.${i}.sa_scale.scale`, `${hp}.gate_attn`);
    put(`projection.layers.${i}.mlp_scale.scale`, `${hp}.gate_ffn`);
  }
  put("projection.output.weight", `${mm}weight`);
  put("projection.output.bias", `${mm}bias`);

  // Reorder to torchtune's state-dict order (put() above follows it except for the pre/post interleave).
  const ordered = new Map<string, VisionTensorSource>();
  for (const name of shapes.keys()) ordered.set(name, plan.get(name)!);

  const have = new Set(names);
  // Layer indices past the config are a config/checkpoint mismatch; say so rather than "unexpected tensor".
  for (
    const [re, count, what] of [
      [/^(?:model\.)?vision_model\.transformer\.layers\.(\d+)\./, args.clip_num_layers, "num_hidden_layers"],
      [
        /^(?:model\.)?vision_model\.global_transformer\.layers\.(\d+)\./,
        args.num_layers_projection,
        "num_global_layers",
      ],
    ] as const
  ) {
    const beyond = names.filter((n) => Number(re.exec(n)?.[1] ?? -1) >= count);
    if (beyond.length > 0) {
      throw new Error(
        `HF vision tensor(s) ${
          list(beyond, 5)
        } have a layer index >= ${what} = ${count}; the config does not ` +
          "match the checkpoint",
      );
    }
  }
  const missing = [...ordered].filter(([, src]) => !have.has(src.hfName));
  if (missing.length > 0) {
    throw new Error(
      "HF checkpoint lacks vision tensors for: " +
        list(missing.map(([tune, src]) => `encoder.${tune} (expected HF "${src.hfName}")`)),
    );
  }
  const used = new Set([...ordered.values()].map((s) => s.hfName));
  const unexpected = names.filter((n) => !used.has(n));
  if (unexpected.length > 0) {
    throw new Error(`unexpected vision tensor(s) in HF checkpoint: ${list(unexpected)}`);
  }
  return ordered;
}

/**
 * The core of the table conversion, on raw bytes (any dtype): HF `[n_ar + 1, max_tiles·entry]` →
 * torchtune `[max_tiles, max_tiles, entry]`, `entryBytes` being one entry's byte size.
 *
 * As torchtune's `llama3_vision_hf_to_tune`: only the rows of aspect ratios with `h·w = max_tiles` are read
 * (together they cover every usable entry), in order, tile `k` going to entry `[k // w, k % w]`; where rows
 * overlap the later one wins. Unusable entries (`(i+1)(j+1) > max_tiles`) stay zero. For a table HF's converter
 * made from a torchtune/Meta table all rows agree, so the precedence does not matter
 * (see {@link tileTableConflict}).
 */
export function hfTableToTuneBytes(
  hf: Uint8Array,
  supportedAspectRatios: [number, number][],
  maxTiles: number,
  entryBytes: number,
): Uint8Array {
  const rowBytes = maxTiles * entryBytes;
  const want = (supportedAspectRatios.length + 1) * rowBytes;
  if (hf.byteLength !== want) {
    throw new Error(
      `tile table: ${hf.byteLength} bytes, expected ${supportedAspectRatios.length + 1} rows × ${maxTiles} ` +
        `tiles × ${entryBytes} bytes = ${want}`,
    );
  }
  const out = new Uint8Array(maxTiles * maxTiles * entryBytes);
  supportedAspectRatios.forEach(([h, w], r) => {
    if (h * w !== maxTiles) return;
    for (let k = 0; k < h * w; k++) {
      const src = (r + 1) * rowBytes + k * entryBytes;
      const i = Math.floor(k / w);
      const j = k % w;
      out.set(hf.subarray(src, src + entryBytes), (i * maxTiles + j) * entryBytes);
    }
  });
  return out;
}

function f32Bytes(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

function bytesF32(b: Uint8Array): Float32Array {
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/**
 * HF `…_tile_positional_embedding.embedding.weight` `[n_ar + 1, max_tiles·D]` → torchtune
 * `…_tile_pos_embed.embedding` `[max_tiles, max_tiles, 1, D]` (flat, row-major), as {@link hfTableToTuneBytes}.
 */
export function convertTileTable(hf: Float32Array, args: ResolvedEncoderArgs): Float32Array {
  return bytesF32(
    hfTableToTuneBytes(
      f32Bytes(hf),
      args.supported_aspect_ratios,
      args.max_num_tiles,
      args.clip_embed_dim * 4,
    ),
  );
}

/**
 * HF `gated_positional_embedding.tile_embedding.weight` `[n_ar + 1, max_tiles·n_tok·D]` → torchtune
 * `token_pos_embedding.global_token_positional_embedding` `[max_tiles, max_tiles, n_tok, D]`, as
 * {@link hfTableToTuneBytes}.
 */
export function convertTokenTable(hf: Float32Array, args: ResolvedEncoderArgs): Float32Array {
  return bytesF32(
    hfTableToTuneBytes(
      f32Bytes(hf),
      args.supported_aspect_ratios,
      args.max_num_tiles,
      args.tokens_per_tile * args.clip_embed_dim * 4,
    ),
  );
}

/**
 * The inverse (torchtune's `llama3_vision_tune_to_hf`): torchtune `[max_tiles, max_tiles, entry]` → HF
 * `[n_ar + 1, max_tiles·entry]`. Row 0 (padding) and the slots `k ≥ h·w` of each row are zero; row `r + 1` holds
 * entry `[k // w, k % w]` of `supported_aspect_ratios[r] = (h, w)` in slot `k`. `entrySize` is `D` for the
 * pre/post tile tables and `n_tok·D` for the token table.
 */
export function tuneTableToHf(
  tune: Float32Array,
  supportedAspectRatios: [number, number][],
  maxTiles: number,
  entrySize: number,
): Float32Array {
  if (tune.length !== maxTiles * maxTiles * entrySize) {
    throw new Error(
      `tuneTableToHf: ${tune.length} values, expected ${maxTiles}×${maxTiles}×${entrySize}`,
    );
  }
  const rowSize = maxTiles * entrySize;
  const out = new Float32Array((supportedAspectRatios.length + 1) * rowSize);
  supportedAspectRatios.forEach(([h, w], r) => {
    for (let k = 0; k < h * w; k++) {
      const src = (Math.floor(k / w) * maxTiles + (k % w)) * entrySize;
      out.set(tune.subarray(src, src + entrySize), (r + 1) * rowSize + k * entrySize);
    }
  });
  return out;
}

/**
 * How far an HF table is from one torchtune can represent: the largest |difference| between any used HF slot
 * (row `r + 1`, tile `k < h·w`) and the torchtune entry {@link hfTableToTuneBytes} keeps for it. 0 for
 * tables made from a torchtune/Meta table; a fine-tuned HF model whose rows drifted apart gives more, and
 * torchtune's conversion then changes its outputs.
 */
export function tileTableConflict(
  hf: Float32Array,
  supportedAspectRatios: [number, number][],
  maxTiles: number,
  entrySize: number,
): number {
  const tune = bytesF32(hfTableToTuneBytes(f32Bytes(hf), supportedAspectRatios, maxTiles, entrySize * 4));
  const back = tuneTableToHf(tune, supportedAspectRatios, maxTiles, entrySize);
  const rowSize = maxTiles * entrySize;
  let worst = 0;
  supportedAspectRatios.forEach(([h, w], r) => {
    const base = (r + 1) * rowSize;
    for (let x = base; x < base + h * w * entrySize; x++) worst = Math.max(worst, Math.abs(hf[x] - back[x]));
  });
  return worst;
}

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, BF16: 2, F16: 2 };

/**
 * Reads one torchtune encoder tensor's bytes from `ckpt` following `src` (a {@link hfToTuneVisionPlan} entry),
 * in the checkpoint's own dtype; tile tables are rearranged byte-wise. Checks the HF shape first.
 */
export async function readVisionTensorBytes(
  ckpt: Checkpoint,
  tuneName: string,
  src: VisionTensorSource,
  args: ResolvedEncoderArgs,
): Promise<{ dtype: SafetensorsDtype; data: Uint8Array }> {
  const entry = ckpt.tensors.get(src.hfName);
  if (entry === undefined) {
    throw new Error(`${ckpt.dir}: tensor "${src.hfName}" (for encoder.${tuneName}) is missing`);
  }
  if (JSON.stringify(entry.shape) !== JSON.stringify(src.hfShape)) {
    throw new Error(
      `${entry.file}: tensor "${src.hfName}" has shape ${
        JSON.stringify(entry.shape)
      }, but encoder.${tuneName} ` +
        `needs ${JSON.stringify(src.hfShape)}; the config does not match the checkpoint`,
    );
  }
  const data = await ckpt.read(entry);
  if (src.transform === undefined) return { dtype: entry.dtype, data };
  const entrySize = src.transform === "tile_table"
    ? args.clip_embed_dim
    : args.tokens_per_tile * args.clip_embed_dim;
  return {
    dtype: entry.dtype,
    data: hfTableToTuneBytes(
      data,
      args.supported_aspect_ratios,
      args.max_num_tiles,
      entrySize * ITEM_SIZE[entry.dtype],
    ),
  };
}

/**
 * torchtune's `llama3_vision_hf_to_tune` for the vision encoder, fully materialised as float32 (for tests and
 * small models; large models should stream with {@link hfToTuneVisionPlan} + {@link readVisionTensorBytes}).
 * Keys are torchtune names without the `encoder.` prefix, in torchtune's state-dict order.
 */
export async function convertHfToTuneEncoder(
  ckpt: Checkpoint,
  args: ResolvedEncoderArgs,
): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const plan = hfToTuneVisionPlan(ckpt.tensors.keys(), args);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, src] of plan) {
    const { dtype, data } = await readVisionTensorBytes(ckpt, name, src, args);
    out.set(name, { shape: src.shape, data: toFloat32(dtype, data) });
  }
  return out;
}

/**
 * The keyword arguments of torchtune's `llama3_2_vision_encoder`, their defaults, their checks and the sizes
 * derived from them; the mapping from a Hugging Face `mllama` config; and torchtune's 11B / 90B encoder
 * arguments.
 *
 * Kept apart from the GPU modules so that checkpoint code can use it on its own.
 *
 * @module
 */

/**
 * Keyword arguments of torchtune's `llama3_2_vision_encoder`
 * (`torchtune.models.llama3_2_vision._component_builders`), same names and meaning.
 */
export interface Llama3VisionEncoderArgs {
  /** Side of the square patches the Conv2d cuts each tile into (kernel = stride). */
  patch_size: number;
  /** Attention heads of every CLIP and projection-head layer. */
  num_heads: number;
  /** CLIP width `D`; `head_dim = clip_embed_dim / num_heads`, MLP hidden size `4·D`. */
  clip_embed_dim: number;
  /** Number of CLIP transformer layers. */
  clip_num_layers: number;
  /**
   * CLIP layers whose **input** is saved and concatenated (interleaved) to the projection head's features;
   * `clip_num_layers` saves the output of the last layer (before `ln_post`). `null` means none.
   */
  clip_hidden_states: number[] | null;
  /** Number of gated transformer layers of the projection head. */
  num_layers_projection: number;
  /** Width of the decoder the encoder output feeds (its `embed_dim`). */
  decoder_embed_dim: number;
  /** Side of the square tiles, in pixels. */
  tile_size: number;
  /** Most tiles per image. Default 4. With 1 there is no tiling (plain token position embedding). */
  max_num_tiles?: number;
  /** Image channels. Default 3. */
  in_channels?: number;
}

/** {@link Llama3VisionEncoderArgs} with every default applied and every derived size computed. */
export interface ResolvedEncoderArgs {
  /** As {@link Llama3VisionEncoderArgs.patch_size}. */
  patch_size: number;
  /** As {@link Llama3VisionEncoderArgs.num_heads}. */
  num_heads: number;
  /** As {@link Llama3VisionEncoderArgs.clip_embed_dim}. */
  clip_embed_dim: number;
  /** As {@link Llama3VisionEncoderArgs.clip_num_layers}. */
  clip_num_layers: number;
  /** Saved hidden-state indices, strictly increasing (`[]` when the argument was null). */
  clip_hidden_states: number[];
  /** As {@link Llama3VisionEncoderArgs.num_layers_projection}. */
  num_layers_projection: number;
  /** As {@link Llama3VisionEncoderArgs.decoder_embed_dim}. */
  decoder_embed_dim: number;
  /** As {@link Llama3VisionEncoderArgs.tile_size}. */
  tile_size: number;
  /** Most tiles per image; 4 when not given. */
  max_num_tiles: number;
  /** Image channels; 3 when not given. */
  in_channels: number;
  /** `clip_embed_dim / num_heads`. */
  head_dim: number;
  /** MLP hidden size of every vision layer: `4 · clip_embed_dim` (torchtune's `mlp_ratio`). */
  mlp_dim: number;
  /** Patches per tile side, `g = tile_size / patch_size`. */
  patch_grid_size: number;
  /** `g²`. */
  patches_per_tile: number;
  /** `g² + 1` (the CLS token comes first). */
  tokens_per_tile: number;
  /** Encoder tokens of one image: `max_num_tiles · tokens_per_tile`. */
  tokens_per_image: number;
  /** `clip_hidden_states.length`. */
  num_hidden_states: number;
  /** Input width of the projection head's output linear: `clip_embed_dim · (1 + num_hidden_states)`. */
  projection_in_dim: number;
  /** Whether tile position embeddings exist (`max_num_tiles > 1`). */
  tiled: boolean;
  /**
   * Every `(h, w)` with `h·w ≤ max_num_tiles`, `h` outer and `w` inner, both ascending: HF's
   * `supported_aspect_ratios`, whose index `r` is row `r + 1` of HF's precomputed tile tables.
   */
  supported_aspect_ratios: [number, number][];
}

const KNOWN = [
  "patch_size",
  "num_heads",
  "clip_embed_dim",
  "clip_num_layers",
  "clip_hidden_states",
  "num_layers_projection",
  "decoder_embed_dim",
  "tile_size",
  "max_num_tiles",
  "in_channels",
] as const;

function positiveInt(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `llama3_2_vision_encoder: ${name} must be a positive integer, got ${
        value === undefined ? "nothing" : JSON.stringify(value)
      }`,
    );
  }
  return value;
}

/**
 * HF's `supported_aspect_ratios` for `maxNumTiles`: every `(h, w)` with `h·w ≤ maxNumTiles`, `h` the outer loop,
 * `w` the inner one, both ascending. For 4: `[[1,1],[1,2],[1,3],[1,4],[2,1],[2,2],[3,1],[4,1]]`.
 */
export function supportedAspectRatios(maxNumTiles: number): [number, number][] {
  const out: [number, number][] = [];
  for (let h = 1; h <= maxNumTiles; h++) {
    for (let w = 1; h * w <= maxNumTiles; w++) out.push([h, w]);
  }
  return out;
}

/** Applies torchtune's defaults and rejects arguments torchtune would fail on (or silently mishandle). */
export function resolveEncoderArgs(args: Llama3VisionEncoderArgs): ResolvedEncoderArgs {
  if (args === null || typeof args !== "object") {
    throw new TypeError("llama3_2_vision_encoder: pass the keyword arguments as one object");
  }
  const known = new Set<string>(KNOWN);
  for (const key of Object.keys(args)) {
    if (!known.has(key)) {
      throw new TypeError(
        `llama3_2_vision_encoder: unknown argument "${key}"; expected one of ${KNOWN.join(", ")}`,
      );
    }
  }
  const patch_size = positiveInt("patch_size", args.patch_size);
  const num_heads = positiveInt("num_heads", args.num_heads);
  const clip_embed_dim = positiveInt("clip_embed_dim", args.clip_embed_dim);
  const clip_num_layers = positiveInt("clip_num_layers", args.clip_num_layers);
  const num_layers_projection = positiveInt("num_layers_projection", args.num_layers_projection);
  const decoder_embed_dim = positiveInt("decoder_embed_dim", args.decoder_embed_dim);
  const tile_size = positiveInt("tile_size", args.tile_size);
  const max_num_tiles = positiveInt("max_num_tiles", args.max_num_tiles ?? 4);
  const in_channels = positiveInt("in_channels", args.in_channels ?? 3);

  if (clip_embed_dim % num_heads !== 0) {
    throw new RangeError(
      `llama3_2_vision_encoder: clip_embed_dim (${clip_embed_dim}) must be divisible by num_heads (${num_heads})`,
    );
  }
  if (tile_size % patch_size !== 0) {
    throw new RangeError(
      `llama3_2_vision_encoder: tile_size (${tile_size}) must be a multiple of patch_size (${patch_size}); ` +
        "the strided convolution would silently drop the remaining pixels",
    );
  }

  const hs = args.clip_hidden_states ?? [];
  if (!Array.isArray(hs)) {
    throw new TypeError(
      `llama3_2_vision_encoder: clip_hidden_states must be a list of layer indices or null, got ${
        JSON.stringify(hs)
      }`,
    );
  }
  for (const i of hs) {
    if (typeof i !== "number" || !Number.isSafeInteger(i) || i < 0 || i > clip_num_layers) {
      throw new RangeError(
        `llama3_2_vision_encoder: clip_hidden_states ${JSON.stringify(hs)} has ${JSON.stringify(i)}; ` +
          `indices must be integers in [0, clip_num_layers = ${clip_num_layers}] (i saves the input of ` +
          `layer i, ${clip_num_layers} the output of the last layer)`,
      );
    }
  }
  // torchtune saves hidden states while walking the layers, so they come out in ascending layer order and
  // a repeated index is saved once (its projection head would then get the wrong input width); HF stacks them
  // in list order. Only a strictly increasing list means the same thing everywhere.
  for (let k = 1; k < hs.length; k++) {
    if (hs[k] <= hs[k - 1]) {
      throw new RangeError(
        `llama3_2_vision_encoder: clip_hidden_states ${JSON.stringify(hs)} must be strictly increasing ` +
          "(torchtune saves them in layer order, once each)",
      );
    }
  }

  const head_dim = clip_embed_dim / num_heads;
  const patch_grid_size = tile_size / patch_size;
  const patches_per_tile = patch_grid_size * patch_grid_size;
  const tokens_per_tile = patches_per_tile + 1;
  const clip_hidden_states = [...hs];
  return {
    patch_size,
    num_heads,
    clip_embed_dim,
    clip_num_layers,
    clip_hidden_states,
    num_layers_projection,
    decoder_embed_dim,
    tile_size,
    max_num_tiles,
    in_channels,
    head_dim,
    mlp_dim: 4 * clip_embed_dim,
    patch_grid_size,
    patches_per_tile,
    tokens_per_tile,
    tokens_per_image: max_num_tiles * tokens_per_tile,
    num_hidden_states: clip_hidden_states.length,
    projection_in_dim: clip_embed_dim * (1 + clip_hidden_states.length),
    tiled: max_num_tiles > 1,
    supported_aspect_ratios: supportedAspectRatios(max_num_tiles),
  };
}

/** The encoder arguments torchtune's `llama3_2_vision_11b` (image_size 560) passes to `llama3_2_vision_encoder`. */
export const LLAMA3_2_VISION_11B_ENCODER_ARGS: Readonly<Llama3VisionEncoderArgs> = Object.freeze({
  patch_size: 14,
  num_heads: 16,
  clip_embed_dim: 1280,
  clip_num_layers: 32,
  clip_hidden_states: Object.freeze([3, 7, 15, 23, 30]) as number[],
  num_layers_projection: 8,
  decoder_embed_dim: 4096,
  tile_size: 560,
  max_num_tiles: 4,
  in_channels: 3,
});

/** The encoder arguments torchtune's `llama3_2_vision_90b` (image_size 560) passes to `llama3_2_vision_encoder`. */
export const LLAMA3_2_VISION_90B_ENCODER_ARGS: Readonly<Llama3VisionEncoderArgs> = Object.freeze({
  ...LLAMA3_2_VISION_11B_ENCODER_ARGS,
  decoder_embed_dim: 8192,
});

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Far above any Llama 3.2 Vision encoder (hidden 1280, 32 + 8 layers, 560-pixel tiles, 4 tiles). */
const VISION_FIELD_LIMITS: Readonly<Record<string, number>> = {
  hidden_size: 65536,
  attention_heads: 1024,
  num_hidden_layers: 1024,
  num_global_layers: 1024,
  image_size: 4096,
  patch_size: 4096,
  max_num_tiles: 64,
  num_channels: 16,
};

function posIntField(obj: Record<string, unknown>, field: string, where: string): number {
  const v = obj[field];
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
    throw new Error(
      `${where}: field "${field}" must be a positive integer, got ${
        v === undefined ? "nothing" : JSON.stringify(v)
      }`,
    );
  }
  const max = VISION_FIELD_LIMITS[field];
  if (max !== undefined && v > max) {
    throw new Error(
      `${where}: field "${field}" is ${v}, above ${max}, the most this implementation accepts: the config ` +
        `is corrupt or not a Llama 3.2 Vision config`,
    );
  }
  return v;
}

/**
 * Maps a Hugging Face `mllama` config (with `vision_config` and `text_config`) to torchtune
 * `llama3_2_vision_encoder` arguments (doc §11): `hidden_size` → `clip_embed_dim`, `attention_heads` →
 * `num_heads`, `num_hidden_layers` → `clip_num_layers`, `num_global_layers` → `num_layers_projection`,
 * `intermediate_layers_indices` → `clip_hidden_states`, `image_size` → `tile_size`, `num_channels` →
 * `in_channels`, `text_config.hidden_size` → `decoder_embed_dim`.
 *
 * Fields torchtune hard-wires are checked rather than ignored: `intermediate_size = 4·hidden_size`,
 * `vision_output_dim = hidden_size·(1 + #indices)`, `hidden_act` "gelu", `norm_eps` 1e-5, and
 * `supported_aspect_ratios` must be the list torchtune's conversion assumes. `source` names the config in
 * error messages.
 */
export function encoderArgsFromConfig(config: unknown, source = "config.json"): Llama3VisionEncoderArgs {
  if (!isObject(config)) throw new Error(`${source}: config must be a JSON object`);
  if (!isObject(config.vision_config)) {
    throw new Error(
      `${source}: field "vision_config" is ${
        config.vision_config === undefined ? "missing" : "not an object"
      }; a vision encoder needs a full mllama config`,
    );
  }
  if (!isObject(config.text_config)) {
    throw new Error(
      `${source}: field "text_config" is ${
        config.text_config === undefined ? "missing" : "not an object"
      }; its hidden_size is the encoder's output width`,
    );
  }
  const v = config.vision_config;
  const where = `${source} (vision_config)`;
  const clip_embed_dim = posIntField(v, "hidden_size", where);
  const num_heads = posIntField(v, "attention_heads", where);
  const clip_num_layers = posIntField(v, "num_hidden_layers", where);
  const num_layers_projection = posIntField(v, "num_global_layers", where);
  const tile_size = posIntField(v, "image_size", where);
  const patch_size = posIntField(v, "patch_size", where);
  const max_num_tiles = posIntField(v, "max_num_tiles", where);
  const in_channels = v.num_channels == null ? 3 : posIntField(v, "num_channels", where);
  const decoder_embed_dim = posIntField(config.text_config, "hidden_size", `${source} (text_config)`);

  const idx = v.intermediate_layers_indices ?? [];
  if (!Array.isArray(idx) || !idx.every((i) => Number.isSafeInteger(i) && i >= 0)) {
    throw new Error(
      `${where}: field "intermediate_layers_indices" must be a list of layer indices, got ${
        JSON.stringify(idx)
      }`,
    );
  }
  const clip_hidden_states = [...idx] as number[];

  if (v.intermediate_size != null && v.intermediate_size !== 4 * clip_embed_dim) {
    throw new Error(
      `${where}: field "intermediate_size" is ${JSON.stringify(v.intermediate_size)}, but torchtune's CLIP ` +
        `layers hard-wire 4 · hidden_size = ${4 * clip_embed_dim}`,
    );
  }
  const outDim = clip_embed_dim * (1 + clip_hidden_states.length);
  if (v.vision_output_dim != null && v.vision_output_dim !== outDim) {
    throw new Error(
      `${where}: field "vision_output_dim" is ${JSON.stringify(v.vision_output_dim)}, but hidden_size ` +
        `${clip_embed_dim} · (1 + ${clip_hidden_states.length} intermediate layers) = ${outDim}`,
    );
  }
  if (v.hidden_act != null && v.hidden_act !== "gelu") {
    throw new Error(
      `${where}: field "hidden_act" is ${JSON.stringify(v.hidden_act)}; torchtune's encoder uses exact ` +
        `(erf) "gelu" only`,
    );
  }
  if (v.norm_eps != null && v.norm_eps !== 1e-5) {
    throw new Error(
      `${where}: field "norm_eps" is ${JSON.stringify(v.norm_eps)}; torchtune's LayerNorms use 1e-5 only`,
    );
  }

  const args: Llama3VisionEncoderArgs = {
    patch_size,
    num_heads,
    clip_embed_dim,
    clip_num_layers,
    clip_hidden_states,
    num_layers_projection,
    decoder_embed_dim,
    tile_size,
    max_num_tiles,
    in_channels,
  };
  let resolved: ResolvedEncoderArgs;
  try {
    resolved = resolveEncoderArgs(args);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  if (v.supported_aspect_ratios != null) {
    const want = JSON.stringify(resolved.supported_aspect_ratios);
    if (JSON.stringify(v.supported_aspect_ratios) !== want) {
      throw new Error(
        `${where}: field "supported_aspect_ratios" is ${JSON.stringify(v.supported_aspect_ratios)}, but ` +
          `torchtune's tile tables for max_num_tiles ${max_num_tiles} use ${want} (every (h, w) with ` +
          "h·w ≤ max_num_tiles, h outer, w inner); the checkpoint's tile tables cannot be converted",
      );
    }
  }
  return args;
}

/**
 * Hugging Face Mllama text-decoder weights → torchtune `llama3_2_vision_decoder` state-dict names.
 *
 * The conversion is expressed as a plan (tune name → HF tensor + row slice + q/k permutation) so that a loader
 * can stream one tensor at a time instead of materialising the whole state dict.
 *
 * @module
 */

import type { ResolvedDecoderArgs } from "./decoder_args.ts";
import { type Checkpoint, type SafetensorsDtype, toFloat32 } from "../../checkpoint/safetensors.ts";

/** Where one torchtune tensor comes from in an HF checkpoint. */
export interface TuneTensorSource {
  /** HF tensor name. */
  hfName: string;
  /** take only rows [start, end) of dim 0 (embedding split) */
  rows?: [number, number];
  /** permute q/k rows HF rotate_half → tune interleaved, with this many heads */
  permuteHeads?: number;
}

/**
 * Every torchtune decoder state-dict name → shape, in module order (the bare `TransformerDecoder` built by
 * torchtune's `llama3_2_vision_decoder`; `DeepFusionModel` would add a `decoder.` prefix).
 */
export function expectedTuneShapes(args: ResolvedDecoderArgs): Map<string, number[]> {
  const { vocab_size: V, embed_dim: E, num_heads: H, num_kv_heads: KV, head_dim: hd } = args;
  const F = args.intermediate_dim;
  const m = new Map<string, number[]>();
  m.set("tok_embeddings.weight", [V, E]);
  m.set("tok_embeddings.fusion_embedding.weight", [args.num_special_tokens, E]);
  const fusion = new Set(args.fusion_layer_indices);
  const attn = (p: string) => {
    m.set(`${p}.q_proj.weight`, [H * hd, E]);
    m.set(`${p}.k_proj.weight`, [KV * hd, E]);
    m.set(`${p}.v_proj.weight`, [KV * hd, E]);
    m.set(`${p}.output_proj.weight`, [E, H * hd]);
  };
  const mlp = (p: string) => {
    m.set(`${p}.w1.weight`, [F, E]);
    m.set(`${p}.w3.weight`, [F, E]);
    m.set(`${p}.w2.weight`, [E, F]);
  };
  for (let t = 0; t < args.num_layers; t++) {
    if (fusion.has(t)) {
      const p = `layers.${t}.fusion_layer`;
      attn(`${p}.attn`);
      m.set(`${p}.attn.q_norm.scale`, [hd]);
      m.set(`${p}.attn.k_norm.scale`, [hd]);
      mlp(`${p}.mlp`);
      m.set(`${p}.ca_norm.scale`, [E]);
      m.set(`${p}.mlp_norm.scale`, [E]);
      m.set(`${p}.ca_scale.scale`, [1]);
      m.set(`${p}.mlp_scale.scale`, [1]);
    }
    attn(`layers.${t}.attn`);
    mlp(`layers.${t}.mlp`);
    m.set(`layers.${t}.sa_norm.scale`, [E]);
    m.set(`layers.${t}.mlp_norm.scale`, [E]);
  }
  m.set("norm.scale", [E]);
  m.set("output.weight", [V, E]);
  return m;
}

/** HF name prefixes of the two spellings: on-disk Hub shards, and recent transformers' in-memory names. */
const SPELLINGS = [
  { model: "language_model.model.", lmHead: "language_model.lm_head.weight" },
  { model: "model.language_model.", lmHead: "lm_head.weight" },
] as const;

/** Decoder-irrelevant HF tensors: vision tower, projector and RoPE buffers. */
function isIgnored(name: string): boolean {
  return name.endsWith(".rotary_emb.inv_freq") ||
    /^(model\.)?(vision_model|multi_modal_projector)\./.test(name);
}

/**
 * Plans torchtune's `llama3_vision_hf_to_tune` for the decoder: maps every torchtune decoder name to its HF
 * source. HF layer `h` in `cross_attention_layers = [t_k + k]` becomes `layers.{t}.fusion_layer`, any other HF
 * layer the self-attention part of `layers.{t}`, with `t = h − #{cross layers below h}`.
 *
 * Throws when an HF tensor is neither used nor known to be irrelevant, or a torchtune tensor has no source.
 */
export function hfToTunePlan(
  hfNames: Iterable<string>,
  args: ResolvedDecoderArgs,
): { plan: Map<string, TuneTensorSource>; ignored: string[] } {
  const names = new Set(hfNames);
  const present = SPELLINGS.filter((s) => [...names].some((n) => n.startsWith(s.model) || n === s.lmHead));
  if (present.length > 1) {
    throw new Error(
      `HF checkpoint mixes the "${SPELLINGS[0].model}*" and "${
        SPELLINGS[1].model
      }*" spellings; use one of them`,
    );
  }
  const { model: pre, lmHead } = present[0] ?? SPELLINGS[0];

  const numFusion = args.fusion_layer_indices.length;
  const numHf = args.num_layers + numFusion;
  const plan = new Map<string, TuneTensorSource>();
  const V = args.vocab_size;
  plan.set("tok_embeddings.weight", { hfName: `${pre}embed_tokens.weight`, rows: [0, V] });
  plan.set("tok_embeddings.fusion_embedding.weight", {
    hfName: `${pre}embed_tokens.weight`,
    rows: [V, V + args.num_special_tokens],
  });
  let h = 0;
  for (let t = 0; t < args.num_layers; t++) {
    if (args.fusion_layer_indices.includes(t)) {
      const hp = `${pre}layers.${h}.`;
      const tp = `layers.${t}.fusion_layer.`;
      for (const x of ["q", "k", "v"]) {
        plan.set(`${tp}attn.${x}_proj.weight`, { hfName: `${hp}cross_attn.${x}_proj.weight` });
      }
      plan.set(`${tp}attn.output_proj.weight`, { hfName: `${hp}cross_attn.o_proj.weight` });
      plan.set(`${tp}attn.q_norm.scale`, { hfName: `${hp}cross_attn.q_norm.weight` });
      plan.set(`${tp}attn.k_norm.scale`, { hfName: `${hp}cross_attn.k_norm.weight` });
      plan.set(`${tp}ca_scale.scale`, { hfName: `${hp}cross_attn_attn_gate` });
      plan.set(`${tp}mlp_scale.scale`, { hfName: `${hp}cross_attn_mlp_gate` });
      plan.set(`${tp}ca_norm.scale`, { hfName: `${hp}input_layernorm.weight` });
      plan.set(`${tp}mlp_norm.scale`, { hfName: `${hp}post_attention_layernorm.weight` });
      plan.set(`${tp}mlp.w1.weight`, { hfName: `${hp}mlp.gate_proj.weight` });
      plan.set(`${tp}mlp.w3.weight`, { hfName: `${hp}mlp.up_proj.weight` });
      plan.set(`${tp}mlp.w2.weight`, { hfName: `${hp}mlp.down_proj.weight` });
      h++;
    }
    const hp = `${pre}layers.${h}.`;
    const tp = `layers.${t}.`;
    plan.set(`${tp}attn.q_proj.weight`, {
      hfName: `${hp}self_attn.q_proj.weight`,
      permuteHeads: args.num_heads,
    });
    plan.set(`${tp}attn.k_proj.weight`, {
      hfName: `${hp}self_attn.k_proj.weight`,
      permuteHeads: args.num_kv_heads,
    });
    plan.set(`${tp}attn.v_proj.weight`, { hfName: `${hp}self_attn.v_proj.weight` });
    plan.set(`${tp}attn.output_proj.weight`, { hfName: `${hp}self_attn.o_proj.weight` });
    plan.set(`${tp}sa_norm.scale`, { hfName: `${hp}input_layernorm.weight` });
    plan.set(`${tp}mlp_norm.scale`, { hfName: `${hp}post_attention_layernorm.weight` });
    plan.set(`${tp}mlp.w1.weight`, { hfName: `${hp}mlp.gate_proj.weight` });
    plan.set(`${tp}mlp.w3.weight`, { hfName: `${hp}mlp.up_proj.weight` });
    plan.set(`${tp}mlp.w2.weight`, { hfName: `${hp}mlp.down_proj.weight` });
    h++;
  }
  plan.set("norm.scale", { hfName: `${pre}norm.weight` });
  plan.set("output.weight", { hfName: lmHead });

  // Layer indices past the config are a config/checkpoint mismatch; say so rather than "unexpected tensor".
  const layerRe = new RegExp(`^${pre.replaceAll(".", "\\.")}layers\\.(\\d+)\\.`);
  const beyond = [...names].filter((n) => Number(layerRe.exec(n)?.[1] ?? -1) >= numHf);
  if (beyond.length > 0) {
    throw new Error(
      `HF tensor(s) ${beyond.slice(0, 5).join(", ")}${
        beyond.length > 5 ? ", …" : ""
      } have a layer index >= ` +
        `num_hidden_layers = ${numHf} (num_layers ${args.num_layers} + ${numFusion} cross-attention layers); ` +
        "the config does not match the checkpoint",
    );
  }
  const missing = [...plan].filter(([, src]) => !names.has(src.hfName));
  if (missing.length > 0) {
    throw new Error(
      "HF checkpoint lacks tensors for: " +
        missing.slice(0, 10).map(([tune, src]) => `${tune} (expected HF "${src.hfName}")`).join(", ") +
        (missing.length > 10 ? `, and ${missing.length - 10} more` : ""),
    );
  }
  const used = new Set([...plan.values()].map((s) => s.hfName));
  const ignored: string[] = [];
  const unexpected: string[] = [];
  for (const n of names) {
    if (used.has(n)) continue;
    if (isIgnored(n)) ignored.push(n);
    else unexpected.push(n);
  }
  if (unexpected.length > 0) {
    throw new Error(
      `unexpected tensor(s) in HF checkpoint: ${unexpected.slice(0, 10).join(", ")}` +
        (unexpected.length > 10 ? `, and ${unexpected.length - 10} more` : ""),
    );
  }
  return { plan, ignored };
}

/**
 * Undoes HF's q/k row order inside each head (torchtune `_convert_weights._permute` inverse): new row `2i` =
 * old row `i`, new row `2i+1` = old row `hd/2 + i`. `rowBytes` is the byte size of one row (in_dim · itemsize),
 * so the function works for any dtype.
 */
export function permuteQKRowsHfToTune(
  data: Uint8Array,
  numHeads: number,
  headDim: number,
  rowBytes: number,
): Uint8Array {
  if (headDim % 2 !== 0) throw new Error(`permuteQKRowsHfToTune: head_dim ${headDim} must be even`);
  if (data.byteLength !== numHeads * headDim * rowBytes) {
    throw new Error(
      `permuteQKRowsHfToTune: ${data.byteLength} bytes, expected ${numHeads} heads × ${headDim} rows × ` +
        `${rowBytes} bytes`,
    );
  }
  const out = new Uint8Array(data.byteLength);
  const half = headDim / 2;
  for (let h = 0; h < numHeads; h++) {
    const base = h * headDim;
    for (let i = 0; i < half; i++) {
      const a = (base + i) * rowBytes;
      const b = (base + half + i) * rowBytes;
      out.set(data.subarray(a, a + rowBytes), (base + 2 * i) * rowBytes);
      out.set(data.subarray(b, b + rowBytes), (base + 2 * i + 1) * rowBytes);
    }
  }
  return out;
}

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, BF16: 2, F16: 2 };

/**
 * Reads one torchtune tensor's bytes from `ckpt` following `src`, in the checkpoint's own dtype (no widening,
 * so a loader can upload BF16 as is). Checks the HF tensor's shape against `shape` (the torchtune shape) first.
 */
export async function readTuneTensorBytes(
  ckpt: Checkpoint,
  tuneName: string,
  src: TuneTensorSource,
  shape: number[],
): Promise<{ dtype: SafetensorsDtype; data: Uint8Array }> {
  const entry = ckpt.tensors.get(src.hfName);
  if (entry === undefined) {
    throw new Error(`${ckpt.dir}: tensor "${src.hfName}" (for ${tuneName}) is missing`);
  }
  // With a row slice the HF tensor has more rows than the tune tensor; the rest of the shape must agree.
  const want = src.rows ? [null, ...shape.slice(1)] : shape;
  const fits = entry.shape.length === want.length &&
    want.every((d, i) => d === null || d === entry.shape[i]) &&
    (!src.rows || entry.shape[0] >= src.rows[1]);
  if (!fits) {
    const expect = src.rows ? `[>=${src.rows[1]}, ${shape.slice(1).join(", ")}]` : JSON.stringify(shape);
    throw new Error(
      `${entry.file}: tensor "${src.hfName}" has shape ${
        JSON.stringify(entry.shape)
      }, but ${tuneName} needs ` +
        `${expect}; the config does not match the checkpoint`,
    );
  }
  const rowBytes = entry.shape.slice(1).reduce((a, b) => a * b, ITEM_SIZE[entry.dtype]);
  let data = src.rows
    ? await ckpt.read(entry, src.rows[0] * rowBytes, (src.rows[1] - src.rows[0]) * rowBytes)
    : await ckpt.read(entry);
  if (src.permuteHeads !== undefined) {
    data = permuteQKRowsHfToTune(data, src.permuteHeads, shape[0] / src.permuteHeads, rowBytes);
  }
  return { dtype: entry.dtype, data };
}

/**
 * torchtune's `llama3_vision_hf_to_tune` for the decoder, fully materialised as float32 (for tests and small
 * models; large models should stream with {@link hfToTunePlan} + {@link readTuneTensorBytes}).
 */
export async function convertHfToTune(
  ckpt: Checkpoint,
  args: ResolvedDecoderArgs,
): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const { plan } = hfToTunePlan(ckpt.tensors.keys(), args);
  const shapes = expectedTuneShapes(args);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of shapes) {
    const { dtype, data } = await readTuneTensorBytes(ckpt, name, plan.get(name)!, shape);
    out.set(name, { shape, data: toFloat32(dtype, data) });
  }
  return out;
}

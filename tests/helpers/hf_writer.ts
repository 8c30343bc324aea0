/**
 * Builds Hub-style checkpoint folders (HF `mllama_text_model` config.json + model.safetensors under HF
 * Mllama names) from torchtune-named weights, the way torchtune's `llama3_vision_tune_to_hf` writes them
 * (doc §10): tune → HF layer renumbering, one `embed_tokens` table (base rows, then the special rows),
 * `lm_head`, and the tune → HF row permutation of the self-attention q/k projections. Also draws random
 * torchtune weights with the fixtures' statistics, from a seeded PRNG.
 *
 * @module
 */
import { join } from "node:path";
import { Rng } from "./reference.ts";
import { type RefDecoderArgs, refDims, tuneShapes } from "./reference_decoder.ts";
import { type TensorSpec, writeSafetensors } from "./safetensors_writer.ts";

/** A named f32 tensor. */
export interface F32Tensor {
  data: Float32Array;
  shape: number[];
}

/**
 * Random torchtune weights resembling the fixtures': linear N(0, 0.02), q/k projections N(0, 0.1),
 * lm head N(0, 0.05), embeddings (special rows included) N(0, 0.02), norm scales N(1, 0.1), tanh gates
 * U(0.2, 0.8). Parameters are drawn in sorted-name order.
 */
export function randomTuneWeights(args: RefDecoderArgs, seed: number): Map<string, F32Tensor> {
  const rng = new Rng(seed);
  const shapes = tuneShapes(args);
  const out = new Map<string, F32Tensor>();
  for (const name of [...shapes.keys()].sort()) {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith("_scale.scale")) {
      for (let i = 0; i < n; i++) data[i] = rng.uniform(0.2, 0.8);
    } else if (name.endsWith(".scale")) {
      for (let i = 0; i < n; i++) data[i] = 1 + 0.1 * rng.normal();
    } else {
      const std = name === "output.weight" ? 0.05 : /\.(q|k)_proj\.weight$/.test(name) ? 0.1 : 0.02;
      for (let i = 0; i < n; i++) data[i] = std * rng.normal();
    }
    out.set(name, { data, shape });
  }
  return out;
}

/** Rounds f32 values to bfloat16 (round to nearest, ties to even), returned as f32 values. */
export function roundBf16(x: Float32Array): Float32Array {
  const u = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < u.length; i++) {
    const lsb = (u[i] >>> 16) & 1;
    u[i] = ((u[i] + 0x7fff + lsb) >>> 0) & 0xffff0000;
  }
  return new Float32Array(u.buffer);
}

/** The same weights rounded to bf16 (what a bf16 checkpoint holds). */
export function roundWeightsBf16(w: Map<string, F32Tensor>): Map<string, F32Tensor> {
  return new Map([...w].map(([n, t]) => [n, { data: roundBf16(t.data), shape: t.shape }]));
}

/**
 * tune → HF q/k row order (self-attention only): inside each head of `hd` rows of width `width`, the new
 * row order is old rows 0, 2, 4, …, hd−2, then 1, 3, …, hd−1.
 */
export function permuteTuneToHf(w: Float32Array, heads: number, hd: number, width: number): Float32Array {
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let r = 0; r < hd; r++) {
      const old = r < hd / 2 ? 2 * r : 2 * (r - hd / 2) + 1;
      out.set(w.subarray((h * hd + old) * width, (h * hd + old + 1) * width), (h * hd + r) * width);
    }
  }
  return out;
}

/** HF `cross_attention_layers`: the k-th fusion layer at tune index t_k is HF layer t_k + k. */
export function hfCrossAttentionLayers(args: RefDecoderArgs): number[] {
  return refDims(args).fusion.map((t, k) => t + k);
}

/** Renames and reshapes torchtune weights to the HF Mllama on-disk names (`language_model.*`). */
export function tuneToHf(w: Map<string, F32Tensor>, args: RefDecoderArgs): Map<string, F32Tensor> {
  const { H, KV, E, hd, V, fusion } = refDims(args);
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new Error(`tuneToHf: missing ${n}`);
    return t;
  };
  const out = new Map<string, F32Tensor>();
  const pre = "language_model.model.";
  const base = get("tok_embeddings.weight");
  const special = get("tok_embeddings.fusion_embedding.weight");
  const embed = new Float32Array(base.data.length + special.data.length);
  embed.set(base.data);
  embed.set(special.data, base.data.length);
  out.set(`${pre}embed_tokens.weight`, { data: embed, shape: [V + args.num_special_tokens, E] });
  const mlp = (hp: string, tp: string) => {
    out.set(`${hp}mlp.gate_proj.weight`, get(`${tp}mlp.w1.weight`));
    out.set(`${hp}mlp.up_proj.weight`, get(`${tp}mlp.w3.weight`));
    out.set(`${hp}mlp.down_proj.weight`, get(`${tp}mlp.w2.weight`));
  };
  let h = 0;
  for (let t = 0; t < args.num_layers; t++) {
    if (fusion.includes(t)) {
      const hp = `${pre}layers.${h}.`;
      const tp = `layers.${t}.fusion_layer.`;
      for (const x of ["q", "k", "v"]) {
        out.set(`${hp}cross_attn.${x}_proj.weight`, get(`${tp}attn.${x}_proj.weight`));
      }
      out.set(`${hp}cross_attn.o_proj.weight`, get(`${tp}attn.output_proj.weight`));
      out.set(`${hp}cross_attn.q_norm.weight`, get(`${tp}attn.q_norm.scale`));
      out.set(`${hp}cross_attn.k_norm.weight`, get(`${tp}attn.k_norm.scale`));
      out.set(`${hp}cross_attn_attn_gate`, get(`${tp}ca_scale.scale`));
      out.set(`${hp}cross_attn_mlp_gate`, get(`${tp}mlp_scale.scale`));
      out.set(`${hp}input_layernorm.weight`, get(`${tp}ca_norm.scale`));
      out.set(`${hp}post_attention_layernorm.weight`, get(`${tp}mlp_norm.scale`));
      mlp(hp, tp);
      h++;
    }
    const hp = `${pre}layers.${h}.`;
    const tp = `layers.${t}.`;
    const q = get(`${tp}attn.q_proj.weight`);
    const k = get(`${tp}attn.k_proj.weight`);
    out.set(`${hp}self_attn.q_proj.weight`, { data: permuteTuneToHf(q.data, H, hd, E), shape: q.shape });
    out.set(`${hp}self_attn.k_proj.weight`, { data: permuteTuneToHf(k.data, KV, hd, E), shape: k.shape });
    out.set(`${hp}self_attn.v_proj.weight`, get(`${tp}attn.v_proj.weight`));
    out.set(`${hp}self_attn.o_proj.weight`, get(`${tp}attn.output_proj.weight`));
    out.set(`${hp}input_layernorm.weight`, get(`${tp}sa_norm.scale`));
    out.set(`${hp}post_attention_layernorm.weight`, get(`${tp}mlp_norm.scale`));
    mlp(hp, tp);
    h++;
  }
  out.set(`${pre}norm.weight`, get("norm.scale"));
  out.set("language_model.lm_head.weight", get("output.weight"));
  return out;
}

/** HF `MllamaTextConfig`-shaped config (model_type `mllama_text_model`) for `args`. */
export function hfTextConfig(args: RefDecoderArgs): Record<string, unknown> {
  const { H, KV, E, F, V, fusion } = refDims(args);
  if (args.num_special_tokens !== 8) throw new Error("HF checkpoints always have 8 special embedding rows");
  return {
    model_type: "mllama_text_model",
    vocab_size: V,
    hidden_size: E,
    hidden_act: "silu",
    num_hidden_layers: args.num_layers + fusion.length,
    num_attention_heads: H,
    num_key_value_heads: KV,
    intermediate_size: F,
    rope_theta: args.rope_base ?? 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
    rms_norm_eps: 1e-5,
    max_position_embeddings: args.max_seq_len,
    initializer_range: 0.02,
    use_cache: true,
    tie_word_embeddings: false,
    cross_attention_layers: hfCrossAttentionLayers(args),
    dropout: 0,
    bos_token_id: 1,
    eos_token_id: 2,
    pad_token_id: 0,
    torch_dtype: "float32",
  };
}

function bf16Bytes(x: Float32Array): Uint8Array {
  const u = new Uint32Array(roundBf16(x).buffer);
  const out = new Uint16Array(u.length);
  for (let i = 0; i < u.length; i++) out[i] = u[i] >>> 16;
  return new Uint8Array(out.buffer);
}

/**
 * Writes `dir/config.json` and `dir/model.safetensors` (HF names, F32 or BF16 rounded to nearest even)
 * for torchtune weights `w`. Returns `dir`.
 */
export async function writeHfCheckpoint(
  dir: string,
  args: RefDecoderArgs,
  w: Map<string, F32Tensor>,
  opts: { bf16?: boolean } = {},
): Promise<string> {
  const tensors = new Map<string, TensorSpec>();
  for (const [name, t] of tuneToHf(w, args)) {
    tensors.set(name, {
      dtype: opts.bf16 ? "BF16" : "F32",
      shape: t.shape,
      data: opts.bf16
        ? bf16Bytes(t.data)
        : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    });
  }
  const config = { ...hfTextConfig(args), torch_dtype: opts.bf16 ? "bfloat16" : "float32" };
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  return dir;
}

/**
 * The fusion model (vision encoder + decoder) implements torchtune's general rule, not just the golden
 * tiny_vision_e2e fixture: random checkpoints of other encoder and decoder shapes (4-tile tables with every
 * aspect ratio, the last layer's output among the saved hidden states, several projection layers, MQA and
 * GQA decoders, fusion_interval 1 and 2, BF16) are written as Hub-style folders (full `mllama` config.json,
 * one model.safetensors with `language_model.*`, `vision_model.*` and `multi_modal_projector.*`), loaded with
 * `loadCheckpoint` and compared with the float64 references (tests/helpers/reference_encoder.ts, then
 * tests/helpers/reference_decoder.ts on its output): the encoder output, a full forward with images and
 * `visionCrossAttentionMask` masks, and KV-cached greedy decoding.
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers/gpu.ts";
import { join } from "node:path";
import { DeepFusionModel, loadCheckpoint, visionCrossAttentionMask } from "../mod.ts";
import {
  type Llama3VisionEncoderArgs,
  resolveEncoderArgs,
} from "../src/models/llama3_2_vision/encoder_args.ts";
import { argmaxRow, maxAbsDiff } from "./helpers/golden.ts";
import {
  type F32Tensor,
  hfTextConfig,
  randomTuneWeights,
  roundBf16,
  roundWeightsBf16,
  tuneToHf,
} from "./helpers/hf_writer.ts";
import { hfVisionConfig, randomHfVisionTensors, toTensorSpecs } from "./helpers/hf_vision_writer.ts";
import { Rng } from "./helpers/reference.ts";
import { type RefDecoderArgs, referenceForward, type RefWeights } from "./helpers/reference_decoder.ts";
import { referenceEncoderForward } from "./helpers/reference_encoder.ts";
import { writeSafetensors } from "./helpers/safetensors_writer.ts";

const TOL = 1e-4;
const gpu = await testGpu();

interface Case {
  name: string;
  enc: Llama3VisionEncoderArgs;
  dec: RefDecoderArgs;
  seed: number;
  /** prompt length, decode steps */
  s: number;
  steps: number;
  /** `(h, w)` tiles of each sample's two images */
  layouts: [[number, number], [number, number]][];
  /** positions of each sample's two `<|image|>` tokens */
  imagePos: [number, number][];
}

const CASES: Case[] = [
  {
    name:
      "(a) 4 tiles 8px/4px (n_tok 5) D=32 H=4, CLIP 2 layers hidden [0, 2], 1 proj; MQA E=32 H=4 KV=1 fi 1",
    enc: {
      patch_size: 4,
      num_heads: 4,
      clip_embed_dim: 32,
      clip_num_layers: 2,
      clip_hidden_states: [0, 2],
      num_layers_projection: 1,
      decoder_embed_dim: 32,
      tile_size: 8,
      max_num_tiles: 4,
    },
    dec: {
      vocab_size: 96,
      num_layers: 2,
      fusion_interval: 1,
      num_special_tokens: 8,
      num_heads: 4,
      num_kv_heads: 1,
      embed_dim: 32,
      max_seq_len: 64,
      intermediate_dim: null,
    },
    seed: 101,
    s: 11,
    steps: 3,
    layouts: [[[2, 2], [1, 3]], [[4, 1], [1, 1]]],
    // sample 1: consecutive image tokens share the text after them
    imagePos: [[1, 6], [3, 4]],
  },
  {
    name:
      "(b) 2 tiles 12px/4px (n_tok 10) D=48 H=6, CLIP 3 layers hidden [1], 2 proj; GQA E=64 H=8 KV=2 fi 2",
    enc: {
      patch_size: 4,
      num_heads: 6,
      clip_embed_dim: 48,
      clip_num_layers: 3,
      clip_hidden_states: [1],
      num_layers_projection: 2,
      decoder_embed_dim: 64,
      tile_size: 12,
      max_num_tiles: 2,
    },
    dec: {
      vocab_size: 130,
      num_layers: 4,
      fusion_interval: 2,
      num_special_tokens: 8,
      num_heads: 8,
      num_kv_heads: 2,
      embed_dim: 64,
      max_seq_len: 64,
      intermediate_dim: 96,
    },
    seed: 202,
    s: 10,
    steps: 3,
    layouts: [[[1, 2], [2, 1]], [[1, 1], [2, 1]]],
    imagePos: [[0, 4], [2, 7]],
  },
];

interface Loaded {
  model: DeepFusionModel;
  dir: string;
  enc: RefWeights;
  dec: RefWeights;
}

/** Writes config.json (full mllama config) and model.safetensors (decoder + vision tensors, HF names). */
async function writeCase(c: Case, bf16: boolean): Promise<{ dir: string; enc: RefWeights; dec: RefWeights }> {
  const decW = randomTuneWeights(c.dec, c.seed);
  const vision = randomHfVisionTensors(c.enc, c.seed + 1, { bf16 });
  const tensors = new Map([...toTensorSpecs(tuneToHf(decW, c.dec), { bf16 }), ...vision.hf]);
  const config = {
    model_type: "mllama",
    architectures: ["MllamaForConditionalGeneration"],
    image_token_index: c.dec.vocab_size,
    text_config: hfTextConfig(c.dec),
    vision_config: hfVisionConfig(c.enc),
    torch_dtype: bf16 ? "bfloat16" : "float32",
  };
  const dir = await Deno.makeTempDir({ prefix: "vision_shapes_ckpt_" });
  await Deno.writeTextFile(join(dir, "config.json"), JSON.stringify(config, null, 2));
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  const host = (w: Map<string, F32Tensor>) =>
    new Map([...w].map(([n, t]) => [n, bf16 ? roundBf16(t.data) : t.data]));
  return { dir, enc: host(vision.tune), dec: host(bf16 ? roundWeightsBf16(decW) : decW) };
}

async function load(c: Case, bf16: boolean): Promise<Loaded> {
  const w = await writeCase(c, bf16);
  const model = await loadCheckpoint(w.dir, { gpu });
  assert.ok(model instanceof DeepFusionModel, "a checkpoint with vision weights loads as a DeepFusionModel");
  return { model, ...w };
}

interface Inputs {
  images: { data: Float32Array; shape: number[] };
  aspect_ratio: { data: Int32Array; shape: number[] };
  tokens: { data: Int32Array; shape: number[] };
  /** `[2, s, S]`, per sample from visionCrossAttentionMask, stacked */
  encoder_mask: { data: Uint8Array; shape: number[] };
  S: number;
}

/** Batch 2 × 2 images (real tiles random in [-1, 1), padding tiles zero) and prompts with 2 image tokens. */
function makeInputs(c: Case): Inputs {
  const a = resolveEncoderArgs(c.enc);
  const rng = new Rng(c.seed * 7919);
  const M = a.max_num_tiles;
  const tile = a.in_channels * a.tile_size * a.tile_size;
  const images = new Float32Array(2 * 2 * M * tile);
  const ratio = new Int32Array(2 * 2 * 2);
  c.layouts.flat().forEach(([h, w], img) => {
    ratio.set([h, w], 2 * img);
    for (let i = 0; i < h * w * tile; i++) images[img * M * tile + i] = rng.uniform(-1, 1);
  });
  const { s } = c;
  const V = c.dec.vocab_size;
  const N = a.tokens_per_tile;
  const S = 2 * M * N;
  const tokens = new Int32Array(2 * s);
  const mask = new Uint8Array(2 * s * S);
  for (let b = 0; b < 2; b++) {
    const row = tokens.subarray(b * s, (b + 1) * s);
    for (let i = 0; i < s; i++) row[i] = rng.int(V);
    for (const p of c.imagePos[b]) row[p] = V; // <|image|> = fusion row 0
    row[s - 1] = V + 2 + b; // another special row
    const m = visionCrossAttentionMask(row, V, c.layouts[b].map(([h, w]) => h * w), M, N);
    assert.deepEqual(m.shape, [1, s, S]);
    mask.set(m.data, b * s * S);
  }
  return {
    images: { data: images, shape: [2, 2, M, a.in_channels, a.tile_size, a.tile_size] },
    aspect_ratio: { data: ratio, shape: [2, 2, 2] },
    tokens: { data: tokens, shape: [2, s] },
    encoder_mask: { data: mask, shape: [2, s, S] },
    S,
  };
}

function refEncoder(c: Case, w: RefWeights, x: Inputs) {
  return referenceEncoderForward(c.enc, w, x.images, x.aspect_ratio).output;
}

function check(label: string, got: ArrayLike<number>, ref: ArrayLike<number>): void {
  const err = maxAbsDiff(got, ref);
  console.log(`${label}: max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < TOL, `${label}: max |Δ| ${err} ≥ ${TOL}`);
}

async function read(model: DeepFusionModel, ...a: Parameters<DeepFusionModel["forward"]>) {
  using out = model.forward(...a);
  return (await out.read()).data;
}

/** Rows `[from, from + n)` of tril(ones(L, L)) for both batch rows: `[2, n, L]`. */
function causalRows(from: number, n: number, L: number): { data: Uint8Array; shape: number[] } {
  const data = new Uint8Array(2 * n * L);
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < n; i++) data.fill(1, (b * n + i) * L, (b * n + i) * L + from + i + 1);
  }
  return { data, shape: [2, n, L] };
}

function positions(from: number, n: number): { data: Int32Array; shape: number[] } {
  const data = new Int32Array(2 * n);
  for (let b = 0; b < 2; b++) for (let i = 0; i < n; i++) data[b * n + i] = from + i;
  return { data, shape: [2, n] };
}

async function encoderOutput(c: Case, m: Loaded, label: string): Promise<void> {
  const x = makeInputs(c);
  using out = m.model.encode({ images: x.images, aspect_ratio: x.aspect_ratio });
  const got = await out.read();
  const ref = refEncoder(c, m.enc, x);
  assert.deepEqual(got.shape, ref.shape);
  assert.deepEqual(ref.shape, [2, x.S, c.dec.embed_dim]);
  check(label, got.data, ref.data);
}

async function fullForward(c: Case, m: Loaded, label: string): Promise<void> {
  const x = makeInputs(c);
  const got = await read(m.model, x.tokens, {
    encoder_input: { images: x.images, aspect_ratio: x.aspect_ratio },
    encoder_mask: x.encoder_mask,
  });
  const ref = referenceForward(m.dec, c.dec, x.tokens, {
    encoder_input: refEncoder(c, m.enc, x),
    encoder_mask: x.encoder_mask,
  });
  check(label, got, ref);
  // The images matter (the comparison is not vacuous) …
  const textOnly = referenceForward(m.dec, c.dec, x.tokens);
  assert.ok(maxAbsDiff(ref, textOnly) > 1e-2, `${label}: the images barely change the logits`);
  // … and an encoder output computed earlier with encode() gives the same logits.
  using enc = m.model.encode({ images: x.images, aspect_ratio: x.aspect_ratio });
  const again = await read(m.model, x.tokens, { encoder_input: enc, encoder_mask: x.encoder_mask });
  check(`${label} (encode() output as encoder_input)`, again, ref);
}

const models = new Map<string, Promise<Loaded>>();
function f32Model(c: Case): Promise<Loaded> {
  let m = models.get(c.name);
  if (!m) {
    m = load(c, false);
    models.set(c.name, m);
  }
  return m;
}

for (const c of CASES) {
  Deno.test(`${c.name}: encoder output, batch 2 × 2 images, padding tiles`, async () => {
    await encoderOutput(c, await f32Model(c), `${c.name} encoder`);
  });

  Deno.test(`${c.name}: full forward with images and visionCrossAttentionMask masks`, async () => {
    await fullForward(c, await f32Model(c), `${c.name} full`);
  });

  Deno.test(`${c.name}: KV-cached greedy decoding after an image prefill equals the reference`, async () => {
    const m = await f32Model(c);
    const { model } = m;
    try {
      const x = makeInputs(c);
      const { s, steps, S } = { ...c, S: x.S };
      const V = c.dec.vocab_size;
      const L = s + steps + 2; // spare cache slots stay masked off
      model.setup_caches(2, { encoder_max_seq_len: S, decoder_max_seq_len: L });
      const prefill = await read(model, x.tokens, {
        mask: causalRows(0, s, L),
        input_pos: positions(0, s),
        encoder_input: { images: x.images, aspect_ratio: x.aspect_ratio },
        encoder_mask: x.encoder_mask,
      });
      const n = s + steps; // prompt + fed tokens; every fed token's logits are compared
      const ids = new Int32Array(2 * n);
      const got = new Float32Array(2 * n * V);
      const lastRow = new Uint8Array(2 * S);
      for (let b = 0; b < 2; b++) {
        ids.set(x.tokens.data.subarray(b * s, (b + 1) * s), b * n);
        got.set(prefill.subarray(b * s * V, (b + 1) * s * V), b * n * V);
        ids[b * n + s] = argmaxRow(prefill, b * s + s - 1, V);
        lastRow.set(x.encoder_mask.data.subarray((b * s + s - 1) * S, (b * s + s) * S), b * S);
      }
      for (let step = 0; step < steps; step++) {
        const p = s + step;
        const out = await read(model, { data: Int32Array.from([ids[p], ids[n + p]]), shape: [2, 1] }, {
          mask: causalRows(p, 1, L),
          input_pos: positions(p, 1),
          encoder_mask: { data: lastRow, shape: [2, 1, S] },
        });
        for (let b = 0; b < 2; b++) {
          got.set(out.subarray(b * V, (b + 1) * V), (b * n + p) * V);
          if (p + 1 < n) ids[b * n + p + 1] = argmaxRow(out, b, V);
        }
      }

      // Reference: the whole sequence at once; decode rows see the last prompt row of the encoder mask.
      const encMask = new Uint8Array(2 * n * S);
      for (let b = 0; b < 2; b++) {
        encMask.set(x.encoder_mask.data.subarray(b * s * S, (b + 1) * s * S), b * n * S);
        for (let i = s; i < n; i++) encMask.set(lastRow.subarray(b * S, (b + 1) * S), (b * n + i) * S);
      }
      const ref = referenceForward(m.dec, c.dec, { data: ids, shape: [2, n] }, {
        encoder_input: refEncoder(c, m.enc, x),
        encoder_mask: { data: encMask, shape: [2, n, S] },
      });
      check(`${c.name} cached prefill + decode`, got, ref);
      const decodeRows = (a: ArrayLike<number>) =>
        [0, 1].flatMap((b) => Array.from((a as Float32Array).subarray((b * n + s) * V, (b * n + n) * V)));
      check(`${c.name} decode steps only`, decodeRows(got), decodeRows(ref));
      for (let b = 0; b < 2; b++) {
        for (let i = s - 1; i < n - 1; i++) {
          assert.equal(
            ids[b * n + i + 1],
            argmaxRow(ref, b * n + i, V),
            `greedy id, batch ${b} position ${i + 1}`,
          );
        }
      }
      model.reset_caches();
    } finally {
      model.destroy();
      await Deno.remove(m.dir, { recursive: true });
    }
  });
}

Deno.test(`${CASES[0].name}: BF16 checkpoint matches the reference on bf16-rounded weights`, async () => {
  const c = CASES[0];
  const m = await load(c, true);
  try {
    const dtype = (name: string) => m.model.named_parameters().find(([n]) => n === name)![1].storage.dtype;
    assert.equal(dtype("decoder.layers.0.attn.q_proj.weight"), "bf16");
    assert.equal(dtype("encoder.clip.layers.0.attn.q_proj.weight"), "bf16");
    await encoderOutput(c, m, `${c.name} bf16 encoder`);
    await fullForward(c, m, `${c.name} bf16 full`);
  } finally {
    m.model.destroy();
    await Deno.remove(m.dir, { recursive: true });
  }
});

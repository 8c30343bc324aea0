/**
 * The decoder implements torchtune's general rule, not just the two golden fixtures: a float64
 * reference (tests/helpers/reference_decoder.ts) is first checked against torchtune's tiny_gqa logits,
 * then random checkpoints of other shapes (MQA, MHA, GQA with other head dims, fusion_interval 1,
 * num_layers not a multiple of fusion_interval, batch 2, BF16) are written as HF folders, loaded with
 * `loadCheckpoint` and compared with the reference: full forward with an image, text only, and
 * KV-cached greedy decoding (which torchtune makes equal to a full recompute).
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers/gpu.ts";
import { join } from "node:path";
import { llama3_2_vision_decoder, type TransformerDecoder } from "../mod.ts";
import { SafetensorsFile, toFloat32 } from "../src/checkpoint/safetensors.ts";
import { argmaxRow, fixtureDir, maxAbsDiff, readGolden } from "./helpers/golden.ts";
import { checkpointDir, loadDecoder } from "./helpers/checkpoints.ts";
import {
  type F32Tensor,
  randomTuneWeights,
  roundWeightsBf16,
  writeHfCheckpoint,
} from "./helpers/hf_writer.ts";
import { Rng } from "./helpers/reference.ts";
import {
  type RefDecoderArgs,
  referenceForward,
  type RefTensor,
  type RefWeights,
  tuneShapes,
} from "./helpers/reference_decoder.ts";

const TOL = 1e-4;
const gpu = await testGpu();

async function readTuneWeights(path: string): Promise<RefWeights> {
  const file = await SafetensorsFile.open(path);
  try {
    const out: RefWeights = new Map();
    for (const [name, entry] of file.tensors) out.set(name, toFloat32(entry.dtype, await file.read(entry)));
    return out;
  } finally {
    file.close();
  }
}

function hostWeights(w: Map<string, F32Tensor>): RefWeights {
  return new Map([...w].map(([n, t]) => [n, t.data]));
}

// ---------------------------------------------------------------------------------------------------
// 1. The reference is torchtune: golden fixture logits (full forward, and cached decode = recompute).

Deno.test("reference decoder matches torchtune's tiny_gqa logits within 1e-5 (full and cached decode)", async () => {
  const dir = fixtureDir("tiny_gqa");
  const g = await readGolden(join(dir, "tensors.safetensors"));
  const w = await readTuneWeights(join(dir, "weights_tune.safetensors"));
  const args: RefDecoderArgs = JSON.parse(await Deno.readTextFile(join(dir, "builder_args.json"))).kwargs;
  const tok = g.get("tokens")!;
  const enc = g.get("encoder_input")!;
  const encMask = g.get("encoder_mask")!;
  const full = referenceForward(w, args, tok, { encoder_input: enc, encoder_mask: encMask });
  const errFull = maxAbsDiff(full, g.get("logits")!.data);

  // Cached decode in torchtune = full recompute of prompt + fed greedy ids, decode rows seeing the last
  // prompt row of the encoder mask.
  const s = tok.shape[1];
  const S = enc.shape[1];
  const V = args.vocab_size;
  const greedy = g.get("greedy_ids")!.data;
  const steps = g.get("decode_input_pos")!.data.length;
  const n = s + steps;
  const ids = new Int32Array(n);
  ids.set(tok.data);
  ids.set(greedy.subarray(0, steps), s);
  const mask = new Uint8Array(n * S);
  mask.set(encMask.data);
  for (let i = s; i < n; i++) mask.set(g.get("decode_encoder_mask")!.data, i * S);
  const rec = referenceForward(w, args, { data: ids, shape: [1, n] }, {
    encoder_input: enc,
    encoder_mask: { data: mask, shape: [1, n, S] },
  });
  const errDecode = maxAbsDiff(rec.subarray((s - 1) * V), g.get("decode_logits")!.data);
  console.log(
    `reference vs torchtune: full ${errFull.toExponential(2)}, decode ${errDecode.toExponential(2)}`,
  );
  assert.ok(errFull < 1e-5, `full forward max |Δ| ${errFull}`);
  assert.ok(errDecode < 1e-5, `cached decode max |Δ| ${errDecode}`);
  for (let i = 0; i <= steps; i++) assert.equal(argmaxRow(rec, s - 1 + i, V), greedy[i]);
});

Deno.test("reference decoder matches torchtune's tiny_textonly logits within 1e-5", async () => {
  const dir = fixtureDir("tiny_textonly");
  const g = await readGolden(join(dir, "tensors.safetensors"));
  const w = await readTuneWeights(join(dir, "weights_tune.safetensors"));
  const args: RefDecoderArgs = JSON.parse(await Deno.readTextFile(join(dir, "builder_args.json"))).kwargs;
  const err = maxAbsDiff(referenceForward(w, args, g.get("tokens")!), g.get("logits")!.data);
  console.log(`reference vs torchtune (text only): ${err.toExponential(2)}`);
  assert.ok(err < 1e-5, `max |Δ| ${err}`);
});

Deno.test("hf_writer reproduces tiny_gqa's HF checkpoint (names, q/k permutation, BF16 rounding, config)", async () => {
  const dir = fixtureDir("tiny_gqa");
  const args: RefDecoderArgs = JSON.parse(await Deno.readTextFile(join(dir, "builder_args.json"))).kwargs;
  const tune = await readTuneWeights(join(dir, "weights_tune.safetensors"));
  const shapes = tuneShapes(args);
  assert.deepEqual([...tune.keys()].sort(), [...shapes.keys()].sort());
  const w = new Map([...tune].map(([n, d]) => [n, { data: Float32Array.from(d), shape: shapes.get(n)! }]));
  for (
    const [file, bf16] of [["weights_hf.safetensors", false], ["weights_hf_bf16.safetensors", true]] as const
  ) {
    const out = await Deno.makeTempDir({ prefix: "shapes_writer_" });
    try {
      await writeHfCheckpoint(out, args, w, { bf16 });
      const mine = await SafetensorsFile.open(join(out, "model.safetensors"));
      const theirs = await SafetensorsFile.open(join(dir, file));
      try {
        assert.deepEqual([...mine.tensors.keys()].sort(), [...theirs.tensors.keys()].sort(), file);
        for (const [name, e] of theirs.tensors) {
          const m = mine.tensors.get(name)!;
          assert.deepEqual([m.dtype, m.shape], [e.dtype, e.shape], name);
          assert.deepEqual(await mine.read(m), await theirs.read(e), `${file}: ${name}`);
        }
      } finally {
        mine.close();
        theirs.close();
      }
      const config = JSON.parse(await Deno.readTextFile(join(out, "config.json")));
      const expected = JSON.parse(await Deno.readTextFile(join(dir, "config.json")));
      delete expected._note;
      assert.deepEqual({ ...config, torch_dtype: "float32" }, expected);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  }
});

// ---------------------------------------------------------------------------------------------------
// 2. Other shapes, through HF checkpoint folders and loadCheckpoint.

interface Case {
  name: string;
  args: RefDecoderArgs;
  seed: number;
  /** prompt length, encoder length, decode steps */
  s: number;
  S: number;
  steps: number;
  /** first position of the "<|image|>" token per batch row (text before it is skipped) */
  image: [number, number];
  /** encoder positions visible per batch row (the rest are "padding tiles") */
  visible: [number, number];
  /** RoPE position offset per batch row in the cached run (cache slots stay 0…) */
  offset: [number, number];
}

const CASES: Case[] = [
  {
    name: "MQA H=4 KV=1 E=32 hd=8, 3 layers, fusion_interval 1",
    args: {
      vocab_size: 112,
      num_layers: 3,
      fusion_interval: 1,
      num_special_tokens: 8,
      num_heads: 4,
      num_kv_heads: 1,
      embed_dim: 32,
      max_seq_len: 64,
      intermediate_dim: null,
    },
    seed: 11,
    s: 9,
    S: 20,
    steps: 4,
    image: [2, 5],
    visible: [20, 15],
    offset: [0, 3],
  },
  {
    name: "MHA H=2 KV=null E=48 hd=24, 4 layers, fusion_interval 3",
    args: {
      vocab_size: 200,
      num_layers: 4,
      fusion_interval: 3,
      num_special_tokens: 8,
      num_heads: 2,
      num_kv_heads: null,
      embed_dim: 48,
      max_seq_len: 64,
      intermediate_dim: null,
    },
    seed: 22,
    s: 8,
    S: 12,
    steps: 4,
    image: [0, 3],
    visible: [12, 7],
    offset: [5, 0],
  },
  {
    name: "GQA H=6 KV=3 E=96 hd=16, 2 layers, fusion_interval 2, intermediate 80",
    args: {
      vocab_size: 290,
      num_layers: 2,
      fusion_interval: 2,
      num_special_tokens: 8,
      num_heads: 6,
      num_kv_heads: 3,
      embed_dim: 96,
      max_seq_len: 64,
      intermediate_dim: 80,
    },
    seed: 33,
    s: 10,
    S: 24,
    steps: 4,
    image: [4, 1],
    visible: [18, 24],
    offset: [2, 7],
  },
];

interface Inputs {
  tokens: RefTensor<Int32Array>;
  encoder_input: RefTensor<Float32Array>;
  encoder_mask: RefTensor<Uint8Array>;
}

/** Random prompts with an image token (id V) and a special id, an encoder output and its mask. */
function makeInputs(c: Case): Inputs {
  const rng = new Rng(c.seed * 7919);
  const { s, S } = c;
  const V = c.args.vocab_size;
  const E = c.args.embed_dim;
  const tokens = new Int32Array(2 * s);
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < s; i++) tokens[b * s + i] = rng.int(V);
    tokens[b * s + c.image[b]] = V; // <|image|> = fusion row 0
    tokens[b * s + s - 2] = V + 1 + b * 5; // other special rows (V+1, V+6)
  }
  const encoder_input = new Float32Array(2 * S * E);
  for (let i = 0; i < encoder_input.length; i++) encoder_input[i] = rng.normal();
  // VisionCrossAttentionMask: from the image token on, attend to the image's (unpadded) positions.
  const mask = new Uint8Array(2 * s * S);
  for (let b = 0; b < 2; b++) {
    for (let i = c.image[b]; i < s; i++) mask.fill(1, (b * s + i) * S, (b * s + i) * S + c.visible[b]);
  }
  return {
    tokens: { data: tokens, shape: [2, s] },
    encoder_input: { data: encoder_input, shape: [2, S, E] },
    encoder_mask: { data: mask, shape: [2, s, S] },
  };
}

async function writeCase(c: Case, bf16: boolean): Promise<{ dir: string; weights: RefWeights }> {
  const w = randomTuneWeights(c.args, c.seed);
  const dir = await Deno.makeTempDir({ prefix: "shapes_ckpt_" });
  await writeHfCheckpoint(dir, c.args, w, { bf16 });
  return { dir, weights: hostWeights(bf16 ? roundWeightsBf16(w) : w) };
}

function check(label: string, got: ArrayLike<number>, ref: ArrayLike<number>): void {
  const err = maxAbsDiff(got, ref);
  console.log(`${label}: max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < TOL, `${label}: max |Δ| ${err} ≥ ${TOL}`);
}

async function read(model: TransformerDecoder, ...a: Parameters<TransformerDecoder["forward"]>) {
  using out = model.forward(...a);
  return (await out.read()).data;
}

/** Full forward with an image: batch 2, skipped rows before the image, padded encoder positions. */
async function fullWithImage(c: Case, model: TransformerDecoder, w: RefWeights, label: string) {
  const x = makeInputs(c);
  const got = await read(model, x.tokens, { encoder_input: x.encoder_input, encoder_mask: x.encoder_mask });
  check(label, got, referenceForward(w, c.args, x.tokens, x));
}

/** Rows `[from, from + n)` of tril(ones(L, L)) for both batch rows: `[2, n, L]`. */
function causalRows(from: number, n: number, L: number): { data: Uint8Array; shape: number[] } {
  const data = new Uint8Array(2 * n * L);
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < n; i++) data.fill(1, (b * n + i) * L, (b * n + i) * L + from + i + 1);
  }
  return { data, shape: [2, n, L] };
}

function positions(c: Case, from: number, n: number): { data: Int32Array; shape: number[] } {
  const data = new Int32Array(2 * n);
  for (let b = 0; b < 2; b++) for (let i = 0; i < n; i++) data[b * n + i] = c.offset[b] + from + i;
  return { data, shape: [2, n] };
}

const models = new Map<string, Promise<{ model: TransformerDecoder; weights: RefWeights; dir: string }>>();
function f32Model(c: Case) {
  let m = models.get(c.name);
  if (!m) {
    m = writeCase(c, false).then(async ({ dir, weights }) => ({
      model: await loadDecoder(dir, { gpu }),
      weights,
      dir,
    }));
    models.set(c.name, m);
  }
  return m;
}

for (const c of CASES) {
  Deno.test(`${c.name}: full forward, batch 2 with image and skipped rows`, async () => {
    const { model, weights } = await f32Model(c);
    await fullWithImage(c, model, weights, `${c.name} full`);
  });

  Deno.test(`${c.name}: text only, explicit causal mask and per-row input_pos`, async () => {
    const { model, weights } = await f32Model(c);
    const { tokens } = makeInputs(c);
    const mask = new Uint8Array(2 * c.s * c.s);
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < c.s; i++) mask.fill(1, (b * c.s + i) * c.s, (b * c.s + i) * c.s + i + 1);
    }
    const opts = { mask: { data: mask, shape: [2, c.s, c.s] }, input_pos: positions(c, 0, c.s) };
    const got = await read(model, tokens, opts);
    check(`${c.name} text only`, got, referenceForward(weights, c.args, tokens, opts));
    // And with no keyword arguments at all (SDPA causal, positions 0…s−1).
    check(
      `${c.name} text only (defaults)`,
      await read(model, tokens),
      referenceForward(weights, c.args, tokens),
    );
  });

  Deno.test(`${c.name}: KV-cached greedy decoding equals the reference's full recompute`, async () => {
    const { model, weights, dir } = await f32Model(c);
    try {
      const x = makeInputs(c);
      const { s, S, steps } = c;
      const V = c.args.vocab_size;
      const L = s + steps + 3; // spare cache slots stay masked off
      model.setup_caches(2, { decoder_max_seq_len: L, encoder_max_seq_len: S });
      const prefill = await read(model, x.tokens, {
        mask: causalRows(0, s, L),
        input_pos: positions(c, 0, s),
        encoder_input: x.encoder_input,
        encoder_mask: x.encoder_mask,
      });
      const n = s + steps;
      const ids = new Int32Array(2 * n);
      const got = new Float32Array(2 * n * V); // rows 0…s−1 from prefill, then one row per step
      const lastRow = new Uint8Array(2 * S);
      for (let b = 0; b < 2; b++) {
        ids.set(x.tokens.data.subarray(b * s, (b + 1) * s), b * n);
        got.set(prefill.subarray(b * s * V, (b + 1) * s * V), b * n * V);
        ids[b * n + s] = argmaxRow(prefill, b * s + s - 1, V);
        lastRow.set(x.encoder_mask.data.subarray((b * s + s - 1) * S, (b * s + s) * S), b * S);
      }
      for (let step = 1; step < steps; step++) {
        const p = s + step - 1;
        const fed = Int32Array.from([ids[p], ids[n + p]]);
        const out = await read(model, { data: fed, shape: [2, 1] }, {
          mask: causalRows(p, 1, L),
          input_pos: positions(c, p, 1),
          encoder_mask: { data: lastRow, shape: [2, 1, S] },
        });
        for (let b = 0; b < 2; b++) {
          got.set(out.subarray(b * V, (b + 1) * V), (b * n + p) * V);
          ids[b * n + p + 1] = argmaxRow(out, b, V);
        }
      }
      // One more step so that every fed token has logits (rows 0…n−1 are all compared).
      const p = n - 1;
      const out = await read(model, { data: Int32Array.from([ids[p], ids[n + p]]), shape: [2, 1] }, {
        mask: causalRows(p, 1, L),
        input_pos: positions(c, p, 1),
        encoder_mask: { data: lastRow, shape: [2, 1, S] },
      });
      for (let b = 0; b < 2; b++) got.set(out.subarray(b * V, (b + 1) * V), (b * n + p) * V);

      // Reference: the whole sequence at once; decode rows see the last prompt row of the encoder mask.
      const encMask = new Uint8Array(2 * n * S);
      for (let b = 0; b < 2; b++) {
        encMask.set(x.encoder_mask.data.subarray(b * s * S, (b + 1) * s * S), b * n * S);
        for (let i = s; i < n; i++) encMask.set(lastRow.subarray(b * S, (b + 1) * S), (b * n + i) * S);
      }
      const ref = referenceForward(weights, c.args, { data: ids, shape: [2, n] }, {
        encoder_input: x.encoder_input,
        encoder_mask: { data: encMask, shape: [2, n, S] },
        input_pos: positions(c, 0, n),
      });
      check(`${c.name} cached decode`, got, ref);
      for (let b = 0; b < 2; b++) {
        for (let i = s - 1; i < n - 1; i++) {
          assert.equal(
            ids[b * n + i + 1],
            argmaxRow(ref, b * n + i, V),
            `greedy id, batch ${b} position ${i + 1}`,
          );
        }
      }

      // reset_caches then a text-only cached prefill: the cross-attention caches are empty again, so the
      // fusion layers are skipped.
      model.reset_caches();
      const textOnly = await read(model, x.tokens, {
        mask: causalRows(0, s, L),
        input_pos: positions(c, 0, s),
      });
      check(
        `${c.name} cached text-only prefill after reset`,
        textOnly,
        referenceForward(weights, c.args, x.tokens, { input_pos: positions(c, 0, s) }),
      );
    } finally {
      model.destroy();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test(`${CASES[0].name}: BF16 checkpoint matches the reference on bf16-rounded weights`, async () => {
  const c = CASES[0];
  const { dir, weights } = await writeCase(c, true);
  try {
    using model = await loadDecoder(dir, { gpu });
    const q = model.named_parameters().find(([n]) => n === "layers.0.attn.q_proj.weight")![1];
    assert.equal(q.storage.dtype, "bf16");
    await fullWithImage(c, model, weights, `${c.name} bf16`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(`${CASES[1].name}: builder with num_kv_heads null + load_state_dict (torchtune names)`, async () => {
  const c = CASES[1];
  const w = randomTuneWeights(c.args, c.seed + 1);
  using model = llama3_2_vision_decoder({ ...c.args, num_kv_heads: null, encoder_max_seq_len: c.S });
  await model.load_state_dict(w, { gpu });
  await fullWithImage(c, model, hostWeights(w), `${c.name} load_state_dict`);
});

Deno.test("tiny_gqa: a long prefill attending to a whole long encoder input (the matmul attention path)", async () => {
  const dir = fixtureDir("tiny_gqa");
  const w = await readTuneWeights(join(dir, "weights_tune.safetensors"));
  const args: RefDecoderArgs = JSON.parse(await Deno.readTextFile(join(dir, "builder_args.json"))).kwargs;
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const rng = new Rng(77);
  const s = 72, S = 300, E = args.embed_dim;
  const ids = Int32Array.from({ length: s }, (_, i) => (i * 37 + 11) % args.vocab_size);
  ids[0] = args.vocab_size; // the image token
  const enc = { data: Float32Array.from(rng.normals(S * E), (v) => v * 0.5), shape: [1, S, E] };
  // Every text position attends to every encoder position: the same as no mask, and a matmul per head.
  const full = { data: new Uint8Array(s * S).fill(1), shape: [1, s, S] };
  const ref = referenceForward(w, args, { data: ids, shape: [1, s] }, {
    encoder_input: enc,
    encoder_mask: full,
  });
  using out = model.forward({ data: ids, shape: [1, s] }, { encoder_input: enc, encoder_mask: full });
  const err = maxAbsDiff((await out.read()).data, ref);
  console.log(`long prefill, all-True encoder mask, matmul attention: max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `max abs error ${err}`);
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { Checkpoint, SafetensorsFile, toFloat32 } from "../src/checkpoint/safetensors.ts";
import { resolveDecoderArgs } from "../src/models/llama3_2_vision/decoder_args.ts";
import {
  decoderArgsFromConfig,
  LLAMA3_2_VISION_11B_DECODER_ARGS,
  LLAMA3_2_VISION_90B_DECODER_ARGS,
  readConfig,
} from "../src/models/llama3_2_vision/config.ts";
import {
  convertHfToTune,
  expectedTuneShapes,
  hfToTunePlan,
  permuteQKRowsHfToTune,
} from "../src/models/llama3_2_vision/convert_weights.ts";
import { type TensorSpec, writeSafetensors } from "./helpers/safetensors_writer.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;

async function readAll(path: string): Promise<Map<string, TensorSpec>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, TensorSpec>();
    for (const [name, e] of f.tensors) {
      out.set(name, { dtype: e.dtype, shape: e.shape, data: await f.read(e) });
    }
    return out;
  } finally {
    f.close();
  }
}

async function fixtureArgs(tcase: string) {
  const { args } = await readConfig(join(FIXTURES, tcase));
  return resolveDecoderArgs(args);
}

/** float32 → bfloat16 → float32 with round-to-nearest-even, as torch's `.to(torch.bfloat16)` does. */
function roundBf16(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.slice().buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 0) & 0xffff0000;
  return new Float32Array(u.buffer);
}

/** Bit-level equality of two float32 arrays (so -0/NaN differences would show). */
function assertBitsEqual(a: Float32Array, b: Float32Array, msg: string): void {
  assert.equal(a.length, b.length, msg);
  assert.deepEqual(new Uint32Array(a.slice().buffer), new Uint32Array(b.slice().buffer), msg);
}

async function assertConvertsToTune(hfPath: string, tcase: string, bf16 = false): Promise<void> {
  const args = await fixtureArgs(tcase);
  const tune = await readAll(join(FIXTURES, tcase, "weights_tune.safetensors"));
  const ckpt = await Checkpoint.open(hfPath);
  try {
    const got = await convertHfToTune(ckpt, args);
    const shapes = expectedTuneShapes(args);
    assert.deepEqual([...got.keys()].sort(), [...tune.keys()].sort());
    assert.deepEqual([...shapes.keys()].sort(), [...tune.keys()].sort());
    for (const [name, t] of tune) {
      const g = got.get(name)!;
      assert.deepEqual(g.shape, t.shape, name);
      assert.deepEqual(shapes.get(name), t.shape, name);
      const want = toFloat32("F32", t.data);
      assertBitsEqual(g.data, bf16 ? roundBf16(want) : want, name);
    }
  } finally {
    ckpt.close();
  }
}

for (const tcase of ["tiny_gqa", "tiny_textonly"]) {
  Deno.test(`${tcase}: weights_hf converts to weights_tune bit-exactly`, async () => {
    await assertConvertsToTune(join(FIXTURES, tcase, "weights_hf.safetensors"), tcase);
  });
}

Deno.test("tiny_gqa: BF16 weights_hf converts to the bf16-rounded weights_tune exactly", async () => {
  await assertConvertsToTune(join(FIXTURES, "tiny_gqa", "weights_hf_bf16.safetensors"), "tiny_gqa", true);
});

Deno.test("expectedTuneShapes: 66 names / 411,012 parameters for tiny_gqa", async () => {
  const shapes = expectedTuneShapes(await fixtureArgs("tiny_gqa"));
  assert.equal(shapes.size, 66);
  let params = 0;
  for (const s of shapes.values()) params += s.reduce((a, b) => a * b, 1);
  assert.equal(params, 411012);
});

Deno.test("model.language_model.* / lm_head.weight spelling and sharding convert the same", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const hf = await readAll(join(FIXTURES, "tiny_gqa", "weights_hf.safetensors"));
    const renamed = new Map<string, TensorSpec>();
    for (const [name, t] of hf) {
      const n = name === "language_model.lm_head.weight"
        ? "lm_head.weight"
        : name.replace(/^language_model\.model\./, "model.language_model.");
      renamed.set(n, t);
    }
    // Vision / projector / RoPE buffers are ignored by the decoder conversion.
    const extra = { dtype: "F32", shape: [2], data: new Uint8Array(8) };
    renamed.set("model.vision_model.class_embedding", extra);
    renamed.set("model.multi_modal_projector.bias", extra);
    renamed.set("model.language_model.layers.0.self_attn.rotary_emb.inv_freq", extra);
    const names = [...renamed.keys()];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of [names.slice(0, 30), names.slice(30)].entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, file), new Map(part.map((n) => [n, renamed.get(n)!])));
      for (const n of part) weightMap[n] = file;
    }
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    const { ignored } = hfToTunePlan(names, await fixtureArgs("tiny_gqa"));
    assert.equal(ignored.length, 3);
    await assertConvertsToTune(dir, "tiny_gqa");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hfToTunePlan: layer renumbering, permutations and embedding split", async () => {
  const args = await fixtureArgs("tiny_gqa");
  const f = await SafetensorsFile.open(join(FIXTURES, "tiny_gqa", "weights_hf.safetensors"));
  const { plan, ignored } = hfToTunePlan(f.tensors.keys(), args);
  f.close();
  assert.deepEqual(ignored, []);
  const p = "language_model.model.";
  assert.deepEqual(plan.get("layers.1.fusion_layer.ca_scale.scale"), {
    hfName: `${p}layers.1.cross_attn_attn_gate`,
  });
  assert.deepEqual(plan.get("layers.1.attn.q_proj.weight"), {
    hfName: `${p}layers.2.self_attn.q_proj.weight`,
    permuteHeads: 4,
  });
  assert.deepEqual(plan.get("layers.3.attn.k_proj.weight"), {
    hfName: `${p}layers.5.self_attn.k_proj.weight`,
    permuteHeads: 2,
  });
  assert.deepEqual(plan.get("layers.3.fusion_layer.mlp_norm.scale"), {
    hfName: `${p}layers.4.post_attention_layernorm.weight`,
  });
  assert.deepEqual(plan.get("tok_embeddings.fusion_embedding.weight"), {
    hfName: `${p}embed_tokens.weight`,
    rows: [320, 328],
  });
  assert.deepEqual(plan.get("output.weight"), { hfName: "language_model.lm_head.weight" });
});

Deno.test("permuteQKRowsHfToTune: new row 2i = old i, 2i+1 = old hd/2+i, per head", () => {
  // 2 heads × hd 4, one byte per row: rows are labelled by their old index.
  const out = permuteQKRowsHfToTune(new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]), 2, 4, 1);
  assert.deepEqual([...out], [0, 2, 1, 3, 4, 6, 5, 7]);
  assert.throws(() => permuteQKRowsHfToTune(new Uint8Array(7), 2, 4, 1), /expected 2 heads/);
});

Deno.test("conversion errors name the offending tensor", async () => {
  const { args: raw } = await readConfig(join(FIXTURES, "tiny_gqa"));
  const args = resolveDecoderArgs(raw);
  const f = await SafetensorsFile.open(join(FIXTURES, "tiny_gqa", "weights_hf.safetensors"));
  const names = [...f.tensors.keys()];
  f.close();
  assert.throws(
    () => hfToTunePlan([...names, "language_model.model.layers.0.self_attn.q_proj.bias"], args),
    /unexpected tensor.*layers\.0\.self_attn\.q_proj\.bias/,
  );
  assert.throws(
    () => hfToTunePlan(names.filter((n) => !n.endsWith("layers.4.cross_attn_mlp_gate")), args),
    /layers\.3\.fusion_layer\.mlp_scale\.scale \(expected HF "language_model\.model\.layers\.4\.cross_attn_mlp_gate"\)/,
  );
  assert.throws(
    () => hfToTunePlan([...names, "language_model.model.layers.6.input_layernorm.weight"], args),
    /layers\.6\.input_layernorm\.weight.*num_hidden_layers = 6/,
  );
  assert.throws(() => hfToTunePlan([...names, "lm_head.weight"], args), /mixes/);

  // Wrong shape: a config that disagrees with the checkpoint (intermediate 512 instead of 256).
  const ckpt = await Checkpoint.open(join(FIXTURES, "tiny_gqa", "weights_hf.safetensors"));
  try {
    await assert.rejects(
      convertHfToTune(ckpt, resolveDecoderArgs({ ...raw, intermediate_dim: 512 })),
      /weights_hf\.safetensors: tensor "language_model\.model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[256,64\], but layers\.0\.mlp\.w1\.weight needs \[512,64\]/,
    );
  } finally {
    ckpt.close();
  }
});

Deno.test("config.json → decoder args (bare text config and nested mllama config)", async () => {
  const builder = JSON.parse(await Deno.readTextFile(join(FIXTURES, "tiny_gqa", "builder_args.json"))).kwargs;
  const { config, args } = await readConfig(join(FIXTURES, "tiny_gqa"));
  const got = resolveDecoderArgs(args);
  const want = resolveDecoderArgs(builder);
  // encoder_max_seq_len is never used in computation and is not in a text config; everything else must match.
  assert.deepEqual({ ...got, encoder_max_seq_len: 0 }, { ...want, encoder_max_seq_len: 0 });
  assert.equal(args.intermediate_dim, 256);
  assert.equal(args.encoder_max_seq_len, 128);

  const nested = { model_type: "mllama", text_config: config };
  assert.deepEqual(decoderArgsFromConfig(nested), args);
  const withVision = {
    ...nested,
    vision_config: { image_size: 560, patch_size: 14, max_num_tiles: 4 },
  };
  assert.equal(decoderArgsFromConfig(withVision).encoder_max_seq_len, 128080);
});

Deno.test("11B / 90B HF text configs map to torchtune's builder arguments", () => {
  const text11 = {
    model_type: "mllama_text_model",
    vocab_size: 128256,
    hidden_size: 4096,
    num_hidden_layers: 40,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    intermediate_size: 14336,
    rope_theta: 500000.0,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8.0,
      low_freq_factor: 1.0,
      high_freq_factor: 4.0,
      original_max_position_embeddings: 8192,
    },
    rms_norm_eps: 1e-5,
    max_position_embeddings: 131072,
    cross_attention_layers: [3, 8, 13, 18, 23, 28, 33, 38],
  };
  const vision = { image_size: 560, patch_size: 14, max_num_tiles: 4 };
  const a11 = decoderArgsFromConfig({ model_type: "mllama", text_config: text11, vision_config: vision });
  assert.equal(a11.num_layers, 32);
  assert.equal(a11.fusion_interval, 4);
  assert.deepEqual(a11, LLAMA3_2_VISION_11B_DECODER_ARGS);
  const text90 = {
    ...text11,
    hidden_size: 8192,
    num_hidden_layers: 100,
    num_attention_heads: 64,
    intermediate_size: 28672,
    cross_attention_layers: Array.from({ length: 20 }, (_, k) => 3 + 5 * k),
  };
  assert.deepEqual(
    decoderArgsFromConfig({ model_type: "mllama", text_config: text90, vision_config: vision }),
    LLAMA3_2_VISION_90B_DECODER_ARGS,
  );
  // The tune/HF layer relation of the real model: 8 fusion layers at tune 3, 7, …, 31.
  assert.deepEqual(resolveDecoderArgs(a11).fusion_layer_indices, [3, 7, 11, 15, 19, 23, 27, 31]);
  assert.equal(expectedTuneShapes(resolveDecoderArgs(a11)).size, 2 + 32 * 9 + 8 * 13 + 2);
});

Deno.test("config errors name the source and the field", async () => {
  const base = JSON.parse(await Deno.readTextFile(join(FIXTURES, "tiny_gqa", "config.json")));
  assert.throws(
    () => decoderArgsFromConfig({ ...base, cross_attention_layers: [1, 3] }, "x.json"),
    /x\.json: field "cross_attention_layers" \[1,3\].*\[1,4\]/,
  );
  assert.throws(
    () => decoderArgsFromConfig({ ...base, cross_attention_layers: [1] }),
    /cross_attention_layers/,
  );
  assert.deepEqual(
    decoderArgsFromConfig({ ...base, num_hidden_layers: 4, cross_attention_layers: [] }).fusion_interval,
    5,
  );
  const { hidden_size: _, ...noHidden } = base;
  assert.throws(() => decoderArgsFromConfig(noHidden, "c.json"), /c\.json: field "hidden_size"/);
  assert.throws(
    () => decoderArgsFromConfig({ ...base, rope_scaling: { rope_type: "linear", factor: 2 } }),
    /rope_scaling.*hard-wires/,
  );
  assert.throws(() => decoderArgsFromConfig({ text_config: 3 }), /text_config/);
  const { num_key_value_heads: __, ...mha } = base;
  assert.equal(decoderArgsFromConfig(mha).num_kv_heads, 4);

  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(readConfig(dir), /config\.json: cannot read/);
    await Deno.writeTextFile(join(dir, "config.json"), "{oops");
    await assert.rejects(readConfig(dir), /config\.json: not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { Checkpoint, SafetensorsFile, toFloat32 } from "../src/checkpoint/safetensors.ts";
import {
  encoderArgsFromConfig,
  LLAMA3_2_VISION_11B_ENCODER_ARGS,
  LLAMA3_2_VISION_90B_ENCODER_ARGS,
  type Llama3VisionEncoderArgs,
  type ResolvedEncoderArgs,
  resolveEncoderArgs,
  supportedAspectRatios,
} from "../src/models/llama3_2_vision/encoder_args.ts";
import {
  convertHfToTuneEncoder,
  convertTileTable,
  convertTokenTable,
  expectedEncoderShapes,
  hfToTuneVisionPlan,
  tileTableConflict,
  tuneTableToHf,
} from "../src/models/llama3_2_vision/convert_vision_weights.ts";
import { fixtureDir, maxAbsDiff, readGolden } from "./helpers/golden.ts";
import { erf, referenceEncoderForward } from "./helpers/reference_encoder.ts";
import {
  hfVisionConfig,
  randomHfVisionTensors,
  randomTuneEncoderWeights,
  tuneEncoderToHf,
  tuneTableToHfRows,
} from "./helpers/hf_vision_writer.ts";
import { type TensorSpec, writeSafetensors } from "./helpers/safetensors_writer.ts";
import { roundBf16 } from "./helpers/hf_writer.ts";

const CASE = fixtureDir("tiny_vision_e2e");

async function readF32(path: string): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, e] of f.tensors) {
      out.set(name, { shape: e.shape, data: toFloat32(e.dtype, await f.read(e)) });
    }
    return out;
  } finally {
    f.close();
  }
}

async function fixtureConfig(): Promise<Record<string, unknown>> {
  return JSON.parse(await Deno.readTextFile(join(CASE, "config.json")));
}

async function fixtureArgs(): Promise<ResolvedEncoderArgs> {
  return resolveEncoderArgs(encoderArgsFromConfig(await fixtureConfig(), "config.json"));
}

/** The fixture's torchtune encoder weights, without the `encoder.` prefix, in file order. */
async function fixtureTuneEncoder(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const all = await readF32(join(CASE, "weights_tune.safetensors"));
  return new Map([...all].filter(([n]) => n.startsWith("encoder.")).map(([n, t]) => [n.slice(8), t]));
}

function assertBitsEqual(a: Float32Array, b: Float32Array, msg: string): void {
  assert.equal(a.length, b.length, msg);
  assert.deepEqual(new Uint32Array(a.slice().buffer), new Uint32Array(b.slice().buffer), msg);
}

async function withTempFile<T>(
  tensors: Map<string, TensorSpec>,
  fn: (path: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, tensors, { format: "pt" });
    return await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function fixtureHfSpecs(rename: (n: string) => string = (n) => n): Promise<Map<string, TensorSpec>> {
  const f = await SafetensorsFile.open(join(CASE, "weights_hf.safetensors"));
  try {
    const out = new Map<string, TensorSpec>();
    for (const [name, e] of f.tensors) {
      out.set(rename(name), { dtype: e.dtype, shape: e.shape, data: await f.read(e) });
    }
    return out;
  } finally {
    f.close();
  }
}

async function assertConvertsToFixture(path: string): Promise<void> {
  const args = await fixtureArgs();
  const want = await fixtureTuneEncoder();
  const ckpt = await Checkpoint.open(path);
  try {
    const got = await convertHfToTuneEncoder(ckpt, args);
    assert.deepEqual([...got.keys()], [...want.keys()], "names, in torchtune's state-dict order");
    for (const [name, t] of want) {
      const g = got.get(name)!;
      assert.deepEqual(g.shape, t.shape, name);
      assertBitsEqual(g.data, t.data, name);
    }
  } finally {
    ckpt.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// encoder arguments

Deno.test("vision config.json → encoder args equals builder_args.json encoder_kwargs", async () => {
  const builder = JSON.parse(await Deno.readTextFile(join(CASE, "builder_args.json")));
  assert.deepEqual(encoderArgsFromConfig(await fixtureConfig()), builder.encoder_kwargs);
  const a = await fixtureArgs();
  assert.equal(a.head_dim, 8);
  assert.equal(a.patches_per_tile, 16);
  assert.equal(a.tokens_per_tile, 17);
  assert.equal(a.tokens_per_image, 34);
  assert.equal(a.projection_in_dim, 96);
  assert.equal(a.mlp_dim, 128);
  assert.deepEqual(a.supported_aspect_ratios, [[1, 1], [1, 2], [2, 1]]);
});

/** The HF config of the real 11B / 90B models (doc §11). */
function realHfConfig(textHidden: number): Record<string, unknown> {
  return {
    model_type: "mllama",
    text_config: { hidden_size: textHidden },
    vision_config: {
      hidden_size: 1280,
      hidden_act: "gelu",
      num_hidden_layers: 32,
      num_global_layers: 8,
      attention_heads: 16,
      num_channels: 3,
      intermediate_size: 5120,
      vision_output_dim: 7680,
      image_size: 560,
      patch_size: 14,
      norm_eps: 1e-5,
      max_num_tiles: 4,
      intermediate_layers_indices: [3, 7, 15, 23, 30],
      supported_aspect_ratios: [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [4, 1]],
    },
  };
}

Deno.test("11B / 90B HF configs map to torchtune's 11B / 90B encoder args", () => {
  assert.deepEqual(encoderArgsFromConfig(realHfConfig(4096)), { ...LLAMA3_2_VISION_11B_ENCODER_ARGS });
  assert.deepEqual(encoderArgsFromConfig(realHfConfig(8192)), { ...LLAMA3_2_VISION_90B_ENCODER_ARGS });
  const a = resolveEncoderArgs(LLAMA3_2_VISION_11B_ENCODER_ARGS);
  assert.equal(a.patch_grid_size, 40);
  assert.equal(a.tokens_per_tile, 1601);
  assert.equal(a.tokens_per_image, 6404);
  assert.equal(a.projection_in_dim, 7680);
  assert.equal(a.head_dim, 80);
  assert.deepEqual(a.supported_aspect_ratios, [[1, 1], [1, 2], [1, 3], [1, 4], [2, 1], [2, 2], [3, 1], [
    4,
    1,
  ]]);
  assert.equal(resolveEncoderArgs(LLAMA3_2_VISION_90B_ENCODER_ARGS).decoder_embed_dim, 8192);
  const n = [...expectedEncoderShapes(a).values()].reduce((s, sh) => s + sh.reduce((x, y) => x * y, 1), 0);
  console.log("11B encoder parameters (torchtune layout):", n);
});

Deno.test("supported aspect ratios: HF order", () => {
  assert.deepEqual(supportedAspectRatios(1), [[1, 1]]);
  assert.deepEqual(supportedAspectRatios(2), [[1, 1], [1, 2], [2, 1]]);
  assert.deepEqual(supportedAspectRatios(6).length, 14);
});

Deno.test("resolveEncoderArgs: defaults and errors", () => {
  const base: Llama3VisionEncoderArgs = {
    patch_size: 4,
    num_heads: 4,
    clip_embed_dim: 32,
    clip_num_layers: 3,
    clip_hidden_states: [1, 2],
    num_layers_projection: 2,
    decoder_embed_dim: 64,
    tile_size: 16,
  };
  const r = resolveEncoderArgs(base);
  assert.equal(r.max_num_tiles, 4);
  assert.equal(r.in_channels, 3);
  assert.deepEqual(resolveEncoderArgs({ ...base, clip_hidden_states: null }).clip_hidden_states, []);
  assert.equal(resolveEncoderArgs({ ...base, clip_hidden_states: null }).projection_in_dim, 32);
  assert.deepEqual(resolveEncoderArgs({ ...base, clip_hidden_states: [0, 3] }).clip_hidden_states, [0, 3]);
  const bad: [Partial<Llama3VisionEncoderArgs> & Record<string, unknown>, RegExp][] = [
    [{ clip_embed_dim: 30 }, /clip_embed_dim \(30\) must be divisible by num_heads \(4\)/],
    [{ tile_size: 18 }, /tile_size \(18\) must be a multiple of patch_size \(4\)/],
    [{ clip_hidden_states: [1, 4] }, /indices must be integers in \[0, clip_num_layers = 3\]/],
    [{ clip_hidden_states: [-1] }, /clip_hidden_states/],
    [{ clip_hidden_states: [2, 1] }, /strictly increasing/],
    [{ clip_hidden_states: [1, 1] }, /strictly increasing/],
    [{ num_heads: 0 }, /num_heads must be a positive integer, got 0/],
    [{ patch_size: 2.5 }, /patch_size must be a positive integer/],
    [{ max_num_tiles: -1 }, /max_num_tiles must be a positive integer/],
    [{ decoder_embed_dim: undefined }, /decoder_embed_dim must be a positive integer, got nothing/],
    [{ image_size: 16 }, /unknown argument "image_size"/],
  ];
  for (const [patch, re] of bad) {
    assert.throws(
      () => resolveEncoderArgs({ ...base, ...patch } as Llama3VisionEncoderArgs),
      re,
      JSON.stringify(patch),
    );
  }
});

Deno.test("encoderArgsFromConfig: errors name the field", async () => {
  const cfg = await fixtureConfig();
  const vc = cfg.vision_config as Record<string, unknown>;
  const withVision = (patch: Record<string, unknown>) => ({ ...cfg, vision_config: { ...vc, ...patch } });
  const cases: [unknown, RegExp][] = [
    [{ ...cfg, vision_config: undefined }, /x\.json: field "vision_config" is missing/],
    [{ ...cfg, text_config: undefined }, /field "text_config" is missing/],
    [withVision({ hidden_size: "32" }), /\(vision_config\): field "hidden_size" must be a positive integer/],
    [
      withVision({ attention_heads: undefined }),
      /field "attention_heads" must be a positive integer, got nothing/,
    ],
    [withVision({ supported_aspect_ratios: [[1, 1], [2, 1], [1, 2]] }), /supported_aspect_ratios/],
    [withVision({ intermediate_size: 100 }), /"intermediate_size" is 100.*4 · hidden_size = 128/],
    [withVision({ vision_output_dim: 64 }), /"vision_output_dim" is 64.*= 96/],
    [withVision({ hidden_act: "gelu_pytorch_tanh" }), /hidden_act/],
    [withVision({ norm_eps: 1e-6 }), /norm_eps/],
    [withVision({ intermediate_layers_indices: [1, 5] }), /\(vision_config\): .*clip_num_layers = 3/],
    [withVision({ image_size: 18 }), /tile_size \(18\) must be a multiple of patch_size/],
    [[], /config must be a JSON object/],
  ];
  for (const [c, re] of cases) assert.throws(() => encoderArgsFromConfig(c, "x.json"), re, String(re));
  // max_num_tiles changes the expected supported_aspect_ratios
  assert.throws(() => encoderArgsFromConfig(withVision({ max_num_tiles: 4 })), /max_num_tiles 4/);
  assert.equal(encoderArgsFromConfig(withVision({ supported_aspect_ratios: undefined })).max_num_tiles, 2);
});

// ---------------------------------------------------------------------------------------------------------
// weight conversion

Deno.test("expectedEncoderShapes equals the fixture's encoder tensors, in torchtune's order", async () => {
  const want = await fixtureTuneEncoder();
  const shapes = expectedEncoderShapes(await fixtureArgs());
  assert.deepEqual([...shapes], [...want].map(([n, t]) => [n, t.shape]));
});

Deno.test("HF vision weights (fixture weights_hf) convert bit-exactly to weights_tune's encoder.*", async () => {
  await assertConvertsToFixture(join(CASE, "weights_hf.safetensors"));
});

Deno.test("HF vision weights: the model.vision_model.* spelling converts the same", async () => {
  const specs = await fixtureHfSpecs((n) =>
    n.startsWith("language_model.") ? n : n.replace(/^(vision_model|multi_modal_projector)\./, "model.$1.")
  );
  assert.ok(specs.has("model.vision_model.class_embedding"));
  assert.ok(specs.has("model.multi_modal_projector.weight"));
  await withTempFile(specs, assertConvertsToFixture);
});

Deno.test("HF vision plan: tile tables, shapes, decoder names ignored", async () => {
  const args = await fixtureArgs();
  const ckpt = await Checkpoint.open(join(CASE, "weights_hf.safetensors"));
  try {
    const plan = hfToTuneVisionPlan(ckpt.tensors.keys(), args);
    assert.deepEqual(plan.get("clip.token_pos_embedding.global_token_positional_embedding"), {
      hfName: "vision_model.gated_positional_embedding.tile_embedding.weight",
      transform: "token_table",
      shape: [2, 2, 17, 32],
      hfShape: [4, 1088],
    });
    assert.deepEqual(plan.get("clip.pre_tile_pos_embed.embedding"), {
      hfName: "vision_model.pre_tile_positional_embedding.embedding.weight",
      transform: "tile_table",
      shape: [2, 2, 1, 32],
      hfShape: [4, 64],
    });
    assert.deepEqual(plan.get("projection.output.weight"), {
      hfName: "multi_modal_projector.weight",
      shape: [64, 96],
      hfShape: [64, 96],
    });
    for (const [tune, src] of plan) {
      assert.deepEqual(ckpt.tensors.get(src.hfName)!.shape, src.hfShape, tune);
    }
    // The fixture's HF tables are consistent: every HF slot agrees with the torchtune entry it came from.
    for (
      const [tune, entry] of [["pre_tile_positional_embedding.embedding.weight", 32], [
        "gated_positional_embedding.tile_embedding.weight",
        17 * 32,
      ]] as const
    ) {
      const e = ckpt.tensors.get(`vision_model.${tune}`)!;
      const hf = toFloat32(e.dtype, await ckpt.read(e));
      assert.equal(tileTableConflict(hf, args.supported_aspect_ratios, 2, entry), 0, tune);
    }
  } finally {
    ckpt.close();
  }
});

Deno.test("HF vision plan: missing, unexpected, mixed and out-of-range tensors are errors naming them", async () => {
  const args = await fixtureArgs();
  const ckpt = await Checkpoint.open(join(CASE, "weights_hf.safetensors"));
  const names = [...ckpt.tensors.keys()];
  ckpt.close();
  const without = (n: string) => names.filter((x) => x !== n);
  assert.throws(
    () => hfToTuneVisionPlan(without("vision_model.transformer.layers.1.mlp.fc2.bias"), args),
    /lacks vision tensors for: encoder\.clip\.layers\.1\.mlp\.w2\.bias \(expected HF "vision_model\.transformer\.layers\.1\.mlp\.fc2\.bias"\)/,
  );
  assert.throws(
    () => hfToTuneVisionPlan(without("multi_modal_projector.bias"), args),
    /encoder\.projection\.output\.bias \(expected HF "multi_modal_projector\.bias"\)/,
  );
  assert.throws(
    () => hfToTuneVisionPlan([...names, "vision_model.transformer.layers.0.self_attn.q_proj.bias"], args),
    /unexpected vision tensor\(s\) in HF checkpoint: vision_model\.transformer\.layers\.0\.self_attn\.q_proj\.bias/,
  );
  assert.throws(
    () => hfToTuneVisionPlan([...names, "multi_modal_projector.extra"], args),
    /unexpected vision tensor\(s\).*multi_modal_projector\.extra/,
  );
  assert.throws(
    () => hfToTuneVisionPlan([...names, "vision_model.global_transformer.layers.2.gate_ffn"], args),
    /layers\.2\.gate_ffn have a layer index >= num_global_layers = 2/,
  );
  assert.throws(
    () => hfToTuneVisionPlan([...names, "vision_model.transformer.layers.3.mlp.fc1.bias"], args),
    /layer index >= num_hidden_layers = 3/,
  );
  assert.throws(
    () => hfToTuneVisionPlan([...names, "model.vision_model.class_embedding"], args),
    /mixes the "vision_model\.\*" and "model\.vision_model\.\*" spellings/,
  );
  // decoder-only checkpoints: every vision tensor is reported missing
  assert.throws(
    () => hfToTuneVisionPlan(names.filter((n) => n.startsWith("language_model.")), args),
    /lacks vision tensors for: encoder\.clip\.pre_tile_pos_embed\.embedding/,
  );
  const oneTile = resolveEncoderArgs({ ...encoderArgsFromConfig(await fixtureConfig()), max_num_tiles: 1 });
  assert.throws(() => hfToTuneVisionPlan(names, oneTile), /max_num_tiles > 1/);
});

Deno.test("HF vision weights: a tensor with the wrong shape is an error naming it", async () => {
  const specs = await fixtureHfSpecs();
  const t = specs.get("vision_model.pre_tile_positional_embedding.embedding.weight")!;
  specs.set("vision_model.pre_tile_positional_embedding.embedding.weight", {
    ...t,
    shape: [2, 128],
  });
  await withTempFile(specs, async (path) => {
    const ckpt = await Checkpoint.open(path);
    try {
      await assert.rejects(
        convertHfToTuneEncoder(ckpt, await fixtureArgs()),
        /"vision_model\.pre_tile_positional_embedding\.embedding\.weight" has shape \[2,128\], but encoder\.clip\.pre_tile_pos_embed\.embedding needs \[4,64\]/,
      );
    } finally {
      ckpt.close();
    }
  });
});

Deno.test("tile tables: 4-tile tune → HF → tune round trip, writer and converter agree, bf16 stays exact", async () => {
  const args = resolveEncoderArgs({
    patch_size: 4,
    num_heads: 2,
    clip_embed_dim: 8,
    clip_num_layers: 2,
    clip_hidden_states: [0, 2],
    num_layers_projection: 1,
    decoder_embed_dim: 12,
    tile_size: 8,
    max_num_tiles: 4,
  });
  const tune = randomTuneEncoderWeights(args, 7);
  const D = args.clip_embed_dim;
  const N = args.tokens_per_tile;
  for (
    const [name, entry] of [["clip.pre_tile_pos_embed.embedding", D], [
      "clip.token_pos_embedding.global_token_positional_embedding",
      N * D,
    ]] as const
  ) {
    const t = tune.get(name)!.data;
    const hfRows = tuneTableToHfRows(t, args, entry);
    assertBitsEqual(tuneTableToHf(t, args.supported_aspect_ratios, 4, entry), hfRows, name);
    assert.equal(hfRows.length, 9 * 4 * entry);
    // row 0 and unused slots are zero; row of (2, 2), slot 3 holds entry [1, 1]
    assert.ok(hfRows.subarray(0, 4 * entry).every((x) => x === 0));
    const r22 = 1 + 5;
    assertBitsEqual(
      hfRows.subarray((r22 * 4 + 3) * entry, (r22 * 4 + 4) * entry),
      t.subarray((1 * 4 + 1) * entry, (1 * 4 + 2) * entry),
      "(2,2) slot 3",
    );
    const back = entry === D ? convertTileTable(hfRows, args) : convertTokenTable(hfRows, args);
    assertBitsEqual(back, t, name);
    assert.equal(tileTableConflict(hfRows, args.supported_aspect_ratios, 4, entry), 0);
    // a drifted slot (row (1,2) slot 1 = entry [0,1], which torchtune takes from row (2,2)) is reported
    const drift = hfRows.slice();
    drift[(2 * 4 + 1) * entry] += 0.5;
    assert.ok(Math.abs(tileTableConflict(drift, args.supported_aspect_ratios, 4, entry) - 0.5) < 1e-6);
  }
  // unusable entries are zero in the random weights
  const pre = tune.get("clip.pre_tile_pos_embed.embedding")!.data;
  assert.ok(pre.subarray((1 * 4 + 2) * D, (1 * 4 + 3) * D).every((x) => x === 0), "(1,2) unusable");
  assert.ok(pre.subarray((0 * 4 + 3) * D, (0 * 4 + 4) * D).some((x) => x !== 0), "(0,3) usable");

  for (const spelling of ["hub", "transformers"] as const) {
    for (const bf16 of [false, true]) {
      const { hf } = randomHfVisionTensors(args, 7, { bf16, spelling });
      await withTempFile(hf, async (path) => {
        const ckpt = await Checkpoint.open(path);
        try {
          const got = await convertHfToTuneEncoder(ckpt, args);
          assert.deepEqual([...got.keys()], [...expectedEncoderShapes(args).keys()]);
          for (const [name, t] of tune) {
            assertBitsEqual(
              got.get(name)!.data,
              bf16 ? roundBf16(t.data) : t.data,
              `${spelling} ${bf16} ${name}`,
            );
          }
        } finally {
          ckpt.close();
        }
      });
    }
  }
  // the writer's HF names are exactly what the plan expects, and its vision_config maps back to the args
  const hfNames = [...tuneEncoderToHf(tune, args).keys()];
  assert.equal(hfToTuneVisionPlan(hfNames, args).size, hfNames.length);
  const cfg = { text_config: { hidden_size: 12 }, vision_config: hfVisionConfig(args) };
  assert.deepEqual(resolveEncoderArgs(encoderArgsFromConfig(cfg)), args);
});

// ---------------------------------------------------------------------------------------------------------
// reference encoder

Deno.test("reference erf matches known values", () => {
  const known: [number, number][] = [
    [0, 0],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [-2.9, -0.9999589021219005],
    [0.1, 0.1124629160182849],
    [2.99, 0.9999764743969194],
    [3, 0.9999779095030014],
    [3.5, 0.9999992569016276],
    [5, 0.9999999999984626],
  ];
  for (const [x, want] of known) assert.ok(Math.abs(erf(x) - want) < 2e-15, `erf(${x}) = ${erf(x)}`);
});

Deno.test("reference encoder reproduces the golden CLIP hidden states, CLIP output and encoder output", async () => {
  const args = await fixtureArgs();
  const golden = await readGolden(join(CASE, "tensors.safetensors"));
  const weights = new Map([...(await fixtureTuneEncoder())].map(([n, t]) => [n, t.data]));
  const images = golden.get("images")!;
  const ar = golden.get("aspect_ratio")!;
  assert.deepEqual([...ar.data], [1, 2]);
  const out = referenceEncoderForward(args, weights, images, ar);
  const checks: [string, { data: Float64Array; shape: number[] }][] = [
    ["clip_hidden_0", out.hidden_states[0]],
    ["clip_hidden_1", out.hidden_states[1]],
    ["clip_output", out.clip_output],
    ["encoder_output", out.output],
  ];
  const errors: Record<string, number> = {};
  for (const [name, got] of checks) {
    const want = golden.get(name)!;
    assert.deepEqual(got.shape, want.shape, name);
    errors[name] = maxAbsDiff(got.data, want.data);
    assert.ok(errors[name] < 1e-5, `${name}: max |Δ| ${errors[name]}`);
  }
  console.log("reference encoder vs golden, max |Δ|:", errors);
});

Deno.test("reference encoder: batch 2 × 2 images × 4 tiles equals each image on its own", () => {
  const args = resolveEncoderArgs({
    patch_size: 4,
    num_heads: 2,
    clip_embed_dim: 8,
    clip_num_layers: 2,
    clip_hidden_states: [1, 2],
    num_layers_projection: 1,
    decoder_embed_dim: 12,
    tile_size: 8,
    max_num_tiles: 4,
  });
  const tune = randomTuneEncoderWeights(args, 3);
  const weights = new Map([...tune].map(([n, t]) => [n, t.data]));
  const tileLen = 3 * 8 * 8;
  const ratios = [[2, 2], [1, 3], [4, 1], [1, 1]];
  const images = new Float32Array(4 * 4 * tileLen);
  let s = 1;
  for (let im = 0; im < 4; im++) {
    const real = ratios[im][0] * ratios[im][1];
    for (let i = 0; i < real * tileLen; i++) {
      s = (s * 16807) % 2147483647;
      images[im * 4 * tileLen + i] = s / 2147483647 * 2 - 1;
    }
  }
  const batched = referenceEncoderForward(args, weights, { data: images, shape: [2, 2, 4, 3, 8, 8] }, {
    data: ratios.flat(),
    shape: [2, 2, 2],
  });
  assert.deepEqual(batched.output.shape, [2, 2 * 4 * 5, 12]);
  const per = 4 * 5 * 12;
  for (let im = 0; im < 4; im++) {
    const one = referenceEncoderForward(args, weights, {
      data: images.subarray(im * 4 * tileLen, (im + 1) * 4 * tileLen),
      shape: [1, 1, 4, 3, 8, 8],
    }, { data: ratios[im], shape: [1, 1, 2] });
    assert.equal(maxAbsDiff(one.output.data, batched.output.data.subarray(im * per, (im + 1) * per)), 0);
  }
  // a transposed tile index would change a 2×2 image: entry [k // w, k % w] vs [k % h, k // h]
  const swapped = new Map(weights);
  for (const name of ["clip.pre_tile_pos_embed.embedding", "clip.post_tile_pos_embed.embedding"]) {
    const t = weights.get(name)!;
    const D = 8;
    const u = t.slice();
    u.set(t.subarray(1 * 4 * D, 1 * 4 * D + D), 1 * D); // [0,1] ← [1,0]
    u.set(t.subarray(1 * D, 2 * D), 1 * 4 * D); // [1,0] ← [0,1]
    swapped.set(name, u);
  }
  const first = { data: images.subarray(0, 4 * tileLen), shape: [1, 1, 4, 3, 8, 8] };
  const a = referenceEncoderForward(args, weights, first, { data: [2, 2], shape: [1, 1, 2] });
  const b = referenceEncoderForward(args, swapped, first, { data: [2, 2], shape: [1, 1, 2] });
  assert.ok(maxAbsDiff(a.output.data, b.output.data) > 1e-3);
  assert.throws(
    () => referenceEncoderForward(args, weights, first, { data: [3, 2], shape: [1, 1, 2] }),
    /aspect ratio \(3, 2\)/,
  );
});

/**
 * The fusion model against torchtune's outputs for `tiny_vision_e2e`: CLIP hidden states and output,
 * encoder output, full-forward logits with an image, KV-cached decoding and greedy ids, and the whole
 * path through the command line from an image file.
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers/gpu.ts";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encode as encodePng } from "fast-png";
import { DeepFusionModel, generate, loadCheckpoint, Recorder } from "../mod.ts";
import { Readback } from "../src/gpu/readback.ts";
import { argmaxRow, fixtureDir, type GoldenTensor, maxAbsDiff, readGolden } from "./helpers/golden.ts";

const TOL = 1e-4;
const gpu = await testGpu();
const CASE = "tiny_vision_e2e";
const g = await readGolden(join(fixtureDir(CASE), "tensors.safetensors"));

function t(name: string): GoldenTensor {
  const x = g.get(name);
  if (!x) throw new Error(`fixture has no ${name}`);
  return x;
}

async function checkpoint(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ckpt_vision_" });
  await Deno.copyFile(join(fixtureDir(CASE), "weights_hf.safetensors"), join(dir, "model.safetensors"));
  await Deno.copyFile(join(fixtureDir(CASE), "config.json"), join(dir, "config.json"));
  return dir;
}

async function load(): Promise<DeepFusionModel> {
  const model = await loadCheckpoint(await checkpoint(), { gpu });
  assert.ok(model instanceof DeepFusionModel, "a checkpoint with vision weights loads as a DeepFusionModel");
  return model;
}

const encoderInput = () => ({
  images: { data: t("images").data as Float32Array, shape: t("images").shape },
  aspect_ratio: { data: t("aspect_ratio").data as Int32Array, shape: t("aspect_ratio").shape },
});
const tokens = () => ({ data: t("tokens").data as Int32Array, shape: t("tokens").shape });

Deno.test("tiny_vision_e2e: CLIP hidden states and output, encoder output within 1e-4", async () => {
  using model = await load();
  const clip = model.encoder.clip;
  const rec = new Recorder(gpu);
  const images = rec.temps.upload(t("images").data as Float32Array, "images");
  const { x, hidden } = clip.record(rec, images, 1, 2, [[1, 2]]);
  const bytes = 2 * clip.n_tok * clip.embed_dim * 4;
  const reads = [x, ...hidden].map((b) => new Readback(rec, b, 0, bytes));
  rec.submit();
  const [out, h0, h1] = await Promise.all(reads.map(async (r) => new Float32Array((await r.read()).buffer)));
  const errs = {
    clip_output: maxAbsDiff(out, t("clip_output").data as Float32Array),
    clip_hidden_0: maxAbsDiff(h0, t("clip_hidden_0").data as Float32Array),
    clip_hidden_1: maxAbsDiff(h1, t("clip_hidden_1").data as Float32Array),
  };
  const enc = await model.encode(encoderInput()).read();
  assert.deepEqual(enc.shape, [1, 34, 64]);
  const encErr = maxAbsDiff(enc.data, t("encoder_output").data as Float32Array);
  console.log(`tiny_vision_e2e max |Δ|: ${JSON.stringify(errs)}, encoder_output ${encErr.toExponential(2)}`);
  for (const [k, v] of Object.entries(errs)) assert.ok(v < TOL, `${k}: ${v}`);
  assert.ok(encErr < TOL, `encoder_output: ${encErr}`);
});

Deno.test("tiny_vision_e2e: full-forward logits with the image within 1e-4", async () => {
  using model = await load();
  using logits = model.forward(tokens(), {
    encoder_input: encoderInput(),
    encoder_mask: { data: t("encoder_mask").data, shape: t("encoder_mask").shape },
  });
  const err = maxAbsDiff((await logits.read()).data, t("logits").data as Float32Array);
  console.log(`tiny_vision_e2e full forward max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < TOL, `max abs error ${err}`);
});

Deno.test("tiny_vision_e2e: KV-cached decoding (generate_v2's flow) and greedy ids", async () => {
  using model = await load();
  const [, s] = t("tokens").shape;
  const L = t("prefill_mask").shape[2];
  model.setup_caches(1, { encoder_max_seq_len: 34, decoder_max_seq_len: L });
  const V = 320;
  const steps = t("greedy_ids").shape[1];
  const got = new Float32Array(steps * V);
  const ids: number[] = [];
  {
    using out = model.forward(tokens(), {
      mask: { data: t("prefill_mask").data, shape: t("prefill_mask").shape },
      input_pos: { data: Int32Array.from({ length: s }, (_, i) => i), shape: [1, s] },
      encoder_input: encoderInput(),
      encoder_mask: { data: t("encoder_mask").data, shape: t("encoder_mask").shape },
    });
    const d = (await out.read()).data;
    got.set(d.subarray((s - 1) * V, s * V), 0);
    ids.push(argmaxRow(d, s - 1, V));
  }
  for (let step = 1; step < steps; step++) {
    const row = new Uint8Array(L);
    row.fill(1, 0, s + step);
    using out = model.forward({ data: new Int32Array([ids[step - 1]]), shape: [1, 1] }, {
      mask: { data: row, shape: [1, 1, L] },
      input_pos: { data: new Int32Array([s + step - 1]), shape: [1, 1] },
      encoder_mask: { data: t("decode_encoder_mask").data, shape: t("decode_encoder_mask").shape },
    });
    const d = (await out.read()).data;
    got.set(d, step * V);
    ids.push(argmaxRow(d, 0, V));
  }
  const err = maxAbsDiff(got, t("decode_logits").data as Float32Array);
  console.log(`tiny_vision_e2e cached decode max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < TOL, `max abs error ${err}`);
  assert.deepEqual(ids, Array.from(t("greedy_ids").data));
});

Deno.test("tiny_vision_e2e: generate(top_k=1) with the encoder output reproduces generate_tokens", async () => {
  using model = await load();
  using enc = model.encode(encoderInput());
  const out = await generate(model.decoder, tokens(), {
    max_new_tokens: 7,
    top_k: 1,
    encoder_input: enc,
    encoder_mask: { data: t("encoder_mask").data, shape: t("encoder_mask").shape },
  });
  assert.deepEqual(Array.from(out.data), Array.from(t("generate_tokens").data));
});

Deno.test("tiny_vision_e2e: generate --image through the CLI, from a PNG file, gives the greedy ids", async () => {
  const raw = t("image0_raw_hwc_u8");
  const [h, w] = raw.shape;
  const dir = await checkpoint();
  const png = join(dir, "image.png");
  await Deno.writeFile(png, encodePng({ width: w, height: h, data: raw.data as Uint8Array, channels: 3 }));
  const main = fileURLToPath(new URL("../main.ts", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-net",
      "--no-prompt",
      main,
      "generate",
      "--model",
      dir,
      "--image",
      png,
      "--token-ids",
      Array.from(t("tokens").data).join(","),
      "--top-k",
      "1",
      "--max-new-tokens",
      "7",
      "--ids",
    ],
    env: { NO_COLOR: "1" },
    stdin: "null",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const got = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  assert.deepEqual(got, Array.from(t("generate_tokens").data.subarray(10)));

  const bad = join(dir, "broken.png");
  await Deno.writeFile(bad, new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]));
  const fail = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "generate", "--model", dir, "--image", bad, "--token-ids", "1,320,5", "--ids"],
    stdin: "null",
  }).output();
  assert.notEqual(fail.code, 0);
  assert.match(new TextDecoder().decode(fail.stderr), /broken\.png/);
});

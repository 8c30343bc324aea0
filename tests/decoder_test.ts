/**
 * Parity of the WebGPU decoder with torchtune's own outputs (tests/fixtures, copied from the golden
 * cases): full forward, KV-cached decoding, greedy ids, the left-padded batch of torchtune's
 * `generate`, BF16 weights, and the row-split path for weights larger than one binding.
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers/gpu.ts";
import { Gpu, type TransformerDecoder } from "../mod.ts";
import { checkpointDir, loadDecoder } from "./helpers/checkpoints.ts";
import { argmaxRow, fixtureDir, type GoldenTensor, maxAbsDiff, readGolden } from "./helpers/golden.ts";

const TOL = 1e-4;
const gpu = await testGpu();

async function golden(name: string): Promise<Map<string, GoldenTensor>> {
  return await readGolden(`${fixtureDir(name)}/tensors.safetensors`);
}

function t(g: Map<string, GoldenTensor>, name: string) {
  const x = g.get(name);
  if (!x) throw new Error(`fixture has no ${name}`);
  return { data: x.data, shape: x.shape };
}

/** Rows 0…s−1 of tril(ones(L, L)) as a [b, s, L] mask starting at row `row0`. */
function causalRows(
  batch: number,
  row0: number,
  s: number,
  L: number,
): { data: Uint8Array; shape: number[] } {
  const data = new Uint8Array(batch * s * L);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < s; i++) for (let j = 0; j <= row0 + i && j < L; j++) data[(b * s + i) * L + j] = 1;
  }
  return { data, shape: [batch, s, L] };
}

function lastPosition(logits: Float32Array, batch: number, seq: number, V: number): Float32Array {
  const out = new Float32Array(batch * V);
  for (let b = 0; b < batch; b++) {
    out.set(logits.subarray(((b * seq) + seq - 1) * V, (b * seq + seq) * V), b * V);
  }
  return out;
}

async function fullForward(model: TransformerDecoder, g: Map<string, GoldenTensor>): Promise<Float32Array> {
  const enc = g.get("encoder_input");
  using logits = model.forward(t(g, "tokens") as { data: Int32Array; shape: number[] }, {
    encoder_input: enc ? t(g, "encoder_input") as { data: Float32Array; shape: number[] } : null,
    encoder_mask: enc ? t(g, "encoder_mask") : null,
  });
  return (await logits.read()).data;
}

/** Prefill + decode steps exactly as the fixtures' "(b)" loop; returns logits [b, steps+1, V] and greedy ids. */
async function cachedDecode(model: TransformerDecoder, g: Map<string, GoldenTensor>) {
  const tokens = t(g, "tokens");
  const [batch, seq] = tokens.shape;
  const prefillMask = t(g, "prefill_mask");
  const L = prefillMask.shape[2];
  const enc = g.get("encoder_input");
  const encLen = enc ? enc.shape[1] : undefined;
  model.setup_caches(batch, { decoder_max_seq_len: L, encoder_max_seq_len: encLen });
  const V = model.output.out_dim;
  const steps = t(g, "decode_input_pos").data.length;
  const all = new Float32Array(batch * (steps + 1) * V);
  const ids = new Int32Array(batch * (steps + 1));
  const keep = (logits: Float32Array, step: number) => {
    for (let b = 0; b < batch; b++) {
      all.set(logits.subarray(b * V, (b + 1) * V), (b * (steps + 1) + step) * V);
      ids[b * (steps + 1) + step] = argmaxRow(logits, b, V);
    }
  };
  {
    using out = model.forward(tokens as { data: Int32Array; shape: number[] }, {
      mask: prefillMask,
      input_pos: t(g, "prefill_input_pos") as { data: Int32Array; shape: number[] },
      encoder_input: enc ? t(g, "encoder_input") as { data: Float32Array; shape: number[] } : null,
      encoder_mask: enc ? t(g, "encoder_mask") : null,
    });
    keep(lastPosition((await out.read()).data, batch, seq, V), 0);
  }
  const decodePos = t(g, "decode_input_pos").data;
  for (let step = 1; step <= steps; step++) {
    const next = new Int32Array(batch);
    for (let b = 0; b < batch; b++) next[b] = ids[b * (steps + 1) + step - 1];
    using out = model.forward({ data: next, shape: [batch, 1] }, {
      mask: causalRows(batch, seq + step - 1, 1, L),
      input_pos: { data: new Int32Array(batch).fill(decodePos[step - 1]), shape: [batch, 1] },
      encoder_mask: enc ? t(g, "decode_encoder_mask") : null,
    });
    keep((await out.read()).data, step);
  }
  return { logits: all, ids };
}

for (const name of ["tiny_gqa", "tiny_textonly"]) {
  Deno.test(`${name}: full-forward logits match torchtune within ${TOL}`, async () => {
    const g = await golden(name);
    using model = await loadDecoder(await checkpointDir(name), { gpu });
    const err = maxAbsDiff(await fullForward(model, g), g.get("logits")!.data);
    console.log(`${name} full forward max |Δ| = ${err.toExponential(2)}`);
    assert.ok(err < TOL, `max abs error ${err}`);
  });

  Deno.test(`${name}: KV-cached decoding matches torchtune and greedy ids are exact`, async () => {
    const g = await golden(name);
    using model = await loadDecoder(await checkpointDir(name), { gpu });
    const { logits, ids } = await cachedDecode(model, g);
    const err = maxAbsDiff(logits, g.get("decode_logits")!.data);
    console.log(`${name} cached decode max |Δ| = ${err.toExponential(2)}`);
    assert.ok(err < TOL, `max abs error ${err}`);
    assert.deepEqual(Array.from(ids), Array.from(g.get("greedy_ids")!.data));
  });
}

Deno.test("tiny_gqa: reset_caches() then decoding again gives the same logits", async () => {
  const g = await golden("tiny_gqa");
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const first = await cachedDecode(model, g);
  model.reset_caches();
  assert.ok(model.caches_are_enabled());
  // setup_caches a second time is a no-op (torchtune warns and skips).
  const second = await cachedDecode(model, g);
  assert.equal(maxAbsDiff(first.logits, second.logits), 0);
});

Deno.test("tiny_textonly: left-padded batch through torchtune generate()'s masks and positions", async () => {
  const g = await golden("tiny_textonly");
  using model = await loadDecoder(await checkpointDir("tiny_textonly"), { gpu });
  const prompt = t(g, "pad_prompt");
  const [batch, seq] = prompt.shape;
  const steps = 7;
  const total = seq + steps;
  model.setup_caches(batch, { decoder_max_seq_len: total });
  const V = model.output.out_dim;
  // torchtune: padding_mask = prompt != pad_id, extended with True; causal mask ANDed with it, diagonal True;
  // input_pos = (cumsum(padding_mask) − 1) · padding_mask.
  const pad = new Uint8Array(batch * total).fill(1);
  for (let i = 0; i < batch * seq; i++) {
    pad[Math.floor(i / seq) * total + (i % seq)] = prompt.data[i] !== 0 ? 1 : 0;
  }
  const masks = new Uint8Array(batch * total * total);
  const pos = new Int32Array(batch * total);
  for (let b = 0; b < batch; b++) {
    let c = 0;
    for (let i = 0; i < total; i++) {
      c += pad[b * total + i];
      pos[b * total + i] = (c - 1) * pad[b * total + i];
      for (let j = 0; j <= i; j++) masks[(b * total + i) * total + j] = j === i ? 1 : pad[b * total + j];
    }
  }
  const rows = (from: number, n: number) => {
    const data = new Uint8Array(batch * n * total);
    for (let b = 0; b < batch; b++) {
      data.set(masks.subarray((b * total + from) * total, (b * total + from + n) * total), b * n * total);
    }
    return { data, shape: [batch, n, total] };
  };
  const positions = (from: number, n: number) => {
    const data = new Int32Array(batch * n);
    for (let b = 0; b < batch; b++) data.set(pos.subarray(b * total + from, b * total + from + n), b * n);
    return { data, shape: [batch, n] };
  };
  const generated = new Int32Array(batch * total);
  generated.set(prompt.data.length ? Int32Array.from(prompt.data) : []);
  for (let b = 0; b < batch; b++) {
    generated.set(prompt.data.subarray(b * seq, (b + 1) * seq) as Int32Array, b * total);
  }
  const logitsOut = new Float32Array(batch * steps * V);
  let input = { data: Int32Array.from(prompt.data as Int32Array), shape: [batch, seq] };
  for (let step = 0; step < steps; step++) {
    const cur = step === 0 ? 0 : seq + step - 1;
    const n = step === 0 ? seq : 1;
    using out = model.forward(input, { mask: rows(cur, n), input_pos: positions(cur, n) });
    const last = lastPosition((await out.read()).data, batch, n, V);
    const next = new Int32Array(batch);
    for (let b = 0; b < batch; b++) {
      logitsOut.set(last.subarray(b * V, (b + 1) * V), (b * steps + step) * V);
      next[b] = argmaxRow(last, b, V);
      generated[b * total + seq + step] = next[b];
    }
    input = { data: next, shape: [batch, 1] };
  }
  const err = maxAbsDiff(logitsOut, g.get("pad_generate_logits")!.data);
  console.log(`tiny_textonly padded generate max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < TOL, `max abs error ${err}`);
  assert.deepEqual(Array.from(generated), Array.from(g.get("pad_generate_tokens")!.data));
});

Deno.test("tiny_gqa: BF16 weights stay bf16 on the GPU and match bf16w_logits within 1e-3", async () => {
  const g = await golden("tiny_gqa");
  using model = await loadDecoder(await checkpointDir("tiny_gqa", "weights_hf_bf16.safetensors"), { gpu });
  const q = model.named_parameters().find(([n]) => n === "layers.0.attn.q_proj.weight")![1];
  assert.equal(q.storage.dtype, "bf16");
  const err = maxAbsDiff(await fullForward(model, g), g.get("bf16w_logits")!.data);
  console.log(`tiny_gqa bf16 weights max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < 1e-3, `max abs error ${err}`);
});

Deno.test("tiny_gqa: weights split across many bindings (lowered binding limit) give the same logits", async () => {
  const g = await golden("tiny_gqa");
  const small = await Gpu.acquire({ quiet: true, maxBindingBytes: 8192 });
  try {
    using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu: small });
    const emb = model.tok_embeddings.weight.storage;
    const out = model.output.weight.storage;
    assert.ok(emb.chunks.length > 1 && out.chunks.length > 1, "embedding and output are split by rows");
    const err = maxAbsDiff(await fullForward(model, g), g.get("logits")!.data);
    assert.ok(err < TOL, `max abs error ${err}`);
    const { ids } = await cachedDecode(model, g);
    assert.deepEqual(Array.from(ids), Array.from(g.get("greedy_ids")!.data));
  } finally {
    small.destroy();
  }
});

/** Rewrites a checkpoint's tensors (name and bytes) into new safetensors files. */
async function rewriteCheckpoint(
  name: string,
  edit: (tensors: Map<string, { dtype: string; shape: number[]; data: Uint8Array }>) => void,
): Promise<Map<string, { dtype: string; shape: number[]; data: Uint8Array }>> {
  const { Checkpoint } = await import("../src/checkpoint/safetensors.ts");
  const ckpt = await Checkpoint.open(await checkpointDir(name));
  const tensors = new Map<string, { dtype: string; shape: number[]; data: Uint8Array }>();
  for (const [n, e] of ckpt.tensors) {
    tensors.set(n, { dtype: e.dtype, shape: e.shape, data: await ckpt.read(e) });
  }
  ckpt.close();
  edit(tensors);
  return tensors;
}

Deno.test("tiny_gqa: F16 weights stay f16 on the GPU and equal f32 compute on the same values", async () => {
  const { writeSafetensors } = await import("./helpers/safetensors_writer.ts");
  const { join } = await import("node:path");
  const g = await golden("tiny_gqa");
  // Round every weight to f16, then write it both as F16 and (widened exactly) as F32.
  const f16 = await rewriteCheckpoint("tiny_gqa", (m) => {
    for (const [n, t] of m) {
      const src = new Float32Array(t.data.slice().buffer);
      const half = new Float16Array(src);
      m.set(n, { dtype: "F16", shape: t.shape, data: new Uint8Array(half.buffer) });
    }
  });
  const f32 = new Map([...f16].map(([n, t]) => {
    const wide = new Float32Array(new Float16Array(t.data.slice().buffer));
    return [n, { dtype: "F32", shape: t.shape, data: new Uint8Array(wide.buffer) }];
  }));
  const dirA = await checkpointDir("tiny_gqa");
  const dirB = await checkpointDir("tiny_gqa");
  await writeSafetensors(join(dirA, "model.safetensors"), f16);
  await writeSafetensors(join(dirB, "model.safetensors"), f32);
  using a = await loadDecoder(dirA, { gpu });
  using b = await loadDecoder(dirB, { gpu });
  assert.equal(a.layers[0].named_parameters()[0][1].storage.dtype, "f16");
  const la = await fullForward(a, g);
  const lb = await fullForward(b, g);
  const err = maxAbsDiff(la, lb);
  console.log(`tiny_gqa f16 vs f32 on the same values max |Δ| = ${err.toExponential(2)}`);
  assert.ok(err < 1e-5, `max abs error ${err}`);
});

Deno.test("tiny_gqa: shards with index.json and the model.language_model.* spelling load the same model", async () => {
  const { writeSafetensors } = await import("./helpers/safetensors_writer.ts");
  const { join } = await import("node:path");
  const g = await golden("tiny_gqa");
  const tensors = await rewriteCheckpoint("tiny_gqa", () => {});
  const renamed = new Map([...tensors].map(([n, t]) => [
    n === "language_model.lm_head.weight"
      ? "lm_head.weight"
      : n.replace(/^language_model\.model\./, "model.language_model."),
    t,
  ]));
  const dir = await checkpointDir("tiny_gqa");
  await Deno.remove(join(dir, "model.safetensors"));
  const names = [...renamed.keys()];
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const weight_map: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, file), new Map(shard.map((n) => [n, renamed.get(n)!])));
    for (const n of shard) weight_map[n] = file;
  }
  await Deno.writeTextFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map }),
  );
  using model = await loadDecoder(dir, { gpu });
  const err = maxAbsDiff(await fullForward(model, g), g.get("logits")!.data);
  assert.ok(err < TOL, `max abs error ${err}`);
});

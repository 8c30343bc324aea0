/**
 * Generation: torchtune generate()'s greedy output on the golden fixtures (including the left-padded
 * batch), stop tokens, seeded reproducibility, and the sampler's distribution against exact
 * probabilities (temperature, top_k with ties, top_p).
 */
import assert from "node:assert/strict";
import { testGpu } from "./helpers/gpu.ts";
import { BufferOwner, Gpu, Recorder } from "../mod.ts";
import { generate, generateStream } from "../src/generation/generate.ts";
import { resolveSampling } from "../src/generation/sampling.ts";
import { sample } from "../src/gpu/ops.ts";
import { Readback } from "../src/gpu/readback.ts";
import { checkpointDir, loadDecoder } from "./helpers/checkpoints.ts";
import { fixtureDir, readGolden } from "./helpers/golden.ts";

const gpu = await testGpu();

Deno.test("generate(top_k=1) reproduces torchtune's tokens, also for the left-padded batch", async () => {
  const g = await readGolden(`${fixtureDir("tiny_textonly")}/tensors.safetensors`);
  using model = await loadDecoder(await checkpointDir("tiny_textonly"), { gpu });
  for (
    const [promptName, expected] of [["tokens", "generate_tokens"], ["pad_prompt", "pad_generate_tokens"]]
  ) {
    const p = g.get(promptName)!;
    const out = await generate(model, { data: p.data as Int32Array, shape: p.shape }, {
      max_new_tokens: 7,
      top_k: 1,
      pad_id: 0,
    });
    assert.deepEqual(out.shape, g.get(expected)!.shape);
    assert.deepEqual(Array.from(out.data), Array.from(g.get(expected)!.data), promptName);
  }
});

Deno.test("generate: stop tokens end the sequence, later ids become pad_id", async () => {
  const g = await readGolden(`${fixtureDir("tiny_textonly")}/tensors.safetensors`);
  using model = await loadDecoder(await checkpointDir("tiny_textonly"), { gpu });
  const p = g.get("tokens")!;
  const want = g.get("generate_tokens")!.data as Int32Array; // [2, 16], prompt 9
  const stop = want[9 + 2]; // row 0's third generated id
  const out = await generate(model, { data: p.data as Int32Array, shape: [2, 9] }, {
    max_new_tokens: 7,
    top_k: 1,
    stop_tokens: [stop],
    pad_id: 0,
  });
  const n = out.shape[1] - 9;
  const row0 = Array.from(out.data.subarray(9, 9 + n));
  const k = row0.indexOf(stop);
  assert.ok(k >= 0);
  assert.ok(row0.slice(k + 1).every((v) => v === 0), `after the stop token: ${row0}`);
});

Deno.test("seeded sampling is reproducible and the seed matters", async () => {
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const prompt = { data: new Int32Array([1, 5, 9, 14]), shape: [1, 4] };
  const run = async (seed: number) =>
    Array.from((await generate(model, prompt, { max_new_tokens: 12, temperature: 5, seed })).data);
  const a = await run(7);
  assert.deepEqual(await run(7), a);
  assert.notDeepEqual(await run(8), a);
});

Deno.test("concurrent generate calls on one model are serialised, each equal to running alone", async () => {
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const prompt = { data: new Int32Array([3, 4, 5]), shape: [1, 3] };
  const alone = await generate(model, prompt, { max_new_tokens: 6, top_k: 1 });
  const both = await Promise.all([
    generate(model, prompt, { max_new_tokens: 6, top_k: 1 }),
    generate(model, { data: new Int32Array([3, 4, 5, 6, 7]), shape: [1, 5] }, {
      max_new_tokens: 3,
      top_k: 1,
    }),
  ]);
  assert.deepEqual(Array.from(both[0].data), Array.from(alone.data));
});

Deno.test("generate: bad arguments are refused with the valid range", async () => {
  using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu });
  const prompt = { data: new Int32Array([1, 2]), shape: [1, 2] };
  const bad: [Record<string, number>, RegExp][] = [
    [{ temperature: -1 }, /temperature must be a finite number ≥ 0/],
    [{ top_k: 0 }, /top_k must be an integer ≥ 1/],
    [{ top_p: 0 }, /top_p must be in \(0, 1\]/],
    [{ top_p: 1.5 }, /top_p must be in \(0, 1\]/],
    [{ max_new_tokens: 0 }, /max_new_tokens must be a positive integer/],
    [{ max_new_tokens: 200 }, /exceeds the model's max_seq_len 128/],
  ];
  for (const [o, re] of bad) {
    await assert.rejects(generate(model, prompt, { max_new_tokens: 4, ...o }), re, JSON.stringify(o));
  }
  // A consumer that stops early leaves the model usable.
  for await (const s of generateStream(model, prompt, { max_new_tokens: 8, top_k: 1 })) {
    if (s.step === 1) break;
  }
  assert.equal((await generate(model, prompt, { max_new_tokens: 2, top_k: 1 })).shape[1], 4);
});

/** Samples `rows` independent draws from the same logits in one dispatch; returns counts per id. */
async function draw(
  logits: number[],
  rows: number,
  opts: Parameters<typeof resolveSampling>[0],
): Promise<number[]> {
  const V = logits.length;
  const owner = new BufferOwner(gpu);
  const all = new Float32Array(rows * V);
  for (let r = 0; r < rows; r++) all.set(logits, r * V);
  const lb = owner.upload(all, "logits");
  const next = owner.storage(rows * 4, "next");
  const rec = new Recorder(gpu);
  sample(rec, lb, rows, V, next, 0, resolveSampling(opts));
  const rb = new Readback(rec, next, 0, rows * 4);
  rec.submit();
  const ids = new Int32Array((await rb.read()).buffer);
  owner.destroy();
  const counts = new Array(V).fill(0);
  for (const id of ids) counts[id]++;
  return counts;
}

function softmax(x: number[]): number[] {
  const m = x.reduce((a, b) => Math.max(a, b), -Infinity);
  const e = x.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

/** Asserts observed frequencies match `p` within 5 standard errors per id (and zero where p = 0). */
function assertDistribution(counts: number[], p: number[], label: string): void {
  const n = counts.reduce((a, b) => a + b, 0);
  counts.forEach((c, i) => {
    if (p[i] === 0) assert.equal(c, 0, `${label}: id ${i} must never be drawn`);
    else {
      const sd = Math.sqrt(n * p[i] * (1 - p[i]));
      assert.ok(
        Math.abs(c - n * p[i]) <= 5 * sd + 1,
        `${label}: id ${i} drawn ${c}× of ${n}, expected ${n * p[i]}`,
      );
    }
  });
}

Deno.test("sampler distribution: temperature, top_k (ties survive), top_p, greedy", async () => {
  const logits = [2.0, 1.0, 1.0, 0.5, -1.0, 3.0, 0.0, 1.0];
  const N = 20000;
  assertDistribution(await draw(logits, N, { temperature: 1, seed: 1 }), softmax(logits), "T=1");
  assertDistribution(
    await draw(logits, N, { temperature: 0.5, seed: 2 }),
    softmax(logits.map((v) => v / 0.5)),
    "T=0.5",
  );
  // top_k = 3: the 3rd largest value is 1.0, shared by ids 1, 2 and 7: all survive (torchtune semantics).
  const kept = logits.map((v) => v >= 1.0);
  const pk = softmax(logits.map((v, i) => kept[i] ? v : -Infinity));
  assertDistribution(await draw(logits, N, { temperature: 1, top_k: 3, seed: 3 }), pk, "top_k=3");
  // top_p = 0.8: the smallest prefix of the sorted probabilities reaching 0.8; ties with the last kept
  // probability survive (ids 1, 2 and 7 share it), as ties with the k-th value do for top_k.
  const p = softmax(logits);
  const sortedP = [...p].sort((a, b) => b - a);
  let mass = 0, cut = 0;
  for (const v of sortedP) {
    cut = v;
    mass += v;
    if (mass >= 0.8) break;
  }
  const pp = softmax(logits.map((v, i) => p[i] >= cut ? v : -Infinity));
  assertDistribution(await draw(logits, N, { temperature: 1, top_p: 0.8, seed: 4 }), pp, "top_p=0.8");
  // A nucleus smaller than the largest probability keeps only the largest logit.
  assert.equal((await draw(logits, 200, { temperature: 1, top_p: 1e-6, seed: 5 }))[5], 200);
  // top_k, then top_p over the renormalised survivors: of pk, the largest (id 5) and next (id 0)
  // reach 0.75 only together.
  const pkSorted = [...pk].sort((a, b) => b - a);
  assert.ok(pkSorted[0] < 0.75 && pkSorted[0] + pkSorted[1] >= 0.75);
  const pkp = softmax(logits.map((v, i) => pk[i] >= pkSorted[1] ? v : -Infinity));
  assertDistribution(
    await draw(logits, N, { temperature: 1, top_k: 3, top_p: 0.75, seed: 6 }),
    pkp,
    "top_k=3, top_p=0.75",
  );
  const greedy = await draw(logits, 50, { temperature: 0 });
  assert.equal(greedy[5], 50);
  const k1 = await draw(logits, 50, { top_k: 1, temperature: 1 });
  assert.equal(k1[5], 50);
});

Deno.test("greedy sampling (argmax.wgsl): the first index of each row's largest logit", async () => {
  const V = 128256, rows = 3;
  const all = new Float32Array(rows * V);
  for (let i = 0; i < all.length; i++) all[i] = Math.fround(Math.sin(i * 78.233) * 8);
  // Row 1: a tie for the largest value; the smaller index wins.
  all[V + 500] = 100;
  all[V + 90000] = 100;
  // Row 2: the largest value in the last slot.
  all[2 * V + V - 1] = 50;
  const owner = new BufferOwner(gpu);
  const lb = owner.upload(all, "logits");
  const next = owner.storage(rows * 4, "next");
  const rec = new Recorder(gpu);
  sample(rec, lb, rows, V, next, 0, resolveSampling({ temperature: 0 }));
  const rb = new Readback(rec, next, 0, rows * 4);
  rec.submit();
  const ids = [...new Int32Array((await rb.read()).buffer)];
  owner.destroy();
  const expected = Array.from({ length: rows }, (_, r) => {
    let best = 0;
    for (let j = 1; j < V; j++) if (all[r * V + j] > all[r * V + best]) best = j;
    return best;
  });
  assert.deepEqual(ids, expected);
  assert.deepEqual(ids.slice(1), [500, V - 1]);
});

Deno.test("sampler over a Llama-sized vocabulary: top_k and top_p pick only allowed ids", async () => {
  const V = 128256;
  // f32 values, as the GPU sees them (near-ties at the top must be compared in f32).
  const logits = Array.from({ length: V }, (_, i) => Math.fround(Math.sin(i * 12.9898) * 4));
  const sorted = [...logits].sort((a, b) => b - a);
  const counts = await draw(logits, 64, { temperature: 1, top_k: 5, seed: 9 });
  counts.forEach((c, i) => {
    if (c > 0) assert.ok(logits[i] >= sorted[4], `id ${i} is outside the top 5`);
  });
  const countsP = await draw(logits, 64, { temperature: 0.2, top_p: 0.5, seed: 10 });
  const p = softmax(logits.map((v) => v / 0.2));
  const ps = [...p].sort((a, b) => b - a);
  let mass = 0, cut = 0;
  for (const v of ps) {
    cut = v;
    mass += v;
    if (mass >= 0.5) break;
  }
  countsP.forEach((c, i) => {
    if (c > 0) assert.ok(p[i] >= cut * (1 - 1e-5), `id ${i} (p=${p[i]}) is outside the nucleus (cut ${cut})`);
  });
});

Deno.test("device loss during generation ends it with a clear error", async () => {
  const own = await Gpu.acquire({ quiet: true });
  const model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu: own });
  const steps = generateStream(model, { data: new Int32Array([1, 2, 3]), shape: [1, 3] }, {
    max_new_tokens: 40,
    top_k: 1,
  });
  await steps.next();
  own.destroy();
  await assert.rejects(
    (async () => {
      for await (const _ of steps) { /* drain */ }
    })(),
    /device was lost|WebGPU error|GPU failed/i,
  );
});

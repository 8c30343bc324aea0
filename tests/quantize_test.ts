/**
 * Weight-only quantization (src/checkpoint/quantize.ts, kernels/weight_q8.wgsl, weight_q4.wgsl):
 * the host packing and its error bound, the WGSL snippets against the TypeScript dequantization
 * (through `linear()` and `embedding()`), and whole-model error on the golden fixtures: logits of
 * checkpoints loaded with `dtype: "q8"` / `"q4"` against torchtune's f32 logits, and greedy agreement
 * over the cached-decoding steps (teacher-forced with the golden greedy ids, so every step is compared).
 */
import assert from "node:assert/strict";
import type { Gpu } from "../src/gpu/device.ts";
import { BufferOwner, WeightStorage } from "../src/gpu/buffers.ts";
import { embedding, linear } from "../src/gpu/ops.ts";
import {
  dequantizeRows,
  f32ToBf16,
  groupBytes,
  loadWeightDtype,
  type QuantDtype,
  quantizeRows,
  WeightConverter,
} from "../src/checkpoint/quantize.ts";
import type { TransformerDecoder } from "../src/modules/transformer_decoder.ts";
import { gpuTest, readF32, record, testGpu, withOwner } from "./helpers/gpu.ts";
import {
  assertClose,
  embeddingRef,
  linearRef,
  quantizeActivationsRef,
  Rng,
  roundsActivations,
} from "./helpers/reference.ts";
import { checkpointDir, loadDecoder } from "./helpers/checkpoints.ts";
import { argmaxRow, fixtureDir, type GoldenTensor, maxAbsDiff, readGolden } from "./helpers/golden.ts";

const SPLIT_BYTES = 4096;

/** Random weights with per-row scales spanning a few decades, a zero group and an outlier. */
function testWeights(rng: Rng, rows: number, cols: number): Float32Array {
  const w = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const scale = 10 ** rng.uniform(-3, 0);
    for (let c = 0; c < cols; c++) w[r * cols + c] = rng.normal() * scale;
  }
  if (cols >= 64) {
    w.fill(0, 32, 64); // row 0, group 1
    w[cols + 5] = 40; // an outlier in row 1
  }
  return w;
}

// ---------------------------------------------------------------- host packing

Deno.test("quantizeRows: layout, ties away from zero, zero groups", () => {
  // Group with max |x| = 127 → d = 1 (q8), max 7 → d = 1 (q4): values are the integers themselves.
  const g8 = new Float32Array(32);
  g8.set([127, -127, 2.5, -2.5, 0.5, -0.5, 1.49, -1.51, 3, -4]);
  const b8 = quantizeRows(g8, "q8");
  assert.equal(b8.byteLength, 36);
  // The values (8 words), then the scale.
  const v8 = new DataView(b8.buffer, b8.byteOffset);
  assert.equal(v8.getFloat32(32, true), 1);
  assert.deepEqual(Array.from(new Int8Array(b8.buffer, b8.byteOffset, 10)), [
    127,
    -127,
    3,
    -3,
    1,
    -1,
    1,
    -2,
    3,
    -4,
  ]);
  const g4 = new Float32Array(32);
  g4.set([7, -7, 2.5, -3.5, 0.5, 1, -1, 6.49]);
  g4[8] = -0.5;
  const b4 = quantizeRows(g4, "q4");
  assert.equal(b4.byteLength, 18);
  // The values (4 words), then the scale as bf16 (1.0 = 0x3f80).
  const v4 = new DataView(b4.buffer, b4.byteOffset);
  assert.equal(v4.getUint16(16, true), 0x3f80);
  // Word 0: nibbles 7, −7 (9), 3, −4 (c), 1, 1, −1 (f), 6 → 0x6f11c397 read as little-endian.
  assert.equal(v4.getUint32(0, true), 0x6f11c397);
  assert.equal(v4.getUint32(4, true) & 0xf, 0xf); // −0.5 → −1
  assert.deepEqual(
    Array.from(dequantizeRows(b4, "q4", 32).subarray(0, 9)),
    [7, -7, 3, -4, 1, 1, -1, 6, -1],
  );
  // An all-zero group: scale 0, values 0.
  const z = quantizeRows(new Float32Array(64), "q4");
  assert.ok(new Uint32Array(z.buffer).every((u) => u === 0));
  assert.throws(() => quantizeRows(new Float32Array(33), "q8"), RangeError);
  // Several groups: all the values, then all the scales, in group order.
  const two = new Float32Array(64);
  two[0] = 127;
  two[32] = -254;
  const b2 = new DataView(quantizeRows(two, "q8").buffer);
  assert.deepEqual([b2.getInt8(0), b2.getInt8(32), b2.getFloat32(64, true), b2.getFloat32(68, true)], [
    127,
    -127,
    1,
    2,
  ]);
});

Deno.test("quantize → dequantize: |x − x̂| ≤ d/2 per element, rms error ≈ d/√12", () => {
  const rng = new Rng(7);
  const rows = 64, cols = 256;
  const w = testWeights(rng, rows, cols);
  for (const [dtype, qmax] of [["q8", 127], ["q4", 7]] as const) {
    const bytes = quantizeRows(w, dtype);
    assert.equal(bytes.byteLength, rows * cols / 32 * groupBytes(dtype));
    const back = dequantizeRows(bytes, dtype, w.length);
    let worst = 0, relSq = 0, n = 0;
    for (let g = 0; g < w.length / 32; g++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(w[g * 32 + j]));
      // The scale as stored: f32 (q8) or rounded to bf16 (q4).
      const d = dtype === "q8" ? amax / qmax : bf16Round(amax / qmax);
      for (let j = 0; j < 32; j++) {
        const err = Math.abs(w[g * 32 + j] - back[g * 32 + j]);
        if (d === 0) {
          assert.equal(err, 0);
          continue;
        }
        worst = Math.max(worst, err / d);
        relSq += (err / d) ** 2;
        n++;
      }
    }
    const rms = Math.sqrt(relSq / n);
    console.log(
      `${dtype}: max error ${worst.toFixed(4)}·d, rms error ${rms.toFixed(4)}·d (d = max|x| / ${qmax})`,
    );
    assert.ok(worst <= 0.5 + 1e-5, `${dtype}: an element is off by ${worst}·d`);
    // Uniform rounding error: rms d/√12 = 0.289·d (a bit less for q4, whose max element is exact or, its
    // scale rounded down, clamped 7·(max|x|/7 − d) ≤ 0.014·d off).
    assert.ok(rms > 0.2 && rms < 0.32, `${dtype}: rms error ${rms}·d`);
  }
});

/** `x` rounded to bf16 (round to nearest even), as quantizeRows stores q4 scales. */
function bf16Round(x: number): number {
  const bits = new Uint16Array(f32ToBf16(new Float32Array([x])).slice().buffer)[0];
  return new Float32Array(new Uint32Array([bits << 16]).buffer)[0];
}

Deno.test("f32ToBf16 rounds to nearest even and keeps NaN", () => {
  const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, -2.5, 3.4e38, NaN, -0]);
  const b = new Uint16Array(f32ToBf16(x).slice().buffer);
  assert.equal(b[0], 0x3f80); // halfway → even (1)
  assert.equal(b[1], 0x3f82); // halfway → even (1 + 2^-6)
  assert.equal(b[2], 0x3f81); // above halfway → up
  assert.equal(b[3], 0xc020);
  assert.equal(b[4], 0x7f80); // rounds past the largest bf16 → inf
  assert.ok((b[5] & 0x7f80) === 0x7f80 && (b[5] & 0x7f) !== 0);
  assert.equal(b[6], 0x8000);
});

Deno.test("WeightConverter: bf16 / f16 / f32 sources give the same bytes as quantizeRows on their values", () => {
  const rng = new Rng(3);
  const w = testWeights(rng, 8, 96);
  const bf = f32ToBf16(w).slice();
  const wide = new Float32Array(
    new Uint32Array(Array.from(new Uint16Array(bf.buffer), (u) => u << 16)).buffer,
  );
  const c = new WeightConverter();
  for (const dtype of ["q8", "q4"] as const) {
    assert.deepEqual(c.convert(bf, "BF16", dtype).slice(), quantizeRows(wide, dtype));
    // An unaligned F32 view is copied before reading.
    const raw = new Uint8Array(w.byteLength + 1);
    raw.set(new Uint8Array(w.buffer), 1);
    assert.deepEqual(c.convert(raw.subarray(1), "F32", dtype).slice(), quantizeRows(w, dtype));
  }
  // f16 1.5, −2, 2^-24 (subnormal) → bf16.
  const h = new Uint8Array(new Uint16Array([0x3e00, 0xc000, 0x0001]).buffer);
  assert.deepEqual(Array.from(new Uint16Array(c.convert(h, "F16", "bf16").slice().buffer)), [
    0x3fc0,
    0xc000,
    0x3380,
  ]);
});

Deno.test("loadWeightDtype: which parameters are quantized", () => {
  assert.equal(loadWeightDtype("auto", "BF16", [64, 64]), "bf16");
  assert.equal(loadWeightDtype("auto", "F32", [64, 64]), "f32");
  assert.equal(loadWeightDtype("bf16", "F32", [64, 64]), "bf16");
  assert.equal(loadWeightDtype("q8", "BF16", [320, 64]), "q8");
  assert.equal(loadWeightDtype("q4", "F32", [4096, 14336]), "q4");
  assert.equal(loadWeightDtype("q4", "BF16", [1280, 3, 14, 14]), "bf16"); // rows of 588
  assert.equal(loadWeightDtype("q8", "F32", [48, 33]), "bf16");
  // q4 pairs the scales of two groups: rows of 96 stay bf16, q8 takes them.
  assert.equal(loadWeightDtype("q4", "BF16", [64, 96]), "bf16");
  assert.equal(loadWeightDtype("q8", "BF16", [64, 96]), "q8");
});

// ---------------------------------------------------------------- snippets on the GPU

/** A quantized weight on the GPU and its dequantized values. */
function quantWeight(gpu: Gpu, owner: BufferOwner, rows: number, cols: number, dtype: QuantDtype, rng: Rng) {
  const w = testWeights(rng, rows, cols);
  const bytes = quantizeRows(w, dtype);
  const weight = new WeightStorage(owner, [rows, cols], dtype, `w ${dtype}`);
  assert.equal(weight.rowBytes, cols / 32 * groupBytes(dtype));
  // Upload in two pieces, each quantized on its own, as the loader streams them.
  const half = Math.floor(rows / 2);
  weight.writeRows(gpu, 0, quantizeRows(w.subarray(0, half * cols), dtype));
  weight.writeRows(gpu, half, quantizeRows(w.subarray(half * cols), dtype));
  return { weight, values: dequantizeRows(bytes, dtype, rows * cols) };
}

async function checkLinear(gpu: Gpu, dtype: QuantDtype, M: number, K: number, N: number, seed: number) {
  const rng = new Rng(seed);
  let chunks = 0;
  await withOwner(gpu, async (owner) => {
    const { weight, values } = quantWeight(gpu, owner, N, K, dtype, rng);
    chunks = weight.chunks.length;
    const xv = rng.normals(M * K);
    const bv = rng.normals(N, 0.1);
    const x = owner.upload(xv, "x");
    const bias = owner.upload(bv, "bias");
    const out = owner.storage(M * N * 4, "out");
    record(gpu, (rec) => linear(rec, weight, x, M, out, bias));
    const got = await readF32(gpu, out, M * N);
    // Decoding with q8 / q4 weights (few tokens) rounds the activations to int8 groups too (matvec_q8 / q4.wgsl).
    const xUsed = roundsActivations(dtype, M, K) ? quantizeActivationsRef(xv) : xv;
    const ref = linearRef(xUsed, values, M, K, N).map((v, i) => v + bv[i % N]);
    assertClose(`linear ${dtype} M=${M} K=${K} N=${N}`, got, ref, 1e-5);
  });
  return chunks;
}

gpuTest(
  "linear with q8 / q4 weights equals x · dequant(W)ᵀ (decode: q8 with int8 activations; prefill)",
  async () => {
    const gpu = await testGpu();
    for (const dtype of ["q8", "q4"] as const) {
      await checkLinear(gpu, dtype, 1, 256, 40, 10);
      await checkLinear(gpu, dtype, 3, 64, 33, 11);
      await checkLinear(gpu, dtype, 13, dtype === "q4" ? 192 : 96, 22, 12);
      await checkLinear(gpu, dtype, 2, 4096, 9, 13);
      // The longest rows quantized in workgroup memory (448 groups; the loop is not cut short), and longer
      // ones, which take the float path.
      await checkLinear(gpu, dtype, 1, 14336, 5, 14);
      await checkLinear(gpu, dtype, 1, dtype === "q4" ? 14400 : 14368, 3, 15);
    }
  },
);

gpuTest("linear q8 / q4 split: W by rows across bindings", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  assert.ok(await checkLinear(gpu, "q8", 5, 128, 100, 20) > 1, "W must be split by rows");
  assert.ok(await checkLinear(gpu, "q4", 17, 256, 90, 21) > 1, "W must be split by rows");
});

gpuTest("embedding with q8 / q4 tables gathers dequantized rows exactly", async () => {
  for (const gpu of [await testGpu(), await testGpu(SPLIT_BYTES)]) {
    for (const dtype of ["q8", "q4"] as const) {
      const rng = new Rng(30);
      await withOwner(gpu, async (owner) => {
        const V = 150, F = 8, D = 64, T = 23;
        const base = quantWeight(gpu, owner, V, D, dtype, rng);
        const fusion = quantWeight(gpu, owner, F, D, dtype, rng);
        const ids = new Int32Array(T);
        for (let t = 0; t < T; t++) ids[t] = rng.int(V + F);
        ids.set([0, V - 1, V, V + F - 1]);
        const tokens = owner.upload(ids, "tokens");
        const out = owner.storage(T * D * 4, "out");
        record(gpu, (rec) => {
          embedding(rec, base.weight, 0, tokens, T, out);
          embedding(rec, fusion.weight, V, tokens, T, out);
        });
        const got = await readF32(gpu, out, T * D);
        assertClose(`embedding ${dtype}`, got, embeddingRef(base.values, fusion.values, V, D, ids), 0);
      });
    }
  }
});

gpuTest(
  "WeightStorage: q8 / q4 sizes, chunk layout (header, values, scales; q4 in blocks of 8 rows), bad rows refused",
  async () => {
    const gpu = await testGpu();
    const owner = new BufferOwner(gpu);
    try {
      assert.equal(new WeightStorage(owner, [4, 4096], "q8", "q8").rowBytes, 4096 / 32 * 36);
      assert.equal(new WeightStorage(owner, [4, 4096], "q4", "q4").rowBytes, 4096 / 32 * 18);
      assert.throws(() => new WeightStorage(owner, [4, 48], "q8", "bad"), /multiple of 32/);
      assert.throws(() => new WeightStorage(owner, [4, 96], "q4", "bad"), /multiple of 64/);
      assert.throws(() => new WeightStorage(owner, [4, 64], "q8", "q8").rowRange(0, 0, 32), /no contiguous/);
      // Split across chunks and written in pieces that straddle them: each chunk is the header, the
      // values of its rows, then their scales.
      const splitGpu = await testGpu(SPLIT_BYTES);
      const split = new BufferOwner(splitGpu);
      try {
        for (const dtype of ["q8", "q4"] as const) {
          const rows = 70, cols = 128;
          const w = testWeights(new Rng(5), rows, cols);
          const weight = new WeightStorage(split, [rows, cols], dtype, dtype);
          assert.ok(weight.chunks.length > 1);
          for (let r = 0; r < rows; r += 9) {
            const n = Math.min(9, rows - r);
            weight.writeRows(splitGpu, r, quantizeRows(w.subarray(r * cols, (r + n) * cols), dtype));
          }
          for (const c of weight.chunks) {
            // q4 pads a chunk's rows to whole blocks of 8.
            const bufferRows = dtype === "q4" ? Math.ceil(c.rowCount / 8) * 8 : c.rowCount;
            const vb = (dtype === "q8" ? cols : cols / 2) * bufferRows;
            const words = new Uint8Array(
              (await readF32(splitGpu, c.buffer, 4 + (bufferRows * weight.rowBytes) / 4)).buffer,
            );
            assert.equal(new DataView(words.buffer).getUint32(0, true), (16 + vb) / 4);
            const piece = quantizeRows(
              w.subarray(c.rowStart * cols, (c.rowStart + c.rowCount) * cols),
              dtype,
            );
            assert.deepEqual(words.subarray(16), dtype === "q8" ? piece : q4Blocked(piece, c.rowCount, cols));
          }
        }
      } finally {
        split.destroy();
      }
    } finally {
      owner.destroy();
    }
  },
);

/**
 * A q4 piece (quantizeRows: values of all rows, then scales, row-major) as it lies in a chunk buffer after
 * the header: rows in blocks of 8, [row / 8][group][row % 8], values then scales, the last block padded.
 * Written from the layout's description, not with q4Slot.
 */
function q4Blocked(piece: Uint8Array, rows: number, cols: number): Uint8Array {
  const gpr = cols / 32, padded = Math.ceil(rows / 8) * 8;
  const src = new Uint32Array(piece.buffer, piece.byteOffset, (rows * gpr * 16) / 4);
  const scales = new Uint16Array(piece.buffer, piece.byteOffset + rows * gpr * 16, rows * gpr);
  const out = new Uint32Array(padded * gpr * 4 + (padded * gpr) / 2);
  const words = new Uint16Array(out.buffer, padded * gpr * 16);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < gpr; g++) {
      const slot = Math.floor(r / 8) * 8 * gpr + 8 * g + (r % 8);
      for (let j = 0; j < 4; j++) out[slot * 4 + j] = src[(r * gpr + g) * 4 + j];
      // Scales: [row / 8][group pair][row % 8] words, the even group in the low half.
      const word = Math.floor(r / 8) * 4 * gpr + 8 * Math.floor(g / 2) + (r % 8);
      words[2 * word + (g % 2)] = scales[r * gpr + g];
    }
  }
  return new Uint8Array(out.buffer);
}

// ---------------------------------------------------------------- golden fixtures

function t(g: Map<string, GoldenTensor>, name: string) {
  const x = g.get(name);
  if (!x) throw new Error(`fixture has no ${name}`);
  return { data: x.data, shape: x.shape };
}

/** Full forward of the fixture's tokens (and encoder input). */
async function fullForward(model: TransformerDecoder, g: Map<string, GoldenTensor>): Promise<Float32Array> {
  const enc = g.get("encoder_input");
  using logits = model.forward(t(g, "tokens") as { data: Int32Array; shape: number[] }, {
    encoder_input: enc ? t(g, "encoder_input") as { data: Float32Array; shape: number[] } : null,
    encoder_mask: enc ? t(g, "encoder_mask") : null,
  });
  return (await logits.read()).data;
}

/**
 * Prefill + decode steps as decoder_test.ts's cached loop, but feeding the golden greedy ids (teacher
 * forcing), so the logits of every step are comparable with `decode_logits`. Returns them and how many
 * of the model's own argmax ids equal `greedy_ids`.
 */
async function cachedDecode(model: TransformerDecoder, g: Map<string, GoldenTensor>) {
  const tokens = t(g, "tokens");
  const [batch, seq] = tokens.shape;
  const prefillMask = t(g, "prefill_mask");
  const L = prefillMask.shape[2];
  const enc = g.get("encoder_input");
  model.setup_caches(batch, { decoder_max_seq_len: L, encoder_max_seq_len: enc ? enc.shape[1] : undefined });
  const V = model.output.out_dim;
  const steps = t(g, "decode_input_pos").data.length;
  const greedy = t(g, "greedy_ids").data;
  const all = new Float32Array(batch * (steps + 1) * V);
  let agree = 0;
  const keep = (logits: Float32Array, rowOf: (b: number) => number, step: number) => {
    for (let b = 0; b < batch; b++) {
      const r = rowOf(b);
      all.set(logits.subarray(r * V, (r + 1) * V), (b * (steps + 1) + step) * V);
      if (argmaxRow(logits, r, V) === greedy[b * (steps + 1) + step]) agree++;
    }
  };
  {
    using out = model.forward(tokens as { data: Int32Array; shape: number[] }, {
      mask: prefillMask,
      input_pos: t(g, "prefill_input_pos") as { data: Int32Array; shape: number[] },
      encoder_input: enc ? t(g, "encoder_input") as { data: Float32Array; shape: number[] } : null,
      encoder_mask: enc ? t(g, "encoder_mask") : null,
    });
    keep((await out.read()).data, (b) => b * seq + seq - 1, 0);
  }
  const decodePos = t(g, "decode_input_pos").data;
  for (let step = 1; step <= steps; step++) {
    const next = new Int32Array(batch);
    for (let b = 0; b < batch; b++) next[b] = greedy[b * (steps + 1) + step - 1];
    const mask = new Uint8Array(batch * L);
    for (let b = 0; b < batch; b++) mask.fill(1, b * L, b * L + seq + step);
    using out = model.forward({ data: next, shape: [batch, 1] }, {
      mask: { data: mask, shape: [batch, 1, L] },
      input_pos: { data: new Int32Array(batch).fill(decodePos[step - 1]), shape: [batch, 1] },
      encoder_mask: enc ? t(g, "decode_encoder_mask") : null,
    });
    keep((await out.read()).data, (b) => b, step);
  }
  return { logits: all, agree, total: batch * (steps + 1) };
}

/**
 * Measured max |Δ logits| against torchtune's f32 logits (Vulkan and GL agree to ~1e-6) and greedy ids
 * that agree over the teacher-forced cached steps (prefill + 6 decode steps: 7 ids for tiny_gqa's batch
 * of 1, 14 for tiny_textonly's batch of 2). The bounds
 * are the measurements ×1.5 (errors) and the measured agreement (ids). The fixtures' weights are
 * Gaussian (no outlier structure) and only 64 wide, so their q4 error is a worst case, not a prediction
 * for a trained model. The rms of the golden logits is about 0.4.
 */
const GOLDEN_BOUNDS: Record<string, Record<QuantDtype, { full: number; cached: number; agree: number }>> = {
  tiny_gqa: { q8: { full: 0.04, cached: 0.03, agree: 7 }, q4: { full: 0.53, cached: 0.43, agree: 4 } },
  tiny_textonly: { q8: { full: 0.034, cached: 0.033, agree: 14 }, q4: { full: 0.6, cached: 0.56, agree: 9 } },
};

for (const name of ["tiny_gqa", "tiny_textonly"]) {
  for (const dtype of ["q8", "q4"] as const) {
    const bound = GOLDEN_BOUNDS[name][dtype];
    gpuTest(
      `${name} loaded as ${dtype}: logits within ${bound.full} of torchtune's, greedy agreement`,
      async () => {
        const gpu = await testGpu();
        const g = await readGolden(`${fixtureDir(name)}/tensors.safetensors`);
        using model = await loadDecoder(await checkpointDir(name), { gpu, dtype });
        const dtypes = new Map(model.named_parameters().map(([n, p]) => [n, p.storage.dtype]));
        assert.equal(dtypes.get("layers.0.attn.q_proj.weight"), dtype);
        assert.equal(dtypes.get("output.weight"), dtype);
        assert.equal(dtypes.get("tok_embeddings.weight"), dtype);
        assert.equal(dtypes.get("norm.scale"), "f32");
        const full = maxAbsDiff(await fullForward(model, g), g.get("logits")!.data);
        const { logits, agree, total } = await cachedDecode(model, g);
        const cached = maxAbsDiff(logits, g.get("decode_logits")!.data);
        console.log(
          `${name} ${dtype}: full forward max |Δ| = ${
            full.toExponential(2)
          }, cached (teacher-forced) max |Δ| = ${
            cached.toExponential(2)
          }, greedy ids agree ${agree}/${total}`,
        );
        assert.ok(full < bound.full, `full forward max |Δ| ${full}`);
        assert.ok(cached < bound.cached, `cached max |Δ| ${cached}`);
        assert.ok(agree >= bound.agree, `greedy agreement ${agree}/${total}`);
      },
    );
  }
}

gpuTest(
  "tiny_gqa f32 checkpoint loaded as bf16: torch's bf16 bits on the GPU, logits near bf16w_logits",
  async () => {
    const gpu = await testGpu();
    const g = await readGolden(`${fixtureDir("tiny_gqa")}/tensors.safetensors`);
    const bf16 = await readGolden(`${fixtureDir("tiny_gqa")}/weights_hf_bf16.safetensors`);
    using model = await loadDecoder(await checkpointDir("tiny_gqa"), { gpu, dtype: "bf16" });
    const params = new Map(model.named_parameters());
    assert.equal(params.get("layers.0.attn.q_proj.weight")!.storage.dtype, "bf16");
    assert.equal(params.get("norm.scale")!.storage.dtype, "f32");
    // The converted lm_head is bit for bit torch's `.to(torch.bfloat16)` (round to nearest even).
    const out = params.get("output.weight")!.storage;
    const words = await readF32(gpu, out.chunks[0].buffer, out.rows * out.cols / 2);
    assert.deepEqual(new Uint16Array(words.buffer), bf16.get("language_model.lm_head.weight")!.bits);
    // bf16w_logits also rounded the norm scales to bf16; here they stay f32.
    const err = maxAbsDiff(await fullForward(model, g), g.get("bf16w_logits")!.data);
    console.log(`tiny_gqa f32 → bf16 at load: max |Δ| vs bf16w_logits = ${err.toExponential(2)}`);
    assert.ok(err < 8e-3, `max abs error ${err}`);
  },
);

gpuTest("tiny_gqa bf16 checkpoint loaded as q8: logits within 0.05 of the f32 golden ones", async () => {
  const gpu = await testGpu();
  const g = await readGolden(`${fixtureDir("tiny_gqa")}/tensors.safetensors`);
  using model = await loadDecoder(await checkpointDir("tiny_gqa", "weights_hf_bf16.safetensors"), {
    gpu,
    dtype: "q8",
  });
  const err = maxAbsDiff(await fullForward(model, g), g.get("logits")!.data);
  console.log(`tiny_gqa bf16 checkpoint as q8: max |Δ| vs f32 logits = ${err.toExponential(2)}`);
  assert.ok(err < 0.05, `max abs error ${err}`); // measured 3.3e-2
});

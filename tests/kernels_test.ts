/**
 * Every kernel (through its op in src/gpu/ops.ts) against the plain TypeScript references in
 * helpers/reference.ts, on seeded random data. Tolerance: |got − ref| ≤ rtol·(|ref| + rms(ref)) per
 * element with rtol = 1e-5 (see assertClose). The "split" tests use a device whose storage-binding
 * limit is lowered to 4096 bytes, so weights are split by rows and activations processed in token ranges.
 */
import assert from "node:assert/strict";
import type { Gpu } from "../src/gpu/device.ts";
import { type BufferOwner, type WeightDtype, WeightStorage } from "../src/gpu/buffers.ts";
import {
  attention,
  type AttentionMask,
  embedding,
  gatedResidual,
  kvCacheUpdate,
  linear,
  linearSplit,
  quantizesActivations,
  rmsNorm,
  rope,
  ropeKvUpdate,
  swiglu,
} from "../src/gpu/ops.ts";
import { dequantizeRows, quantizeRows } from "../src/checkpoint/quantize.ts";
import { gpuTest, readF32, record, testGpu, withOwner } from "./helpers/gpu.ts";
import {
  assertClose,
  attentionRef,
  embeddingRef,
  ERRORS,
  gatedResidualRef,
  kvCacheUpdateRef,
  linearRef,
  quantizeActivationsRef,
  randomBf16,
  randomF16,
  rmsNormRef,
  Rng,
  ropeRef,
  roundsActivations,
  swigluRef,
} from "./helpers/reference.ts";

const SPLIT_BYTES = 4096;

/** Bytes one binding window may hold for whole items (what ops.ts plans with). */
function room(gpu: Gpu): number {
  return gpu.limits.maxBindingBytes - gpu.limits.storageOffsetAlignment;
}

/** A weight `[rows, cols]` with random values in `dtype`, and those values as f32 (q8 / q4: as quantized). */
function makeWeight(
  gpu: Gpu,
  owner: BufferOwner,
  rows: number,
  cols: number,
  dtype: WeightDtype,
  rng: Rng,
): { weight: WeightStorage; values: Float32Array } {
  let values: Float32Array;
  let bytes: Uint8Array;
  if (dtype === "f32") {
    values = rng.normals(rows * cols, 0.5);
    bytes = new Uint8Array(values.buffer);
  } else if (dtype === "q8" || dtype === "q4") {
    bytes = quantizeRows(rng.normals(rows * cols, 0.5), dtype);
    values = dequantizeRows(bytes, dtype, rows * cols);
  } else {
    const r = dtype === "bf16" ? randomBf16(rng, rows * cols) : randomF16(rng, rows * cols);
    values = r.values;
    bytes = new Uint8Array(r.bits.buffer);
  }
  const weight = new WeightStorage(owner, [rows, cols], dtype, `w ${dtype} [${rows}, ${cols}]`);
  weight.writeRows(gpu, 0, bytes);
  return { weight, values };
}

// ---------------------------------------------------------------- embedding

async function checkEmbedding(
  gpu: Gpu,
  dtype: WeightDtype,
  V: number,
  F: number,
  D: number,
  T: number,
  seed: number,
): Promise<number> {
  const rng = new Rng(seed);
  let chunks = 0;
  await withOwner(gpu, async (owner) => {
    const base = makeWeight(gpu, owner, V, D, dtype, rng);
    const fusion = makeWeight(gpu, owner, F, D, dtype, rng);
    chunks = base.weight.chunks.length;
    const ids = new Int32Array(T);
    for (let t = 0; t < T; t++) ids[t] = rng.int(V + F);
    ids.set([0, V - 1, V, V + F - 1].slice(0, T));
    const tokens = owner.upload(ids, "tokens");
    const out = owner.storage(T * D * 4, "out");
    record(gpu, (rec) => {
      embedding(rec, base.weight, 0, tokens, T, out);
      embedding(rec, fusion.weight, V, tokens, T, out);
    });
    const got = await readF32(gpu, out, T * D);
    assertClose(`embedding ${dtype}`, got, embeddingRef(base.values, fusion.values, V, D, ids), 0);
  });
  return chunks;
}

gpuTest("embedding: base + fusion tables, f32 and bf16 (odd dim)", async () => {
  const gpu = await testGpu();
  await checkEmbedding(gpu, "f32", 100, 8, 24, 19, 1);
  await checkEmbedding(gpu, "bf16", 77, 5, 23, 9, 2);
  await checkEmbedding(gpu, "bf16", 50, 3, 16, 1, 3);
});

gpuTest("embedding split: base table in several chunks, tokens in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  // f32 dim 24: 96-byte rows, ~42 per chunk → 8 chunks; 60 tokens × 96 bytes exceed one window.
  assert.ok(60 * 24 * 4 > room(gpu));
  assert.ok(await checkEmbedding(gpu, "f32", 300, 8, 24, 60, 4) >= 3);
  // bf16 dim 23: 46-byte rows, even row counts per chunk.
  assert.ok(await checkEmbedding(gpu, "bf16", 301, 7, 23, 90, 5) >= 3);
});

// ---------------------------------------------------------------- linear

async function checkLinear(
  gpu: Gpu,
  dtype: WeightDtype,
  M: number,
  K: number,
  N: number,
  seed: number,
  rtol = 1e-5,
): Promise<number> {
  const rng = new Rng(seed);
  let chunks = 0;
  await withOwner(gpu, async (owner) => {
    const { weight, values } = makeWeight(gpu, owner, N, K, dtype, rng);
    chunks = weight.chunks.length;
    const xv = rng.normals(M * K);
    const x = owner.upload(xv, "x");
    const out = owner.storage(M * N * 4, "out");
    record(gpu, (rec) => linear(rec, weight, x, M, out));
    const got = await readF32(gpu, out, M * N);
    assertClose(`linear ${dtype} M=${M} K=${K} N=${N}`, got, linearRef(xv, values, M, K, N), rtol);
  });
  return chunks;
}

// ---------------------------------------------------------------- stacked weights (WeightStorage.slice)

/**
 * Weights of `sizes` rows each, stacked in one weight and written through their slices (as the loader
 * writes q, k and v): each slice's product with `linear` (every kernel, chosen by M) and the stack's
 * product split into one output per slice (`linearSplit`, M < 4) against the reference.
 */
async function checkStacked(
  gpu: Gpu,
  dtype: WeightDtype,
  M: number,
  K: number,
  sizes: number[],
  seed: number,
): Promise<number> {
  const rng = new Rng(seed);
  let chunks = 0;
  await withOwner(gpu, async (owner) => {
    const total = sizes.reduce((a, b) => a + b, 0);
    const stack = new WeightStorage(owner, [total, K], dtype, `stack ${dtype}`);
    chunks = stack.chunks.length;
    const xv = rng.normals(M * K);
    const x = owner.upload(xv, "x");
    const parts: { w: WeightStorage; values: Float32Array; out: GPUBuffer; split: GPUBuffer }[] = [];
    let row0 = 0;
    for (const n of sizes) {
      const w = stack.slice(row0, n);
      row0 += n;
      let values: Float32Array;
      if (dtype === "q8" || dtype === "q4") {
        const bytes = quantizeRows(rng.normals(n * K, 0.5), dtype);
        values = dequantizeRows(bytes, dtype, n * K);
        w.writeRows(gpu, 0, bytes);
      } else if (dtype === "f32") {
        values = rng.normals(n * K, 0.5);
        w.writeRows(gpu, 0, new Uint8Array(values.buffer));
      } else {
        const r = dtype === "bf16" ? randomBf16(rng, n * K) : randomF16(rng, n * K);
        values = r.values;
        w.writeRows(gpu, 0, new Uint8Array(r.bits.buffer));
      }
      parts.push({
        w,
        values,
        out: owner.storage(M * n * 4, "out"),
        split: owner.storage(M * n * 4, "split"),
      });
    }
    record(gpu, (rec) => {
      for (const p of parts) linear(rec, p.w, x, M, p.out);
      if (M < 4) linearSplit(rec, stack, x, M, parts.map((p, i) => ({ buffer: p.split, rows: sizes[i] })));
    });
    // Decoding with q8 / q4 weights rounds the activations to int8 groups too (matvec_q8 / q4.wgsl).
    const xUsed = roundsActivations(dtype, M, K) ? quantizeActivationsRef(xv) : xv;
    for (const [i, p] of parts.entries()) {
      const ref = linearRef(xUsed, p.values, M, K, sizes[i]);
      const name = `stacked ${dtype} M=${M} K=${K} part ${i} of [${sizes}]`;
      assertClose(name, await readF32(gpu, p.out, M * sizes[i]), ref, 1e-5);
      if (M < 4) assertClose(`${name}, split`, await readF32(gpu, p.split, M * sizes[i]), ref, 1e-5);
    }
  });
  return chunks;
}

gpuTest("stacked weights: slices and split products (q/k/v, w1/w3), every dtype, 1-13 tokens", async () => {
  const gpu = await testGpu();
  for (const [i, dtype] of (["f32", "bf16", "f16", "q8", "q4"] as WeightDtype[]).entries()) {
    if (dtype === "f16" && !gpu.hasShaderF16) continue;
    // q, k, v of GQA (rows not multiples of 8), and w1 / w3; decode, the linear.wgsl and matmul sizes.
    await checkStacked(gpu, dtype, 1, 64, [48, 20, 20], 140 + i);
    // Odd group counts (3, 1); q4 rows are pairs of groups: an odd pair count (3), one pair.
    await checkStacked(gpu, dtype, 2, dtype === "q4" ? 192 : 96, [40, 40], 150 + i);
    await checkStacked(gpu, dtype, 13, dtype === "q4" ? 64 : 32, [24, 8, 8], 160 + i);
  }
});

gpuTest(
  "RMSNorm folded into quantized decoding products (linear, and linearSplit as for q/k/v)",
  async () => {
    const gpu = await testGpu();
    for (const [i, dtype] of (["q8", "q4"] as const).entries()) {
      for (const M of [1, 3]) {
        const rng = new Rng(190 + 2 * i + M);
        const K = 320, N = 48, eps = 1e-5;
        await withOwner(gpu, async (owner) => {
          const { weight: w, values } = makeWeight(gpu, owner, N, K, dtype, rng);
          const xv = rng.normals(M * K, 3), sv = rng.normals(K, 1);
          const x = owner.upload(xv, "x");
          const rmsNorm = { scale: owner.upload(sv, "scale"), eps };
          const out = owner.storage(M * N * 4, "out");
          const parts = [32, 8, 8].map((rows) => ({ buffer: owner.storage(M * rows * 4, "part"), rows }));
          record(gpu, (rec) => {
            linear(rec, w, x, M, out, null, false, { rmsNorm });
            linearSplit(rec, w, x, M, parts, rmsNorm);
          });
          const normed = Float32Array.from(rmsNormRef(xv, M, K, sv, eps));
          const ref = linearRef(quantizeActivationsRef(normed), values, M, K, N);
          assertClose(`folded rms_norm ${dtype} M=${M}`, await readF32(gpu, out, M * N), ref, 1e-5);
          let col = 0;
          for (const p of parts) {
            const got = await readF32(gpu, p.buffer, M * p.rows);
            const want = Float64Array.from(
              { length: M * p.rows },
              (_, j) => ref[Math.floor(j / p.rows) * N + col + (j % p.rows)],
            );
            assertClose(`folded rms_norm ${dtype} M=${M}, split at ${col}`, got, want, 1e-5);
            col += p.rows;
          }
        });
      }
    }
  },
);

gpuTest(
  "SwiGLU fused into quantized decoding products: silu(gate) ⊙ up quantized by the product",
  async () => {
    const gpu = await testGpu();
    for (const [i, dtype] of (["q8", "q4"] as const).entries()) {
      for (const M of [1, 3]) {
        const rng = new Rng(180 + 2 * i + M);
        const K = 256, N = 40;
        await withOwner(gpu, async (owner) => {
          const { weight: w, values } = makeWeight(gpu, owner, N, K, dtype, rng);
          assert.ok(quantizesActivations(gpu, w, M));
          const gv = rng.normals(M * K, 2), uv = rng.normals(M * K);
          const out = owner.storage(M * N * 4, "out");
          record(gpu, (rec) => {
            linear(rec, w, owner.upload(gv, "gate"), M, out, null, false, {
              swigluUp: owner.upload(uv, "up"),
            });
          });
          const ref = linearRef(
            quantizeActivationsRef(Float32Array.from(swigluRef(gv, uv))),
            values,
            M,
            K,
            N,
          );
          assertClose(`fused swiglu ${dtype} M=${M}`, await readF32(gpu, out, M * N), ref, 1e-5);
        });
      }
    }
  },
);

gpuTest(
  "SwiGLU applied by any product: a pass before those that do not quantize their input",
  async () => {
    // Prefill sizes (both matmul kernels), a decode size with float weights (matvec.wgsl), an odd K
    // (linear.wgsl), and token ranges (the 4,096-byte binding limit).
    const cases = [
      [await testGpu(), "bf16", 70, 64, 40],
      [await testGpu(), "f32", 20, 32, 300],
      [await testGpu(), "q4", 33, 64, 24],
      [await testGpu(), "f32", 2, 64, 24],
      [await testGpu(), "f32", 20, 33, 10],
      [await testGpu(0, false), "bf16", 70, 64, 40],
      [await testGpu(SPLIT_BYTES), "f32", 40, 64, 30],
    ] as const;
    for (const [i, [gpu, dtype, M, K, N]] of cases.entries()) {
      const rng = new Rng(190 + i);
      await withOwner(gpu, async (owner) => {
        const { weight: w, values } = makeWeight(gpu, owner, N, K, dtype, rng);
        const gv = rng.normals(M * K, 2), uv = rng.normals(M * K);
        const out = owner.storage(M * N * 4, "out");
        record(gpu, (rec) => {
          linear(rec, w, owner.upload(gv, "gate"), M, out, null, false, { swigluUp: owner.upload(uv, "up") });
        });
        const ref = linearRef(Float32Array.from(swigluRef(gv, uv)), values, M, K, N);
        assertClose(`swiglu ${dtype} M=${M} K=${K} N=${N}`, await readF32(gpu, out, M * N), ref, 1e-5);
      });
    }
  },
);

gpuTest("stacked weights split: a stack over several chunks, slices across chunk boundaries", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  // bf16 K=64: 128-byte rows, ~31 per chunk; f32 K=32 likewise; q4 K=64: 36-byte rows.
  assert.ok(await checkStacked(gpu, "bf16", 1, 64, [50, 25, 25], 170) >= 3);
  assert.ok(await checkStacked(gpu, "f32", 3, 32, [70, 33], 171) >= 3);
  assert.ok(await checkStacked(gpu, "q4", 1, 64, [90, 45, 45], 172) >= 2);
  assert.ok(await checkStacked(gpu, "q8", 8, 64, [60, 30, 30], 173) >= 2);
});

gpuTest("linear f32: decode M=1, M=13, K and N not multiples of 4", async () => {
  const gpu = await testGpu();
  await checkLinear(gpu, "f32", 1, 64, 40, 10);
  await checkLinear(gpu, "f32", 13, 37, 30, 11);
  await checkLinear(gpu, "f32", 13, 64, 7, 12);
  await checkLinear(gpu, "f32", 5, 3, 5, 13);
});

gpuTest("matmul lane layouts: few rows take few lanes along them and more tokens per workgroup", async () => {
  // matmul_subgroup.wgsl where the adapter has subgroups (8 rows × 16 tokens per invocation, at least a
  // subgroup's lanes along the rows), and matmul.wgsl (16 rows × 8 tokens) on a device without them.
  const withSubgroups = await testGpu();
  const without = await testGpu(0, false);
  assert.equal(without.subgroupSizes, null);
  for (const gpu of withSubgroups.subgroupSizes ? [withSubgroups, without] : [without]) {
    // 100 rows: 16 lanes along the rows (8 with matmul.wgsl); 300 rows: 64 (32); 150 tokens: a
    // part-filled last workgroup along the tokens.
    await checkLinear(gpu, "f32", 150, 64, 100, 14);
    await checkLinear(gpu, "bf16", 150, 32, 300, 15);
    // q4 slices of 20 and 12 rows (lanes past the last row), 70 tokens.
    await checkStacked(gpu, "q4", 70, 64, [20, 12], 16);
    // 1,100 rows: more than one workgroup along the rows; 17 tokens: one token past a tile.
    await checkLinear(gpu, "q8", 17, 96, 1100, 17);
  }
});

gpuTest("linear bf16: even and odd K, M=1 and M=13; decoding with and without subgroups", async () => {
  // Decoding: matvec_subgroup.wgsl where the adapter has subgroups, matvec.wgsl on the device without.
  // K = 40: steps of 8 only; 70 rows: a subgroup with rows for some of its lanes.
  for (const gpu of [await testGpu(), await testGpu(0, false)]) {
    await checkLinear(gpu, "bf16", 1, 64, 10, 20);
    await checkLinear(gpu, "bf16", 2, 40, 70, 24);
    await checkLinear(gpu, "bf16", 3, 1024, 600, 25);
  }
  const gpu = await testGpu();
  await checkLinear(gpu, "bf16", 13, 33, 22, 21);
  await checkLinear(gpu, "bf16", 13, 38, 9, 22);
  await checkLinear(gpu, "bf16", 1, 7, 3, 23);
});

gpuTest("linear f16: even and odd K, M=1 and M=13", async () => {
  const gpu = await testGpu();
  await checkLinear(gpu, "f16", 1, 48, 7, 30);
  await checkLinear(gpu, "f16", 13, 35, 18, 31);
  await checkLinear(gpu, "f16", 13, 66, 13, 32);
});

gpuTest("linear K=20000: long dot products are not cut short", async () => {
  const gpu = await testGpu();
  await checkLinear(gpu, "f32", 5, 20000, 6, 40);
  await checkLinear(gpu, "bf16", 2, 20001, 5, 41);
  await checkLinear(gpu, "f16", 1, 20000, 3, 42);
});

gpuTest("linear split: W by rows and x/out in token ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  for (
    const [dtype, M, K, N, seed] of [["f32", 45, 37, 50, 50], ["bf16", 45, 33, 80, 51], [
      "f16",
      60,
      36,
      70,
      52,
    ]] as const
  ) {
    assert.ok(M * Math.max(K, N) * 4 > room(gpu), "x/out must need several token ranges");
    assert.ok(await checkLinear(gpu, dtype, M, K, N, seed) > 1, "W must be split by rows");
  }
});

// ---------------------------------------------------------------- rmsNorm

async function checkRmsNorm(gpu: Gpu, rows: number, dim: number, eps: number, seed: number): Promise<void> {
  const rng = new Rng(seed);
  await withOwner(gpu, async (owner) => {
    const xv = rng.normals(rows * dim, 2);
    const sv = Float32Array.from({ length: dim }, () => 1 + 0.2 * rng.normal());
    const x = owner.upload(xv, "x");
    const scale = owner.upload(sv, "scale");
    const out = owner.storage(rows * dim * 4, "out");
    record(gpu, (rec) => rmsNorm(rec, x, rows, dim, scale, eps, out));
    const got = await readF32(gpu, out, rows * dim);
    assertClose(`rmsNorm ${rows}x${dim}`, got, rmsNormRef(xv, rows, dim, sv, eps));
  });
}

gpuTest("rmsNorm: dim < 64, dim not a multiple of 64, eps; with and without subgroups", async () => {
  // rms_norm.wgsl with a subgroup per row (rows_subgroup.wgsl) where the adapter has subgroups, with a
  // workgroup per row (rows_workgroup.wgsl) on the device without them. 130 rows: a part-filled last workgroup of 8 rows.
  for (const gpu of [await testGpu(), await testGpu(0, false)]) {
    await checkRmsNorm(gpu, 7, 40, 1e-5, 60);
    await checkRmsNorm(gpu, 5, 200, 1e-6, 61);
    await checkRmsNorm(gpu, 3, 256, 1e-5, 62);
    await checkRmsNorm(gpu, 2, 1, 1e-5, 63);
    await checkRmsNorm(gpu, 130, 16, 1e-5, 64);
  }
});

gpuTest("rmsNorm split: rows in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  assert.ok(30 * 100 * 4 > room(gpu));
  await checkRmsNorm(gpu, 30, 100, 1e-5, 65);
});

// ---------------------------------------------------------------- rope

/** A RoPE cos/sin table `[maxSeq, hd/2, 2]` (unscaled, base 500000). */
function ropeTable(maxSeq: number, hd: number): Float32Array {
  const tv = new Float32Array(maxSeq * hd);
  for (let p = 0; p < maxSeq; p++) {
    for (let i = 0; i < hd / 2; i++) {
      const angle = p * 500000 ** (-2 * i / hd);
      tv[(p * hd / 2 + i) * 2] = Math.cos(angle);
      tv[(p * hd / 2 + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return tv;
}

async function checkRope(gpu: Gpu, T: number, H: number, hd: number, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const maxSeq = 64;
  await withOwner(gpu, async (owner) => {
    const tv = ropeTable(maxSeq, hd);
    const pv = Int32Array.from({ length: T }, () => rng.int(maxSeq));
    const xv = rng.normals(T * H * hd);
    const x = owner.upload(xv, "x");
    const positions = owner.upload(pv, "positions");
    const table = owner.upload(tv, "table");
    record(gpu, (rec) => rope(rec, x, T, H, hd, positions, table));
    const got = await readF32(gpu, x, T * H * hd);
    assertClose(`rope T=${T} H=${H} hd=${hd}`, got, ropeRef(xv, T, H, hd, pv, tv));
  });
}

gpuTest("rope: interleaved pairs, positions per token", async () => {
  const gpu = await testGpu();
  await checkRope(gpu, 5, 3, 16, 70);
  await checkRope(gpu, 2, 4, 128, 71);
});

gpuTest("rope split: tokens in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  assert.ok(40 * 2 * 32 * 4 > room(gpu));
  await checkRope(gpu, 40, 2, 32, 72);
});

// ---------------------------------------------------------------- kvCacheUpdate

gpuTest("kvCacheUpdate: [b, nKv, L, hd] at slot0, other slots untouched", async () => {
  const gpu = await testGpu();
  for (
    const [b, s, nKv, hd, L, slot0, seed] of [[2, 3, 2, 8, 10, 4, 80], [1, 5, 1, 16, 5, 0, 81], [
      3,
      1,
      4,
      4,
      7,
      6,
      82,
    ]]
  ) {
    const rng = new Rng(seed);
    await withOwner(gpu, async (owner) => {
      const cv = rng.normals(b * nKv * L * hd);
      const sv = rng.normals(b * s * nKv * hd);
      const cv2 = rng.normals(b * nKv * L * hd);
      const sv2 = rng.normals(b * s * nKv * hd);
      const cache = owner.upload(cv, "k cache");
      const src = owner.upload(sv, "k");
      const cache2 = owner.upload(cv2, "v cache");
      const src2 = owner.upload(sv2, "v");
      record(gpu, (rec) => kvCacheUpdate(rec, src, src2, b, s, nKv, hd, cache, cache2, L, slot0));
      const got = await readF32(gpu, cache, cv.length);
      assertClose("kvCacheUpdate k", got, kvCacheUpdateRef(cv, sv, b, s, nKv, hd, L, slot0), 0);
      const got2 = await readF32(gpu, cache2, cv2.length);
      assertClose("kvCacheUpdate v", got2, kvCacheUpdateRef(cv2, sv2, b, s, nKv, hd, L, slot0), 0);
    });
  }
});

gpuTest("ropeKvUpdate: RoPE on q and k, k and v into the caches, in one dispatch", async () => {
  const gpu = await testGpu();
  for (const [b, s, H, nKv, hd, L, slot0, seed] of [[1, 1, 4, 2, 8, 10, 4, 85], [2, 3, 6, 2, 16, 7, 2, 86]]) {
    const rng = new Rng(seed);
    const T = b * s;
    await withOwner(gpu, async (owner) => {
      const tv = ropeTable(32, hd);
      const pv = Int32Array.from({ length: T }, () => rng.int(32));
      const qv = rng.normals(T * H * hd), kv = rng.normals(T * nKv * hd), vv = rng.normals(T * nKv * hd);
      const kc = rng.normals(b * nKv * L * hd), vc = rng.normals(b * nKv * L * hd);
      const q = owner.upload(qv, "q");
      const kCache = owner.upload(kc, "k cache"), vCache = owner.upload(vc, "v cache");
      const rope = { positions: owner.upload(pv, "positions"), table: owner.upload(tv, "table") };
      record(gpu, (rec) =>
        assert.ok(
          ropeKvUpdate(
            rec,
            { q, k: owner.upload(kv, "k"), v: owner.upload(vv, "v") },
            b,
            s,
            H,
            nKv,
            hd,
            rope,
            {
              k: kCache,
              v: vCache,
              len: L,
              slot0,
            },
          ),
        ));
      const name = `ropeKvUpdate b=${b} s=${s} H=${H} KV=${nKv} hd=${hd}`;
      assertClose(`${name} q`, await readF32(gpu, q, qv.length), ropeRef(qv, T, H, hd, pv, tv));
      const kRoped = ropeRef(kv, T, nKv, hd, pv, tv);
      assertClose(
        `${name} k`,
        await readF32(gpu, kCache, kc.length),
        kvCacheUpdateRef(kc, kRoped, b, s, nKv, hd, L, slot0),
      );
      assertClose(
        `${name} v`,
        await readF32(gpu, vCache, vc.length),
        kvCacheUpdateRef(vc, vv, b, s, nKv, hd, L, slot0),
        0,
      );
    });
  }
});

// ---------------------------------------------------------------- attention

interface AttentionCase {
  b: number;
  s: number;
  nHeads: number;
  nKv: number;
  hd: number;
  kvLen: number;
  mode: "none" | "causal" | "bits";
  /** For "bits": whether token t may see key j. */
  allowed?: (t: number, j: number) => boolean;
  /** For "bits": the mask's `used` (no row allows a key from it on). */
  used?: number;
  qScale?: number;
}

async function checkAttention(gpu: Gpu, c: AttentionCase, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const T = c.b * c.s;
  const allowed = c.mode === "none"
    ? () => true
    : c.mode === "causal"
    ? (t: number, j: number) => j <= t % c.s
    : c.allowed!;
  await withOwner(gpu, async (owner) => {
    const qv = rng.normals(T * c.nHeads * c.hd, c.qScale ?? 1);
    const kv = rng.normals(c.b * c.nKv * c.kvLen * c.hd);
    const vv = rng.normals(c.b * c.nKv * c.kvLen * c.hd);
    const q = owner.upload(qv, "q");
    const k = owner.upload(kv, "k");
    const v = owner.upload(vv, "v");
    const out = owner.storage(T * c.nHeads * c.hd * 4, "out");
    let mask: AttentionMask = { kind: c.mode } as AttentionMask;
    if (c.mode === "bits") {
      const words = Math.ceil(c.kvLen / 32);
      const bits = new Uint32Array(T * words);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < c.kvLen; j++) if (allowed(t, j)) bits[t * words + (j >> 5)] |= 1 << (j & 31);
      }
      mask = { kind: "bits", bits: owner.upload(bits, "mask"), words, used: c.used };
    }
    record(gpu, (rec) => attention(rec, q, c.b, c.s, c.nHeads, c.nKv, c.hd, k, v, c.kvLen, mask, out));
    const got = await readF32(gpu, out, qv.length);
    const ref = attentionRef(qv, c.b, c.s, c.nHeads, c.nKv, c.hd, kv, vv, c.kvLen, allowed);
    const name = `attention ${c.mode} h${c.nHeads}/kv${c.nKv} hd${c.hd} kvLen${c.kvLen}`;
    assertClose(name, got, ref);
    // A row that may see no key is exactly 0.
    for (let t = 0; t < T; t++) {
      let any = false;
      for (let j = 0; j < c.kvLen && !any; j++) any = allowed(t, j);
      if (!any) {
        const row = got.subarray(t * c.nHeads * c.hd, (t + 1) * c.nHeads * c.hd);
        assert.ok(row.every((x) => x === 0), `${name}: fully masked token ${t} must be 0`);
      }
    }
  });
}

/** A fixed random key pattern per token: dense, empty, one narrow key range, sparse. */
function bitsPattern(kvLen: number, seed: number): (t: number, j: number) => boolean {
  const rng = new Rng(seed);
  const rows = new Map<number, Uint8Array>();
  return (t, j) => {
    let row = rows.get(t);
    if (!row) {
      row = new Uint8Array(kvLen);
      const kind = t % 4;
      const lo = rng.int(kvLen);
      for (let i = 0; i < kvLen; i++) {
        row[i] = kind === 0
          ? (rng.next() < 0.6 ? 1 : 0)
          : kind === 1
          ? 0
          : kind === 2
          ? (i >= lo && i < lo + 10 ? 1 : 0)
          : (rng.next() < 0.05 ? 1 : 0);
      }
      rows.set(t, row);
    }
    return row[j] === 1;
  };
}

gpuTest("attention: GQA / MHA / MQA, modes none and causal, head_dim 16 and 128", async () => {
  const gpu = await testGpu();
  await checkAttention(gpu, { b: 2, s: 3, nHeads: 4, nKv: 2, hd: 16, kvLen: 40, mode: "none" }, 90);
  await checkAttention(gpu, { b: 2, s: 6, nHeads: 4, nKv: 2, hd: 16, kvLen: 6, mode: "causal" }, 91);
  await checkAttention(gpu, { b: 2, s: 3, nHeads: 2, nKv: 2, hd: 128, kvLen: 37, mode: "causal" }, 92);
  await checkAttention(gpu, { b: 2, s: 2, nHeads: 4, nKv: 1, hd: 128, kvLen: 33, mode: "none" }, 93);
  // Causal over 300 keys: two key blocks, the second partly or fully masked.
  await checkAttention(gpu, { b: 2, s: 300, nHeads: 2, nKv: 1, hd: 16, kvLen: 300, mode: "causal" }, 94);
});

gpuTest(
  "attention: decode-sized queries, query-head groups of 1 to 8 per KV head, head_dim 4 to 256",
  async () => {
    const gpu = await testGpu();
    // attention_vec4 serves ≤ 4 query heads per workgroup: groups of 3, 5 (a group of 4 and one of 1) and
    // 8 (two groups); head_dim 48 leaves some invocations without a value column, 256 the largest.
    await checkAttention(gpu, { b: 1, s: 1, nHeads: 6, nKv: 2, hd: 64, kvLen: 300, mode: "causal" }, 130);
    await checkAttention(gpu, { b: 2, s: 1, nHeads: 10, nKv: 2, hd: 48, kvLen: 70, mode: "none" }, 131);
    // Sub-blocks of 100 and 230 keys: each of an invocation's 4 key slots ends a partial sub-block.
    await checkAttention(gpu, { b: 1, s: 1, nHeads: 8, nKv: 2, hd: 64, kvLen: 100, mode: "none" }, 135);
    await checkAttention(gpu, { b: 1, s: 1, nHeads: 8, nKv: 2, hd: 64, kvLen: 230, mode: "none" }, 136);
    await checkAttention(
      gpu,
      { b: 1, s: 3, nHeads: 8, nKv: 1, hd: 256, kvLen: 600, mode: "bits", allowed: bitsPattern(600, 132) },
      133,
    );
    await checkAttention(
      gpu,
      { b: 1, s: 2, nHeads: 3, nKv: 3, hd: 4, kvLen: 1601, mode: "none", qScale: 2 },
      134,
    );
  },
);

gpuTest("attention: explicit bits, fully masked rows, several key blocks (kvLen 3000)", async () => {
  const gpu = await testGpu();
  await checkAttention(
    gpu,
    { b: 2, s: 4, nHeads: 4, nKv: 1, hd: 16, kvLen: 70, mode: "bits", allowed: bitsPattern(70, 100) },
    101,
  );
  await checkAttention(
    gpu,
    { b: 2, s: 2, nHeads: 4, nKv: 2, hd: 128, kvLen: 3000, mode: "bits", allowed: bitsPattern(3000, 102) },
    103,
  );
  await checkAttention(gpu, { b: 2, s: 2, nHeads: 2, nKv: 2, hd: 128, kvLen: 3000, mode: "none" }, 104);
});

gpuTest("attention: long unmasked sequences as two matrix products (vision encoder path)", async () => {
  const gpu = await testGpu();
  // ≥ 256 queries and keys, head_dim % 8 == 0, no mask: scores = q·kᵀ, row softmax, scores·v.
  await checkAttention(gpu, { b: 2, s: 260, nHeads: 4, nKv: 2, hd: 16, kvLen: 260, mode: "none" }, 120);
  await checkAttention(
    gpu,
    { b: 1, s: 300, nHeads: 2, nKv: 2, hd: 80, kvLen: 301, mode: "none", qScale: 3 },
    121,
  );
  // head_dim % 4 != 0: the scalar kernel (attention.wgsl), few and many queries.
  await checkAttention(gpu, { b: 2, s: 3, nHeads: 4, nKv: 2, hd: 6, kvLen: 40, mode: "causal" }, 124);
  await checkAttention(gpu, { b: 1, s: 12, nHeads: 2, nKv: 1, hd: 10, kvLen: 300, mode: "none" }, 125);
  // Tiled path (head_dim % 8 != 0, or fewer than 64 queries) on the same sizes.
  await checkAttention(gpu, { b: 1, s: 264, nHeads: 2, nKv: 1, hd: 12, kvLen: 270, mode: "none" }, 122);
  await checkAttention(gpu, { b: 2, s: 264, nHeads: 2, nKv: 1, hd: 12, kvLen: 264, mode: "causal" }, 123);
  await checkAttention(gpu, { b: 2, s: 40, nHeads: 2, nKv: 1, hd: 16, kvLen: 300, mode: "none" }, 126);
});

gpuTest("attention: masked prefills as two matrix products (causal, explicit bits, empty rows)", async () => {
  const gpu = await testGpu();
  // ≥ 64 queries and keys with head_dim % 8 == 0 take the matmul path whatever the mask.
  await checkAttention(gpu, { b: 2, s: 128, nHeads: 4, nKv: 2, hd: 16, kvLen: 128, mode: "causal" }, 127);
  await checkAttention(
    gpu,
    { b: 2, s: 70, nHeads: 4, nKv: 1, hd: 24, kvLen: 100, mode: "bits", allowed: bitsPattern(100, 128) },
    129,
  );
  await checkAttention(
    gpu,
    { b: 1, s: 64, nHeads: 2, nKv: 2, hd: 8, kvLen: 1601, mode: "bits", allowed: bitsPattern(1601, 135) },
    136,
  );
});

gpuTest("attention: kvLen 20000 (blocks of 512 keys)", async () => {
  const gpu = await testGpu();
  await checkAttention(
    gpu,
    { b: 1, s: 2, nHeads: 4, nKv: 2, hd: 16, kvLen: 20000, mode: "none", qScale: 3 },
    110,
  );
  await checkAttention(
    gpu,
    { b: 1, s: 4, nHeads: 2, nKv: 1, hd: 16, kvLen: 20000, mode: "bits", allowed: bitsPattern(20000, 111) },
    112,
  );
});

gpuTest(
  "attention as matrix products in query and head ranges (ranges starting inside a KV group)",
  async () => {
    // One head's scores per range, 15 queries per range: every head a range of its own.
    const small = await testGpu(SPLIT_BYTES);
    await checkAttention(small, { b: 2, s: 64, nHeads: 6, nKv: 2, hd: 8, kvLen: 64, mode: "causal" }, 137);
    // Two heads per range, 64 queries: the ranges of heads 2-3 and 4-5 start inside KV groups of 3.
    const gpu = await testGpu(40960);
    assert.equal(Math.floor(room(gpu) / (64 * 64 * 4)), 2);
    await checkAttention(
      gpu,
      { b: 2, s: 64, nHeads: 6, nKv: 2, hd: 8, kvLen: 64, mode: "bits", allowed: bitsPattern(64, 138) },
      139,
    );
    await checkAttention(gpu, { b: 1, s: 64, nHeads: 6, nKv: 2, hd: 8, kvLen: 64, mode: "none" }, 140);
    // Keys read in place from the cache (batch 0) and copied (batch 1: at the device's 256-byte storage
    // alignment, WebGPU's default, its KV heads' window starts 8 elements into a row of 24); in place
    // from row 4 of a window (batch 1 of the second case starts 32 elements, 4 rows of 8, into it).
    const full = await testGpu();
    await checkAttention(full, { b: 2, s: 64, nHeads: 4, nKv: 2, hd: 24, kvLen: 67, mode: "causal" }, 141);
    await checkAttention(full, { b: 2, s: 64, nHeads: 4, nKv: 2, hd: 8, kvLen: 66, mode: "causal" }, 142);
    // A cache far longer than the keys in use (a prefill into a long context): the cache span of the KV
    // heads, not only their keys, bounds a head range (4 KV heads need 2 ranges under 131,072 bytes).
    const roomy = await testGpu(131072);
    const allowed = (t: number, j: number) => j < 64 && (t + j) % 3 !== 0;
    await checkAttention(
      roomy,
      { b: 1, s: 64, nHeads: 4, nKv: 4, hd: 8, kvLen: 2000, mode: "bits", allowed, used: 64 },
      143,
    );
    // The same with matmul.wgsl and a workgroup per softmax row where the adapter has subgroups (above:
    // matmul_subgroup.wgsl and a subgroup per row).
    const without = await testGpu(40960, false);
    await checkAttention(
      without,
      { b: 2, s: 64, nHeads: 6, nKv: 2, hd: 8, kvLen: 64, mode: "bits", allowed: bitsPattern(64, 138) },
      139,
    );
  },
);

gpuTest("attention split: tokens in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  assert.ok(60 * 2 * 18 * 4 > room(gpu));
  await checkAttention(gpu, { b: 2, s: 30, nHeads: 2, nKv: 1, hd: 16, kvLen: 30, mode: "causal" }, 120);
  await checkAttention(
    gpu,
    { b: 2, s: 30, nHeads: 2, nKv: 1, hd: 16, kvLen: 24, mode: "bits", allowed: bitsPattern(24, 121) },
    122,
  );
});

// ---------------------------------------------------------------- swiglu, gatedResidual

async function checkSwiglu(gpu: Gpu, n: number, seed: number): Promise<void> {
  const rng = new Rng(seed);
  await withOwner(gpu, async (owner) => {
    const gv = Float32Array.from({ length: n }, () => rng.uniform(-8, 8));
    const uv = rng.normals(n);
    const gate = owner.upload(gv, "gate");
    const up = owner.upload(uv, "up");
    record(gpu, (rec) => swiglu(rec, gate, up, n));
    assertClose(`swiglu n=${n}`, await readF32(gpu, gate, n), swigluRef(gv, uv));
  });
}

async function checkGatedResidual(
  gpu: Gpu,
  T: number,
  dim: number,
  gateValue: number | null,
  skipRows: number[] | null,
  seed: number,
): Promise<void> {
  const rng = new Rng(seed);
  await withOwner(gpu, async (owner) => {
    const xv = rng.normals(T * dim);
    const yv = rng.normals(T * dim);
    const sv = skipRows ? Uint32Array.from({ length: T }, (_, t) => skipRows.includes(t) ? 1 : 0) : null;
    const x = owner.upload(xv, "x");
    const y = owner.upload(yv, "y");
    const gate = gateValue === null ? null : owner.upload(new Float32Array([gateValue]), "gate");
    const skip = sv ? owner.upload(sv, "skip") : null;
    record(gpu, (rec) => gatedResidual(rec, x, y, T, dim, gate, skip));
    assertClose(
      `gatedResidual gate=${gateValue} skip=${skipRows}`,
      await readF32(gpu, x, T * dim),
      gatedResidualRef(xv, yv, dim, gateValue, sv),
    );
  });
}

gpuTest("swiglu", async () => {
  const gpu = await testGpu();
  // 1,000: four elements per invocation (swiglu_vec4.wgsl); 3 and 1,001: one (swiglu.wgsl).
  await checkSwiglu(gpu, 1000, 130);
  await checkSwiglu(gpu, 3, 131);
  await checkSwiglu(gpu, 1001, 132);
});

gpuTest("gatedResidual: tanh gate, no gate, skipped rows", async () => {
  const gpu = await testGpu();
  await checkGatedResidual(gpu, 7, 30, 0.7, null, 140);
  await checkGatedResidual(gpu, 7, 30, null, null, 141);
  await checkGatedResidual(gpu, 7, 30, -1.3, [1, 4, 6], 142);
  await checkGatedResidual(gpu, 5, 17, null, [0, 2], 143);
});

gpuTest("swiglu and gatedResidual split: ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  await checkSwiglu(gpu, 3000, 150);
  assert.ok(40 * 50 * 4 > room(gpu));
  await checkGatedResidual(gpu, 40, 50, 0.4, [0, 13, 39], 151);
});

gpuTest("grids folded over y: more than maxWorkgroupsPerDimension workgroups", async () => {
  const gpu = await testGpu();
  const maxGroups = gpu.limits.maxWorkgroupsPerDimension;
  // Elementwise kernels: 64 invocations per workgroup, so > 64·maxGroups elements need a second row.
  await checkSwiglu(gpu, 64 * maxGroups + 1000, 160);
  const dim = 2000;
  await checkEmbedding(gpu, "f32", 10, 2, dim, Math.ceil((64 * maxGroups + 1000) / dim), 161);
  // One workgroup per row.
  await checkRmsNorm(gpu, maxGroups + 70, 2, 1e-5, 162);
});

gpuTest("summary of worst errors", () => {
  if (Deno.env.get("KERNELS_VERBOSE")) {
    for (const [name, e] of ERRORS) {
      console.log(`${name}: max abs ${e.abs.toExponential(2)}, max rel ${e.rel.toExponential(2)}`);
    }
  }
  return Promise.resolve();
});

/**
 * The vision-encoder kernels (through their ops in src/gpu/ops_vision.ts, plus linear.wgsl with a bias)
 * against plain TypeScript references, on seeded random data. Tolerance as in kernels_test.ts:
 * |got − ref| ≤ rtol·(|ref| + rms(ref)) per element with rtol = 1e-5 (assertClose), 0 for the pure copies;
 * GELU is judged elementwise against a float64 erf: |got − ref| ≤ 2e-7 + 2e-7·|ref|, and for x in [−5, 0)
 * also relatively, |got − ref| ≤ 4e-6·|ref| (gelu.wgsl computes erfc directly instead of 1 + erf, which
 * would cancel and flush outputs to 0 below x ≈ −5.5). The "split" tests
 * use a device whose storage-binding limit is lowered, so weights are split by rows and activations
 * processed in row ranges.
 */
import assert from "node:assert/strict";
import type { Gpu } from "../src/gpu/device.ts";
import { type WeightDtype, WeightStorage } from "../src/gpu/buffers.ts";
import { linear } from "../src/gpu/ops.ts";
import {
  broadcastAdd,
  gelu,
  interleaveColumns,
  layerNorm,
  patchify,
  visionEmbed,
} from "../src/gpu/ops_vision.ts";
import { gpuTest, readF32, record, testGpu, withOwner } from "./helpers/gpu.ts";
import { assertClose, ERRORS, linearRef, randomBf16, Rng } from "./helpers/reference.ts";
import { geluExact } from "./helpers/reference_encoder.ts";

const SPLIT_BYTES = 4096;
const GELU_ATOL = 2e-7;
const GELU_RTOL = 2e-7;

/** Bytes one binding window may hold for whole items (what ops.ts plans with). */
function room(gpu: Gpu): number {
  return gpu.limits.maxBindingBytes - gpu.limits.storageOffsetAlignment;
}

// ---------------------------------------------------------------- references

/** LayerNorm over rows of `dim` (biased variance), in f64. */
function layerNormRef(
  x: ArrayLike<number>,
  rows: number,
  dim: number,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let d = 0; d < dim; d++) mean += x[r * dim + d];
    mean /= dim;
    let v = 0;
    for (let d = 0; d < dim; d++) v += (x[r * dim + d] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / dim + eps);
    for (let d = 0; d < dim; d++) out[r * dim + d] = (x[r * dim + d] - mean) * inv * w[d] + b[d];
  }
  return out;
}

/** `images` `[n, C, T, T]` → `[n·g², C·P·P]`, patch row-major, features (c, py, px). */
function patchifyRef(images: ArrayLike<number>, n: number, C: number, T: number, P: number): Float64Array {
  const g = Math.floor(T / P);
  const feat = C * P * P;
  const out = new Float64Array(n * g * g * feat);
  for (let i = 0; i < n; i++) {
    for (let gy = 0; gy < g; gy++) {
      for (let gx = 0; gx < g; gx++) {
        const row = (i * g + gy) * g + gx;
        for (let c = 0; c < C; c++) {
          for (let py = 0; py < P; py++) {
            for (let px = 0; px < P; px++) {
              out[row * feat + (c * P + py) * P + px] =
                images[((i * C + c) * T + gy * P + py) * T + gx * P + px];
            }
          }
        }
      }
    }
  }
  return out;
}

/** One tile's tokens: CLS + patches (+ gated pre-tile row), + local (gated) and global (gated) rows. */
function visionEmbedRef(
  patches: ArrayLike<number>,
  cls: ArrayLike<number>,
  local: ArrayLike<number>,
  global: ArrayLike<number> | null,
  pre: ArrayLike<number> | null,
  gates: [number, number],
  nTok: number,
  dim: number,
  tiled: boolean,
): Float64Array {
  const out = new Float64Array(nTok * dim);
  const g = Math.tanh(gates[0]);
  const gp = Math.tanh(gates[1]);
  for (let t = 0; t < nTok; t++) {
    for (let d = 0; d < dim; d++) {
      const i = t * dim + d;
      let v = t === 0 ? cls[d] : patches[(t - 1) * dim + d] + (tiled && pre ? pre[d] * gp : 0);
      if (tiled) {
        v += local[i] * (1 - g);
        if (global) v += global[i] * g;
      } else {
        v += local[i];
      }
      out[i] = v;
    }
  }
  return out;
}

/** `out[r, col0 + d·stride] = src[r, d]` into a copy of `out`. */
function interleaveRef(
  out: Float64Array,
  src: ArrayLike<number>,
  rows: number,
  dim: number,
  outDim: number,
  col0: number,
  stride: number,
): void {
  for (let r = 0; r < rows; r++) {
    for (let d = 0; d < dim; d++) out[r * outDim + col0 + d * stride] = src[r * dim + d];
  }
}

/**
 * Asserts `|got − ref| ≤ atol + rtol·|ref|` elementwise (for GELU, whose erf approximation has an
 * absolute error bound), recording the worst absolute and relative errors in {@link ERRORS}.
 */
function assertAbsRel(
  name: string,
  got: ArrayLike<number>,
  ref: ArrayLike<number>,
  atol: number,
  rtol: number,
): void {
  assert.equal(got.length, ref.length, `${name}: length`);
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i] - ref[i]);
    const e = Number.isNaN(err) ? Infinity : err;
    maxAbs = Math.max(maxAbs, e);
    if (Math.abs(ref[i]) > 1e-3) maxRel = Math.max(maxRel, e / Math.abs(ref[i]));
    const excess = e / (atol + rtol * Math.abs(ref[i]));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  const prev = ERRORS.get(name);
  ERRORS.set(name, { abs: Math.max(maxAbs, prev?.abs ?? 0), rel: Math.max(maxRel, prev?.rel ?? 0) });
  assert.ok(
    worstExcess <= 1,
    `${name}: element ${worst} is ${got[worst]}, expected ${ref[worst]} (error ${
      Math.abs(got[worst] - ref[worst]).toExponential(2)
    } > ${atol} + ${rtol}·|ref|)`,
  );
}

// ---------------------------------------------------------------- layerNorm

async function checkLayerNorm(
  gpu: Gpu,
  rows: number,
  dim: number,
  eps: number,
  seed: number,
  maxShift = 3,
): Promise<void> {
  const rng = new Rng(seed);
  await withOwner(gpu, async (owner) => {
    // A non-zero mean per row (up to ±maxShift), so that the mean subtraction matters.
    const xv = rng.normals(rows * dim, 2);
    for (let r = 0; r < rows; r++) {
      const shift = rng.uniform(-maxShift, maxShift);
      for (let d = 0; d < dim; d++) xv[r * dim + d] += shift;
    }
    const wv = Float32Array.from({ length: dim }, () => 1 + 0.2 * rng.normal());
    const bv = rng.normals(dim, 0.3);
    const x = owner.upload(xv, "x");
    const weight = owner.upload(wv, "weight");
    const bias = owner.upload(bv, "bias");
    const out = owner.storage(rows * dim * 4, "out");
    record(gpu, (rec) => layerNorm(rec, x, rows, dim, weight, bias, eps, out));
    const got = await readF32(gpu, out, rows * dim);
    assertClose(`layerNorm ${rows}x${dim}`, got, layerNormRef(xv, rows, dim, wv, bv, eps));
    // x is left untouched.
    assertClose(`layerNorm ${rows}x${dim} input`, await readF32(gpu, x, rows * dim), xv, 0);
  });
}

gpuTest("layerNorm: dim < 64, not a multiple of 64, 1280, eps; with and without subgroups", async () => {
  // layer_norm.wgsl with a subgroup per row (rows_subgroup.wgsl) where the adapter has subgroups, with a
  // workgroup per row (rows_workgroup.wgsl) on the device without them. 130 rows: a part-filled last workgroup of 8 rows.
  for (const gpu of [await testGpu(), await testGpu(0, false)]) {
    await checkLayerNorm(gpu, 7, 40, 1e-5, 1);
    await checkLayerNorm(gpu, 5, 200, 1e-6, 2);
    await checkLayerNorm(gpu, 3, 1280, 1e-5, 3);
    await checkLayerNorm(gpu, 4, 1, 1e-5, 4);
    await checkLayerNorm(gpu, 130, 17, 1e-5, 5);
    await checkLayerNorm(gpu, 2, 1281, 1e-5, 6);
  }
});

gpuTest("layerNorm: constant rows give the bias", async () => {
  const gpu = await testGpu();
  await withOwner(gpu, async (owner) => {
    const rows = 3, dim = 70;
    const xv = Float32Array.from({ length: rows * dim }, (_, i) => [5, -2, 0][Math.floor(i / dim)]);
    const wv = Float32Array.from({ length: dim }, (_, d) => 1 + d / dim);
    const bv = Float32Array.from({ length: dim }, (_, d) => d * 0.01 - 0.3);
    const x = owner.upload(xv, "x");
    const out = owner.storage(rows * dim * 4, "out");
    record(
      gpu,
      (rec) => layerNorm(rec, x, rows, dim, owner.upload(wv, "w"), owner.upload(bv, "b"), 1e-5, out),
    );
    const got = await readF32(gpu, out, rows * dim);
    assertClose("layerNorm constant rows", got, layerNormRef(xv, rows, dim, wv, bv, 1e-5));
  });
});

gpuTest("layerNorm split: rows in ranges (dims 100 and 1280)", async () => {
  const small = await testGpu(SPLIT_BYTES);
  assert.ok(30 * 100 * 4 > room(small));
  await checkLayerNorm(small, 30, 100, 1e-5, 10);
  await checkLayerNorm(small, 45, 33, 1e-5, 11);
  // 1280-wide rows (5120 bytes) need a larger window: 3 rows per range.
  const wide = await testGpu(16384);
  assert.ok(10 * 1280 * 4 > room(wide));
  await checkLayerNorm(wide, 10, 1280, 1e-5, 12);
});

// ---------------------------------------------------------------- gelu

async function checkGelu(
  gpu: Gpu,
  xv: Float32Array,
  name: string,
  atol = GELU_ATOL,
  rtol = GELU_RTOL,
): Promise<void> {
  await withOwner(gpu, async (owner) => {
    const x = owner.upload(xv, "x");
    record(gpu, (rec) => gelu(rec, x, xv.length));
    const got = await readF32(gpu, x, xv.length);
    assertAbsRel(name, got, Float64Array.from(xv, geluExact), atol, rtol);
  });
}

gpuTest("gelu: exact erf GELU over [-10, 10]", async () => {
  const gpu = await testGpu();
  // A dense grid over [-10, 10] (step 2^-10, exact in f32) plus the edges and special points.
  const n = 20 * 1024 + 1;
  const grid = Float32Array.from({ length: n }, (_, i) => -10 + i / 1024);
  await checkGelu(gpu, grid, "gelu grid [-10, 10]");
  // The negative side keeps its relative accuracy (no cancellation in 1 + erf).
  const negative = grid.filter((x) => x >= -5 && x < 0);
  await checkGelu(gpu, negative, "gelu [-5, 0) relative", 0, 4e-6);
  const rng = new Rng(20);
  await checkGelu(gpu, Float32Array.from({ length: 5003 }, () => rng.uniform(-10, 10)), "gelu random");
  await checkGelu(gpu, new Float32Array([0, -0, 1e-30, -1e-30, 1e-6, -1e-6, 0.5, -0.5, 3, -3]), "gelu small");
});

gpuTest("gelu: the sub-range other elements are untouched, odd lengths", async () => {
  const gpu = await testGpu();
  await withOwner(gpu, async (owner) => {
    const rng = new Rng(21);
    const xv = Float32Array.from({ length: 101 }, () => rng.uniform(-4, 4));
    const x = owner.upload(xv, "x");
    record(gpu, (rec) => gelu(rec, x, 77));
    const got = await readF32(gpu, x, 101);
    assertAbsRel(
      "gelu n=77",
      got.subarray(0, 77),
      Float64Array.from(xv.subarray(0, 77), geluExact),
      GELU_ATOL,
      GELU_RTOL,
    );
    assertClose("gelu tail untouched", got.subarray(77), xv.subarray(77), 0);
  });
});

gpuTest("gelu split: elements in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  const rng = new Rng(22);
  assert.ok(3001 * 4 > room(gpu));
  await checkGelu(gpu, Float32Array.from({ length: 3001 }, () => rng.uniform(-10, 10)), "gelu split");
});

// ---------------------------------------------------------------- patchify

async function checkPatchify(
  gpu: Gpu,
  n: number,
  C: number,
  T: number,
  P: number,
  seed: number,
): Promise<void> {
  const rng = new Rng(seed);
  await withOwner(gpu, async (owner) => {
    const iv = rng.normals(n * C * T * T);
    const images = owner.upload(iv, "images");
    const ref = patchifyRef(iv, n, C, T, P);
    // A sentinel after the output must survive.
    const out = owner.upload(new Float32Array(ref.length + 5).fill(-7), "patches");
    record(gpu, (rec) => patchify(rec, images, n, C, T, P, out));
    const got = await readF32(gpu, out, ref.length + 5);
    assertClose(`patchify n=${n} C=${C} T=${T} P=${P}`, got.subarray(0, ref.length), ref, 0);
    assert.deepEqual([...got.subarray(ref.length)], [-7, -7, -7, -7, -7], "patchify wrote past its output");
  });
}

gpuTest("patchify: several images, image bytes not a multiple of 256", async () => {
  const gpu = await testGpu();
  await checkPatchify(gpu, 1, 3, 8, 4, 30);
  // 3·10·10·4 = 1200 bytes per image: later images start off the 256-byte alignment.
  await checkPatchify(gpu, 5, 3, 10, 5, 31);
  await checkPatchify(gpu, 3, 1, 14, 7, 32);
  await checkPatchify(gpu, 2, 3, 14, 2, 33);
  await checkPatchify(gpu, 4, 2, 6, 1, 34);
  await checkPatchify(gpu, 2, 3, 9, 9, 35);
});

gpuTest("patchify split: images in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  assert.ok(7 * 3 * 10 * 10 * 4 > room(gpu));
  await checkPatchify(gpu, 7, 3, 10, 5, 40);
  assert.ok(9 * 1 * 14 * 14 * 4 > room(gpu));
  await checkPatchify(gpu, 9, 1, 14, 7, 41);
});

// ---------------------------------------------------------------- visionEmbed

interface EmbedCase {
  nImages: number;
  nTiles: number;
  /** (h, w) tile layout per image; tiles k ≥ h·w are padding. */
  aspect: [number, number][];
  /** Tiles per side of the tile-embedding tables. */
  maxTiles: number;
  g: number;
  dim: number;
  tiled: boolean;
}

async function checkVisionEmbed(gpu: Gpu, c: EmbedCase, seed: number): Promise<void> {
  const rng = new Rng(seed);
  const { dim, g } = c;
  const nTok = g * g + 1;
  const tiles = c.nImages * c.nTiles;
  const rowWidth = nTok * dim; // one global-table entry [nTok, dim]
  await withOwner(gpu, async (owner) => {
    const pv = rng.normals(tiles * g * g * dim);
    const clsv = rng.normals(dim);
    const localv = rng.normals(nTok * dim);
    const globalv = rng.normals(c.maxTiles * c.maxTiles * rowWidth);
    const prev = rng.normals(c.maxTiles * c.maxTiles * dim);
    const gatesv = new Float32Array([rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5)]);
    const patches = owner.upload(pv, "patches");
    const globalTable = owner.upload(globalv, "global");
    const preTable = owner.upload(prev, "pre");
    const cls = owner.upload(clsv, "cls");
    const local = owner.upload(localv, "local");
    const gates = owner.upload(gatesv, "gates");
    // One token more at the end, as a sentinel.
    const out = owner.upload(new Float32Array(tiles * nTok * dim + 1).fill(-7), "out");
    const ref = new Float64Array(tiles * nTok * dim + 1).fill(-7);
    record(gpu, (rec) => {
      for (let i = 0; i < c.nImages; i++) {
        const [h, w] = c.aspect[i];
        for (let k = 0; k < c.nTiles; k++) {
          const tile = i * c.nTiles + k;
          const real = c.tiled && k < h * w;
          const entry = Math.floor(k / w) * c.maxTiles + (k % w);
          const patchRef = { buffer: patches, byteOffset: tile * g * g * dim * 4, bytes: g * g * dim * 4 };
          visionEmbed(rec, {
            patches: patchRef,
            cls,
            local,
            global: real
              ? { buffer: globalTable, byteOffset: entry * rowWidth * 4, bytes: rowWidth * 4 }
              : null,
            pre: real ? { buffer: preTable, byteOffset: entry * dim * 4, bytes: dim * 4 } : null,
            gates,
            out: { buffer: out, byteOffset: tile * nTok * dim * 4, bytes: nTok * dim * 4 },
            nTok,
            dim,
            tiled: c.tiled,
          });
          const tileRef = visionEmbedRef(
            pv.subarray(tile * g * g * dim, (tile + 1) * g * g * dim),
            clsv,
            localv,
            real ? globalv.subarray(entry * rowWidth, (entry + 1) * rowWidth) : null,
            real ? prev.subarray(entry * dim, (entry + 1) * dim) : null,
            [gatesv[0], gatesv[1]],
            nTok,
            dim,
            c.tiled,
          );
          ref.set(tileRef, tile * nTok * dim);
        }
      }
    });
    const got = await readF32(gpu, out, ref.length);
    const name = `visionEmbed ${c.tiled ? "tiled" : "untiled"} tiles=${tiles} g=${g} D=${dim}`;
    assertClose(name, got, ref);
    assert.equal(got[ref.length - 1], -7, `${name}: wrote past the last tile`);
  });
}

gpuTest("visionEmbed: real and padding tiles, windows at non-zero offsets", async () => {
  const gpu = await testGpu();
  // 2 images of 4 tiles: aspect (1, 3) → tile 3 is padding; (2, 2) → all real. D = 12: 5·12·4 = 240-byte
  // tiles, so windows start off the 256-byte alignment.
  await checkVisionEmbed(
    gpu,
    { nImages: 2, nTiles: 4, aspect: [[1, 3], [2, 2]], maxTiles: 4, g: 2, dim: 12, tiled: true },
    50,
  );
  // Aspect (2, 1): tile k = 1 reads global/pre entry (1, 0); tiles 2, 3 are padding.
  await checkVisionEmbed(
    gpu,
    { nImages: 3, nTiles: 4, aspect: [[2, 1], [1, 1], [1, 4]], maxTiles: 4, g: 3, dim: 7, tiled: true },
    51,
  );
  await checkVisionEmbed(
    gpu,
    { nImages: 1, nTiles: 2, aspect: [[1, 2]], maxTiles: 2, g: 4, dim: 65, tiled: true },
    52,
  );
});

gpuTest("visionEmbed: tiled false (ungated local embedding only)", async () => {
  const gpu = await testGpu();
  await checkVisionEmbed(
    gpu,
    { nImages: 3, nTiles: 1, aspect: [[1, 1], [1, 1], [1, 1]], maxTiles: 1, g: 2, dim: 10, tiled: false },
    53,
  );
});

// ---------------------------------------------------------------- broadcastAdd

gpuTest("broadcastAdd: gated vector added to a window of rows", async () => {
  const gpu = await testGpu();
  for (
    const [totalRows, r0, rows, dim, v0, entries, seed] of [[20, 3, 5, 12, 2, 4, 60], [9, 0, 9, 7, 3, 5, 61]]
  ) {
    const rng = new Rng(seed);
    await withOwner(gpu, async (owner) => {
      const xv = rng.normals(totalRows * dim);
      const vv = rng.normals(entries * dim);
      const gv = rng.uniform(-2, 2);
      const x = owner.upload(xv, "x");
      const v = owner.upload(vv, "v");
      const gate = owner.upload(new Float32Array([gv]), "gate");
      record(gpu, (rec) =>
        broadcastAdd(
          rec,
          { buffer: x, byteOffset: r0 * dim * 4, bytes: rows * dim * 4 },
          rows,
          dim,
          { buffer: v, byteOffset: v0 * dim * 4, bytes: dim * 4 },
          gate,
        ));
      const ref = Float64Array.from(xv);
      for (let r = r0; r < r0 + rows; r++) {
        for (let d = 0; d < dim; d++) ref[r * dim + d] += Math.tanh(gv) * vv[v0 * dim + d];
      }
      assertClose(`broadcastAdd rows ${r0}+${rows} dim ${dim}`, await readF32(gpu, x, xv.length), ref);
    });
  }
});

// ---------------------------------------------------------------- interleaveColumns

async function checkInterleave(
  gpu: Gpu,
  rows: number,
  D: number,
  nHidden: number,
  seed: number,
): Promise<void> {
  const rng = new Rng(seed);
  const outDim = D * (1 + nHidden);
  await withOwner(gpu, async (owner) => {
    const xv = rng.normals(rows * D);
    const hv = Array.from({ length: nHidden }, () => rng.normals(rows * D));
    const x = owner.upload(xv, "x");
    const hidden = hv.map((h, j) => owner.upload(h, `hidden ${j}`));
    const out = owner.upload(new Float32Array(rows * outDim + 1).fill(-7), "features");
    record(gpu, (rec) => {
      interleaveColumns(rec, x, rows, D, out, outDim, 0, 1);
      hidden.forEach((h, j) => interleaveColumns(rec, h, rows, D, out, outDim, D + j, nHidden));
    });
    const ref = new Float64Array(rows * outDim + 1).fill(-7);
    interleaveRef(ref, xv, rows, D, outDim, 0, 1);
    hv.forEach((h, j) => interleaveRef(ref, h, rows, D, outDim, D + j, nHidden));
    const got = await readF32(gpu, out, ref.length);
    assertClose(`interleaveColumns rows=${rows} D=${D} n_hidden=${nHidden}`, got, ref, 0);
    // Every column written: no sentinel left inside the output.
    assert.ok(got.subarray(0, rows * outDim).every((v) => v !== -7));
  });
}

gpuTest("interleaveColumns: x at col0 0, hidden state j at D + j with stride n_hidden", async () => {
  const gpu = await testGpu();
  await checkInterleave(gpu, 5, 8, 4, 70);
  await checkInterleave(gpu, 7, 13, 3, 71);
  await checkInterleave(gpu, 1, 5, 1, 72);
});

gpuTest("interleaveColumns split: rows in ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  assert.ok(40 * 10 * 4 * 4 > room(gpu));
  await checkInterleave(gpu, 40, 10, 3, 73);
  await checkInterleave(gpu, 23, 7, 5, 74);
});

// ---------------------------------------------------------------- linear with bias

async function checkLinearBias(
  gpu: Gpu,
  dtype: WeightDtype,
  M: number,
  K: number,
  N: number,
  seed: number,
): Promise<number> {
  const rng = new Rng(seed);
  let chunks = 0;
  await withOwner(gpu, async (owner) => {
    let values: Float32Array;
    let bytes: Uint8Array;
    if (dtype === "f32") {
      values = rng.normals(N * K, 0.5);
      bytes = new Uint8Array(values.buffer);
    } else {
      const r = randomBf16(rng, N * K);
      values = r.values;
      bytes = new Uint8Array(r.bits.buffer);
    }
    const weight = new WeightStorage(owner, [N, K], dtype, `w ${dtype} [${N}, ${K}]`);
    weight.writeRows(gpu, 0, bytes);
    chunks = weight.chunks.length;
    const xv = rng.normals(M * K);
    const bv = rng.normals(N, 2);
    const x = owner.upload(xv, "x");
    const bias = owner.upload(bv, "bias");
    const out = owner.storage(M * N * 4, "out");
    record(gpu, (rec) => linear(rec, weight, x, M, out, bias));
    const got = await readF32(gpu, out, M * N);
    const ref = linearRef(xv, values, M, K, N);
    for (let i = 0; i < ref.length; i++) ref[i] += bv[i % N];
    assertClose(`linear+bias ${dtype} M=${M} K=${K} N=${N}`, got, ref);
  });
  return chunks;
}

gpuTest("linear with bias: f32 and bf16, N not a multiple of 4", async () => {
  const gpu = await testGpu();
  await checkLinearBias(gpu, "f32", 1, 64, 40, 80);
  await checkLinearBias(gpu, "f32", 13, 37, 30, 81);
  await checkLinearBias(gpu, "f32", 5, 3, 7, 82);
  await checkLinearBias(gpu, "bf16", 13, 33, 22, 83);
  await checkLinearBias(gpu, "bf16", 2, 38, 9, 84);
});

gpuTest("linear with bias split: W by rows (bias offset n0), x/out in token ranges", async () => {
  const gpu = await testGpu(SPLIT_BYTES);
  for (
    const [dtype, M, K, N, seed] of [
      ["f32", 45, 37, 50, 90],
      ["bf16", 45, 33, 81, 91],
      ["f32", 3, 100, 23, 92],
    ] as const
  ) {
    assert.ok(await checkLinearBias(gpu, dtype, M, K, N, seed) > 1, "W must be split by rows");
  }
  assert.ok(45 * 50 * 4 > room(gpu), "x/out must need several token ranges");
});

// ---------------------------------------------------------------- folded grids

gpuTest("grids folded over y: more than maxWorkgroupsPerDimension workgroups", async () => {
  const gpu = await testGpu();
  const maxGroups = gpu.limits.maxWorkgroupsPerDimension;
  const rng = new Rng(100);
  // Elementwise: 64 invocations per workgroup, so > 64·maxGroups elements need a second row.
  const n = 64 * maxGroups + 1000;
  const xv = new Float32Array(n);
  for (let i = 0; i < n; i++) xv[i] = rng.uniform(-6, 6);
  await checkGelu(gpu, xv, "gelu folded");
  // One workgroup per row. Rows of 4 without a shift: among 65k rows of 2 values, some are nearly
  // equal, and an f32 LayerNorm (torch's too) loses ~ulp(mean)/sqrt(eps) ≈ 7e-5 on those.
  await checkLayerNorm(gpu, maxGroups + 70, 4, 1e-5, 101, 0);
});

gpuTest("summary of worst errors", () => {
  if (Deno.env.get("KERNELS_VERBOSE")) {
    for (const [name, e] of ERRORS) {
      console.log(`${name}: max abs ${e.abs.toExponential(2)}, max rel ${e.rel.toExponential(2)}`);
    }
  }
  return Promise.resolve();
});

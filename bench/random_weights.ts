/**
 * Random weights for the benchmarks, streamed into a model without a checkpoint file: each parameter gets
 * a {@link ParamSource} that produces its bytes on the fly (bf16, uniform in ±0.035, norm scales and
 * gates near 1), so host memory holds one upload piece at a time, as with a real checkpoint.
 *
 * The bytes are slices of one fixed pool of random bf16 values at a per-parameter offset: generating
 * 2 billion values one by one would take longer than the benchmark itself, and the kernels do not care
 * that the values repeat.
 *
 * @module
 */
import type { Gpu, Parameter } from "../mod.ts";
import { type Loadable, type ParamSource, uploadParameters } from "../src/checkpoint/upload.ts";
import type { LoadDtype } from "../src/checkpoint/quantize.ts";

/**
 * How weights are stored on the GPU (`uploadParameters`' `dtype`): `auto` keeps the source dtype (bf16),
 * q8 / q4 quantize the matrices on upload.
 */
export type BenchDtype = LoadDtype;

/** Every value of {@link BenchDtype}, for argument parsing. */
export const BENCH_DTYPES: readonly BenchDtype[] = ["auto", "bf16", "q8", "q4"];

const POOL_SIZE = 4_194_301; // prime, so row starts do not line up with the pool period
let pool: Uint16Array | null = null;

function hash(s: string): number {
  return [...s].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261);
}

/** bf16 bits of `base + u`, u uniform in ±0.035, from an LCG seeded with `seed`. */
function fillRandom(out: Uint16Array, seed: number, base: number): void {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let state = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    f[0] = base + ((state / 2 ** 32) - 0.5) * 0.07;
    out[i] = u[0] >>> 16;
  }
}

function randomPool(): Uint16Array {
  if (!pool) fillRandom(pool = new Uint16Array(POOL_SIZE), 12345, 0);
  return pool;
}

/** Norm scales and fusion gates start near 1 (as trained models have them), everything else near 0. */
function isScale(name: string): boolean {
  return /norm.*weight|\.scale$|gate/.test(name);
}

/** A source of random bf16 values for parameter `name` of `shape`. */
export function randomSource(name: string, shape: number[]): ParamSource {
  const rowElems = shape.length < 2
    ? shape.reduce((a, b) => a * b, 1)
    : shape.slice(1).reduce((a, b) => a * b, 1);
  const seed = hash(name);
  const scale = isScale(name);
  return {
    dtype: "BF16",
    shape,
    describe: `random ${name}`,
    read: (rowStart: number, rowCount: number, into?: Uint8Array) => {
      const n = rowCount * rowElems;
      // Into the loader's scratch when it is given (as a checkpoint reader does): nothing allocated per piece.
      const out = into && into.byteLength >= 2 * n && into.byteOffset % 2 === 0
        ? new Uint16Array(into.buffer, into.byteOffset, n)
        : new Uint16Array(n);
      if (scale) {
        fillRandom(out, seed + rowStart, 1);
      } else {
        const src = randomPool();
        let from = (seed + rowStart * rowElems) % POOL_SIZE;
        for (let i = 0; i < out.length;) {
          const n = Math.min(out.length - i, POOL_SIZE - from);
          out.set(src.subarray(from, from + n), i);
          i += n;
          from = 0;
        }
      }
      return Promise.resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    },
  };
}

/** Random bytes for a `[rows, cols]` bf16 weight (for the kernel benches, which build weights by hand). */
export function randomBf16(rows: number, cols: number, name = "weight"): Uint8Array {
  const out = new Uint16Array(rows * cols);
  const src = randomPool();
  let from = hash(name) % POOL_SIZE;
  for (let i = 0; i < out.length;) {
    const n = Math.min(out.length - i, POOL_SIZE - from);
    out.set(src.subarray(from, from + n), i);
    i += n;
    from = 0;
  }
  return new Uint8Array(out.buffer);
}

/** Deterministic f32 values in ±amplitude (activations, encoder outputs, KV caches). */
export function randomF32(n: number, seed = 1, amplitude = 0.5): Float32Array {
  const out = new Float32Array(n);
  let state = seed >>> 0;
  for (let i = 0; i < n; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = ((state / 2 ** 32) * 2 - 1) * amplitude;
  }
  return out;
}

/** Options of {@link uploadRandomWeights}. */
export interface RandomWeightsOptions {
  /** GPU storage of the weights (default `auto`: bf16 as generated). */
  dtype?: BenchDtype;
  /** Called with bytes uploaded so far and in total. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Allocates every parameter of `model` on `gpu` and fills it with random bf16 values (see
 * {@link randomSource}).
 */
export async function uploadRandomWeights(
  model: Loadable,
  gpu: Gpu,
  options: RandomWeightsOptions = {},
): Promise<void> {
  const sources = new Map(model.named_parameters().map(([n, p]) => [n, randomSource(n, p.shape)]));
  await uploadParameters(model, sources, gpu, options.onProgress, { dtype: options.dtype ?? "auto" });
}

/** Bytes a parameter takes on the GPU (whatever dtype it was stored in). */
export function parameterBytes(p: Parameter): number {
  return p.storage.byteLength;
}

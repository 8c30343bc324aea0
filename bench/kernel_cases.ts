/**
 * The per-kernel benchmark cases, shared by `bench/kernels_bench.ts` (which registers them with
 * `Deno.bench`) and `bench/summary.ts` (which turns `deno bench --json` times into GB/s and GFLOP/s).
 *
 * Each iteration records `reps` runs of a kernel into one submission and waits for a 4-byte readback;
 * the "overhead" case (an empty submission and the same readback) is subtracted from the kernel cases
 * by the summary, so that the readback latency (~ms in Deno) does not hide the kernel time. Shapes are
 * the 11B decoder's: embed 4096, MLP 14336, 32 query heads and 8 KV heads of 128.
 *
 * @module
 */
import {
  BufferOwner,
  type Gpu,
  llama3_2_vision_decoder,
  type Llama3VisionDecoderArgs,
  type Recorder,
  WeightStorage,
} from "../mod.ts";
import { attention, linear } from "../src/gpu/ops.ts";
import { BENCH_CONFIGS } from "./configs.ts";
import { benchInputs, DecodeState, StreamBuffer, timeSubmission } from "./harness.ts";
import { randomBf16, randomF32, uploadRandomWeights } from "./random_weights.ts";

/** A prepared case: `run` performs one bench iteration. */
export interface CaseRunner {
  run(): Promise<unknown>;
  destroy(): void;
}

/** One benchmark case. */
export interface KernelCase {
  /** The `Deno.bench` name. */
  name: string;
  /** What `amount` counts. */
  metric: "GB/s" | "GFLOP/s" | null;
  /** Bytes moved or floating-point operations per iteration (all reps). */
  amount: number;
  /** Kernel runs per iteration. */
  reps: number;
  /** Whether the summary subtracts the submission + readback overhead. */
  subtractOverhead: boolean;
  /** Measured iterations and warm-up iterations. */
  n: number;
  warmup: number;
  /** Allocates and fills the buffers. */
  setup(gpu: Gpu): Promise<CaseRunner>;
}

/** Name of the case that measures an empty submission plus the readback. */
export const OVERHEAD_CASE = "overhead: empty submission + 4-byte readback";

const E = 4096, FF = 14336, HEADS = 32, KV_HEADS = 8, HEAD_DIM = 128;
const ENCODER_LEN = 1601;

/** Runs `record` `reps` times in one submission and waits. */
function repeated(gpu: Gpu, reps: number, record: (rec: Recorder) => GPUBuffer): () => Promise<number> {
  return () =>
    timeSubmission(gpu, (rec) => {
      let out!: GPUBuffer;
      for (let i = 0; i < reps; i++) out = record(rec);
      return out;
    });
}

function linearCase(M: number, N: number, K: number, reps: number, n: number): KernelCase {
  const flops = 2 * M * N * K;
  const bytes = N * K * 2 + M * K * 4 + M * N * 4;
  const vector = M === 1;
  return {
    name: vector
      ? `matvec ${N}×${K} bf16 (${(N * K * 2 / 2 ** 20).toFixed(0)} MiB) ×${reps}`
      : `matmul ${M}×${N}×${K} bf16 ×${reps}`,
    metric: vector ? "GB/s" : "GFLOP/s",
    amount: (vector ? bytes : flops) * reps,
    reps,
    subtractOverhead: true,
    n,
    warmup: 1,
    setup: (gpu) => {
      const owner = new BufferOwner(gpu);
      const w = new WeightStorage(owner, [N, K], "bf16", `w ${N}×${K}`);
      for (let r = 0; r < N; r += 1024) {
        const rows = Math.min(1024, N - r);
        w.writeRows(gpu, r, randomBf16(rows, K, `w${N}x${K}:${r}`));
      }
      const x = owner.upload(randomF32(M * K, 3), "x");
      const out = owner.storage(M * N * 4, "out");
      const run = repeated(gpu, reps, (rec) => {
        linear(rec, w, x, M, out);
        return out;
      });
      return Promise.resolve({ run, destroy: () => owner.destroy() });
    },
  };
}

function attentionCase(queries: number, keys: number, reps: number, n: number): KernelCase {
  const kvBytes = 2 * KV_HEADS * keys * HEAD_DIM * 4;
  const flops = 4 * HEADS * queries * keys * HEAD_DIM;
  const decode = queries === 1;
  return {
    name: `attention ${queries} quer${queries === 1 ? "y" : "ies"} × ${keys} keys ` +
      `(${HEADS} heads, ${KV_HEADS} KV, f32 cache) ×${reps}`,
    metric: decode ? "GB/s" : "GFLOP/s",
    amount: (decode ? kvBytes : flops) * reps,
    reps,
    subtractOverhead: true,
    n,
    warmup: 1,
    setup: (gpu) => {
      const owner = new BufferOwner(gpu);
      const width = HEADS * HEAD_DIM;
      const q = owner.upload(randomF32(queries * width, 5), "q");
      const k = owner.upload(randomF32(KV_HEADS * keys * HEAD_DIM, 6), "k");
      const v = owner.upload(randomF32(KV_HEADS * keys * HEAD_DIM, 7), "v");
      const words = Math.ceil(keys / 32);
      const bits = new Uint32Array(queries * words).fill(0xffffffff);
      if (keys % 32) {
        for (let t = 0; t < queries; t++) bits[t * words + words - 1] = (1 << (keys % 32)) - 1;
      }
      const mask = { kind: "bits" as const, bits: owner.upload(bits, "mask"), words };
      const out = owner.storage(queries * width * 4, "out");
      const run = repeated(gpu, reps, (rec) => {
        attention(rec, q, 1, queries, HEADS, KV_HEADS, HEAD_DIM, k, v, keys, mask, out);
        return out;
      });
      return Promise.resolve({ run, destroy: () => owner.destroy() });
    },
  };
}

/** Bytes of weights a decode step of `args` reads when stored as bf16 (vectors as f32), without a GPU. */
export function bf16DecodeBytes(args: Llama3VisionDecoderArgs): number {
  return llama3_2_vision_decoder(args).named_parameters()
    .filter(([name]) => !name.startsWith("tok_embeddings."))
    .reduce((a, [, p]) => a + p.shape.reduce((x, y) => x * y, p.alwaysF32 ? 4 : 2), 0);
}

const small = BENCH_CONFIGS.bench_small;
/** As in `bench/run.ts`: prompt + the prefill's token + the decode steps. */
const DECODE_CACHE_LEN = small.prompt_len + small.decode_steps + 1;

/** The cases, in the order they run. */
export const KERNEL_CASES: KernelCase[] = [
  {
    name: OVERHEAD_CASE,
    metric: null,
    amount: 0,
    reps: 0,
    subtractOverhead: false,
    n: 10,
    warmup: 2,
    setup: (gpu) => {
      const owner = new BufferOwner(gpu);
      const b = owner.storage(16, "b");
      return Promise.resolve({ run: () => timeSubmission(gpu, () => b), destroy: () => owner.destroy() });
    },
  },
  {
    name: "stream_read 128 MiB (roofline) ×8",
    metric: "GB/s",
    amount: 8 * 128 * 2 ** 20,
    reps: 8,
    subtractOverhead: true,
    n: 5,
    warmup: 1,
    setup: (gpu) => {
      const s = new StreamBuffer(gpu, 128 * 2 ** 20);
      if (s.bytes !== 128 * 2 ** 20) {
        throw new Error(`the adapter's largest binding (${gpu.limits.maxBindingBytes} B) is under 128 MiB`);
      }
      return Promise.resolve({
        run: repeated(gpu, 8, (rec) => s.record(rec, 1)),
        destroy: () => s.destroy(),
      });
    },
  },
  linearCase(1, E, E, 8, 5),
  linearCase(1, FF, E, 4, 5),
  linearCase(128, E, E, 2, 3),
  attentionCase(1, ENCODER_LEN, 16, 5),
  attentionCase(1, 4096, 8, 5),
  attentionCase(128, ENCODER_LEN, 1, 2),
  {
    name: `bench_small decode step (record + submit + readback, ${DECODE_CACHE_LEN} cache slots)`,
    metric: "GB/s",
    amount: bf16DecodeBytes(small.args),
    reps: 1,
    subtractOverhead: false,
    n: 8,
    warmup: 2,
    setup: async (gpu) => {
      const model = llama3_2_vision_decoder(small.args);
      await uploadRandomWeights(model, gpu);
      const { vocab_size, embed_dim } = small.args;
      // A short prefill fills the caches (the vision tokens in full); each step attends over all slots.
      const state = await DecodeState.prefill(
        model,
        benchInputs(vocab_size, embed_dim, 16, small.encoder_seq_len),
        DECODE_CACHE_LEN,
      );
      return {
        run: () => {
          state.rewind();
          return state.step();
        },
        destroy: () => {
          state.destroy();
          model.destroy();
        },
      };
    },
  },
];

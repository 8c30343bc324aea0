/**
 * GPU time per kernel of a bench prefill or decode step, or of the 11B vision encoder, from timestamp
 * queries:
 *
 *   deno run -A bench/profile.ts --config bench_small [--dtype bf16|q8|q4] [--decode] [--shapes]
 *   deno run -A bench/profile.ts --encoder [--layers 3,1] [--shapes]
 *
 * `--encoder` runs the vision encoder with the 11B shapes and random bf16 weights on one image of 4
 * tiles (6,404 tokens), cut to `--layers` CLIP and projection layers (default 3,1; the full encoder has
 * 32,8, and its time scales by layers): harness.ts `encoderBench`, as bench/encoder_bench.ts runs it.
 * Every dispatch gets a compute pass of its own with timestamps at its start and end (the recorder's
 * passes are split by a 4-byte copy after each dispatch), so the times exclude queue waits and readbacks,
 * which cost ~11 ms each on llvmpipe and swamp timings taken on the host. Per kernel (with `--shapes`, per
 * kernel and grid) it prints the total, the count and the time per dispatch; decode figures are per step,
 * averaged over 8 steps (the first dispatch of a submission, the embedding, can carry ~1 ms of the
 * submission's own setup). Needs an adapter with `timestamp-query` (lavapipe has it). On a CPU adapter the
 * VM's speed varies between runs: compare kernels within one run, or old and new code interleaved.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { getGpu, llama3_2_vision_decoder, Recorder } from "../mod.ts";
import { benchConfig } from "./configs.ts";
import { benchInputs, DecodeState, encoderBench } from "./harness.ts";
import { type BenchDtype, uploadRandomWeights } from "./random_weights.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    config: { type: "string", default: "bench_small" },
    dtype: { type: "string", default: "auto" },
    decode: { type: "boolean", default: false },
    encoder: { type: "boolean", default: false },
    layers: { type: "string", default: "3,1" },
    shapes: { type: "boolean", default: false },
  },
});
const STEPS = 8;
const SET = 4096;

// The device must be created with timestamp-query: add it to whatever getGpu asks for.
const requestDevice = GPUAdapter.prototype.requestDevice;
GPUAdapter.prototype.requestDevice = function (d?: GPUDeviceDescriptor) {
  if (!this.features.has("timestamp-query")) throw new Error("this adapter has no timestamp-query");
  const requiredFeatures = [...(d?.requiredFeatures ?? []), "timestamp-query" as const];
  return requestDevice.call(this, { ...d, requiredFeatures });
};

const gpu = await getGpu({ quiet: true });
const device = gpu.device;

// While `timing`, every compute pass writes timestamps, and every dispatch ends its pass.
let timing = false;
const sets: GPUQuerySet[] = [];
let used = SET;
const names: string[] = [];
const beginComputePass = GPUCommandEncoder.prototype.beginComputePass;
GPUCommandEncoder.prototype.beginComputePass = function (d?: GPUComputePassDescriptor) {
  if (!timing) return beginComputePass.call(this, d);
  if (used + 2 > SET) {
    sets.push(device.createQuerySet({ type: "timestamp", count: SET }));
    used = 0;
  }
  const querySet = sets[sets.length - 1];
  const timestampWrites = { querySet, beginningOfPassWriteIndex: used, endOfPassWriteIndex: used + 1 };
  used += 2;
  names.push("(copy)");
  return beginComputePass.call(this, { ...d, timestampWrites });
};
const splitA = device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
const splitB = device.createBuffer({ size: 16, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
const dispatch = Recorder.prototype.dispatch;
Recorder.prototype.dispatch = function (this: Recorder, ...args: Parameters<Recorder["dispatch"]>) {
  dispatch.apply(this, args);
  if (!timing) return;
  const [kernel, weight, , , groups] = args;
  names[names.length - 1] = `${kernel}${weight ? `:${weight}` : ""}${
    values.shapes ? ` ${groups.join("x")}` : ""
  }`;
  this.copy(splitA, 0, splitB, 0, 4);
};

/** The timed work: what it is, how many times it runs (decode steps), and its wall time untimed. */
interface Workload {
  label: string;
  runs: number;
  wallMs: number | null;
  timed(): Promise<void>;
}

/** A bench prefill, or `STEPS` decode steps after one, of `--config` with `--dtype` weights. */
async function decoderWorkload(): Promise<Workload> {
  const cfg = benchConfig(values.config);
  const model = llama3_2_vision_decoder(cfg.args);
  await uploadRandomWeights(model, gpu, { dtype: values.dtype as BenchDtype | "auto" });
  const inputs = benchInputs(cfg.args.vocab_size, cfg.args.embed_dim, cfg.prompt_len, cfg.encoder_seq_len);
  const prefill = () => DecodeState.prefill(model, inputs, cfg.args.max_seq_len);
  const state = await prefill();
  const label = `${values.config} ${values.dtype} ${values.decode ? "decode step" : "prefill"}`;
  if (values.decode) {
    for (let i = 0; i < 2; i++) await state.step(); // warm-up
    state.rewind();
    return {
      label,
      runs: STEPS,
      wallMs: null,
      timed: async () => {
        for (let i = 0; i < STEPS; i++) {
          const rec = new Recorder(gpu);
          state.record(rec);
          rec.submit();
        }
        await device.queue.onSubmittedWorkDone();
      },
    };
  }
  // The prefill's wall time without timestamps (best of 2), to set against the GPU time.
  let wallMs = Infinity;
  for (let i = 0; i < 2; i++) {
    const t = performance.now();
    await prefill();
    wallMs = Math.min(wallMs, performance.now() - t);
  }
  return { label, runs: 1, wallMs, timed: async () => void await prefill() };
}

/** The 11B vision encoder cut to `--layers` (harness.ts `encoderBench`). */
async function encoderWorkload(): Promise<Workload> {
  const cut = values.layers.split(",").map(Number);
  const bench = await encoderBench(gpu, cut);
  return {
    label: `11B vision encoder (${cut[0]} + ${cut[1]} of 32 + 8 layers, 6404 tokens)`,
    runs: 1,
    wallMs: null,
    timed: bench.run,
  };
}

const work = values.encoder ? await encoderWorkload() : await decoderWorkload();
timing = true;
await work.timed();
timing = false;

const bytes = sets.length * SET * 8;
const resolved = device.createBuffer({
  size: bytes,
  usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
});
const readback = device.createBuffer({
  size: bytes,
  usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
});
const enc = device.createCommandEncoder();
sets.forEach((s, i) => enc.resolveQuerySet(s, 0, i === sets.length - 1 ? used : SET, resolved, i * SET * 8));
enc.copyBufferToBuffer(resolved, 0, readback, 0, bytes);
device.queue.submit([enc.finish()]);
await readback.mapAsync(GPUMapMode.READ);
const ts = new BigUint64Array(readback.getMappedRange());
const per = new Map<string, { ms: number; n: number }>();
let total = 0;
for (let i = 0; i < names.length; i++) {
  if (names[i] === "(copy)") continue;
  const ms = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6; // timestamps are in nanoseconds
  const e = per.get(names[i]) ?? { ms: 0, n: 0 };
  e.ms += ms;
  e.n++;
  per.set(names[i], e);
  total += ms;
}
const div = work.runs;
const count = [...per.values()].reduce((a, e) => a + e.n, 0) / div;
console.log(
  `${work.label}: ${(total / div).toFixed(2)} ms of GPU time in ${count} dispatches (${gpu.description})` +
    (work.wallMs === null ? "" : `; wall time without timestamps ${work.wallMs.toFixed(0)} ms`),
);
for (const [name, e] of [...per].sort((a, b) => b[1].ms - a[1].ms)) {
  const ms = e.ms / div;
  console.log(
    `${name.padEnd(28)} ${ms.toFixed(2).padStart(9)} ms ${String(e.n / div).padStart(5)} × ` +
      `${(e.ms / e.n * 1000).toFixed(0).padStart(6)} us`,
  );
}
Deno.exit(0);

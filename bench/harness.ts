/**
 * Shared pieces of the benchmarks: the streaming-read roofline (`kernels/stream_read.wgsl`), timing a
 * recorded submission, and decode steps recorded exactly as the generation loop records them (GPU
 * tokens, last position only, greedy sampling on the GPU) so that they can be timed one at a time or
 * pre-recorded and submitted back to back (GPU time without host encoding).
 *
 * @module
 */
import {
  BufferOwner,
  FusionLayer,
  type Gpu,
  type HostMask,
  type KVCache,
  LLAMA3_2_VISION_11B_ENCODER_ARGS,
  llama3_2_vision_encoder,
  type Llama3VisionEncoder,
  Recorder,
  type TransformerDecoder,
} from "../mod.ts";
import { uploadParameters } from "../src/checkpoint/upload.ts";
import { pack, sample } from "../src/gpu/ops.ts";
import { Readback } from "../src/gpu/readback.ts";
import { parameterBytes, randomBf16, randomF32, randomSource } from "./random_weights.ts";

/** Invocations per workgroup of stream_read.wgsl. */
const STREAM_WORKGROUP = 256;

/**
 * Streaming read (stream_read.wgsl): sums the first `bytes` of `data` (vec4 f32) into `out`, one value
 * per invocation; `workgroups` × 256 invocations stride through the buffer. `out` needs
 * `workgroups × 256` f32.
 */
export function streamRead(
  rec: Recorder,
  data: GPUBuffer,
  bytes: number,
  out: GPUBuffer,
  workgroups = 1024,
): void {
  const nVec4 = Math.floor(bytes / 16);
  const stride = workgroups * STREAM_WORKGROUP;
  if (out.size < stride * 4) {
    throw new RangeError(`stream_read: out holds ${out.size} bytes, needs ${stride * 4}`);
  }
  if (workgroups > rec.gpu.limits.maxWorkgroupsPerDimension) {
    throw new RangeError(`stream_read: ${workgroups} workgroups exceed the adapter's limit`);
  }
  rec.dispatch(
    "stream_read",
    undefined,
    [{ buffer: data, offset: 0, size: nVec4 * 16 }, out],
    pack("uu", [nVec4, stride]),
    [workgroups, 1, 1],
  );
}

/**
 * Records work with `record` (which returns a buffer to read 4 bytes of), submits it and waits for the
 * readback. Returns wall milliseconds from the start of recording.
 */
export async function timeSubmission(gpu: Gpu, record: (rec: Recorder) => GPUBuffer): Promise<number> {
  const t0 = performance.now();
  const rb = gpu.scoped(() => {
    const rec = new Recorder(gpu);
    try {
      const rb = new Readback(rec, record(rec), 0, 4);
      rec.submit();
      return rb;
    } catch (e) {
      rec.temps.destroy();
      throw e;
    }
  });
  await rb.read();
  return performance.now() - t0;
}

/** The streaming-read buffer and its output, for {@link measureRoofline} and the kernel benches. */
export class StreamBuffer {
  readonly owner: BufferOwner;
  readonly data: GPUBuffer;
  readonly out: GPUBuffer;
  readonly bytes: number;

  /** A buffer of `bytes` random bytes (default: 128 MiB or the largest binding, whichever is smaller). */
  constructor(gpu: Gpu, bytes = Math.min(128 * 1024 * 1024, gpu.limits.maxBindingBytes)) {
    this.bytes = Math.floor(bytes / 16) * 16;
    this.owner = new BufferOwner(gpu);
    this.data = this.owner.upload(randomBf16(1, this.bytes / 2, "stream"), "stream_read data");
    this.out = this.owner.storage(1024 * STREAM_WORKGROUP * 4, "stream_read out");
  }

  /** Records `reps` full reads. */
  record(rec: Recorder, reps: number): GPUBuffer {
    for (let i = 0; i < reps; i++) streamRead(rec, this.data, this.bytes, this.out);
    return this.out;
  }

  /** Frees the buffers. */
  destroy(): void {
    this.owner.destroy();
  }
}

/**
 * The adapter's streaming-read bandwidth in GB/s (10⁹ bytes/s): the best time of `r1` and of `r2`
 * reads of a 128 MiB buffer in one submission, differenced so that the submission and readback
 * latency cancel.
 */
export async function measureRoofline(gpu: Gpu, r1 = 4, r2 = 24, tries = 3): Promise<number> {
  const s = new StreamBuffer(gpu);
  try {
    await timeSubmission(gpu, (rec) => s.record(rec, 1)); // compiles the pipeline
    const best = async (reps: number) => {
      let t = Infinity;
      for (let i = 0; i < tries; i++) {
        t = Math.min(
          t,
          await timeSubmission(gpu, (rec) => s.record(rec, reps)),
        );
      }
      return t;
    };
    const t1 = await best(r1);
    const t2 = await best(r2);
    const seconds = (t2 > t1 ? t2 - t1 : t2) / 1000;
    return (s.bytes * (t2 > t1 ? r2 - r1 : r2)) / seconds / 1e9;
  } finally {
    s.destroy();
  }
}

/** The self-attention caches of a decoder (fusion layers included). */
export function selfAttentionCaches(model: TransformerDecoder): KVCache[] {
  return model.layers.map((l) => (l instanceof FusionLayer ? l.layer : l).attn.kv_cache!);
}

/** Bytes of weights one decode step reads: every parameter but the embedding tables (one row of those). */
export function decodeWeightBytes(model: TransformerDecoder): number {
  return model.named_parameters()
    .filter(([name]) => !name.startsWith("tok_embeddings."))
    .reduce((a, [, p]) => a + parameterBytes(p), 0);
}

/** Bytes of all weights on the GPU. */
export function weightBytes(model: TransformerDecoder): number {
  return model.named_parameters().reduce((a, [, p]) => a + parameterBytes(p), 0);
}

/** The encoder output and masks of a benchmark prompt: the image token first, then text. */
export interface BenchInputs {
  prompt: { data: Int32Array; shape: [number, number] };
  encoder_input: { data: Float32Array; shape: number[] };
  encoder_mask: { data: Uint8Array; shape: number[] };
}

/** A prompt of `promptLen` tokens (the image token, id `vocab_size`, first) attending to `encoderLen` vision tokens. */
export function benchInputs(
  vocabSize: number,
  embedDim: number,
  promptLen: number,
  encoderLen: number,
): BenchInputs {
  const ids = new Int32Array(promptLen);
  ids[0] = vocabSize;
  for (let i = 1; i < promptLen; i++) ids[i] = (i * 7919 + 13) % vocabSize;
  return {
    prompt: { data: ids, shape: [1, promptLen] },
    encoder_input: { data: randomF32(encoderLen * embedDim, 7, 1), shape: [1, encoderLen, embedDim] },
    encoder_mask: { data: new Uint8Array(promptLen * encoderLen).fill(1), shape: [1, promptLen, encoderLen] },
  };
}

/** A decoder prefilled with a benchmark prompt, ready to record decode steps. */
export class DecodeState {
  readonly model: TransformerDecoder;
  readonly gpu: Gpu;
  /** Position of the first decode step (the prompt length). */
  readonly start: number;
  /** Self-attention cache slots (each step attends over all of them, masked). */
  readonly cacheLen: number;
  /** Position the next recorded step gets. */
  pos: number;
  #owner: BufferOwner;
  #next: GPUBuffer;
  #encoderRow: HostMask;
  #step = 0;

  private constructor(model: TransformerDecoder, start: number, cacheLen: number, encoderLen: number) {
    this.model = model;
    this.gpu = model.gpu;
    this.start = this.pos = start;
    this.cacheLen = cacheLen;
    this.#owner = new BufferOwner(this.gpu);
    this.#next = this.#owner.storage(4, "next token");
    this.#encoderRow = { data: new Uint8Array(encoderLen).fill(1), shape: [1, 1, encoderLen] };
  }

  /**
   * Sets up caches of `cacheLen` slots (and `inputs`' encoder length), runs the prefill of `inputs` and
   * samples its token on the GPU, as the generation loop does.
   */
  static async prefill(
    model: TransformerDecoder,
    inputs: BenchInputs,
    cacheLen: number,
  ): Promise<DecodeState> {
    const [, seq] = inputs.prompt.shape;
    const encoderLen = inputs.encoder_input.shape[1];
    model.prepare_caches(1, { decoder_max_seq_len: cacheLen, encoder_max_seq_len: encoderLen });
    const state = new DecodeState(model, seq, cacheLen, encoderLen);
    const mask = new Uint8Array(seq * cacheLen);
    for (let i = 0; i < seq; i++) mask.fill(1, i * cacheLen, i * cacheLen + i + 1);
    await timeSubmission(state.gpu, (rec) => {
      const { logits } = model.record(rec, inputs.prompt, {
        mask: { data: mask, shape: [1, seq, cacheLen] },
        input_pos: { data: Int32Array.from({ length: seq }, (_, i) => i), shape: [1, seq] },
        encoder_input: inputs.encoder_input,
        encoder_mask: inputs.encoder_mask,
      }, { last_position_only: true });
      rec.temps.adopt(logits);
      state.#sample(rec, logits);
      return state.#next;
    });
    return state;
  }

  /**
   * Wraps caches that already hold a prompt of `start` tokens and `encoderLen` vision tokens (after a
   * generation, say); decode steps then start at `start`.
   */
  static attach(model: TransformerDecoder, start: number, encoderLen: number): DecodeState {
    const cacheLen = model.decoder_max_cache_seq_len;
    if (cacheLen === null) throw new Error("the model has no caches to decode with");
    return new DecodeState(model, start, cacheLen, encoderLen);
  }

  #sample(rec: Recorder, logits: GPUBuffer): void {
    const V = this.model.output.out_dim;
    const greedy = { temperature: 0, top_k: 1, top_p: 1, seed: 0 };
    sample(
      rec,
      logits,
      1,
      V,
      this.#next,
      this.#step++,
      greedy,
    );
  }

  /** Rewinds the self-attention caches to the end of the prompt (the encoder caches stay filled). */
  rewind(): void {
    for (const c of selfAttentionCaches(this.model)) c.size = this.start;
    this.pos = this.start;
  }

  /** Records one decode step at {@link DecodeState.pos}; returns the buffer holding the sampled id. */
  record(rec: Recorder): GPUBuffer {
    if (this.pos >= this.cacheLen) {
      throw new RangeError(`decode step at ${this.pos}: the cache holds ${this.cacheLen}`);
    }
    const mask = new Uint8Array(this.cacheLen).fill(1, 0, this.pos + 1);
    const { logits } = this.model.record(rec, { buffer: this.#next, shape: [1, 1] }, {
      mask: { data: mask, shape: [1, 1, this.cacheLen] },
      input_pos: { data: new Int32Array([this.pos]), shape: [1, 1] },
      encoder_mask: this.#encoderRow,
    }, { last_position_only: true });
    rec.temps.adopt(logits);
    this.#sample(rec, logits);
    this.pos++;
    return this.#next;
  }

  /** One decode step, submitted alone and awaited; wall milliseconds. */
  step(): Promise<number> {
    return timeSubmission(this.gpu, (rec) => this.record(rec));
  }

  /** Frees the step buffers (the model and its caches stay). */
  destroy(): void {
    this.#owner.destroy();
  }
}

/** Where the time of a decode step goes (see {@link profileDecode}). */
export interface DecodeProfile {
  /** Steps profiled. */
  steps: number;
  /** Kernel dispatches per step. */
  dispatches_per_step: number;
  /** Buffer copies per step (each splits the compute pass). */
  copies_per_step: number;
  /** Dispatches per step by kernel name. */
  kernels: Record<string, number>;
  /** Host milliseconds to record one step (bind groups, uniforms, masks), nothing submitted. */
  host_record_ms: number;
  /** Host milliseconds of `submit()` per step (finish + queue.submit). */
  host_submit_ms: number;
  /** Milliseconds per step from the first submit until the last step's token is on the host. */
  gpu_ms: number;
  /** One step submitted alone and awaited (host + GPU + readback latency), median of up to 4. */
  serial_step_ms: number;
}

/**
 * Profiles decode steps: `steps` steps are recorded first (host time, dispatches counted), then
 * submitted back to back and awaited (GPU time); then up to 4 steps are run one at a time.
 */
export async function profileDecode(state: DecodeState, steps: number): Promise<DecodeProfile> {
  const gpu = state.gpu;
  state.rewind();
  const counts = { dispatches: 0, copies: 0, kernels: {} as Record<string, number> };
  const proto = Recorder.prototype;
  const dispatch = proto.dispatch, copy = proto.copy;
  proto.dispatch = function (this: Recorder, ...args: Parameters<Recorder["dispatch"]>) {
    counts.dispatches++;
    counts.kernels[args[0]] = (counts.kernels[args[0]] ?? 0) + 1;
    return dispatch.apply(this, args);
  };
  proto.copy = function (this: Recorder, ...args: Parameters<Recorder["copy"]>) {
    counts.copies++;
    return copy.apply(this, args);
  };
  const recs: Recorder[] = [];
  let rb: Readback | null = null;
  const t0 = performance.now();
  try {
    for (let i = 0; i < steps; i++) {
      gpu.scoped(() => {
        // The model's scratch pool, as the generation loop records with (and so its bind groups reused).
        const rec = new Recorder(gpu, state.model.scratch_pool);
        recs.push(rec);
        const out = state.record(rec);
        if (i === steps - 1) rb = new Readback(rec, out, 0, 4);
      });
    }
  } catch (e) {
    for (const r of recs) r.temps.destroy();
    throw e;
  } finally {
    proto.dispatch = dispatch;
    proto.copy = copy;
  }
  const t1 = performance.now();
  gpu.scoped(() => {
    for (const r of recs) r.submit();
  });
  const t2 = performance.now();
  await rb!.read();
  const t3 = performance.now();

  state.rewind();
  const serial: number[] = [];
  for (let i = 0; i < Math.min(steps, 4); i++) serial.push(await state.step());
  serial.sort((a, b) => a - b);
  const kernels = Object.fromEntries(
    Object.entries(counts.kernels).sort((a, b) => b[1] - a[1]).map(([k, n]) => [k, n / steps]),
  );
  return {
    steps,
    dispatches_per_step: counts.dispatches / steps,
    copies_per_step: counts.copies / steps,
    kernels,
    host_record_ms: (t1 - t0) / steps,
    host_submit_ms: (t2 - t1) / steps,
    gpu_ms: (t3 - t1) / steps,
    serial_step_ms: serial[Math.floor(serial.length / 2)],
  };
}

/** Peak resident host memory of this process: VmHWM on Linux, else the largest sampled RSS. */
export class RssTracker {
  #max = 0;
  #timer: ReturnType<typeof setInterval>;

  /** Starts sampling every `intervalMs`. */
  constructor(intervalMs = 100) {
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now. */
  sample(): void {
    this.#max = Math.max(this.#max, Deno.memoryUsage().rss);
  }

  /** The peak so far in bytes (sampling goes on). */
  peak(): number {
    this.sample();
    try {
      const m = Deno.readTextFileSync("/proc/self/status").match(/^VmHWM:\s+(\d+)\s+kB/m);
      if (m) return Math.max(this.#max, Number(m[1]) * 1024);
    } catch {
      // not Linux, or no read permission: the sampled maximum
    }
    return this.#max;
  }

  /** The current resident size in bytes. */
  static current(): number {
    return Deno.memoryUsage().rss;
  }

  /** Stops sampling; returns the peak in bytes. */
  stop(): number {
    clearInterval(this.#timer);
    return this.peak();
  }
}

/** The vision encoder of {@link encoderBench}, ready to run. */
export interface EncoderBench {
  /** The encoder, weights on the GPU. */
  encoder: Llama3VisionEncoder;
  /** CLIP layers + projection layers it has. */
  layers: number;
  /** Encodes the bench image once (record, submit, read 16 bytes of the output back). */
  run(): Promise<void>;
}

/**
 * The vision encoder with the real 11B shapes (`llama3_2_vision_encoder` as torchtune's
 * `llama3_2_vision_11b` builds it: CLIP 32 × 1280, 8 projection layers, 560-pixel tiles) and random bf16
 * weights, on one image of 4 tiles (2×2, 6,404 tokens). `cut` = [CLIP layers, projection layers] keeps that
 * many (same widths and token count): the full encoder's time scales by layers.
 */
export async function encoderBench(gpu: Gpu, cut?: number[]): Promise<EncoderBench> {
  const full = LLAMA3_2_VISION_11B_ENCODER_ARGS;
  const args = cut
    ? {
      ...full,
      clip_num_layers: cut[0],
      num_layers_projection: cut[1],
      clip_hidden_states: [...new Set(full.clip_hidden_states!.map((i) => Math.min(i, cut[0])))],
    }
    : full;
  const encoder = llama3_2_vision_encoder(args);
  const owner = new BufferOwner(gpu);
  const params = encoder.named_parameters();
  await uploadParameters(
    { named_parameters: () => params, attach: () => owner, destroy: () => owner.destroy() },
    new Map(params.map(([n, p]) => [n, randomSource(n, p.shape)])),
    gpu,
  );
  const T = 560;
  const input = {
    images: {
      data: new Float32Array(4 * 3 * T * T).map((_, i) => Math.sin(i) * 0.5),
      shape: [1, 1, 4, 3, T, T],
    },
    aspect_ratio: { data: new Int32Array([2, 2]), shape: [1, 1, 2] },
  };
  return {
    encoder,
    layers: args.clip_num_layers + args.num_layers_projection,
    run: async () => {
      const rec = new Recorder(gpu);
      const { buffer } = encoder.record(rec, input);
      const rb = new Readback(rec, buffer, 0, 16);
      rec.temps.adopt(buffer);
      rec.submit();
      await rb.read();
    },
  };
}

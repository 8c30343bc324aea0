/**
 * The generation loop, mirroring torchtune's `generation.generate` (padding-aware causal masks and
 * positions, stop tokens, tokens after a stop replaced by `pad_id`) with the sampling on the GPU and
 * no host wait between steps: each step's sampled ids stay on the GPU and feed the next step's
 * embedding lookup, and the readback of step t is awaited only while steps t+1…t+lookahead compute.
 *
 * @module
 */
import { BufferOwner } from "../gpu/buffers.ts";
import { type Recorder, sample, startRecording } from "../gpu/ops.ts";
import { Readback } from "../gpu/readback.ts";
import type { DeviceTensor, HostTensor } from "../gpu/tensor.ts";
import type {
  DecoderForwardOptions,
  GpuEncoderOutput,
  HostMask,
  VisionEncoderInput,
} from "../modules/decoder_inputs.ts";
import type { DeepFusionModel } from "../modules/deep_fusion_model.ts";
import type { TransformerDecoder } from "../modules/transformer_decoder.ts";
import { resolveSampling, type SamplingOptions } from "./sampling.ts";

/** Options of {@link generate} and {@link generateStream}. */
export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate per sequence (torchtune `max_generated_tokens`). */
  max_new_tokens: number;
  /** Generation stops once every sequence has produced one of these ids. */
  stop_tokens?: number[];
  /** Id used for left padding in the prompt and for tokens after a stop (default 0, as torchtune). */
  pad_id?: number;
  /** Steps submitted ahead of the readback being awaited (default 4). */
  lookahead?: number;
  /**
   * For the prefill: an encoder output `[b, S, E]` (host or GPU), or, with a fusion model, the images
   * themselves (the encoder runs once before the prefill). Needs `encoder_mask`.
   */
  encoder_input?: HostTensor<Float32Array> | GpuEncoderOutput | VisionEncoderInput | null;
  /** Cross-attention mask of the prompt `[b, s, S]`; decode steps reuse its last row, as torchtune does. */
  encoder_mask?: HostMask | null;
}

/** One step of {@link generateStream}: the ids sampled for each sequence. */
export interface GenerateStep {
  /** 0-based index of the generated token. */
  step: number;
  /** `[b]` ids; a sequence that already stopped gets `pad_id`. */
  tokens: Int32Array;
  /** Per sequence: whether it has produced a stop token (at this step or before). */
  stopped: boolean[];
}

/** Timing of a generation, for statistics lines. */
export interface GenerateStats {
  /** Prompt tokens over the batch. */
  prompt_tokens: number;
  /** Generated tokens over the batch. */
  generated_tokens: number;
  /** Milliseconds from the start until the first token was on the host (prefill + one readback). */
  prefill_ms: number;
  /** Milliseconds from the first to the last token on the host. */
  decode_ms: number;
}

/** A decode step recorded but not yet submitted, with the readback of the ids it samples. */
interface RecordedStep {
  rec: Recorder;
  readback: Readback;
}

const locks = new WeakMap<TransformerDecoder, Promise<void>>();

/**
 * Streams generated tokens step by step. The prompt is `[b, s]` i32 ids, left-padded with `pad_id`
 * where sequences differ in length. Caches are (re)built to hold prompt + `max_new_tokens`.
 * Concurrent calls on one model are serialised.
 */
export async function* generateStream(
  model: TransformerDecoder | DeepFusionModel,
  prompt: HostTensor<Int32Array | ArrayLike<number>>,
  opts: GenerateOptions,
  stats?: GenerateStats,
): AsyncGenerator<GenerateStep> {
  const previous = locks.get(model.decoder) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((r) => release = r);
  locks.set(model.decoder, previous.then(() => mine));
  await previous;
  try {
    yield* run(model, prompt, opts, stats);
  } finally {
    release();
  }
}

async function* run(
  fusion: TransformerDecoder | DeepFusionModel,
  prompt: HostTensor<Int32Array | ArrayLike<number>>,
  opts: GenerateOptions,
  stats?: GenerateStats,
): AsyncGenerator<GenerateStep> {
  const model = fusion.decoder;
  let encoded: DeviceTensor | null = null;
  if (opts.encoder_input && "images" in opts.encoder_input) {
    if (!("encode" in fusion)) {
      throw new TypeError(
        "images need a fusion model (a checkpoint with vision weights), not a bare decoder",
      );
    }
    encoded = fusion.encode(opts.encoder_input);
    opts = { ...opts, encoder_input: encoded };
  }
  try {
    yield* runDecoder(model, prompt, opts, stats);
  } finally {
    encoded?.destroy();
  }
}

async function* runDecoder(
  model: TransformerDecoder,
  prompt: HostTensor<Int32Array | ArrayLike<number>>,
  opts: GenerateOptions,
  stats?: GenerateStats,
): AsyncGenerator<GenerateStep> {
  const settings = resolveSampling(opts);
  const maxNew = opts.max_new_tokens;
  if (!Number.isInteger(maxNew) || maxNew < 1) {
    throw new RangeError(`max_new_tokens must be a positive integer, got ${maxNew}`);
  }
  if (prompt.shape.length !== 2) throw new RangeError(`prompt must be [batch, seq], got [${prompt.shape}]`);
  const [batch, seq] = prompt.shape;
  const total = seq + maxNew;
  if (total > model.max_seq_len) {
    throw new RangeError(
      `prompt (${seq}) + max_new_tokens (${maxNew}) = ${total} exceeds the model's max_seq_len ${model.max_seq_len}; ` +
        "shorten the prompt or lower max_new_tokens",
    );
  }
  const padId = opts.pad_id ?? 0;
  const stopSet = new Set(opts.stop_tokens ?? []);
  const lookahead = Math.max(1, opts.lookahead ?? 4);
  const V = model.output.out_dim;
  // Images were encoded by the caller above; what reaches here is an encoder output [b, S, E].
  const enc = opts.encoder_input as HostTensor<Float32Array> | GpuEncoderOutput | null | undefined;
  const encLen = enc ? enc.shape[1] : null;
  model.prepare_caches(batch, { decoder_max_seq_len: total, encoder_max_seq_len: encLen });
  const L = model.decoder_max_cache_seq_len!;

  // torchtune: padding_mask = prompt != pad_id (extended with True); input_pos = cumsum − 1 on real
  // tokens, 0 on pads; mask = tril(total × L) with the first `total` key columns ANDed with the padding
  // and the diagonal forced True.
  const real = new Uint8Array(batch * total).fill(1);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < seq; i++) real[b * total + i] = Number(prompt.data[b * seq + i]) !== padId ? 1 : 0;
  }
  const positions = new Int32Array(batch * total);
  for (let b = 0; b < batch; b++) {
    let c = 0;
    for (let i = 0; i < total; i++) {
      c += real[b * total + i];
      positions[b * total + i] = (c - 1) * real[b * total + i];
    }
  }
  const maskRows = (from: number, n: number): HostMask => {
    const data = new Uint8Array(batch * n * L);
    for (let b = 0; b < batch; b++) {
      for (let r = 0; r < n; r++) {
        const i = from + r;
        const row = (b * n + r) * L;
        for (let j = 0; j <= i; j++) data[row + j] = j === i ? 1 : real[b * total + j];
      }
    }
    return { data, shape: [batch, n, L] };
  };
  const posRows = (from: number, n: number): HostTensor<Int32Array> => {
    const data = new Int32Array(batch * n);
    for (let b = 0; b < batch; b++) {
      data.set(positions.subarray(b * total + from, b * total + from + n), b * n);
    }
    return { data, shape: [batch, n] };
  };
  let lastEncoderRow: HostMask | null = null;
  if (opts.encoder_mask) {
    const S = opts.encoder_mask.shape[2];
    const data = new Uint8Array(batch * S);
    for (let b = 0; b < batch; b++) {
      for (let j = 0; j < S; j++) {
        data[b * S + j] = opts.encoder_mask.data[(b * seq + seq - 1) * S + j] ? 1 : 0;
      }
    }
    lastEncoderRow = { data, shape: [batch, 1, S] };
  }

  const gpu = model.gpu;
  const owner = new BufferOwner(gpu);
  const next = owner.storage(batch * 4, "next tokens");
  const pending: Promise<Uint8Array>[] = [];
  const stopped = new Array<boolean>(batch).fill(false);
  const t0 = performance.now();
  let tFirst = 0;
  let received = 0;
  let submitted = 0;
  // The step recorded next, not yet submitted.
  let ahead: RecordedStep | null = null;
  let failed = false;
  // Submits a recorded step (freeing what it holds if that fails).
  const submit = (step: RecordedStep) => {
    try {
      gpu.scoped(() => step.rec.submit());
    } catch (e) {
      step.rec.temps.destroy();
      step.readback.discard();
      throw e;
    }
  };
  try {
    const recordStep = (step: number): RecordedStep => {
      const { rec, result } = startRecording(gpu, model.scratch_pool, (rec) => {
        const forwardOpts: DecoderForwardOptions = step === 0
          ? {
            mask: maskRows(0, seq),
            input_pos: posRows(0, seq),
            encoder_input: opts.encoder_input ?? null,
            encoder_mask: opts.encoder_mask ?? null,
          }
          : {
            mask: maskRows(seq + step - 1, 1),
            input_pos: posRows(seq + step - 1, 1),
            encoder_mask: lastEncoderRow,
          };
        const tokens = step === 0 ? prompt : { buffer: next, shape: [batch, 1] as [number, number] };
        const { logits } = model.record(rec, tokens, forwardOpts, { last_position_only: true });
        rec.temps.adopt(logits);
        sample(rec, logits, batch, V, next, step, settings);
        return new Readback(rec, next, 0, batch * 4);
      });
      return { rec, readback: result };
    };
    // Submits the recorded step, records the one after it while the GPU computes, and only then asks for
    // the submitted step's ids: Deno's mapAsync waits (blocking) until the queue is idle, so a step
    // recorded after that call would leave the GPU idle for as long as its recording takes. So one step
    // is always recorded ahead (and runs even when the sequences stop; stats.prefill_ms includes
    // recording step 1), and a WebGPU error in recording step t + 1 surfaces in step t's readback.
    const submitStep = () => {
      const current = ahead ?? recordStep(submitted);
      ahead = null;
      submit(current);
      submitted++;
      try {
        if (submitted < maxNew) ahead = recordStep(submitted);
      } finally {
        pending.push(current.readback.read());
      }
    };
    while (received < maxNew) {
      while (submitted < maxNew && submitted - received < lookahead) submitStep();
      const bytes = await pending.shift()!;
      const ids = new Int32Array(bytes.buffer, 0, batch).slice();
      if (received === 0) tFirst = performance.now();
      for (let b = 0; b < batch; b++) {
        if (stopped[b]) ids[b] = padId;
        else if (stopSet.has(ids[b])) stopped[b] = true;
      }
      yield { step: received, tokens: ids, stopped: [...stopped] };
      received++;
      if (stopSet.size > 0 && stopped.every(Boolean)) break;
    }
  } catch (e) {
    failed = true;
    throw e;
  } finally {
    // A step recorded ahead has advanced the KV caches' slot counters: when every sequence stopped (or
    // the caller stopped reading) it runs too, so that its slots hold what it computed rather than
    // nothing; after an error it only frees what it holds. Steps in flight finish before their buffers go
    // away.
    const unsubmitted = ahead as RecordedStep | null;
    if (unsubmitted && failed) {
      unsubmitted.rec.temps.destroy();
      unsubmitted.readback.discard();
    } else if (unsubmitted) {
      try {
        submit(unsubmitted);
        pending.push(unsubmitted.readback.read());
      } catch {
        // submit freed what the step holds; a lost device fails the next call on it (Gpu.assertAlive).
      }
    }
    await Promise.allSettled(pending);
    owner.destroy();
    if (stats) {
      stats.prompt_tokens = batch * seq;
      stats.generated_tokens = batch * received;
      stats.prefill_ms = tFirst - t0;
      stats.decode_ms = performance.now() - tFirst;
    }
  }
}

/**
 * torchtune's `generate`: returns the prompt followed by the generated ids `[b, s + n]`, with
 * `pad_id` after each sequence's stop token (n ≤ `max_new_tokens`: it ends early once every
 * sequence has stopped).
 */
export async function generate(
  model: TransformerDecoder | DeepFusionModel,
  prompt: HostTensor<Int32Array | ArrayLike<number>>,
  opts: GenerateOptions,
): Promise<HostTensor<Int32Array>> {
  const [batch, seq] = prompt.shape;
  const steps: Int32Array[] = [];
  for await (const s of generateStream(model, prompt, opts)) steps.push(s.tokens);
  const n = steps.length;
  const data = new Int32Array(batch * (seq + n));
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < seq; i++) data[b * (seq + n) + i] = Number(prompt.data[b * seq + i]);
    steps.forEach((t, j) => data[b * (seq + n) + seq + j] = t[b]);
  }
  return { data, shape: [batch, seq + n] };
}

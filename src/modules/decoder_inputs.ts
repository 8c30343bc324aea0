/**
 * Checks the host inputs of `TransformerDecoder.forward` against torchtune's rules and turns them
 * into what the kernels read (i32 ids and positions, masks as bits, skip flags).
 *
 * @module
 */
import type { HostTensor } from "../gpu/tensor.ts";

/** A host mask: `{ data, shape }` of booleans or 0/1 numbers (Uint8Array or boolean[]), True = attend. */
export type HostMask = HostTensor<ArrayLike<number | boolean>>;

/** Keyword arguments of `TransformerDecoder.forward`, as in torchtune. */
export interface DecoderForwardOptions {
  /** Self-attention mask `[b, s, s]`, or `[b, s, cache_len]` with caches (required then). */
  mask?: HostMask | null;
  /**
   * The cross-attention input: an encoder output `[b, S, E]` (a Float32Array host tensor, or already
   * on the GPU), or, for a fusion model, images and their aspect ratios (the encoder then runs first).
   */
  encoder_input?: HostTensor<Float32Array> | GpuEncoderOutput | VisionEncoderInput | null;
  /** Cross-attention mask `[b, s, S]` (`[b, s, encoder cache len]` with caches). */
  encoder_mask?: HostMask | null;
  /** RoPE positions: `[b, s]`, `[s]`, `[b]`, `[b, 1]` or a scalar (Int32Array). */
  input_pos?: HostTensor<Int32Array | ArrayLike<number>> | null;
}

/** Images for the vision encoder: torchtune's `encoder_input` dict of `DeepFusionModel`. */
export interface VisionEncoderInput {
  /** f32 `[b, n_imgs, n_tiles, C, T, T]`, padding tiles all zero. */
  images: HostTensor<Float32Array>;
  /** i32 `[b, n_imgs, 2]`: `(n_tiles_h, n_tiles_w)` of each image's real tiles. */
  aspect_ratio: HostTensor<Int32Array | ArrayLike<number>>;
}

/** An encoder output already on the GPU (f32 `[b, S, E]`), e.g. from the vision encoder. */
export interface GpuEncoderOutput {
  /** f32 `[b, S, E]`, row-major. */
  buffer: GPUBuffer;
  /** `[b, S, E]`. */
  shape: number[];
}

/** Packed mask rows: `words` u32 per row, bit j of a row = key j allowed. */
export interface PackedMask {
  /** `[rows, words]` bits. */
  bits: Uint32Array;
  /** u32 per row. */
  words: number;
  /** One past the last key any row allows (0 when none does). */
  used: number;
  /** Whether every row allows every key (the mask then changes nothing and can be dropped). */
  full: boolean;
  /** Per row: 1 when no key is allowed. */
  empty: Uint32Array;
}

function shapeOf(name: string, t: { data: ArrayLike<unknown>; shape: number[] }): number[] {
  if (!t || typeof t !== "object" || !Array.isArray(t.shape) || t.data == null) {
    throw new TypeError(`${name} must be a host tensor { data, shape }`);
  }
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== n) {
    throw new RangeError(`${name}: shape [${t.shape}] needs ${n} values, data has ${t.data.length}`);
  }
  return t.shape;
}

/** Checks a mask's shape is `[b, s, width]` and packs it to bits. */
export function packMask(
  name: string,
  mask: HostMask,
  batch: number,
  seq: number,
  width: number,
): PackedMask {
  const shape = shapeOf(name, mask);
  if (shape.length !== 3 || shape[0] !== batch || shape[1] !== seq || shape[2] !== width) {
    throw new RangeError(
      `${name} has shape [${shape}] but must be [${batch}, ${seq}, ${width}] (batch, sequence, key length)`,
    );
  }
  const words = Math.ceil(width / 32);
  const rows = batch * seq;
  const bits = new Uint32Array(rows * words);
  const empty = new Uint32Array(rows);
  const data = mask.data;
  let used = 0;
  let full = true;
  for (let r = 0; r < rows; r++) {
    let any = false;
    for (let j = 0; j < width; j++) {
      if (data[r * width + j]) {
        bits[r * words + (j >> 5)] |= 1 << (j & 31);
        any = true;
        if (j >= used) used = j + 1;
      } else {
        full = false;
      }
    }
    empty[r] = any ? 0 : 1;
  }
  return { bits, words, empty, used, full };
}

/** Checks token ids `[b, s]` are integers in `[0, numEmbeddings)`. */
export function checkTokens(
  tokens: HostTensor<Int32Array | ArrayLike<number>>,
  numEmbeddings: number,
): { batch: number; seq: number; ids: Int32Array } {
  const shape = shapeOf("tokens", tokens);
  if (shape.length !== 2 || shape[0] < 1 || shape[1] < 1) {
    throw new RangeError(`tokens must have shape [batch, seq] with both ≥ 1, got [${shape}]`);
  }
  const ids = new Int32Array(tokens.data.length);
  for (let i = 0; i < ids.length; i++) {
    // Number() also accepts BigInt64Array data (torch's int64 ids exported as is).
    const v = Number(tokens.data[i]);
    ids[i] = v;
    if (!Number.isInteger(v) || v < 0 || v >= numEmbeddings) {
      throw new RangeError(
        `token id ${v} at position ${i} is outside [0, ${numEmbeddings}) ` +
          `(vocab_size + num_special_tokens); check the tokenizer matches the model`,
      );
    }
  }
  return { batch: shape[0], seq: shape[1], ids };
}

/** Expands `input_pos` (or the default 0…s−1) to i32 `[b·s]` and checks it against the RoPE table. */
export function expandPositions(
  input_pos: HostTensor<Int32Array | ArrayLike<number>> | null | undefined,
  batch: number,
  seq: number,
  maxSeqLen: number,
): Int32Array {
  const out = new Int32Array(batch * seq);
  if (!input_pos) {
    for (let i = 0; i < out.length; i++) out[i] = i % seq;
    return out;
  }
  shapeOf("input_pos", input_pos);
  const data = input_pos.data;
  const raw = new Float64Array(out.length);
  if (data.length === batch * seq) {
    for (let i = 0; i < out.length; i++) raw[i] = Number(data[i]);
  } else if (data.length === seq) {
    for (let i = 0; i < out.length; i++) raw[i] = Number(data[i % seq]);
  } else {
    throw new RangeError(
      `input_pos has shape [${input_pos.shape}] but must hold ${
        batch * seq
      } ([b, s]) or ${seq} ([s]) positions`,
    );
  }
  raw.forEach((p, i) => {
    if (!Number.isInteger(p) || p < 0 || p >= maxSeqLen) {
      throw new RangeError(`input_pos value ${p} is outside [0, max_seq_len = ${maxSeqLen})`);
    }
    out[i] = p;
  });
  return out;
}

/** Checks `encoder_input` is `[b, S, E]` f32 (host or GPU); returns S. */
export function checkEncoderInput(
  enc: HostTensor<Float32Array> | GpuEncoderOutput,
  batch: number,
  embedDim: number,
): number {
  if ("buffer" in enc) {
    const s = enc.shape;
    if (s.length !== 3 || s[0] !== batch || s[2] !== embedDim || s[1] < 1) {
      throw new RangeError(`encoder_input has shape [${s}] but must be [${batch}, S, ${embedDim}]`);
    }
    return s[1];
  }
  const shape = shapeOf("encoder_input", enc);
  if (shape.length !== 3 || shape[0] !== batch || shape[2] !== embedDim || shape[1] < 1) {
    throw new RangeError(`encoder_input has shape [${shape}] but must be [${batch}, S, ${embedDim}]`);
  }
  if (!(enc.data instanceof Float32Array)) throw new TypeError("encoder_input.data must be a Float32Array");
  return shape[1];
}

/**
 * Weight-only quantization at load time: f32 rows → the q8 / q4 group layout the `weight_q8.wgsl` /
 * `weight_q4.wgsl` snippets read, and f32 → bf16 for `dtype: "bf16"`.
 *
 * Layout: each row is cut into groups of {@link QUANT_GROUP} = 32 consecutive elements with one scale `d`
 * each; the values and the scales are stored apart, so that the kernels load 16 (q8) or 32 (q4) values
 * with one vec4<u32> load and their scale with one more:
 * - q8 (`cols % 32 == 0`): four int8 per u32 (element 4j+b in byte b of word j), `d = max|x| / 127` as
 *   f32, `q ∈ [−127, 127]`: 8 value words and one f32 scale per 32 weights (1.125 bytes per weight).
 * - q4 (`cols % 64 == 0`): eight int4 per u32 (element 8j+n in bits 4n…4n+3 of word j, two's complement),
 *   `d = max|x| / 7` rounded to bf16, `q ∈ [−7, 7]`: 4 value words (one vec4, one group) and one bf16
 *   scale per 32 weights (0.5625 bytes per weight). bf16 keeps f32's range, and its 2^-9 relative
 *   rounding is far below q4's own steps; a decode step reads 10% fewer bytes than with f32 scales.
 *
 * {@link quantizeRows} packs a piece of whole rows as all their values (row-major) followed by all their
 * scales (row-major; f32 for q8, bf16 for q4); `WeightStorage.writeRows` scatters such a piece into a
 * row-chunk buffer laid out as a 16-byte header (word 0: the word offset of the scales), the values of all
 * the chunk's rows, then their scales (see `kernels/weight_q8.wgsl`); q4 chunks keep rows in blocks of 8
 * whose groups interleave, and pair the scales of two groups in a word (`q4Slot` in src/gpu/buffers.ts,
 * `kernels/weight_q4.wgsl`).
 *
 * `q = round(x / d)` with ties away from zero (computed as `x · (1/d)`, as llama.cpp's q8_0 does); an
 * all-zero group has `d = 0`. The value is `f32(q) · d`, so `|x − f32(q)·d| ≤ d/2` up to f32 rounding.
 *
 * @module
 */
import {
  isQuantized,
  QUANT_GROUP,
  quantRowMultiple,
  type WeightDtype,
  weightItemSize,
} from "../gpu/buffers.ts";
import { f16ToF32, type SafetensorsDtype } from "./safetensors.ts";

export { QUANT_GROUP };

/** The quantized weight dtypes. */
export type QuantDtype = "q8" | "q4";

/**
 * What `loadCheckpoint` / `uploadParameters` store weights as: `"auto"` keeps the checkpoint's dtype,
 * `"bf16"` converts f32 / f16 weights to bf16 (round to nearest even), `"q8"` / `"q4"` quantize every
 * weight matrix whose rows are a multiple of 32 (q8) or 64 (q4) long (see {@link loadWeightDtype}).
 */
export type LoadDtype = "auto" | "bf16" | "q8" | "q4";

/** Bytes per group of 32 weights in a piece of {@link quantizeRows}: the packed values plus the scale. */
export function groupBytes(dtype: QuantDtype): number {
  return weightItemSize(dtype) * QUANT_GROUP;
}

/**
 * The GPU dtype of a (not always-f32) parameter of `shape` from a `source` tensor under `load`:
 * `"auto"` keeps the source dtype; `"bf16"` gives bf16; `"q8"` / `"q4"` quantize tensors of two or
 * more dimensions whose rows (the product of `shape[1:]`) are a multiple of 32 (q8) or 64 (q4) long,
 * and keep the rest (a patch-embedding conv whose rows are 3·14·14 long, say) as bf16.
 */
export function loadWeightDtype(load: LoadDtype, source: SafetensorsDtype, shape: number[]): WeightDtype {
  if (load === "auto") return source === "F32" ? "f32" : source === "BF16" ? "bf16" : "f16";
  if (load === "bf16") return "bf16";
  const cols = shape.slice(1).reduce((a, b) => a * b, 1);
  return shape.length >= 2 && cols % quantRowMultiple(load) === 0 ? load : "bf16";
}

/**
 * Quantizes rows of f32 values (`values.length` a multiple of 32; rows concatenated, each a multiple of
 * 32 long, so groups never straddle rows; `WeightStorage` takes q4 rows of a multiple of 64 only, see
 * `quantRowMultiple`) into the q8 / q4 piece layout: the packed values of all groups,
 * then their scales (f32 for q8, bf16 for q4). Writes into `out` when given (at least
 * `values.length / 32 · groupBytes` bytes, 4-byte aligned) and returns the bytes written.
 */
export function quantizeRows(values: Float32Array, dtype: QuantDtype, out?: Uint8Array): Uint8Array {
  if (!isQuantized(dtype)) throw new RangeError(`quantizeRows: not a quantized dtype: ${dtype}`);
  if (values.length % QUANT_GROUP !== 0) {
    throw new RangeError(`quantizeRows: ${values.length} values is not a multiple of ${QUANT_GROUP}`);
  }
  const groups = values.length / QUANT_GROUP;
  const bytes = groups * groupBytes(dtype);
  if (out && (out.byteLength < bytes || out.byteOffset % 4 !== 0)) {
    throw new RangeError(`quantizeRows: the output needs ${bytes} bytes at a 4-byte aligned offset`);
  }
  const dst = out ? out.subarray(0, bytes) : new Uint8Array(bytes);
  const vw = dtype === "q8" ? 8 : 4; // value words per group
  const u32 = new Uint32Array(dst.buffer, dst.byteOffset, groups * vw);
  const scaleAt = dst.byteOffset + groups * vw * 4;
  const scales32 = dtype === "q8" ? new Float32Array(dst.buffer, scaleAt, groups) : null;
  const scales16 = dtype === "q4" ? new Uint16Array(dst.buffer, scaleAt, groups) : null;
  const qmax = dtype === "q8" ? 127 : 7;
  for (let g = 0; g < groups; g++) {
    const o = g * QUANT_GROUP;
    let amax = 0;
    for (let j = 0; j < QUANT_GROUP; j++) {
      const a = Math.abs(values[o + j]);
      if (a > amax) amax = a;
    }
    let d = Math.fround(amax / qmax);
    if (scales16) {
      // The scale as stored (bf16, round to nearest even), so that the values are quantized against it.
      const bits = bf16Bits(d);
      scales16[g] = bits;
      d = bf16Value(bits);
    } else {
      scales32![g] = d;
    }
    const id = d === 0 ? 0 : 1 / d;
    const w = g * vw;
    if (dtype === "q8") {
      for (let j = 0; j < 8; j++) {
        let word = 0;
        for (let b = 0; b < 4; b++) {
          const x = values[o + 4 * j + b] * id;
          let q = (x + (x < 0 ? -0.5 : 0.5)) | 0; // ties away from zero (| 0 truncates)
          q = q > 127 ? 127 : q < -127 ? -127 : q;
          word |= (q & 0xff) << (8 * b);
        }
        u32[w + j] = word;
      }
    } else {
      for (let j = 0; j < 4; j++) {
        let word = 0;
        for (let n = 0; n < 8; n++) {
          const x = values[o + 8 * j + n] * id;
          let q = (x + (x < 0 ? -0.5 : 0.5)) | 0;
          q = q > 7 ? 7 : q < -7 ? -7 : q;
          word |= (q & 0xf) << (4 * n);
        }
        u32[w + j] = word;
      }
    }
  }
  return dst;
}

/**
 * The f32 values of `n` quantized elements in the piece layout of {@link quantizeRows} (its inverse, as
 * the snippets compute it).
 */
export function dequantizeRows(bytes: Uint8Array, dtype: QuantDtype, n: number): Float32Array {
  if (n % QUANT_GROUP !== 0) throw new RangeError(`dequantizeRows: ${n} is not a multiple of ${QUANT_GROUP}`);
  const groups = n / QUANT_GROUP;
  const size = groups * groupBytes(dtype);
  if (bytes.byteLength < size) {
    throw new RangeError(`dequantizeRows: ${n} ${dtype} values need ${size} bytes`);
  }
  const src = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice(0, size);
  const vw = dtype === "q8" ? 8 : 4;
  const i32 = new Int32Array(src.buffer, src.byteOffset, groups * vw);
  const scaleAt = src.byteOffset + groups * vw * 4;
  const scales32 = dtype === "q8" ? new Float32Array(src.buffer, scaleAt, groups) : null;
  const scales16 = dtype === "q4" ? new Uint16Array(src.buffer, scaleAt, groups) : null;
  const out = new Float32Array(n);
  for (let g = 0; g < groups; g++) {
    const w = g * vw;
    const d = scales16 ? bf16Value(scales16[g]) : scales32![g];
    for (let e = 0; e < QUANT_GROUP; e++) {
      const q = dtype === "q8"
        ? (i32[w + (e >> 2)] << (24 - 8 * (e & 3))) >> 24
        : (i32[w + (e >> 3)] << (28 - 4 * (e & 7))) >> 28;
      out[g * QUANT_GROUP + e] = q * d;
    }
  }
  return out;
}

const bits32 = new Uint32Array(1);
const float32 = new Float32Array(bits32.buffer);

/** The bf16 bit pattern of an f32 value (round to nearest even; NaN stays NaN). */
function bf16Bits(x: number): number {
  float32[0] = x;
  return bf16FromF32Bits(bits32[0]);
}

/** {@link bf16Bits} of f32 bit pattern `u`. */
function bf16FromF32Bits(u: number): number {
  return (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** The f32 value of a bf16 bit pattern. */
function bf16Value(bits: number): number {
  bits32[0] = bits << 16;
  return float32[0];
}

/**
 * f32 → bf16 bit patterns, rounding to nearest with ties to even (NaN stays NaN); little-endian bytes
 * (two per element) ready to upload, written into `into` when given.
 */
export function f32ToBf16(values: Float32Array, into?: Uint8Array): Uint8Array {
  const src = new Uint32Array(values.buffer, values.byteOffset, values.length);
  if (into && (into.byteLength < values.length * 2 || into.byteOffset % 2 !== 0)) {
    throw new RangeError(`f32ToBf16: the output needs ${values.length * 2} bytes at an even offset`);
  }
  const out = into
    ? new Uint16Array(into.buffer, into.byteOffset, values.length)
    : new Uint16Array(values.length);
  for (let i = 0; i < src.length; i++) out[i] = bf16FromF32Bits(src[i]);
  return new Uint8Array(out.buffer, out.byteOffset, values.length * 2);
}

/**
 * Converts streamed pieces of raw source bytes (f32 / bf16 / f16) to a GPU weight dtype (bf16, q8,
 * q4), reusing its scratch buffers between pieces: allocating a fresh 128 MiB array per 64 MiB piece
 * costs more than the conversion itself. What {@link WeightConverter.convert} returns is valid until
 * its next call (`queue.writeBuffer` copies it at once).
 */
export class WeightConverter {
  #wide = new Float32Array(0);
  #out = new Uint8Array(0);
  static #f16: Float32Array | null = null;

  /** `raw` (little-endian `source` elements; row-whole for q8 / q4) as bytes of `target`. */
  convert(raw: Uint8Array, source: SafetensorsDtype, target: "bf16" | QuantDtype): Uint8Array {
    const values = this.#widen(raw, source);
    if (target === "bf16") return f32ToBf16(values, this.#scratchOut(values.length * 2));
    const bytes = (values.length / QUANT_GROUP) * groupBytes(target);
    return quantizeRows(values, target, this.#scratchOut(bytes));
  }

  #scratchOut(bytes: number): Uint8Array {
    if (this.#out.byteLength < bytes) this.#out = new Uint8Array(Math.ceil(bytes / 4) * 4);
    return this.#out.subarray(0, bytes);
  }

  #widen(raw: Uint8Array, source: SafetensorsDtype): Float32Array {
    const item = source === "F32" ? 4 : 2;
    if (raw.byteLength % item !== 0) {
      throw new RangeError(`${raw.byteLength} bytes of ${source} is not whole`);
    }
    const n = raw.byteLength / item;
    if (source === "F32" && raw.byteOffset % 4 === 0) return new Float32Array(raw.buffer, raw.byteOffset, n);
    if (this.#wide.length < n) this.#wide = new Float32Array(n);
    const wide = this.#wide.subarray(0, n);
    if (source === "F32") {
      new Uint8Array(wide.buffer, 0, raw.byteLength).set(raw);
      return wide;
    }
    const src = raw.byteOffset % 2 === 0
      ? new Uint16Array(raw.buffer, raw.byteOffset, n)
      : new Uint16Array(raw.slice().buffer, 0, n);
    if (source === "BF16") {
      const bits = new Int32Array(wide.buffer, 0, n);
      for (let i = 0; i < n; i++) bits[i] = src[i] << 16;
    } else {
      const table = WeightConverter.#f16 ??= f16ToF32(
        new Uint8Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer),
      );
      for (let i = 0; i < n; i++) wide[i] = table[src[i]];
    }
    return wide;
  }
}

/**
 * Who owns which GPU buffer, and how big tensors are bound.
 *
 * A {@link BufferOwner} creates buffers and destroys all of them at once (a model, a cache, one
 * forward pass's temporaries). Weights larger than one storage binding are split by rows into
 * several buffers ({@link WeightStorage}); activations are bound as windows ({@link bindWindow})
 * whose offset is rounded down to the binding alignment, the remainder passed to the kernel as an
 * element offset.
 *
 * @module
 */
import { bindGroupsOf } from "./bind_groups.ts";
import { type Gpu, GpuError } from "./device.ts";
import type { BytesWriter } from "./upload_ring.ts";

/** Storage buffer usage for everything the kernels read or write. */
export const STORAGE_USAGE: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;

/** Creates buffers on one device and destroys them together. */
export class BufferOwner {
  /** The device the buffers are created on. */
  readonly gpu: Gpu;
  #buffers = new Set<GPUBuffer>();
  /** Bytes currently held. */
  bytes = 0;

  /**
   * Creates an owner that holds no buffers yet.
   *
   * @param gpu the device the buffers live on
   */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** A zero-filled storage buffer of at least `bytes` bytes (rounded up to 4). */
  storage(bytes: number, label: string): GPUBuffer {
    // Multiples of 16 bytes: weight snippets read vec4 elements.
    const size = Math.max(16, Math.ceil(bytes / 16) * 16);
    if (size > this.gpu.limits.maxBufferSize) {
      throw new GpuError(
        `${label}: ${size} bytes exceed the adapter's maxBufferSize (${this.gpu.limits.maxBufferSize}); ` +
          "use a shorter sequence or a smaller batch",
      );
    }
    let buffer: GPUBuffer;
    try {
      buffer = this.gpu.device.createBuffer({ label, size, usage: STORAGE_USAGE });
    } catch (e) {
      throw new GpuError(`${label}: could not allocate ${size} bytes of GPU memory: ${(e as Error).message}`);
    }
    this.#buffers.add(buffer);
    this.bytes += size;
    return buffer;
  }

  /** A storage buffer holding `data`. */
  upload(data: ArrayBufferView, label: string): GPUBuffer {
    const buffer = this.storage(data.byteLength, label);
    writeBytes(this.gpu, buffer, 0, data);
    return buffer;
  }

  /** A uniform buffer holding `data`. */
  uniform(data: ArrayBuffer, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 16) * 16);
    const buffer = this.gpu.device.createBuffer({
      label,
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.gpu.device.queue.writeBuffer(buffer, 0, data);
    this.#buffers.add(buffer);
    this.bytes += size;
    return buffer;
  }

  /** Takes ownership of a buffer made elsewhere (destroyed with the others). */
  adopt(buffer: GPUBuffer): void {
    if (!this.#buffers.has(buffer)) {
      this.#buffers.add(buffer);
      this.bytes += buffer.size;
    }
  }

  /** Hands one buffer over to another owner (or to a tensor that frees it itself). */
  release(buffer: GPUBuffer): void {
    if (this.#buffers.delete(buffer)) this.bytes -= buffer.size;
  }

  /** Destroys every buffer still owned. */
  destroy(): void {
    for (const b of this.#buffers) destroyBuffer(this.gpu, b);
    this.#buffers.clear();
    this.bytes = 0;
  }
}

/**
 * Destroys a buffer that dispatches may have bound, and the cached bind groups that bind it
 * (src/gpu/bind_groups.ts): one bound again after the buffer is gone would crash wgpu.
 */
export function destroyBuffer(gpu: Gpu, buffer: GPUBuffer): void {
  bindGroupsOf(gpu).forget(buffer);
  buffer.destroy();
}

/** Writes bytes into a buffer, padding the tail to the 4-byte multiple `writeBuffer` requires. */
export function writeBytes(gpu: Gpu, buffer: GPUBuffer, byteOffset: number, data: ArrayBufferView): void {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  const whole = bytes.byteLength & ~3;
  if (whole > 0) gpu.device.queue.writeBuffer(buffer, byteOffset, bytes, 0, whole);
  if (whole < bytes.byteLength) {
    const tail = new Uint8Array(4);
    tail.set(bytes.subarray(whole));
    gpu.device.queue.writeBuffer(buffer, byteOffset + whole, tail);
  }
}

/** A binding of part of a buffer plus the element offset the kernel adds to reach the wanted start. */
export interface BoundWindow {
  /** What goes into the bind group entry. */
  resource: GPUBufferBinding;
  /** Elements (of 4 bytes) between the bound offset and the wanted start. */
  elementOffset: number;
}

/**
 * Binds `byteSize` bytes of `buffer` starting at `byteOffset` (a multiple of 4). The offset is rounded
 * down to the storage alignment and the difference returned as `elementOffset`.
 */
export function bindWindow(gpu: Gpu, buffer: GPUBuffer, byteOffset: number, byteSize: number): BoundWindow {
  const align = gpu.limits.storageOffsetAlignment;
  const start = Math.floor(byteOffset / align) * align;
  const end = Math.min(buffer.size, Math.ceil((byteOffset + Math.max(byteSize, 4)) / 4) * 4);
  const size = end - start;
  if (size > gpu.limits.maxBindingBytes) {
    throw new GpuError(
      `internal: a binding of ${size} bytes exceeds maxStorageBufferBindingSize (${gpu.limits.maxBindingBytes})`,
    );
  }
  return { resource: { buffer, offset: start, size }, elementOffset: (byteOffset - start) / 4 };
}

/**
 * Element types a weight can be stored in on the GPU: bf16 and f16 are packed two per u32; q8 and q4
 * are group-quantized at load time (src/checkpoint/quantize.ts): each run of {@link QUANT_GROUP}
 * elements of a row has one scale, and the values are four int8 per u32 (q8: 8 u32 and an f32 scale per
 * group) or eight int4 per u32 (q4: 4 u32 and a bf16 scale per group). A q8 / q4 row-chunk buffer holds
 * a 16-byte header (word 0: the word offset of the scales), the values of all its rows, then their
 * scales: row-major for q8, in blocks of 8 rows for q4 ({@link q4Slot}, {@link q4ScaleWord}); see
 * {@link WeightStorage.writeRows}.
 */
export type WeightDtype = "f32" | "bf16" | "f16" | "q8" | "q4";

/** Elements per quantization group of the q8 / q4 weight dtypes. */
export const QUANT_GROUP = 32;

/** What a q8 / q4 row's length must be a multiple of: a group (q8), two groups (q4, whose scales pair up). */
export function quantRowMultiple(dtype: "q8" | "q4"): number {
  return dtype === "q4" ? 2 * QUANT_GROUP : QUANT_GROUP;
}

/** Whether `dtype` is one of the group-quantized types (q8, q4). */
export function isQuantized(dtype: WeightDtype): dtype is "q8" | "q4" {
  return dtype === "q8" || dtype === "q4";
}

/** Bytes per element of a {@link WeightDtype}, averaged over a group for q8 (1.125) and q4 (0.5625). */
export function weightItemSize(dtype: WeightDtype): number {
  return dtype === "f32" ? 4 : dtype === "q8" ? 36 / QUANT_GROUP : dtype === "q4" ? 18 / QUANT_GROUP : 2;
}

/** Bytes of a q8 / q4 row-chunk buffer's header (word 0: the word offset of the scales). */
export const QUANT_HEADER_BYTES = 16;

/** Rows per block of the q4 layout. */
export const Q4_BLOCK_ROWS = 8;

/**
 * Where row `row` (of its buffer) of a q4 weight with `cols` columns lives: its group g has its values
 * at vec4 1 + slot + 8·g and its scale in word S + {@link q4ScaleWord}(slot, g) (S: the header's word 0).
 * Rows come in blocks of 8 whose groups interleave, [row / 8][group][row % 8], so that the 8 rows a matvec
 * invocation owns are 128 contiguous bytes per group (one memory stream on CPU adapters instead of eight:
 * q4 decoding ~25% faster on llvmpipe). Mirrors `weight_row` in kernels/weight_q4.wgsl.
 */
export function q4Slot(row: number, cols: number, width = Q4_BLOCK_ROWS): number {
  return Math.floor(row / width) * width * (cols / QUANT_GROUP) + (row % width);
}

/**
 * The word (from S) holding the bf16 scale of group `g` of the row at `slot` ({@link q4Slot}): the scales
 * of groups 2h and 2h + 1 share a word (low and high half), and a block's words are [row / 8][h][row % 8],
 * so the 8 rows of a block have the scales of a pair of groups in 8 contiguous words (two vec4 loads in
 * matvec_q4.wgsl). A word belongs to one row: writing some rows of a block never touches another's.
 * Mirrors `q4_scale` in kernels/weight_q4.wgsl.
 */
export function q4ScaleWord(slot: number, g: number): number {
  return (slot - (slot % Q4_BLOCK_ROWS)) / 2 + Q4_BLOCK_ROWS * (g >> 1) + (slot % Q4_BLOCK_ROWS);
}

/** `n` rows cut to whole q4 blocks (when there is at least one): chunks and upload pieces hold whole blocks. */
export function q4WholeBlocks(n: number): number {
  return n >= Q4_BLOCK_ROWS ? n - (n % Q4_BLOCK_ROWS) : n;
}

/** Rows a quantized row-chunk buffer has room for: q4 pads the last block to whole blocks. */
function quantBufferRows(dtype: "q8" | "q4", rows: number): number {
  return dtype === "q4" ? Math.ceil(rows / Q4_BLOCK_ROWS) * Q4_BLOCK_ROWS : rows;
}

/** Byte offset of the scales in a quantized chunk buffer of `rows` rows: after the header and all values. */
function quantScaleStart(dtype: "q8" | "q4", rows: number, cols: number): number {
  return QUANT_HEADER_BYTES + quantBufferRows(dtype, rows) * quantValueRowBytes(dtype, cols);
}

/** Bytes of the packed values (without the scales) of a q8 / q4 row of `cols` elements. */
function quantValueRowBytes(dtype: "q8" | "q4", cols: number): number {
  return dtype === "q8" ? cols : cols / 2;
}

/** Bytes of `cols` consecutive elements (a row) in `dtype`; q8 / q4 rows are a multiple of {@link quantRowMultiple}. */
export function weightRowBytes(dtype: WeightDtype, cols: number): number {
  if (isQuantized(dtype) && cols % quantRowMultiple(dtype) !== 0) {
    throw new GpuError(
      `a ${dtype} weight needs rows of a multiple of ${quantRowMultiple(dtype)} elements, not ${cols}`,
    );
  }
  return cols * weightItemSize(dtype);
}

/** One buffer of a row-split weight. */
export interface WeightChunk {
  /** Rows `[rowStart, rowStart + rowCount)` of the weight, `cols` elements each. */
  buffer: GPUBuffer;
  /** First row of the weight held by this buffer. */
  rowStart: number;
  /** Rows held. */
  rowCount: number;
  /**
   * Where those rows start among the buffer's rows: 0, unless the weight is a {@link WeightStorage.slice}
   * of a bigger one (q, k and v sharing one buffer, say).
   */
  bufferRow: number;
  /** Rows the buffer holds in all (q8 / q4 keep the scales after the values of all of them). */
  bufferRows: number;
}

/**
 * A 2-D weight `[rows, cols]` (1-D weights are `[1, n]`) stored as stored in the checkpoint (or
 * converted / quantized at load), split by rows into buffers that each fit one storage binding.
 */
export class WeightStorage {
  /** The parameter's torchtune shape. */
  readonly shape: number[];
  /** Element type on the GPU. */
  readonly dtype: WeightDtype;
  /** `shape[0]` for shapes of two or more dimensions, else 1. */
  readonly rows: number;
  /** Elements per row: the product of `shape[1:]` (`shape[0]` for a 1-D weight). */
  readonly cols: number;
  /** The buffers in row order, each within one storage binding. */
  readonly chunks: WeightChunk[];

  /**
   * Rows `[rowStart, rowStart + rows)` of this weight as a weight of its own, `shape` (default
   * `[rows, cols]`), sharing this weight's buffers: writing to it writes them, and products over it read
   * them. Lets parameters that are multiplied by the same input (q, k and v; w1 and w3) live in one
   * weight, so that one dispatch computes all of them, while each keeps its torchtune name and shape.
   */
  slice(rowStart: number, rows: number, shape: number[] = [rows, this.cols]): WeightStorage {
    if (rowStart < 0 || rows < 1 || rowStart + rows > this.rows) {
      throw new GpuError(`internal: rows ${rowStart}+${rows} are outside the weight [${this.shape}]`);
    }
    const chunks: WeightChunk[] = [];
    for (const c of this.chunks) {
      const lo = Math.max(rowStart, c.rowStart), hi = Math.min(rowStart + rows, c.rowStart + c.rowCount);
      if (lo >= hi) continue;
      chunks.push({
        buffer: c.buffer,
        rowStart: lo - rowStart,
        rowCount: hi - lo,
        bufferRow: c.bufferRow + lo - c.rowStart,
        bufferRows: c.bufferRows,
      });
    }
    const w = Object.create(WeightStorage.prototype) as WeightStorage;
    return Object.assign(w, { shape, dtype: this.dtype, rows, cols: this.cols, chunks });
  }

  /** Allocates (zero-filled) storage for a weight of `shape` on `owner`'s device. */
  constructor(owner: BufferOwner, shape: number[], dtype: WeightDtype, label: string) {
    this.shape = shape;
    this.dtype = dtype;
    this.rows = shape.length >= 2 ? shape[0] : 1;
    this.cols = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : (shape[0] ?? 1);
    const rowBytes = weightRowBytes(dtype, this.cols);
    const header = isQuantized(dtype) ? QUANT_HEADER_BYTES : 0;
    const limit = Math.min(owner.gpu.limits.maxBindingBytes, owner.gpu.limits.maxBufferSize) - header;
    let perChunk = Math.floor(limit / rowBytes);
    // A chunk must start on a whole u32 for the packed 16-bit types: keep row counts even if rows are odd-sized.
    if ((dtype === "bf16" || dtype === "f16") && (this.cols & 1) === 1 && perChunk > 1) perChunk &= ~1;
    // q4 chunks hold whole blocks of rows (but the last).
    if (dtype === "q4") perChunk = q4WholeBlocks(perChunk);
    if (perChunk < 1) {
      throw new GpuError(
        `${label}: one row of ${rowBytes} bytes exceeds the largest storage binding (${limit})`,
      );
    }
    this.chunks = [];
    for (let r = 0; r < this.rows; r += perChunk) {
      const rowCount = Math.min(perChunk, this.rows - r);
      const bufferRows = isQuantized(dtype) ? quantBufferRows(dtype, rowCount) : rowCount;
      const buffer = owner.storage(
        header + bufferRows * rowBytes,
        this.chunks.length ? `${label}[rows ${r}+]` : label,
      );
      if (isQuantized(dtype)) {
        // The header, written once: the word where the scales start, after the values of all rows.
        const scales = quantScaleStart(dtype, rowCount, this.cols) / 4;
        writeBytes(owner.gpu, buffer, 0, new Uint32Array([scales, 0, 0, 0]));
      }
      this.chunks.push({ buffer, rowStart: r, rowCount, bufferRow: 0, bufferRows: rowCount });
    }
  }

  /** Bytes of the weight's rows (a {@link WeightStorage.slice} counts its own rows only). */
  get byteLength(): number {
    return this.rows * this.rowBytes;
  }

  /** Bytes of one row. */
  get rowBytes(): number {
    return weightRowBytes(this.dtype, this.cols);
  }

  /**
   * Where `elems` elements starting at element `col` of row `row` live: the buffer (chunk) and the byte
   * range, for binding as a window (a table entry of a position embedding, say). Not for q8 / q4, whose
   * values and scales lie apart.
   */
  rowRange(
    row: number,
    col: number,
    elems: number,
  ): { buffer: GPUBuffer; byteOffset: number; bytes: number } {
    const chunk = this.chunks.find((c) => row >= c.rowStart && row < c.rowStart + c.rowCount);
    if (!chunk) throw new GpuError(`internal: row ${row} is outside the weight [${this.shape}]`);
    if (isQuantized(this.dtype)) {
      throw new GpuError(`internal: a ${this.dtype} weight has no contiguous row ranges`);
    }
    const item = weightItemSize(this.dtype);
    return {
      buffer: chunk.buffer,
      byteOffset: (chunk.bufferRow + row - chunk.rowStart) * this.rowBytes + col * item,
      bytes: elems * item,
    };
  }

  /**
   * Writes rows `[rowStart, rowStart + bytes / rowBytes)` from raw little-endian bytes in this weight's
   * dtype; for q8 / q4 that is the piece layout of `quantizeRows` (src/checkpoint/quantize.ts): the
   * packed values of those rows, then their scales, each scattered into its region of the chunks.
   * `write` does the writes (default: `queue.writeBuffer`; an `UploadRing`'s writer when streaming).
   */
  writeRows(
    gpu: Gpu,
    rowStart: number,
    bytes: Uint8Array,
    write: BytesWriter = (buffer, offset, data) => writeBytes(gpu, buffer, offset, data),
  ): void {
    const rowBytes = this.rowBytes;
    if (isQuantized(this.dtype)) {
      writeQuantRows(this, rowStart, bytes, write);
      return;
    }
    let row = rowStart;
    let pos = 0;
    while (pos < bytes.byteLength) {
      const chunk = this.chunks.find((c) => row >= c.rowStart && row < c.rowStart + c.rowCount);
      if (!chunk) throw new GpuError(`internal: row ${row} is outside the weight ${this.shape}`);
      const n = Math.min(chunk.rowStart + chunk.rowCount - row, (bytes.byteLength - pos) / rowBytes);
      write(
        chunk.buffer,
        (chunk.bufferRow + row - chunk.rowStart) * rowBytes,
        bytes.subarray(pos, pos + n * rowBytes),
      );
      row += n;
      pos += n * rowBytes;
    }
  }
}

/**
 * {@link WeightStorage.writeRows} for q8 / q4: the values and the scales of the rows, each into its region of
 * the chunks' buffers (a function, not a method: slices are made without the constructor). q8 rows are
 * row-major, so each chunk's share is two writes; q4 rows go into blocks ({@link writeQ4Segment}).
 */
function writeQuantRows(w: WeightStorage, rowStart: number, bytes: Uint8Array, write: BytesWriter): void {
  const dtype = w.dtype as "q8" | "q4";
  const rows = bytes.byteLength / w.rowBytes;
  if (!Number.isInteger(rows)) {
    throw new GpuError(`internal: ${bytes.byteLength} bytes are not whole ${dtype} rows of ${w.cols}`);
  }
  const valueRow = quantValueRowBytes(dtype, w.cols);
  const scaleRow = w.rowBytes - valueRow;
  const scales = bytes.subarray(rows * valueRow);
  let i = 0;
  while (i < rows) {
    const row = rowStart + i;
    const chunk = w.chunks.find((c) => row >= c.rowStart && row < c.rowStart + c.rowCount);
    if (!chunk) throw new GpuError(`internal: row ${row} is outside the weight ${w.shape}`);
    const n = Math.min(chunk.rowStart + chunk.rowCount - row, rows - i);
    const r = chunk.bufferRow + row - chunk.rowStart;
    const scaleStart = quantScaleStart(dtype, chunk.bufferRows, w.cols);
    if (dtype === "q4") {
      writeQ4Segment(w.cols, bytes, rows, i, n, { buffer: chunk.buffer, row: r, scaleStart }, write);
    } else {
      write(
        chunk.buffer,
        QUANT_HEADER_BYTES + r * valueRow,
        bytes.subarray(i * valueRow, (i + n) * valueRow),
      );
      write(chunk.buffer, scaleStart + r * scaleRow, scales.subarray(i * scaleRow, (i + n) * scaleRow));
    }
    i += n;
  }
}

/** Reordering space of {@link writeQ4Segment}, reused across pieces (writers copy what they are given). */
let q4Space = new Uint32Array(0);

/** `words` words of the reordering space (fresh arrays per piece piled up ~50 MiB while loading). */
function q4Scratch(words: number): Uint32Array {
  if (q4Space.length < words) q4Space = new Uint32Array(words);
  return q4Space.subarray(0, words);
}

/**
 * Rows `[i, i + n)` of a q4 piece (`rows` rows: values, then bf16 scales) into buffer rows
 * `[dst.row, dst.row + n)` of one chunk, moved into the blocks of {@link q4Slot} and {@link q4ScaleWord}.
 * A run of whole blocks is gathered in slot order and written with one write each for values and scales.
 * The rows of a block that is only partly written (at a slice's or a piece's edges) are gathered
 * group-major, `width` slots per group (per pair of groups for the scales), and written group by group:
 * their slots within a group are contiguous, but groups lie 8 slots apart.
 */
function writeQ4Segment(
  cols: number,
  bytes: Uint8Array,
  rows: number,
  i: number,
  n: number,
  dst: { buffer: GPUBuffer; row: number; scaleStart: number },
  write: BytesWriter,
): void {
  const gpr = cols / QUANT_GROUP;
  const pairs = gpr / 2;
  const src = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const values = new Uint32Array(src.buffer, src.byteOffset, rows * gpr * 4);
  const scales = new Uint16Array(src.buffer, src.byteOffset + rows * gpr * 16, rows * gpr);
  const B = Q4_BLOCK_ROWS;
  const end = dst.row + n;
  for (let r = dst.row; r < end;) {
    const full = r % B === 0 ? Math.floor((end - r) / B) * B : 0;
    const count = full || Math.min(end, (Math.floor(r / B) + 1) * B) - r;
    // The gathered rows in the layout of q4Slot and q4ScaleWord, with blocks of `width` rows (a
    // part-block: all its rows).
    const width = full ? B : count;
    const space = q4Scratch(count * gpr * 4 + count * pairs);
    const v = space.subarray(0, count * gpr * 4);
    const sc = space.subarray(count * gpr * 4);
    for (let rr = 0; rr < count; rr++) {
      const s = i + r - dst.row + rr;
      const base = q4Slot(rr, cols, width);
      for (let g = 0; g < gpr; g++) {
        const d = base + width * g, o = (s * gpr + g) * 4;
        v[d * 4] = values[o];
        v[d * 4 + 1] = values[o + 1];
        v[d * 4 + 2] = values[o + 2];
        v[d * 4 + 3] = values[o + 3];
      }
      // Word of pair h: [rr / width][h][rr % width], groups 2h and 2h + 1 in its low and high half.
      const sBase = (base - (base % width)) / 2 + (rr % width);
      for (let h = 0; h < pairs; h++) {
        sc[sBase + width * h] = scales[s * gpr + 2 * h] | (scales[s * gpr + 2 * h + 1] << 16);
      }
    }
    const slot0 = q4Slot(r, cols);
    if (full) {
      write(
        dst.buffer,
        QUANT_HEADER_BYTES + slot0 * 16,
        new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
      );
      write(
        dst.buffer,
        dst.scaleStart + q4ScaleWord(slot0, 0) * 4,
        new Uint8Array(sc.buffer, sc.byteOffset, sc.byteLength),
      );
    } else {
      for (let g = 0; g < gpr; g++) {
        write(
          dst.buffer,
          QUANT_HEADER_BYTES + (slot0 + B * g) * 16,
          new Uint8Array(v.buffer, v.byteOffset + g * count * 16, count * 16),
        );
      }
      for (let h = 0; h < pairs; h++) {
        write(
          dst.buffer,
          dst.scaleStart + q4ScaleWord(slot0, 2 * h) * 4,
          new Uint8Array(sc.buffer, sc.byteOffset + h * count * 4, count * 4),
        );
      }
    }
    r += count;
  }
}

/** Zero-fills buffers (queued after all work submitted so far). */
export function clearBuffers(gpu: Gpu, buffers: GPUBuffer[]): void {
  gpu.scoped(() => {
    const encoder = gpu.device.createCommandEncoder();
    for (const b of buffers) encoder.clearBuffer(b);
    gpu.device.queue.submit([encoder.finish()]);
  });
}

/**
 * Scratch buffers kept across forward passes, one per role and size: a decode loop then allocates
 * nothing per step. Reuse across submissions is safe because a queue runs submissions in order.
 * Beyond `maxBytes` the pool is emptied (after the work that used it has been submitted).
 */
export class ScratchPool {
  #owner: BufferOwner;
  #buffers = new Map<string, GPUBuffer>();
  /** Upper bound on the bytes kept. */
  readonly maxBytes: number;

  /** A pool on `gpu` keeping at most `maxBytes` (default 512 MiB). */
  constructor(gpu: Gpu, maxBytes = 512 * 1024 * 1024) {
    this.#owner = new BufferOwner(gpu);
    this.maxBytes = maxBytes;
  }

  /** The buffer for `label` of `bytes` bytes (zero-filled when new, else holding old contents). */
  get(bytes: number, label: string): GPUBuffer {
    const key = `${label}:${bytes}`;
    let buffer = this.#buffers.get(key);
    if (!buffer) {
      buffer = this.#owner.storage(bytes, label);
      this.#buffers.set(key, buffer);
    }
    return buffer;
  }

  /** Bytes held. */
  get bytes(): number {
    return this.#owner.bytes;
  }

  /** Empties the pool if it grew past `maxBytes` (call after submitting the work that used it). */
  trim(): void {
    if (this.#owner.bytes > this.maxBytes) this.destroy();
  }

  /** Frees every buffer. */
  destroy(): void {
    this.#owner.destroy();
    this.#buffers.clear();
  }
}

/**
 * Streams named tensors into a model's parameters on the GPU, piece by piece, so that no more than
 * a few pieces (8 MiB each) of a checkpoint are ever in host memory and 16-bit weights stay 16-bit, or
 * are converted to bf16 or quantized to q8 / q4 per piece on the way (`UploadOptions.dtype`).
 *
 * @module
 */
import { q4WholeBlocks, type WeightDtype, weightRowBytes, type WeightStorage } from "../gpu/buffers.ts";
import { type Gpu, GpuError } from "../gpu/device.ts";
import { UploadRing } from "../gpu/upload_ring.ts";
import type { BufferOwner } from "../gpu/buffers.ts";
import type { Parameter } from "../modules/module.ts";
import { type LoadDtype, loadWeightDtype, WeightConverter } from "./quantize.ts";
import { type SafetensorsDtype, toFloat32 } from "./safetensors.ts";

/** Where one parameter's values come from: rows of raw little-endian bytes in `dtype`. */
export interface ParamSource {
  dtype: SafetensorsDtype;
  /** The shape the source has after conversion (must equal the parameter's). */
  shape: number[];
  /**
   * Rows `[rowStart, rowStart + rowCount)` of dim 0 as raw bytes. The loader passes `into`, scratch memory it
   * reuses, which the bytes may be read into (returning a view of it) to allocate nothing per piece; the
   * returned bytes need only stay valid until the next read.
   */
  read(rowStart: number, rowCount: number, into?: Uint8Array): Promise<Uint8Array>;
  /** Name to use in error messages (e.g. the checkpoint file and tensor). */
  describe: string;
}

/** A model whose parameters a loader fills: the decoder, or the fusion model. */
export interface Loadable {
  /** Every parameter with its torchtune name. */
  named_parameters(): [string, Parameter][];
  /** Binds the model to a device; returns the owner its weights are allocated on. */
  attach(gpu: Gpu): BufferOwner;
  /** Frees everything (used when a load fails half-way). */
  destroy(): void;
}

/** Progress of a load: bytes uploaded so far and in total. */
export type LoadProgress = (done: number, total: number) => void;

/** Options of {@link uploadParameters}. */
export interface UploadOptions {
  /**
   * What weights are stored as on the GPU (default `"auto"`: the source dtype). `"bf16"` converts f32 /
   * f16 sources; `"q8"` / `"q4"` quantize matrices whose rows are a multiple of 32 / 64 long while streaming
   * (see `loadWeightDtype` in quantize.ts). Small vectors (`alwaysF32`) stay f32 whatever this says.
   */
  dtype?: LoadDtype;
}

/**
 * Bytes read and converted per piece. Host memory while loading stays near one read scratch, one
 * conversion scratch and {@link RING_SLOTS} staging slots of this size on top of the weights: nothing is
 * allocated per piece (fresh reads and `queue.writeBuffer`'s own staging left the allocator holding
 * 100–240 MiB on bench_small; the ring measured ~0.35 s against ~0.6 s for 420 MiB on lavapipe).
 */
const PIECE_BYTES = 4 * 1024 * 1024;
/**
 * Room for padding per piece: each write is padded to 4 bytes, and a piece makes one or two writes per
 * chunk it touches (values, and scales for q8 / q4).
 */
const SLOT_SLACK = 4096;
/** Staging slots of the upload ring: enough to overlap the copies with the ~11 ms re-maps. */
const RING_SLOTS = 3;
/** Pieces larger than a slot (a single huge row) go through `writeBuffer`, drained every this many bytes. */
const DRAIN_BYTES = 64 * 1024 * 1024;

const GPU_DTYPE: Record<SafetensorsDtype, WeightDtype> = { F32: "f32", BF16: "bf16", F16: "f16" };
const ITEM: Record<SafetensorsDtype, number> = { F32: 4, BF16: 2, F16: 2 };

/**
 * Allocates every parameter of `model` on `gpu` in its source dtype, or as `options.dtype` asks
 * (small vectors always as f32), and uploads it, converting or quantizing piece by piece. A missing,
 * extra or misshapen tensor is an error naming it; nothing is left allocated on failure. Progress
 * counts source bytes.
 */
export async function uploadParameters(
  model: Loadable,
  sources: Map<string, ParamSource>,
  gpu: Gpu,
  onProgress?: LoadProgress,
  options: UploadOptions = {},
): Promise<void> {
  const load = options.dtype ?? "auto";
  const params = model.named_parameters();
  const wanted = new Set(params.map(([n]) => n));
  const extra = [...sources.keys()].filter((n) => !wanted.has(n));
  if (extra.length) throw new Error(`unexpected tensor(s) for this model: ${extra.slice(0, 10).join(", ")}`);
  for (const [name, p] of params) {
    const src = sources.get(name);
    if (!src) throw new Error(`missing tensor ${name} (shape [${p.shape}])`);
    if (src.shape.length !== p.shape.length || src.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(
        `${src.describe}: shape [${src.shape}] does not match ${name} [${p.shape}] of this model`,
      );
    }
  }
  const total = params.reduce(
    (a, [name, p]) => a + p.shape.reduce((x, y) => x * y, ITEM[sources.get(name)!.dtype]),
    0,
  );
  const owner = model.attach(gpu);
  const needed = params.reduce((a, [name, p]) => {
    const target = p.alwaysF32 ? "f32" : loadWeightDtype(load, sources.get(name)!.dtype, p.shape);
    const rows = p.shape.length >= 2 ? p.shape[0] : 1;
    const cols = p.shape.length >= 2 ? p.shape.slice(1).reduce((x, y) => x * y, 1) : (p.shape[0] ?? 1);
    return a + rows * weightRowBytes(target, cols);
  }, 0);
  const converter = new WeightConverter();
  // A slot holds a whole piece plus the padding of its writes.
  const ring = new UploadRing(gpu, PIECE_BYTES + SLOT_SLACK, RING_SLOTS);
  let scratch = new Uint8Array(0);
  let done = 0, sinceDrain = 0;
  // Through the ring when the piece fits a slot, else through writeBuffer with a drain now and then.
  const write = async (storage: WeightStorage, row: number, bytes: Uint8Array) => {
    if (await ring.reserve(bytes.byteLength + SLOT_SLACK)) {
      storage.writeRows(gpu, row, bytes, ring.write);
      return;
    }
    ring.flush();
    storage.writeRows(gpu, row, bytes);
    sinceDrain += bytes.byteLength;
    if (sinceDrain >= DRAIN_BYTES) {
      // writeBuffer stages on the host until the queue runs: drain so staging never piles up.
      await gpu.drain();
      sinceDrain = 0;
    }
  };
  try {
    for (const [name, p] of params) {
      const src = sources.get(name)!;
      const target = p.alwaysF32 ? "f32" : loadWeightDtype(load, src.dtype, p.shape);
      const storage = p.allocate(owner, target, name);
      const rows = storage.rows;
      const rowBytes = storage.cols * ITEM[src.dtype];
      if (p.alwaysF32) {
        await write(storage, 0, new Uint8Array(toFloat32(src.dtype, await src.read(0, rows)).buffer));
      } else {
        // Raw bytes when the GPU dtype is the source's, else (loadWeightDtype gives nothing but the source
        // dtype, bf16, q8 or q4) converted to bf16 or quantized here, piece by piece.
        const dtype = src.dtype;
        const convert = target === GPU_DTYPE[dtype]
          ? null
          : (raw: Uint8Array) => converter.convert(raw, dtype, target as "bf16" | "q8" | "q4");
        for (const chunk of storage.chunks) {
          let per = Math.max(1, Math.floor(PIECE_BYTES / rowBytes));
          // Keep reads and writes 4-byte aligned within a chunk.
          if ((rowBytes % 4 !== 0 || storage.rowBytes % 4 !== 0) && per > 1) per &= ~1;
          // q4 rows go in blocks of 8 (q4Slot): whole blocks are one write, a part-block one per group.
          if (target === "q4") per = q4WholeBlocks(per);
          for (let r = 0; r < chunk.rowCount; r += per) {
            const n = Math.min(per, chunk.rowCount - r);
            const bytes = n * rowBytes;
            if (!convert && await ring.reserve(bytes + SLOT_SLACK)) {
              // Stored as read: straight from the file into the staging slot, with no copy on the host.
              const raw = await src.read(chunk.rowStart + r, n, ring.free(bytes));
              storage.writeRows(gpu, chunk.rowStart + r, raw, ring.write);
              continue;
            }
            if (scratch.byteLength < bytes) scratch = new Uint8Array(bytes);
            const raw = await src.read(chunk.rowStart + r, n, scratch);
            await write(storage, chunk.rowStart + r, convert ? convert(raw) : raw);
          }
        }
      }
      done += rows * rowBytes;
      onProgress?.(done, total);
    }
    await ring.finish();
    await gpu.drain();
  } catch (e) {
    ring.destroy();
    const allocated = owner.bytes;
    model.destroy();
    if (e instanceof GpuError && /out of GPU memory|could not allocate/i.test(e.message)) {
      const gib = (b: number) =>
        b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;
      throw new GpuError(
        `not enough GPU memory: the model's weights need ${gib(needed)} and allocation failed after ` +
          `${
            gib(allocated)
          } on ${gpu.description} (${e.message}). Try --dtype q8 or q4 (about 0.56 or 0.28 ` +
          "of the bf16 size), a smaller model, or a GPU with more memory (on a CPU adapter: more RAM).",
      );
    }
    throw e;
  }
}

/** {@link ParamSource}s for host f32 tensors keyed by torchtune name (for `load_state_dict`). */
export function hostSources(
  stateDict:
    | Map<string, { data: Float32Array; shape: number[] }>
    | Record<string, { data: Float32Array; shape: number[] }>,
): Map<string, ParamSource> {
  const entries = stateDict instanceof Map ? [...stateDict] : Object.entries(stateDict);
  return new Map(entries.map(([name, t]) => {
    if (!(t.data instanceof Float32Array)) throw new TypeError(`${name}: data must be a Float32Array`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) {
      throw new RangeError(`${name}: shape [${t.shape}] needs ${n} values, has ${t.data.length}`);
    }
    const rowElems = t.shape.length >= 2 ? n / t.shape[0] : n;
    return [name, {
      dtype: "F32" as const,
      shape: t.shape,
      describe: name,
      read: (rowStart: number, rowCount: number) =>
        Promise.resolve(
          new Uint8Array(t.data.buffer, t.data.byteOffset + rowStart * rowElems * 4, rowCount * rowElems * 4),
        ),
    }];
  }));
}

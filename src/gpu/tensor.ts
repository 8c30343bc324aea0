/**
 * Host tensors (typed array + shape) and device tensors (a GPU buffer + shape) with `read()`.
 *
 * @module
 */
import { destroyBuffer } from "./buffers.ts";
import { type Gpu, GpuError } from "./device.ts";
import { submitRecording } from "./ops.ts";
import { Readback } from "./readback.ts";

/** Typed arrays a host tensor may hold. */
export type TypedArray = Float32Array | Int32Array | Uint32Array | Uint8Array;

/**
 * A tensor on the host: row-major `data` with `shape` (torchtune's layouts). Token ids and positions
 * are `Int32Array`, encoder inputs `Float32Array`, masks `Uint8Array` (or booleans) with 1 = attend.
 */
export interface HostTensor<T extends TypedArray | ArrayLike<number | boolean> = TypedArray> {
  /** Row-major values. */
  data: T;
  /** Dimensions, outermost first (torchtune order). */
  shape: number[];
}

/** Element types of a device tensor. */
export type DeviceDtype = "f32" | "i32" | "u32";

/** The typed array {@link DeviceTensor.read} returns for a {@link DeviceDtype}. */
export type ArrayFor<D extends DeviceDtype> = D extends "f32" ? Float32Array : D extends "i32" ? Int32Array
: Uint32Array;

/** A tensor in a GPU buffer it owns. `await t.read()` copies it back; `destroy()` frees it. */
export class DeviceTensor<D extends DeviceDtype = "f32"> {
  /** Dimensions, outermost first, e.g. `[b, s, vocab_size]` for logits. */
  readonly shape: number[];
  /** Element type of the buffer (4 bytes each). */
  readonly dtype: D;
  #gpu: Gpu;
  #buffer: GPUBuffer | null;

  /** Wraps `buffer` (taking ownership) as a tensor of `shape`. */
  constructor(gpu: Gpu, buffer: GPUBuffer, shape: number[], dtype: D) {
    this.#gpu = gpu;
    this.#buffer = buffer;
    this.shape = shape;
    this.dtype = dtype;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /** The buffer, for code in `src/gpu` and the modules' ops. */
  get buffer(): GPUBuffer {
    if (!this.#buffer) throw new GpuError("this tensor was destroyed; read it before calling destroy()");
    return this.#buffer;
  }

  /** Copies the tensor to the host once the GPU work that produces it is done. */
  async read(): Promise<HostTensor<ArrayFor<D>>> {
    const buffer = this.buffer;
    const bytes = this.size * 4;
    const readback = submitRecording(this.#gpu, null, (rec) => new Readback(rec, buffer, 0, bytes));
    const copy = (await readback.read()).buffer as ArrayBuffer;
    const data = this.dtype === "f32"
      ? new Float32Array(copy)
      : this.dtype === "i32"
      ? new Int32Array(copy)
      : new Uint32Array(copy);
    return { data: data as ArrayFor<D>, shape: [...this.shape] };
  }

  /** Frees the GPU memory. Safe to call twice. */
  destroy(): void {
    if (this.#buffer) destroyBuffer(this.#gpu, this.#buffer);
    this.#buffer = null;
  }

  /** `using t = model.forward(...)` frees the logits at the end of the scope. */
  [Symbol.dispose](): void {
    this.destroy();
  }
}

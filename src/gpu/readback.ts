/**
 * Asynchronous readbacks: a staging buffer filled by a copy recorded into a {@link Recorder}, mapped
 * after submission without blocking the next submissions (a Deno `mapAsync` costs ~11 ms: waiting on
 * it every step would cap generation near 90 tokens/s on any GPU).
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import { GpuError } from "./device.ts";
import type { Recorder } from "./ops.ts";

/** One pending copy of `bytes` bytes from a GPU buffer to the host. */
export class Readback {
  readonly #gpu: Gpu;
  readonly #buffer: GPUBuffer;
  readonly #bytes: number;

  /** Records the copy of `bytes` bytes of `src` (from `srcOffset`) into `rec`. */
  constructor(rec: Recorder, src: GPUBuffer, srcOffset: number, bytes: number) {
    this.#gpu = rec.gpu;
    this.#bytes = bytes;
    this.#buffer = rec.gpu.device.createBuffer({
      label: "readback",
      size: Math.max(4, Math.ceil(bytes / 4) * 4),
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    rec.copy(src, srcOffset, this.#buffer, 0, Math.ceil(bytes / 4) * 4);
  }

  /** Frees the staging buffer of a readback that will not be read (its recording was never submitted). */
  discard(): void {
    this.#buffer.destroy();
  }

  /** Resolves with the bytes once the submitted work has produced them (call after `rec.submit()`). */
  async read(): Promise<Uint8Array> {
    const gpu = this.#gpu;
    try {
      try {
        await gpu.unlessLost(this.#buffer.mapAsync(GPUMapMode.READ));
      } catch (e) {
        await gpu.checkErrors();
        await new Promise((r) => setTimeout(r, 0));
        gpu.assertAlive();
        throw new GpuError(`reading back from the GPU failed: ${(e as Error).message}`);
      }
      await gpu.checkErrors();
      const out = new Uint8Array(this.#buffer.getMappedRange().slice(0, this.#bytes));
      this.#buffer.unmap();
      return out;
    } finally {
      this.#buffer.destroy();
    }
  }
}

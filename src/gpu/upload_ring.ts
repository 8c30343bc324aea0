/**
 * Uploads through a fixed ring of mappable staging buffers, for streaming a checkpoint to the GPU.
 *
 * `queue.writeBuffer` allocates a staging copy per call inside the implementation, freed only once the
 * queue has run it; streaming gigabytes that way leaves the host allocator holding freed blocks (measured
 * on bench_small: ~100–240 MiB above the weights). The ring allocates its slots once and reuses them:
 * bytes are copied into a mapped slot, the slot is unmapped and copied to its destinations on the GPU,
 * and its next `mapAsync` runs behind later slots, so host memory stays at `slots × slotBytes` and the
 * ~11 ms a map costs in Deno overlaps with the work.
 *
 * @module
 */
import { type Gpu, GpuError } from "./device.ts";

/** Writes `data` into `buffer` at `byteOffset` (a multiple of 4; the tail is padded with zeros to 4). */
export type BytesWriter = (buffer: GPUBuffer, byteOffset: number, data: Uint8Array) => void;

interface Slot {
  buffer: GPUBuffer;
  /** Settles when the slot is mapped for writing (again, after its copies were submitted). */
  mapped: Promise<void>;
}

/** A ring of `slots` staging buffers of `slotBytes` each; see the module comment. */
export class UploadRing {
  /** The device written to. */
  readonly gpu: Gpu;
  /** Bytes per staging buffer: the most one {@link reserve} can ask for. */
  readonly slotBytes: number;
  #slots: Slot[] = [];
  #slotCount: number;
  #current = -1;
  #view: Uint8Array | null = null;
  #used = 0;
  #reserved = 0;
  #encoder: GPUCommandEncoder | null = null;

  /**
   * A ring on `gpu`; no buffer exists until the first {@link reserve}.
   *
   * @param slotBytes size of each staging buffer (a multiple of 4)
   * @param slots how many: 3–4 keep the copies and the re-maps overlapping
   */
  constructor(gpu: Gpu, slotBytes: number, slots = 4) {
    if (slotBytes % 4 !== 0 || slotBytes <= 0 || !Number.isInteger(slots) || slots < 2) {
      throw new GpuError("internal: UploadRing needs slotBytes a positive multiple of 4 and 2+ slots");
    }
    this.gpu = gpu;
    this.slotBytes = slotBytes;
    this.#slotCount = slots;
  }

  /**
   * Makes room for writes of up to `bytes` in total (each padded to 4 bytes) in the current slot, moving to
   * the next slot (and waiting for it to be mapped again) when needed. False when `bytes` exceeds
   * {@link slotBytes}: write those some other way (after {@link flush}).
   */
  async reserve(bytes: number): Promise<boolean> {
    if (bytes > this.slotBytes) return false;
    if (this.#view === null || this.#used + bytes > this.slotBytes) await this.#next();
    this.#reserved = this.#used + bytes;
    return true;
  }

  /**
   * The next `bytes` of the current slot, after a {@link reserve} of at least that many: bytes filled in
   * there (a file read straight into it) and then passed to {@link write} are not copied again.
   */
  free(bytes: number): Uint8Array {
    if (this.#view === null || this.#used + bytes > this.#reserved) {
      throw new GpuError("internal: UploadRing.free past what reserve() made room for");
    }
    return this.#view.subarray(this.#used, this.#used + bytes);
  }

  /**
   * Stages `data` for `buffer` at `byteOffset` within the last {@link reserve}: a {@link BytesWriter}.
   * The copy happens on the GPU when the slot is full or at {@link flush}.
   */
  readonly write: BytesWriter = (buffer, byteOffset, data) => {
    const padded = Math.ceil(data.byteLength / 4) * 4;
    if (this.#view === null || this.#used + padded > this.#reserved) {
      throw new GpuError("internal: UploadRing.write past what reserve() made room for");
    }
    if (byteOffset % 4 !== 0) throw new GpuError("internal: UploadRing.write needs a 4-byte aligned offset");
    if (padded === 0) return;
    // Bytes already in place (filled through free()) stay where they are.
    if (data.buffer !== this.#view.buffer || data.byteOffset !== this.#view.byteOffset + this.#used) {
      this.#view.set(data, this.#used);
    }
    this.#view.fill(0, this.#used + data.byteLength, this.#used + padded);
    this.#encoder ??= this.gpu.device.createCommandEncoder({ label: "upload ring" });
    this.#encoder.copyBufferToBuffer(
      this.#slots[this.#current].buffer,
      this.#used,
      buffer,
      byteOffset,
      padded,
    );
    this.#used += padded;
  };

  /** Submits the staged copies (the queue then runs them before anything submitted later). */
  flush(): void {
    if (this.#view === null) return;
    const slot = this.#slots[this.#current];
    this.#view = null;
    slot.buffer.unmap();
    if (this.#encoder) {
      const commands = this.#encoder.finish();
      this.#encoder = null;
      this.gpu.scoped(() => this.gpu.device.queue.submit([commands]));
    }
    slot.mapped = slot.buffer.mapAsync(GPUMapMode.WRITE);
    // A failed map (device lost) surfaces when the slot is next awaited; keep it from going unhandled.
    slot.mapped.catch(() => {});
    this.#used = this.#reserved = 0;
  }

  /** Flushes, waits until every copy has run, and frees the staging buffers. */
  async finish(): Promise<void> {
    this.flush();
    try {
      await Promise.all(this.#slots.map((s) => s.mapped));
    } finally {
      this.destroy();
    }
  }

  /** Frees the staging buffers without waiting (after a failure). */
  destroy(): void {
    for (const s of this.#slots) s.buffer.destroy();
    this.#slots = [];
    this.#view = null;
    this.#encoder = null;
    this.#current = -1;
    this.#used = this.#reserved = 0;
  }

  async #next(): Promise<void> {
    this.flush();
    this.#current = (this.#current + 1) % this.#slotCount;
    let slot = this.#slots[this.#current];
    if (!slot) {
      const buffer = this.gpu.scoped(() =>
        this.gpu.device.createBuffer({
          label: "upload ring slot",
          size: this.slotBytes,
          usage: GPUBufferUsage.MAP_WRITE | GPUBufferUsage.COPY_SRC,
          mappedAtCreation: true,
        })
      );
      slot = this.#slots[this.#current] = { buffer, mapped: Promise.resolve() };
    } else {
      await this.gpu.unlessLost(slot.mapped);
    }
    this.#view = new Uint8Array(slot.buffer.getMappedRange());
  }
}

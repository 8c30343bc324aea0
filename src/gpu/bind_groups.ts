/**
 * Bind groups reused across recordings. A decode step records the same dispatches (pipeline, buffers,
 * parameters) step after step, and creating their bind groups took half of a step's recording time
 * (~21 µs each with Deno 2.9: 1.5 of 3 ms for a bench_small step). On a GPU, where a step computes in
 * about the time it takes to record, that recording time is the decode rate's limit.
 *
 * A dispatch's key is its pipeline, its bindings (buffer, offset, size) and its parameter bytes. A key
 * seen a second time gets a bind group of its own, its parameters in a small uniform buffer written at
 * creation and never again, so that no later write can reach work already recorded. Keys seen once (a
 * step's position, a fresh mask buffer) keep using the recording's uniform arena. The least recently
 * used entries are dropped past a bound, and their uniform buffers go with the bind groups once nothing
 * refers to them (not destroyed: one may still be bound in a recording not yet submitted). Destroying a
 * buffer through its owner drops the entries that bind it ({@link BindGroupCache.forget}).
 *
 * @module
 */
import type { Gpu } from "./device.ts";

/** The most bind groups kept per device. */
const CAPACITY = 2048;

/** Keys seen once that are remembered (the set is emptied past this). */
const SEEN_CAPACITY = 8192;

/** A device's reusable bind groups (see the module comment). */
export class BindGroupCache {
  readonly gpu: Gpu;
  #ids = new WeakMap<object, number>();
  #nextId = 1;
  /** Insertion order is recency: a hit moves its entry to the end. */
  #entries = new Map<string, { group: GPUBindGroup; buffers: number[] }>();
  /** The keys of the entries that bind each buffer (by id). */
  #byBuffer = new Map<number, Set<string>>();
  #seen = new Set<string>();
  /** Hits and bind groups made, for tests and benches. */
  readonly stats = { hits: 0, made: 0 };

  /** Bind groups held. */
  get size(): number {
    return this.#entries.size;
  }

  /** @param gpu the device the bind groups are made on */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  #id(o: object): number {
    let id = this.#ids.get(o);
    if (id === undefined) this.#ids.set(o, id = this.#nextId++);
    return id;
  }

  /**
   * The bind group of a dispatch of `pipeline` (bind group `layout`) with `resources` at bindings 0…n−1
   * and `params` as the uniform at binding n: the one made before for the same dispatch, a new one of
   * its own when the dispatch is seen the second time, else (first sighting) one that binds the
   * parameters where `arena` puts them (the recording's uniform arena).
   */
  bind(
    pipeline: GPUComputePipeline,
    layout: GPUBindGroupLayout,
    resources: (GPUBuffer | GPUBufferBinding)[],
    params: ArrayBuffer,
    arena: (params: ArrayBuffer) => GPUBufferBinding,
  ): GPUBindGroup {
    let key = `${this.#id(pipeline)}`;
    for (const r of resources) {
      key += r instanceof GPUBuffer
        ? `|${this.#id(r)}`
        : `|${this.#id(r.buffer)}:${r.offset ?? 0}:${r.size ?? "-"}`;
    }
    key += `|${new Uint32Array(params).join(",")}`;
    const hit = this.#entries.get(key);
    if (hit) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      this.stats.hits++;
      return hit.group;
    }
    if (!this.#seen.has(key)) {
      if (this.#seen.size >= SEEN_CAPACITY) this.#seen.clear();
      this.#seen.add(key);
      return this.#make(layout, resources, arena(params));
    }
    this.#seen.delete(key);
    const uniform = this.gpu.device.createBuffer({
      label: "cached uniform",
      size: Math.max(16, Math.ceil(params.byteLength / 16) * 16),
      usage: GPUBufferUsage.UNIFORM,
      mappedAtCreation: true,
    });
    new Uint8Array(uniform.getMappedRange()).set(new Uint8Array(params));
    uniform.unmap();
    const group = this.#make(layout, resources, { buffer: uniform });
    if (this.#entries.size >= CAPACITY) this.#drop(this.#entries.keys().next().value!);
    const buffers = resources.map((r) => this.#id(r instanceof GPUBuffer ? r : r.buffer));
    this.#entries.set(key, { group, buffers });
    for (const id of buffers) {
      let keys = this.#byBuffer.get(id);
      if (!keys) this.#byBuffer.set(id, keys = new Set());
      keys.add(key);
    }
    this.stats.made++;
    return group;
  }

  #make(
    layout: GPUBindGroupLayout,
    resources: (GPUBuffer | GPUBufferBinding)[],
    uniform: GPUBufferBinding,
  ): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = resources.map((r, i) => ({
      binding: i,
      resource: r instanceof GPUBuffer ? { buffer: r } : r,
    }));
    entries.push({ binding: resources.length, resource: uniform });
    return this.gpu.device.createBindGroup({ layout, entries });
  }

  /**
   * Drops the bind groups that bind `buffer`, which is being destroyed (destroyBuffer in buffers.ts): a bind
   * group over a destroyed buffer must never be bound again (wgpu panics rather than report it).
   */
  forget(buffer: GPUBuffer): void {
    const id = this.#ids.get(buffer);
    const keys = id === undefined ? undefined : this.#byBuffer.get(id);
    if (!keys) return;
    for (const key of [...keys]) this.#drop(key);
    this.#byBuffer.delete(id!);
  }

  #drop(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    for (const id of entry.buffers) this.#byBuffer.get(id)?.delete(key);
  }
}

const caches = new WeakMap<Gpu, BindGroupCache>();

/** The bind group cache of a device. */
export function bindGroupsOf(gpu: Gpu): BindGroupCache {
  let cache = caches.get(gpu);
  if (!cache) caches.set(gpu, cache = new BindGroupCache(gpu));
  return cache;
}

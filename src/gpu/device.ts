/**
 * The one place that acquires a WebGPU adapter and device.
 *
 * The device is requested with the adapter's own limits (the defaults are far too small for a
 * language model: 128 MiB bindings, 8 storage buffers) and with `shader-f16` when offered.
 * Validation errors and device loss are turned into exceptions by {@link Gpu.checkErrors} and
 * {@link Gpu.lostError}, so callers never hang or read wrong numbers.
 *
 * @module
 */
import { KERNELS } from "../../kernels/sources.ts";

/** Options for {@link Gpu.acquire}. */
export interface GpuOptions {
  /**
   * Use at most this many bytes per storage binding (default: the adapter's
   * `maxStorageBufferBindingSize`). Tests lower it to exercise the row-splitting paths without
   * allocating gigabytes.
   */
  maxBindingBytes?: number;
  /** Print nothing, not even the CPU-fallback warning. */
  quiet?: boolean;
  /**
   * Request the `subgroups` feature where the adapter grants it (default true). Tests turn it off to
   * run the kernels that do without it on an adapter that has it.
   */
  subgroups?: boolean;
}

/** The limits the rest of the code plans with (a subset of `GPUSupportedLimits`, possibly lowered). */
export interface GpuLimits {
  /** Largest storage binding, in bytes (a multiple of 4). */
  maxBindingBytes: number;
  /** Largest buffer, in bytes. */
  maxBufferSize: number;
  /** Alignment of a storage binding's offset, in bytes. */
  storageOffsetAlignment: number;
  /** Alignment of a uniform binding's offset, in bytes. */
  uniformOffsetAlignment: number;
  /** Largest workgroup count along one dispatch dimension. */
  maxWorkgroupsPerDimension: number;
  /** Storage buffers a compute shader may bind. */
  maxStorageBuffersPerShaderStage: number;
  /** Workgroup memory per workgroup, in bytes. */
  maxWorkgroupStorageBytes: number;
}

const INSTALL_HINT =
  "Install a GPU driver with Vulkan, Metal or Direct3D 12 support, or, to run on the CPU, " +
  "Mesa's software Vulkan driver (Debian/Ubuntu: `apt-get install -y mesa-vulkan-drivers`, then " +
  "DENO_WEBGPU_BACKEND=vulkan).";

/** A WebGPU error (validation, out of memory, device loss) raised as an exception. */
export class GpuError extends Error {
  /**
   * Creates the error, named `GpuError`.
   *
   * @param message what went wrong and what to do
   */
  constructor(message: string) {
    super(message);
    this.name = "GpuError";
  }
}

/** An acquired device with the limits and features the kernels rely on. */
export class Gpu {
  /** The raw device; only `src/gpu/` touches it. */
  readonly device: GPUDevice;
  /** Limits to plan with. */
  readonly limits: GpuLimits;
  /** Whether `shader-f16` was granted. */
  readonly hasShaderF16: boolean;
  /**
   * The sizes a subgroup may have, when the `subgroups` feature was granted (else null): the
   * adapter's `subgroupMinSize` and `subgroupMaxSize` (8 and 8 on llvmpipe, 32 or 64 on most GPUs).
   */
  readonly subgroupSizes: { min: number; max: number } | null;
  /**
   * What a shader that uses subgroup builtins starts with on this device: `enable subgroups;` where the
   * WGSL compiler takes that directive (the spec asks for it), nothing where it rejects it but takes the
   * builtins anyway (the Naga of Deno 2.9: "not yet supported").
   */
  readonly subgroupDirective: string;
  /** Adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  readonly description: string;
  /** True when the adapter is a CPU implementation (lavapipe, llvmpipe, WARP, SwiftShader). */
  readonly isFallbackAdapter: boolean;
  #lost: GPUDeviceLostInfo | null = null;
  #scopes: Promise<GPUError | null>[] = [];
  #uncaptured: GPUError | null = null;

  private constructor(
    device: GPUDevice,
    adapter: GPUAdapter,
    options: GpuOptions,
    subgroups: UsableSubgroups | null,
  ) {
    this.device = device;
    const l = device.limits;
    const maxBinding = Math.min(l.maxStorageBufferBindingSize, options.maxBindingBytes ?? Infinity);
    this.limits = {
      maxBindingBytes: Math.floor(maxBinding / 4) * 4,
      maxBufferSize: l.maxBufferSize,
      storageOffsetAlignment: l.minStorageBufferOffsetAlignment,
      uniformOffsetAlignment: l.minUniformBufferOffsetAlignment,
      maxWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxWorkgroupStorageBytes: l.maxComputeWorkgroupStorageSize,
    };
    this.hasShaderF16 = device.features.has("shader-f16");
    // deno-lint-ignore no-explicit-any
    const info = adapter.info as any;
    this.subgroupSizes = subgroups ? { min: subgroups.min, max: subgroups.max } : null;
    this.subgroupDirective = subgroups?.directive ?? "";
    this.description = info?.description || info?.device || info?.vendor || "unknown adapter";
    // deno-lint-ignore no-explicit-any
    this.isFallbackAdapter = Boolean(info?.isFallbackAdapter ?? (adapter as any).isFallbackAdapter);
    device.lost.then((info) => {
      this.#lost = info;
    });
    device.addEventListener("uncapturederror", (event) => {
      this.#uncaptured ??= (event as GPUUncapturedErrorEvent).error;
    });
  }

  /** Requests an adapter and a device with the adapter's limits; throws a {@link GpuError} naming what to install. */
  static async acquire(options: GpuOptions = {}): Promise<Gpu> {
    if (typeof navigator === "undefined" || !("gpu" in navigator)) {
      throw new GpuError(
        `WebGPU is not available in this runtime. Run with Deno 2 or later. ${INSTALL_HINT}`,
      );
    }
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) throw new GpuError(`No WebGPU adapter was found. ${INSTALL_HINT}`);
    const requiredLimits: Record<string, number> = {};
    for (
      const name of [
        "maxStorageBufferBindingSize",
        "maxBufferSize",
        "maxStorageBuffersPerShaderStage",
        "maxComputeWorkgroupStorageSize",
        "maxComputeInvocationsPerWorkgroup",
        "maxComputeWorkgroupSizeX",
        "maxComputeWorkgroupsPerDimension",
      ] as const
    ) {
      requiredLimits[name] = adapter.limits[name];
    }
    const requiredFeatures: GPUFeatureName[] = adapter.features.has("shader-f16") ? ["shader-f16"] : [];
    let device: GPUDevice | null = null;
    // Deno 2.9's Vulkan adapters grant `subgroups` without listing it in `adapter.features`, so it is
    // asked for and, if refused (the GL backend), the device is requested again without it; any error
    // that has nothing to do with subgroups comes back from that second request.
    if (options.subgroups ?? true) {
      device = await adapter
        .requestDevice({
          requiredLimits,
          requiredFeatures: [...requiredFeatures, "subgroups" as GPUFeatureName],
        })
        .catch(() => null);
    }
    try {
      device ??= await adapter.requestDevice({ requiredLimits, requiredFeatures });
    } catch (e) {
      throw new GpuError(`The WebGPU adapter refused a device: ${(e as Error).message}. ${INSTALL_HINT}`);
    }
    const gpu = new Gpu(device, adapter, options, await usableSubgroups(device, adapter));
    if (gpu.isFallbackAdapter && !options.quiet) {
      console.warn(
        `warning: WebGPU runs on the CPU (${gpu.description}); expect it to be slow. Install a GPU driver for speed.`,
      );
    }
    return gpu;
  }

  /** The device-loss message if the device was lost, else null. */
  get lostError(): GpuError | null {
    if (!this.#lost) return null;
    return new GpuError(
      `The GPU device was lost (${this.#lost.reason}: ${this.#lost.message}). ` +
        "Build the model again to get a new device; if it repeats, the model may not fit in GPU memory.",
    );
  }

  /** Throws at once if the device is lost. */
  assertAlive(): void {
    const lost = this.lostError;
    if (lost) throw lost;
  }

  /**
   * Runs `fn` inside validation and out-of-memory error scopes. The scopes are checked by
   * {@link Gpu.checkErrors}, which every readback awaits.
   */
  scoped<T>(fn: () => T): T {
    this.assertAlive();
    this.device.pushErrorScope("out-of-memory");
    this.device.pushErrorScope("validation");
    try {
      return fn();
    } finally {
      this.#scopes.push(this.device.popErrorScope(), this.device.popErrorScope());
    }
  }

  /** Throws the first WebGPU error recorded since the last call, or the device-loss error. */
  async checkErrors(): Promise<void> {
    const scopes = this.#scopes;
    this.#scopes = [];
    const errors = await Promise.all(scopes);
    const first = errors.find((e) => e !== null) ?? this.#uncaptured;
    this.#uncaptured = null;
    if (first) {
      const kind = first instanceof GPUOutOfMemoryError ? "out of GPU memory" : "WebGPU error";
      throw new GpuError(`${kind}: ${first.message}`);
    }
    this.assertAlive();
  }

  /** Resolves when the device is lost; used to race readbacks so they never hang. */
  get lost(): Promise<GPUDeviceLostInfo> {
    return this.device.lost;
  }

  /**
   * `work` (a map, a queue wait), or the device-loss error if the device is lost first: a lost device
   * never settles such promises, and waiting on them would hang.
   */
  async unlessLost<T>(work: Promise<T>): Promise<T> {
    const lost = this.lost.then(() => Promise.reject(this.lostError));
    // Whichever loses the race must not surface as an unhandled rejection.
    lost.catch(() => {});
    return await Promise.race([work, lost]);
  }

  /** Waits until the queue has executed everything submitted so far (and released its upload staging). */
  async drain(): Promise<void> {
    // An empty submission flushes the data staged by queue.writeBuffer; without it the staging of a
    // whole checkpoint upload would pile up in host memory until the first real submission.
    this.device.queue.submit([]);
    await this.unlessLost(this.device.queue.onSubmittedWorkDone());
    await this.checkErrors();
  }

  /** Destroys the device; every buffer made on it becomes invalid. */
  destroy(): void {
    this.device.destroy();
  }
}

/** Subgroups the subgroup kernels may use: their sizes and the directive their shaders start with. */
interface UsableSubgroups {
  min: number;
  max: number;
  directive: string;
}

/**
 * Whether the subgroup kernels may run on `device`: it has the `subgroups` feature, and one dispatch of
 * kernels/subgroup_probe.wgsl shows subgroups as runs of consecutive invocations (what those kernels
 * assume and WGSL does not promise) of sizes within the adapter's `subgroupMinSize` … `subgroupMaxSize`.
 * The probe is compiled with `enable subgroups;` first and without it second (see
 * {@link Gpu.subgroupDirective}); null if neither compiles or the layout differs.
 */
async function usableSubgroups(device: GPUDevice, adapter: GPUAdapter): Promise<UsableSubgroups | null> {
  // deno-lint-ignore no-explicit-any
  const info = adapter.info as any;
  const min = Number(info?.subgroupMinSize), max = Number(info?.subgroupMaxSize);
  if (!device.features.has("subgroups" as GPUFeatureName) || !(min > 0 && max >= min)) return null;
  for (const directive of ["enable subgroups;\n", ""]) {
    const sizes = await probeSubgroups(device, directive + KERNELS.subgroup_probe);
    if (sizes === "invalid") continue;
    const consecutive = sizes.every((w, i) => {
      const id = w & 0xff, size = (w >>> 8) & 0xff, first = w >>> 16;
      return size >= min && size <= max && id === i % size && first === i - id;
    });
    return consecutive ? { min, max, directive } : null;
  }
  return null;
}

/**
 * Runs the subgroup probe (`code`) once: a word per invocation (kernels/subgroup_probe.wgsl); "invalid" if
 * the shader does not compile (or anything else fails).
 */
async function probeSubgroups(device: GPUDevice, code: string): Promise<Uint32Array | "invalid"> {
  const out = device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 256, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    device.pushErrorScope("validation");
    let recorded = false;
    try {
      const module = device.createShaderModule({ label: "subgroup_probe", code });
      const pipeline = device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      const entries = [{ binding: 0, resource: { buffer: out } }];
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
      pass.dispatchWorkgroups(1);
      pass.end();
      encoder.copyBufferToBuffer(out, 0, read, 0, 256);
      device.queue.submit([encoder.finish()]);
      recorded = true;
    } catch {
      // reported below, with the scope popped
    }
    if ((await device.popErrorScope()) || !recorded) return "invalid";
    await read.mapAsync(GPUMapMode.READ);
    const words = new Uint32Array(read.getMappedRange().slice(0));
    read.unmap();
    return words;
  } catch {
    return "invalid";
  } finally {
    out.destroy();
    read.destroy();
  }
}

let shared: Promise<Gpu> | null = null;

/**
 * The process-wide device, acquired on first use. A lost device is replaced on the next call, so a
 * new model can be built after a device loss without restarting the process.
 */
export async function getGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (shared) {
    const gpu = await shared.catch(() => null);
    if (gpu && !gpu.lostError) return gpu;
  }
  shared = Gpu.acquire(options);
  return await shared;
}

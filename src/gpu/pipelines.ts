/**
 * WGSL source → cached compute pipelines.
 *
 * Kernels that read a weight start with one of the `weight_*.wgsl` snippets, which declare binding 0
 * and `weight_at(i)` / `weight4(i)` for that storage type; the cache key is kernel + weight type.
 *
 * @module
 */
import type { Gpu } from "./device.ts";
import type { WeightDtype } from "./buffers.ts";
import { type KernelName, KERNELS, SUBGROUP_KERNELS, WEIGHT_SNIPPETS } from "../../kernels/sources.ts";

/** Compiles each (kernel, weight dtype) once per device. */
export class PipelineCache {
  readonly gpu: Gpu;
  #pipelines = new Map<string, GPUComputePipeline>();
  #layouts = new WeakMap<GPUComputePipeline, GPUBindGroupLayout>();

  /** @param gpu the device pipelines are compiled for */
  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** The pipeline for `kernel`, with the weight snippet for `weight` prepended when given. */
  get(kernel: KernelName, weight?: WeightDtype): GPUComputePipeline {
    const key = weight ? `${kernel}:${weight}` : kernel;
    let pipeline = this.#pipelines.get(key);
    if (!pipeline) {
      // Directives come before anything else in a module: the subgroup kernels' first.
      const directive = SUBGROUP_KERNELS.has(kernel) ? this.gpu.subgroupDirective : "";
      const code = directive + (weight ? WEIGHT_SNIPPETS[weight] + "\n" : "") + KERNELS[kernel];
      const module = this.gpu.device.createShaderModule({ label: key, code });
      pipeline = this.gpu.device.createComputePipeline({
        label: key,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
      this.#pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /** The layout of a pipeline's bind group 0 (`getBindGroupLayout` makes a new object per call). */
  layout(pipeline: GPUComputePipeline): GPUBindGroupLayout {
    let layout = this.#layouts.get(pipeline);
    if (!layout) this.#layouts.set(pipeline, layout = pipeline.getBindGroupLayout(0));
    return layout;
  }
}

const caches = new WeakMap<Gpu, PipelineCache>();

/** The pipeline cache of a device. */
export function pipelinesOf(gpu: Gpu): PipelineCache {
  let cache = caches.get(gpu);
  if (!cache) caches.set(gpu, cache = new PipelineCache(gpu));
  return cache;
}

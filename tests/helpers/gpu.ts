/**
 * Shared WebGPU devices for the tests: one with the adapter's limits and one with a lowered
 * storage-binding limit (to exercise the row- and token-splitting paths), acquired once per file.
 *
 * @module
 */
import { BufferOwner } from "../../src/gpu/buffers.ts";
import { Gpu } from "../../src/gpu/device.ts";
import { Recorder } from "../../src/gpu/ops.ts";
import { DeviceTensor } from "../../src/gpu/tensor.ts";

const devices = new Map<string, Promise<Gpu>>();

/**
 * The test device; `maxBindingBytes` lowers the binding limit, `subgroups: false` leaves the
 * `subgroups` feature out, so that the kernels without it run where the adapter has it (a separate
 * device per combination).
 */
export function testGpu(maxBindingBytes = 0, subgroups = true): Promise<Gpu> {
  const key = `${maxBindingBytes}:${subgroups}`;
  let gpu = devices.get(key);
  if (!gpu) {
    gpu = Gpu.acquire({ quiet: true, subgroups, ...(maxBindingBytes ? { maxBindingBytes } : {}) });
    devices.set(key, gpu);
  }
  return gpu;
}

/** Registers a test that shares the devices above (so the resource sanitizer is off). */
export function gpuTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false, fn });
}

/** Records `fn`'s dispatches inside the device's error scopes and submits them. */
export function record(gpu: Gpu, fn: (rec: Recorder) => void): void {
  gpu.scoped(() => {
    const rec = new Recorder(gpu);
    fn(rec);
    rec.submit();
  });
}

/** Reads the first `n` f32 values of `buffer` (after checking for WebGPU errors). */
export async function readF32(gpu: Gpu, buffer: GPUBuffer, n: number): Promise<Float32Array> {
  return (await new DeviceTensor(gpu, buffer, [n], "f32").read()).data;
}

/** Runs `fn` with a fresh buffer owner on the device, destroying the buffers afterwards. */
export async function withOwner(gpu: Gpu, fn: (owner: BufferOwner) => Promise<void>): Promise<void> {
  const owner = new BufferOwner(gpu);
  try {
    await fn(owner);
  } finally {
    owner.destroy();
  }
}

/** The GPU layer's promises: clear errors when WebGPU is missing, and WebGPU errors raised as exceptions. */
import assert from "node:assert/strict";
import { BufferOwner, DeviceTensor, Gpu, GpuError, Recorder } from "../mod.ts";
import { bindGroupsOf } from "../src/gpu/bind_groups.ts";
import { pack, swiglu } from "../src/gpu/ops.ts";

Deno.test("no adapter: the error says what to install", async () => {
  const original = navigator.gpu.requestAdapter;
  Object.defineProperty(navigator.gpu, "requestAdapter", {
    value: () => Promise.resolve(null),
    configurable: true,
  });
  try {
    await assert.rejects(Gpu.acquire({ quiet: true }), (e: Error) => {
      assert.ok(e instanceof GpuError);
      assert.match(e.message, /No WebGPU adapter/);
      assert.match(e.message, /mesa-vulkan-drivers/);
      assert.match(e.message, /Vulkan, Metal or Direct3D 12/);
      return true;
    });
  } finally {
    Object.defineProperty(navigator.gpu, "requestAdapter", { value: original, configurable: true });
  }
});

Deno.test("the device gets the adapter's limits, not WebGPU's defaults", async () => {
  const adapter = (await navigator.gpu.requestAdapter())!;
  const gpu = await Gpu.acquire({ quiet: true });
  try {
    assert.equal(gpu.limits.maxBindingBytes, Math.floor(adapter.limits.maxStorageBufferBindingSize / 4) * 4);
    assert.equal(gpu.limits.maxStorageBuffersPerShaderStage, adapter.limits.maxStorageBuffersPerShaderStage);
    assert.equal(gpu.hasShaderF16, adapter.features.has("shader-f16"));
    const low = await Gpu.acquire({ quiet: true, maxBindingBytes: 1000 });
    assert.equal(low.limits.maxBindingBytes, 1000);
    low.destroy();
  } finally {
    gpu.destroy();
  }
});

Deno.test("subgroups: used where the probe finds runs of consecutive invocations, never when turned off", async () => {
  const adapter = (await navigator.gpu.requestAdapter())!;
  // deno-lint-ignore no-explicit-any
  const info = adapter.info as any;
  const gpu = await Gpu.acquire({ quiet: true });
  const off = await Gpu.acquire({ quiet: true, subgroups: false });
  try {
    assert.equal(off.subgroupSizes, null);
    if (gpu.subgroupSizes) {
      assert.deepEqual(gpu.subgroupSizes, { min: info.subgroupMinSize, max: info.subgroupMaxSize });
      assert.ok(["enable subgroups;\n", ""].includes(gpu.subgroupDirective));
    }
    // lavapipe under Vulkan: 8-wide subgroups (256-bit SIMD); the OpenGL backend has none.
    if (/llvmpipe/.test(gpu.description) && Deno.env.get("DENO_WEBGPU_BACKEND") === "vulkan") {
      assert.deepEqual(gpu.subgroupSizes, { min: 8, max: 8 });
      // Deno 2.9's Naga rejects `enable subgroups;` and takes the builtins without it.
      assert.equal(gpu.subgroupDirective, "");
    }
  } finally {
    gpu.destroy();
    off.destroy();
  }
});

Deno.test("a WebGPU validation error surfaces as an exception at the next read, not as wrong numbers", async () => {
  const gpu = await Gpu.acquire({ quiet: true });
  try {
    const owner = new BufferOwner(gpu);
    const a = owner.storage(64, "a");
    const b = owner.storage(64, "b");
    a.destroy(); // using a destroyed buffer is a validation error
    gpu.scoped(() => {
      const rec = new Recorder(gpu);
      swiglu(rec, a, b, 16);
      rec.submit();
    });
    const t = new DeviceTensor(gpu, owner.storage(16, "c"), [4], "f32");
    await assert.rejects(t.read(), (e: Error) => e instanceof GpuError && /WebGPU error/.test(e.message));
    // The error is reported once; later work runs normally.
    const ok = await new DeviceTensor(gpu, owner.storage(16, "d"), [4], "f32").read();
    assert.deepEqual(Array.from(ok.data), [0, 0, 0, 0]);
  } finally {
    gpu.destroy();
  }
});

Deno.test("bind groups: a dispatch recorded again reuses its bind group, and only with the same parameters", async () => {
  const gpu = await Gpu.acquire({ quiet: true });
  try {
    const cache = bindGroupsOf(gpu);
    const owner = new BufferOwner(gpu);
    const n = 32;
    let gate = Float32Array.from({ length: n }, (_, i) => Math.sin(i) * 2);
    const up = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.7));
    const g = owner.upload(gate, "gate");
    const u = owner.upload(up, "up");
    // swiglu_vec4 writes silu(gate) · up into gate: each recording's result is the next one's input.
    const run = async (count: number) => {
      gpu.scoped(() => {
        const rec = new Recorder(gpu);
        // The whole buffers bound whatever the count: only the parameters tell the dispatches apart.
        rec.dispatch("swiglu_vec4", undefined, [g, u], pack("uuu", [count / 4, 0, 0]), [1, 1, 1]);
        rec.submit();
      });
      const want = Float32Array.from(gate, (x, i) => i < count ? x / (1 + Math.exp(-x)) * up[i] : x);
      const got = (await new DeviceTensor(gpu, g, [n], "f32").read()).data;
      for (let i = 0; i < n; i++) {
        assert.ok(Math.abs(got[i] - want[i]) <= 1e-6, `element ${i}: ${got[i]} vs ${want[i]}`);
      }
      gate = want;
    };
    const before = { ...cache.stats };
    await run(n); // first sighting: the recording's own uniform arena
    assert.deepEqual(cache.stats, before);
    await run(n); // second: a bind group of its own
    assert.equal(cache.stats.made, before.made + 1);
    await run(n); // third: reused
    assert.equal(cache.stats.hits, before.hits + 1);
    // The same buffers with other parameters do not hit it (twice: the second makes their own).
    await run(16);
    await run(16);
    assert.equal(cache.stats.hits, before.hits + 1);
    await run(16);
    await run(n);
    assert.equal(cache.stats.hits, before.hits + 3);
    // Destroying a buffer drops the bind groups that bind it (binding a destroyed buffer panics wgpu).
    const size = cache.size;
    owner.destroy();
    assert.equal(cache.size, size - 2);
  } finally {
    gpu.destroy();
  }
});

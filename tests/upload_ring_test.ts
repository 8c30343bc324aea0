/** UploadRing: staged writes land where writeBuffer would put them, across slots and re-maps. */
import assert from "node:assert/strict";
import { UploadRing } from "../src/gpu/upload_ring.ts";
import { gpuTest, readF32, testGpu, withOwner } from "./helpers/gpu.ts";

function bytesOf(f: Float32Array): Uint8Array {
  return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
}

gpuTest(
  "UploadRing: writes of any length land at their offsets, tails padded with zeros, over many slots",
  async () => {
    const gpu = await testGpu();
    await withOwner(gpu, async (owner) => {
      const size = 4096;
      const a = owner.storage(size, "a");
      const b = owner.storage(size, "b");
      const expected = new Map([[a, new Uint8Array(size)], [b, new Uint8Array(size)]]);
      // Tiny slots, so the 40 writes below cycle through the 3 slots several times (each reuse waits for
      // the slot's re-map behind the copies already submitted).
      const ring = new UploadRing(gpu, 256, 3);
      let seed = 7;
      const rand = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
      for (let i = 0; i < 40; i++) {
        const target = i % 2 ? a : b;
        const len = 1 + Math.floor(rand() * 200);
        const offset = 4 * Math.floor(rand() * ((size - 256) / 4));
        const data = Uint8Array.from({ length: len }, () => Math.floor(rand() * 256));
        assert.ok(await ring.reserve(len + 3));
        ring.write(target, offset, data);
        const want = expected.get(target)!;
        want.set(data, offset);
        want.fill(0, offset + len, offset + Math.ceil(len / 4) * 4);
      }
      await ring.finish();
      for (const [buffer, want] of expected) {
        assert.deepEqual(bytesOf(await readF32(gpu, buffer, size / 4)), want);
      }
    });
  },
);

gpuTest("UploadRing: more than a slot is refused; writes past the reservation are an error", async () => {
  const gpu = await testGpu();
  await withOwner(gpu, async (owner) => {
    const buffer = owner.storage(64, "x");
    const ring = new UploadRing(gpu, 32, 2);
    try {
      assert.equal(await ring.reserve(33), false);
      assert.ok(await ring.reserve(8));
      assert.throws(() => ring.write(buffer, 0, new Uint8Array(12)), /past what reserve\(\) made room for/);
      assert.throws(() => ring.write(buffer, 2, new Uint8Array(4)), /4-byte aligned/);
      ring.write(buffer, 4, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
      await ring.finish();
      const got = bytesOf(await readF32(gpu, buffer, 4));
      assert.deepEqual([...got], [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0]);
    } finally {
      ring.destroy();
    }
  });
});

gpuTest("UploadRing: bytes filled in through free() land like written ones", async () => {
  const gpu = await testGpu();
  await withOwner(gpu, async (owner) => {
    const buffer = owner.storage(64, "x");
    const ring = new UploadRing(gpu, 32, 2);
    assert.ok(await ring.reserve(12));
    const space = ring.free(6);
    space.set([9, 8, 7, 6, 5, 4]);
    ring.write(buffer, 8, space);
    assert.throws(() => ring.free(8), /past what reserve\(\) made room for/);
    await ring.finish();
    const got = bytesOf(await readF32(gpu, buffer, 4));
    assert.deepEqual([...got], [0, 0, 0, 0, 0, 0, 0, 0, 9, 8, 7, 6, 5, 4, 0, 0]);
  });
});

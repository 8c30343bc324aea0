/**
 * Image decoding: PNG (every colour type PIL distinguishes), JPEG, WebP round trips through the same
 * libraries' encoders, PIL's convert("RGB") rules, and the error cases.
 */
import assert from "node:assert/strict";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import encodeWebp from "@jsquash/webp/encode.js";
import {
  decodeImage,
  detectImageFormat,
  ImageDecodeError,
  loadImage,
  readImageSize,
} from "../src/image/decode.ts";

const W = 7, H = 5;

/** A deterministic RGBA test pattern. */
function pattern(w = W, h = H): Uint8Array {
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 4;
      out[p] = (x * 37 + y * 11) & 255;
      out[p + 1] = (x * 5 + y * 53) & 255;
      out[p + 2] = (x * y * 29 + 7) & 255;
      out[p + 3] = (x + y) % 3 === 0 ? 0 : 128 + x; // some fully transparent pixels
    }
  }
  return out;
}

function rgbOf(rgba: Uint8Array): Uint8Array {
  const n = rgba.length / 4, out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) out.set(rgba.subarray(4 * p, 4 * p + 3), 3 * p);
  return out;
}

function channel(rgba: Uint8Array, c: number, stride = 4): Uint8Array {
  const n = rgba.length / stride, out = new Uint8Array(n);
  for (let p = 0; p < n; p++) out[p] = rgba[p * stride + c];
  return out;
}

function replicate(gray: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(gray.length * 3);
  for (let p = 0; p < gray.length; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = gray[p];
  return out;
}

async function rejects(bytes: Uint8Array, re: RegExp, name = "pic.bin", options = {}): Promise<void> {
  await assert.rejects(() => decodeImage(bytes, name, options), (e: unknown) => {
    assert.ok(e instanceof ImageDecodeError, `not an ImageDecodeError: ${e}`);
    assert.ok(e.message.startsWith(`${name}: `), e.message);
    assert.match(e.message, re);
    return true;
  });
}

const rgba = pattern();

// ---------------------------------------------------------------------------------------------------------
// PNG

Deno.test("PNG RGB 8-bit round trip", async () => {
  const rgb = rgbOf(rgba);
  const png = encodePng({ width: W, height: H, data: rgb, channels: 3, depth: 8 });
  assert.equal(detectImageFormat(png), "png");
  assert.deepEqual(readImageSize(png), { format: "png", width: W, height: H });
  const img = await decodeImage(png, "rgb.png");
  assert.deepEqual(img, { data: rgb, width: W, height: H, channels: 3 });
});

Deno.test("PNG RGBA: alpha dropped without compositing (PIL convert('RGB'))", async () => {
  const img = await decodeImage(encodePng({ width: W, height: H, data: rgba, channels: 4, depth: 8 }));
  assert.deepEqual(img.data, rgbOf(rgba)); // transparent pixels keep their colour
});

Deno.test("PNG grayscale 8-bit and gray+alpha are replicated", async () => {
  const gray = channel(rgba, 0);
  const g = await decodeImage(encodePng({ width: W, height: H, data: gray, channels: 1, depth: 8 }));
  assert.deepEqual(g.data, replicate(gray));
  const la = new Uint8Array(W * H * 2);
  for (let p = 0; p < W * H; p++) [la[2 * p], la[2 * p + 1]] = [gray[p], rgba[4 * p + 3]];
  const ga = await decodeImage(encodePng({ width: W, height: H, data: la, channels: 2, depth: 8 }));
  assert.deepEqual(ga.data, replicate(gray));
});

Deno.test("PNG 16-bit: RGB(A) keeps the high byte, grayscale clips to 255 as PIL's I;16", async () => {
  const n = W * H;
  const rgb16 = new Uint16Array(n * 3);
  for (let i = 0; i < rgb16.length; i++) rgb16[i] = (i * 2654435761) & 0xffff;
  const rgb = await decodeImage(encodePng({ width: W, height: H, data: rgb16, channels: 3, depth: 16 }));
  assert.deepEqual(rgb.data, Uint8Array.from(rgb16, (v) => v >> 8));
  const rgba16 = new Uint16Array(n * 4);
  for (let i = 0; i < rgba16.length; i++) rgba16[i] = (i * 40503 + 17) & 0xffff;
  const a = await decodeImage(encodePng({ width: W, height: H, data: rgba16, channels: 4, depth: 16 }));
  assert.deepEqual(a.data, rgbOf(Uint8Array.from(rgba16, (v) => v >> 8)));
  const g16 = Uint16Array.from({ length: n }, (_, i) => [0, 1, 254, 255, 256, 4000, 65535][i % 7]);
  const g = await decodeImage(encodePng({ width: W, height: H, data: g16, channels: 1, depth: 16 }));
  assert.deepEqual(g.data, replicate(Array.from(g16, (v) => Math.min(v, 255))));
  const la16 = new Uint16Array(n * 2);
  for (let p = 0; p < n; p++) [la16[2 * p], la16[2 * p + 1]] = [p * 1500, 9];
  const la = await decodeImage(encodePng({ width: W, height: H, data: la16, channels: 2, depth: 16 }));
  assert.deepEqual(la.data, replicate(Array.from({ length: n }, (_, p) => (p * 1500) >> 8)));
});

Deno.test("PNG palette (8-bit and packed 4-bit) expands through the palette", async () => {
  const palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [200, 100, 50]];
  const idx = Uint8Array.from({ length: W * H }, (_, i) => (i * 3) % palette.length);
  const expected = new Uint8Array(W * H * 3);
  idx.forEach((k, p) => expected.set(palette[k], 3 * p));
  const p8 = await decodeImage(encodePng({ width: W, height: H, data: idx, channels: 1, depth: 8, palette }));
  assert.deepEqual(p8.data, expected);
  // 4-bit: two indices a byte, rows padded to whole bytes.
  const rowBytes = Math.ceil(W / 2);
  const packed = new Uint8Array(rowBytes * H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) packed[y * rowBytes + (x >> 1)] |= idx[y * W + x] << (x & 1 ? 0 : 4);
  }
  const p4 = await decodeImage(
    encodePng({ width: W, height: H, data: packed, channels: 1, depth: 4, palette }),
  );
  assert.deepEqual(p4.data, expected);
  // Palette with alpha (tRNS): alpha dropped.
  const palA = palette.map(([r, g, b], i) => [r, g, b, i * 50]);
  const pa = await decodeImage(
    encodePng({ width: W, height: H, data: idx, channels: 1, depth: 8, palette: palA }),
  );
  assert.deepEqual(pa.data, expected);
});

Deno.test("PNG 1-bit grayscale scales to 0/255", async () => {
  const rowBytes = Math.ceil(W / 8);
  const bits = new Uint8Array(rowBytes * H);
  const expected: number[] = [];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const on = (x + y) % 2;
      if (on) bits[y * rowBytes + (x >> 3)] |= 0x80 >> (x & 7);
      expected.push(on ? 255 : 0);
    }
  }
  const img = await decodeImage(encodePng({ width: W, height: H, data: bits, channels: 1, depth: 1 }));
  assert.deepEqual(img.data, replicate(expected));
});

// ---------------------------------------------------------------------------------------------------------
// JPEG

Deno.test("JPEG round trip (same library's encoder), approximately", async () => {
  const w = 48, h = 32;
  const smooth = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) smooth.set([x * 5, y * 7, (x + y) * 3, 255], (y * w + x) * 4);
  }
  const jpg = new Uint8Array(jpeg.encode({ data: smooth, width: w, height: h }, 95).data);
  assert.equal(detectImageFormat(jpg), "jpeg");
  assert.deepEqual(readImageSize(jpg), { format: "jpeg", width: w, height: h });
  const img = await decodeImage(jpg, "smooth.jpg");
  assert.equal(img.width, w);
  assert.equal(img.height, h);
  assert.equal(img.channels, 3);
  const ref = rgbOf(smooth);
  let max = 0, sum = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(img.data[i] - ref[i]);
    max = Math.max(max, d);
    sum += d;
  }
  assert.ok(max <= 16 && sum / ref.length < 2, `max ${max}, mean ${sum / ref.length}`);
  // A file that only lacks the final EOI still decodes (libjpeg/PIL tolerate it).
  const noEoi = await decodeImage(jpg.subarray(0, jpg.length - 2), "no-eoi.jpg");
  assert.deepEqual(noEoi.data, img.data);
});

// ---------------------------------------------------------------------------------------------------------
// WebP

/** A 5×3 lossless WebP made once with @jsquash/webp's encoder (pixel i: [10i, 255 − 10i, 77]). */
const TINY_WEBP_B64 =
  "UklGRjoAAABXRUJQVlA4TC0AAAAvBIAAAHcgJEj+H6YavTAK0zT/mWWgoJGk5nuha8ETWvCEFoRF9D/WlnPz/QEA";

Deno.test("WebP: committed tiny lossless file decodes exactly", async () => {
  const bytes = Uint8Array.from(atob(TINY_WEBP_B64), (c) => c.charCodeAt(0));
  assert.equal(detectImageFormat(bytes), "webp");
  assert.deepEqual(readImageSize(bytes), { format: "webp", width: 5, height: 3 });
  const img = await decodeImage(bytes, "tiny.webp");
  const expected = new Uint8Array(15 * 3);
  for (let i = 0; i < 15; i++) expected.set([10 * i, 255 - 10 * i, 77], 3 * i);
  assert.deepEqual(img, { data: expected, width: 5, height: 3, channels: 3 });
});

Deno.test("WebP round trips: lossless with alpha (exact RGB), lossy (approximate, VP8 and VP8X)", async () => {
  const toImageData = (d: Uint8Array, w: number, h: number): ImageData =>
    ({ data: new Uint8ClampedArray(d), width: w, height: h, colorSpace: "srgb" }) as ImageData;
  // Lossless keeps RGB under transparent pixels only with `exact`.
  const lossless = new Uint8Array(await encodeWebp(toImageData(rgba, W, H), { lossless: 1, exact: 1 }));
  const a = await decodeImage(lossless, "lossless.webp");
  assert.deepEqual(a.data, rgbOf(rgba));

  const w = 32, h = 24;
  const smooth = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) smooth.set([x * 7, y * 9, 128, 255], (y * w + x) * 4);
  }
  for (const alpha of [false, true]) {
    const src = smooth.slice();
    if (alpha) { for (let p = 0; p < w * h; p++) src[4 * p + 3] = p % 2 ? 255 : 200; }
    const lossy = new Uint8Array(await encodeWebp(toImageData(src, w, h), { quality: 95 }));
    const chunk = new TextDecoder().decode(lossy.subarray(12, 16));
    assert.equal(chunk, alpha ? "VP8X" : "VP8 ");
    assert.deepEqual(readImageSize(lossy), { format: "webp", width: w, height: h });
    const img = await decodeImage(lossy, "lossy.webp");
    const ref = rgbOf(src);
    let max = 0;
    for (let i = 0; i < ref.length; i++) max = Math.max(max, Math.abs(img.data[i] - ref[i]));
    assert.ok(max <= 24, `alpha=${alpha}: max |Δ| ${max}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// Errors

Deno.test("errors: empty, unknown and unsupported formats", async () => {
  await rejects(new Uint8Array(0), /file is empty/);
  await rejects(
    new TextEncoder().encode("hello, world"),
    /unknown image format \(supported: JPEG, PNG, WebP\)/,
  );
  await rejects(
    new TextEncoder().encode("GIF89a\x01\x00\x01\x00"),
    /GIF images are not supported.*JPEG, PNG, WebP/,
  );
  await rejects(new TextEncoder().encode("BM\0\0\0\0"), /BMP images are not supported/);
});

Deno.test("errors: truncated and corrupt PNG", async () => {
  const png = encodePng({ width: W, height: H, data: rgbOf(rgba), channels: 3, depth: 8 });
  await rejects(png.subarray(0, png.length - 6), /truncated PNG/, "cut.png");
  await rejects(png.subarray(0, 40), /truncated PNG/, "cut.png");
  await rejects(png.subarray(0, 20), /corrupt or truncated PNG/, "cut.png");
  const bad = png.slice();
  const idat = new TextDecoder("latin1").decode(bad).indexOf("IDAT");
  bad[idat + 6] ^= 0xff; // damage the compressed data (the CRC no longer matches)
  await rejects(bad, /corrupt or truncated PNG/, "bad.png");
});

Deno.test("errors: truncated and corrupt JPEG", async () => {
  const w = 32, h = 32;
  const jpg = new Uint8Array(jpeg.encode({ data: pattern(w, h), width: w, height: h }, 90).data);
  await rejects(jpg.subarray(0, Math.floor(jpg.length * 0.7)), /corrupt or truncated JPEG/, "cut.jpg");
  await rejects(jpg.subarray(0, 12), /corrupt or truncated JPEG/, "cut.jpg");
  await rejects(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 2, 0x12, 0x34]), /JPEG/, "junk.jpg");
});

Deno.test("errors: truncated and corrupt WebP", async () => {
  const bytes = Uint8Array.from(atob(TINY_WEBP_B64), (c) => c.charCodeAt(0));
  await rejects(bytes.subarray(0, bytes.length - 5), /truncated WebP/, "cut.webp");
  const bad = bytes.slice();
  bad.fill(0x5a, 25); // keep the header, scramble the bitstream
  await rejects(bad, /corrupt or truncated WebP/, "bad.webp");
});

/** A PNG whose IHDR claims `w × h` (CRC left stale: the size check runs before decoding). */
function pngClaiming(w: number, h: number): Uint8Array {
  const png = encodePng({ width: 2, height: 2, data: new Uint8Array(12), channels: 3, depth: 8 });
  const dv = new DataView(png.buffer, png.byteOffset);
  dv.setUint32(16, w);
  dv.setUint32(20, h);
  return png;
}

Deno.test("errors: zero-sized and absurdly large images are refused before decoding", async () => {
  await rejects(pngClaiming(0, 10), /empty \(0×10 pixels\)/, "zero.png");
  await rejects(pngClaiming(30000, 10), /too large \(30000×10 pixels/, "wide.png");
  await rejects(pngClaiming(10000, 10000), /too large/, "huge.png");
  // Configurable limits.
  const ok = encodePng({ width: 20, height: 20, data: new Uint8Array(1200), channels: 3, depth: 8 });
  await rejects(ok, /too large/, "small.png", { maxPixels: 399 });
  await rejects(ok, /too large/, "small.png", { maxSide: 19 });
  assert.equal((await decodeImage(ok, "small.png", { maxPixels: 400, maxSide: 20 })).width, 20);
  // JPEG with a zero height in its frame header.
  const jpg = new Uint8Array(jpeg.encode({ data: pattern(8, 8), width: 8, height: 8 }, 90).data);
  for (let i = 2; i < jpg.length - 8; i++) {
    if (jpg[i] === 0xff && jpg[i + 1] === 0xc0) {
      jpg[i + 5] = 0;
      jpg[i + 6] = 0;
      break;
    }
  }
  await rejects(jpg, /empty \(8×0 pixels\)/, "zero.jpg");
});

Deno.test("loadImage reads a file; a missing path is an error naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/x.png`;
    await Deno.writeFile(path, encodePng({ width: W, height: H, data: rgba, channels: 4, depth: 8 }));
    const img = await loadImage(path);
    assert.deepEqual(img.data, rgbOf(rgba));
    const missing = `${dir}/nope.jpg`;
    await assert.rejects(() => loadImage(missing), (e: unknown) => {
      assert.ok(e instanceof ImageDecodeError);
      assert.match(
        e.message,
        new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: no such image file`),
      );
      return true;
    });
    await Deno.writeFile(`${dir}/empty.png`, new Uint8Array(0));
    await assert.rejects(() => loadImage(`${dir}/empty.png`), /empty\.png: the file is empty/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

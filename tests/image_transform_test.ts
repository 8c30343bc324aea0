/**
 * torchtune's CLIPImageTransform against the tiny_vision_e2e golden tiles (float32 within 1e-5, bfloat16
 * bit-exact), plus canvas selection and resize-size rules from the port notes (§13).
 */
import assert from "node:assert/strict";
import { fixtureDir, type GoldenTensor, maxAbsDiff, readGolden } from "./helpers/golden.ts";
import {
  bf16BitsToNumber,
  CLIPImageTransform,
  find_supported_resolutions,
  get_canvas_best_fit,
  get_max_res_without_distortion,
  resize_with_pad_size,
  resizeBilinearAntialias,
  roundBf16,
  toBf16Bits,
} from "../src/models/llama3_2_vision/image_transform.ts";

const DIR = fixtureDir("tiny_vision_e2e");

interface TransformCase {
  image_hw: [number, number];
  aspect_ratio: [number, number];
  "best_canvas(h,w)": [number, number];
  "resize_target_after_max_size(h,w)": [number, number];
  "resized_size(h,w)": [number, number];
  "possible_resolutions(h,w)"?: [number, number][];
  image_mean?: number[];
  image_std?: number[];
  tile_size?: number;
  max_num_tiles?: number;
  pixel_formula?: string;
}

interface Manifest {
  encoder_kwargs: { tile_size: number; max_num_tiles: number };
  transform: TransformCase[];
  extra_transform_tests: (TransformCase & { index: number })[];
}

const manifest: Manifest = JSON.parse(await Deno.readTextFile(`${DIR}/manifest.json`));
const golden = await readGolden(`${DIR}/tensors.safetensors`);

function get(name: string): GoldenTensor {
  const t = golden.get(name);
  assert.ok(t, `fixture tensor ${name} is missing`);
  return t;
}

/** The manifest's pixel formula: R = x·255 // (W−1), G = y·255 // (H−1), B = (x+y)·255 // (W+H−2). */
function syntheticImage(h: number, w: number): Uint8Array {
  const out = new Uint8Array(h * w * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * 3;
      out[p] = Math.floor((x * 255) / (w - 1));
      out[p + 1] = Math.floor((y * 255) / (h - 1));
      out[p + 2] = Math.floor(((x + y) * 255) / (w + h - 2));
    }
  }
  return out;
}

const cases: { prefix: string; raw: string; info: TransformCase }[] = [
  { prefix: "image0", raw: "image0_raw_hwc_u8", info: manifest.transform[0] },
  ...manifest.extra_transform_tests.map((info) => ({
    prefix: `xform${info.index}`,
    raw: `xform${info.index}_raw_image_hwc_u8`,
    info,
  })),
];
const base = manifest.transform[0];
const TILE = base.tile_size ?? manifest.encoder_kwargs.tile_size;
const MAX_TILES = base.max_num_tiles ?? manifest.encoder_kwargs.max_num_tiles;

Deno.test("fixture: the manifest's pixel formula regenerates the stored raw images", () => {
  assert.match(base.pixel_formula ?? "", /R = x\*255 \/\/ \(W-1\)/);
  assert.equal(cases.length, 3);
  for (const { raw, info } of cases) {
    const t = get(raw);
    const [h, w] = info.image_hw;
    assert.deepEqual(t.shape, [h, w, 3], raw);
    assert.deepEqual(syntheticImage(h, w), t.data, raw);
  }
});

Deno.test("fixture: canvas, resize target and resized size match the manifest", () => {
  const possible = find_supported_resolutions(MAX_TILES, TILE);
  assert.deepEqual(possible, base["possible_resolutions(h,w)"]);
  for (const { prefix, info } of cases) {
    const canvas = get_canvas_best_fit(info.image_hw, possible);
    assert.deepEqual(canvas, info["best_canvas(h,w)"], prefix);
    const [h, w] = info.image_hw;
    const target = [Math.min(Math.max(h, TILE), canvas[0]), Math.min(Math.max(w, TILE), canvas[1])];
    assert.deepEqual(target, info["resize_target_after_max_size(h,w)"], prefix);
    assert.deepEqual(resize_with_pad_size(info.image_hw, canvas, TILE), info["resized_size(h,w)"], prefix);
  }
});

for (const { prefix, raw, info } of cases) {
  for (const dtype of ["float32", "bfloat16"] as const) {
    Deno.test(`fixture ${prefix}: CLIPImageTransform(dtype=${dtype}) tiles and aspect ratio`, () => {
      const [h, w] = info.image_hw;
      const transform = new CLIPImageTransform({
        image_mean: base.image_mean,
        image_std: base.image_std,
        tile_size: TILE,
        max_num_tiles: MAX_TILES,
        dtype,
      });
      const out = transform.call({ data: syntheticImage(h, w), height: h, width: w, channels: 3 });
      // The same result from the stored raw pixels.
      const fromRaw = transform.call({ data: get(raw).data as Uint8Array, height: h, width: w, channels: 3 });
      assert.deepEqual(fromRaw.image, out.image);

      const expected = get(`${prefix}_tiles_${dtype === "float32" ? "f32" : "bf16"}`);
      assert.deepEqual(out.shape, expected.shape);
      assert.equal(out.image.length, expected.data.length);
      assert.deepEqual(out.aspect_ratio, Array.from(get(`${prefix}_aspect_ratio`).data));
      assert.deepEqual(out.aspect_ratio, info.aspect_ratio);
      if (dtype === "float32") {
        assert.equal(out.bits, undefined);
        const d = maxAbsDiff(out.image, expected.data);
        assert.ok(d <= 1e-5, `${prefix} f32 max |Δ| ${d}`);
      } else {
        assert.ok(out.bits && expected.bits);
        let bad = 0;
        for (let i = 0; i < out.bits.length; i++) if (out.bits[i] !== expected.bits[i]) bad++;
        assert.equal(bad, 0, `${prefix}: ${bad} bf16 values differ`);
        assert.deepEqual(out.image, expected.data); // widened values agree too
      }
    });
  }
}

Deno.test("find_supported_resolutions: torchtune's list order", () => {
  const order = (n: number): string[] => find_supported_resolutions(n, 1).map(([h, w]) => `${h}x${w}`);
  assert.deepEqual(order(4), ["1x4", "2x2", "1x1", "4x1", "1x3", "3x1", "1x2", "2x1"]);
  assert.deepEqual(order(2), ["1x2", "2x1", "1x1"]);
  assert.deepEqual(order(1), ["1x1"]);
  assert.deepEqual(find_supported_resolutions(4, 560).slice(0, 3), [[560, 2240], [1120, 1120], [560, 560]]);
  assert.throws(() => find_supported_resolutions(0, 560), RangeError);
});

Deno.test("get_canvas_best_fit: upscale vs downscale, smallest area, ties", () => {
  const res = find_supported_resolutions(4, 560);
  // Some canvas upscales (2×2: 1.12): the smallest scale ≥ 1 wins over the downscaling ones.
  assert.deepEqual(get_canvas_best_fit([700, 1000], res), [1120, 1120]);
  // Every canvas upscales; 1×1 and 1×4 (and 4×1 …) tie at 560/300: the smallest area wins.
  assert.deepEqual(get_canvas_best_fit([300, 300], res), [560, 560]);
  // …unless resize_to_max_canvas, which takes the largest upscale (2×2).
  assert.deepEqual(get_canvas_best_fit([300, 300], res, true), [1120, 1120]);
  // Nothing upscales: the largest downscale (0.56, shared by 4×1 and 3×1) → smaller area 3×1.
  assert.deepEqual(get_canvas_best_fit([3000, 1000], res), [1680, 560]);
  // A wide image: 1×4 fits best.
  assert.deepEqual(get_canvas_best_fit([500, 2000], res), [560, 2240]);
  // Ties with equal area go to the first listed.
  assert.deepEqual(get_canvas_best_fit([10, 10], [[20, 40], [40, 20]]), [20, 40]);
  // Equal scales (560/700 = 448/560 = 0.8): the smaller area wins.
  assert.deepEqual(get_canvas_best_fit([700, 560], [[560, 448], [560, 560]]), [560, 448]);
});

Deno.test("resize sizes: only upscale when a side is below the tile size", () => {
  // Big image, 2×2 canvas: the target is the image itself, no resize.
  assert.deepEqual(resize_with_pad_size([700, 1000], [1120, 1120], 560), [700, 1000]);
  // Small image: upscaled until a side reaches the tile size.
  assert.deepEqual(resize_with_pad_size([100, 200], [560, 1120], 560), [280, 560]);
  assert.deepEqual(resize_with_pad_size([100, 200], [560, 1120], null), [560, 1120]);
  // Limiting side fills, the other is floored.
  assert.deepEqual(get_max_res_without_distortion([3000, 1000], [1680, 560]), [1680, 560]);
  assert.deepEqual(get_max_res_without_distortion([37, 50], [16, 32]), [16, 21]);
});

Deno.test("antialiased bilinear: constants stay constant, upscale is half-pixel bilinear", () => {
  const c = new Float32Array(5 * 7).fill(0.25);
  for (const v of resizeBilinearAntialias(c, 1, 5, 7, 3, 11)) assert.equal(v, 0.25);
  // 1×2 → 1×4 upscale: centres at 0.25 and 0.75 of the input pixels → [a, 0.75a+0.25b, 0.25a+0.75b, b].
  const up = resizeBilinearAntialias(new Float32Array([0, 1]), 1, 1, 2, 1, 4);
  assert.deepEqual(Array.from(up), [0, 0.25, 0.75, 1]);
  // 1×4 → 1×2 downscale with antialiasing: a triangle stretched ×2, taps [trunc(c−2+½), trunc(c+2+½)) →
  // output 0 (centre 1) uses inputs 0,1,2 with weights (¾, ¾, ¼)/1.75; output 1 (centre 3) inputs 1,2,3.
  const down = resizeBilinearAntialias(new Float32Array([0, 1, 2, 3]), 1, 1, 4, 1, 2);
  assert.ok(maxAbsDiff(down, [1.25 / 1.75, 4 / 1.75]) < 1e-6, `${Array.from(down)}`);
});

Deno.test("bfloat16 helpers round to nearest even", () => {
  assert.equal(toBf16Bits(1), 0x3f80);
  assert.equal(roundBf16(1 + 2 ** -8), 1); // tie → even
  assert.equal(roundBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6); // tie → even (up)
  assert.equal(roundBf16(1 / 255), 129 / 32768); // 0x3B808081 rounds up
  assert.equal(bf16BitsToNumber(0xbf80), -1);
  assert.ok(Number.isNaN(roundBf16(NaN)));
});

Deno.test("real-size config: 1000×700 image → [4, 3, 560, 560] quickly", () => {
  const W = 1000, H = 700;
  const data = new Uint8Array(H * W * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 255;
  for (const dtype of ["bfloat16", "float32"] as const) {
    const transform = new CLIPImageTransform({ tile_size: 560, max_num_tiles: 4, dtype });
    const t0 = performance.now();
    const out = transform.call({ data, height: H, width: W, channels: 3 });
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `${dtype} transform took ${ms.toFixed(0)} ms`);
    assert.deepEqual(out.shape, [4, 3, 560, 560]);
    assert.deepEqual(out.aspect_ratio, [2, 2]);
    assert.equal(out.image.length, 4 * 3 * 560 * 560);
    assert.equal(out.bits !== undefined, dtype === "bfloat16");
    const round = dtype === "bfloat16" ? roundBf16 : Math.fround;
    const mean = [0.48145466, 0.4578275, 0.40821073], std = [0.26862954, 0.26130258, 0.27577711];
    const norm = (x: number, c: number): number => round(round(x - round(mean[c])) / round(std[c]));
    const T = 560, plane = T * T;
    // Top-left pixel of tile 0, channel 0 (no resize: the image sits at the canvas's top-left).
    assert.equal(out.image[0], norm(round(data[0] * round(1 / 255)), 0));
    // Tile 1 (top right) starts at x = 560; column 999 is the last real one (tile 1, col 439).
    assert.equal(out.image[1 * 3 * plane + 439], norm(round(data[999 * 3] * round(1 / 255)), 0));
    // Padding (tile 1, col 440…; tile 2/3 rows ≥ 140) is −mean/std, not 0.
    for (let c = 0; c < 3; c++) {
      assert.equal(out.image[(1 * 3 + c) * plane + 440], norm(0, c));
      assert.equal(out.image[(3 * 3 + c) * plane + 559 * T + 559], norm(0, c));
      assert.equal(out.image[(2 * 3 + c) * plane + 140 * T], norm(0, c));
    }
    assert.notEqual(out.image[2 * 3 * plane + 139 * T], norm(0, 0));
  }
});

Deno.test("a downscale of a 2000×1500 image runs in reasonable time", () => {
  const W = 2000, H = 1500;
  const data = new Uint8Array(H * W * 3).fill(200);
  const transform = new CLIPImageTransform({ tile_size: 560, max_num_tiles: 4 });
  const t0 = performance.now();
  const out = transform.call({ data, height: H, width: W, channels: 3 });
  const ms = performance.now() - t0;
  assert.ok(ms < 5000, `took ${ms.toFixed(0)} ms`);
  assert.deepEqual(out.shape, [4, 3, 560, 560]); // 2×2 canvas; resized to 840×1120 (h×w), then padded
  assert.deepEqual(out.aspect_ratio, [2, 2]);
});

Deno.test("CLIPImageTransform validates its options and input", () => {
  assert.throws(() => new CLIPImageTransform({ tile_size: 0 }), RangeError);
  assert.throws(
    () => new CLIPImageTransform({ tile_size: 16, possible_resolutions: [[16, 20]] }),
    /multiple/,
  );
  assert.throws(() =>
    new CLIPImageTransform({ tile_size: 16, image_mean: [0.5, 0.5, 0.5], image_std: null })
  );
  const t = new CLIPImageTransform({ tile_size: 16 });
  assert.equal(t.dtype, "bfloat16");
  assert.equal(t.max_num_tiles, 4);
  assert.equal(t.possible_resolutions.length, 8);
  assert.throws(() => t.call({ data: new Uint8Array(5), height: 2, width: 2, channels: 3 }), /bytes/);
  assert.throws(() => t.call({ data: new Uint8Array(0), height: 0, width: 2, channels: 3 }), /positive/);
  // Without normalization the pixels are just scaled (and padding stays 0).
  const raw = new CLIPImageTransform({ tile_size: 4, max_num_tiles: 1, image_mean: null, image_std: null });
  const out = raw.call({ data: new Uint8Array([255, 0, 0]), height: 1, width: 1, channels: 3 });
  assert.deepEqual(out.shape, [1, 3, 4, 4]);
  // torch multiplies by bf16(1/255) = 129/32768: 255 → bf16(1.0039) = 1, 100 → bf16(0.3937) = 0.39453125.
  assert.equal(out.image[0], 1);
  assert.equal(out.image[15], 1); // upscaled 1×1 → 4×4
  assert.equal(out.image[16], 0);
});

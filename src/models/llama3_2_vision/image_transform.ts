/**
 * torchtune's `CLIPImageTransform` as `Llama3VisionTransform` configures it, on the CPU in plain TypeScript:
 * choose the best tiled canvas, resize without distortion (PyTorch's antialiased bilinear), pad right and
 * bottom, normalize, and cut into tiles `[n_tiles, 3, T, T]`.
 *
 * With `dtype: "bfloat16"` (torchtune's default) every op is rounded to bfloat16 where torch rounds it, so
 * the tiles are bit-exact with torchtune's; with `"float32"` they match to float32 rounding.
 *
 * @module
 */

/** CLIP's image mean (torchtune's `Llama3VisionTransform` default). */
export const CLIP_IMAGE_MEAN: readonly [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
/** CLIP's image std (torchtune's `Llama3VisionTransform` default). */
export const CLIP_IMAGE_STD: readonly [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** An 8-bit RGB image, row-major HWC (`data[(y·width + x)·3 + c]`). */
export interface RgbImage {
  /** `height · width · 3` bytes, HWC. */
  data: Uint8Array;
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
  /** Always 3 (RGB). */
  channels: 3;
}

/** Options of {@link CLIPImageTransform}, with torchtune's names. */
export interface CLIPImageTransformOptions {
  /** Per-channel mean; CLIP's by default. `null` skips normalization (as an empty list does in torchtune). */
  image_mean?: readonly number[] | null;
  /** Per-channel std; CLIP's by default. */
  image_std?: readonly number[] | null;
  /** Tile side T in pixels (560 for the real model). */
  tile_size: number;
  /** Canvas sizes `(h, w)` in pixels; from {@link find_supported_resolutions} when absent or null. */
  possible_resolutions?: [number, number][] | null;
  /** Most tiles per image (4 by default); used when `possible_resolutions` is not given. */
  max_num_tiles?: number;
  /** Only `"bilinear"` (antialiased, `align_corners=False`) is implemented. */
  resample?: "bilinear";
  /** Upscale to the largest canvas that fits instead of the smallest (false by default, as Llama 3.2). */
  resize_to_max_canvas?: boolean;
  /** Output dtype; `"bfloat16"` by default as in torchtune. */
  dtype?: "float32" | "bfloat16";
}

/** The result of {@link CLIPImageTransform.call}. */
export interface CLIPImageTransformOutput {
  /** Tiles `[n_tiles, 3, T, T]`, row-major tile order; for bfloat16 the bf16 values widened to float32. */
  image: Float32Array;
  /** The bfloat16 bit patterns of `image` (only when `dtype` is `"bfloat16"`). */
  bits?: Uint16Array;
  /** `[n_tiles, 3, T, T]`. */
  shape: [number, number, number, number];
  /** `(n_tiles_h, n_tiles_w)` of the chosen canvas. */
  aspect_ratio: [number, number];
}

// ---------------------------------------------------------------------------------------------------------
// bfloat16 helpers

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Rounds a number to float32 and then to bfloat16 (nearest, ties to even), returning the bf16 bits. */
export function toBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40; // NaN stays (quiet) NaN
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The float32 value of bfloat16 bits. */
export function bf16BitsToNumber(bits: number): number {
  u32[0] = (bits & 0xffff) << 16;
  return f32[0];
}

/** Rounds a number to the nearest bfloat16 value (through float32, as torch's `.to(torch.bfloat16)`). */
export function roundBf16(x: number): number {
  return bf16BitsToNumber(toBf16Bits(x));
}

// ---------------------------------------------------------------------------------------------------------
// Canvas selection

/**
 * torchtune's `find_supported_resolutions`: every canvas `(h·T, w·T)` with `h·w ≤ max_num_tiles`, grouped by
 * aspect ratio in the order first met while iterating tile counts `max_num_tiles … 1` (factor pairs sorted).
 * For 4 tiles the order is `1×4, 2×2, 1×1, 4×1, 1×3, 3×1, 1×2, 2×1` (in tiles, `h×w`).
 */
export function find_supported_resolutions(max_num_tiles: number, tile_size: number): [number, number][] {
  if (!Number.isInteger(max_num_tiles) || max_num_tiles < 1) {
    throw new RangeError(`max_num_tiles must be a positive integer, got ${max_num_tiles}`);
  }
  const groups = new Map<number, [number, number][]>();
  for (let n = max_num_tiles; n > 0; n--) {
    for (let f = 1; f <= n; f++) {
      if (n % f !== 0) continue;
      const h = f, w = n / f;
      const ratio = h / w;
      let g = groups.get(ratio);
      if (!g) groups.set(ratio, g = []);
      g.push([h, w]);
    }
  }
  const out: [number, number][] = [];
  for (const g of groups.values()) for (const [h, w] of g) out.push([h * tile_size, w * tile_size]);
  return out;
}

/**
 * torchtune's `get_canvas_best_fit`: for each canvas, `scale = min(H_c/H, W_c/W)` in float32; the smallest
 * scale ≥ 1 if any (the largest with `resize_to_max_canvas`), else the largest scale; among canvases with
 * that scale the smallest area, ties to the first listed. Returns `(H_c, W_c)`.
 */
export function get_canvas_best_fit(
  image_hw: readonly [number, number],
  possible_resolutions: readonly (readonly [number, number])[],
  resize_to_max_canvas = false,
): [number, number] {
  const [h, w] = image_hw;
  if (possible_resolutions.length === 0) throw new RangeError("possible_resolutions is empty");
  const scales = possible_resolutions.map(([ch, cw]) => {
    const sw = Math.fround(cw / w), sh = Math.fround(ch / h);
    return sw > sh ? sh : sw;
  });
  const up = scales.filter((s) => s >= 1);
  let selected: number;
  if (up.length > 0) selected = resize_to_max_canvas ? Math.max(...up) : Math.min(...up);
  else selected = Math.max(...scales.filter((s) => s < 1));
  let best = -1;
  for (let i = 0; i < scales.length; i++) {
    if (scales[i] !== selected) continue;
    const [ch, cw] = possible_resolutions[i];
    if (best < 0 || ch * cw < possible_resolutions[best][0] * possible_resolutions[best][1]) best = i;
  }
  return [possible_resolutions[best][0], possible_resolutions[best][1]];
}

/**
 * torchtune's `_get_max_res_without_distortion`: the largest `(h, w)` inside `target_size` with the image's
 * aspect ratio (the limiting side fills its target, the other is floored).
 */
export function get_max_res_without_distortion(
  image_size: readonly [number, number],
  target_size: readonly [number, number],
): [number, number] {
  const [oh, ow] = image_size;
  const [th, tw] = target_size;
  const sw = tw / ow, sh = th / oh;
  if (sw < sh) return [Math.min(Math.floor(oh * sw), th), tw];
  return [th, Math.min(Math.floor(ow * sh), tw)];
}

/**
 * The size `resize_with_pad` resizes to: the target is first limited to `max(side, max_size)` per side (so an
 * image is upscaled only when a side is below `max_size`), then fitted without distortion.
 */
export function resize_with_pad_size(
  image_size: readonly [number, number],
  target_size: readonly [number, number],
  max_size: number | null = null,
): [number, number] {
  const [h, w] = image_size;
  const target: [number, number] = max_size === null
    ? [target_size[0], target_size[1]]
    : [Math.min(Math.max(h, max_size), target_size[0]), Math.min(Math.max(w, max_size), target_size[1])];
  return get_max_res_without_distortion(image_size, target);
}

// ---------------------------------------------------------------------------------------------------------
// PyTorch's antialiased bilinear resize (`_upsample_bilinear2d_aa`, CPU, float32)

interface AxisWeights {
  xmin: Int32Array;
  xsize: Int32Array;
  /** `out · stride` weights, row i at `i · stride`. */
  w: Float32Array;
  stride: number;
}

/** Weights of one axis, computed with PyTorch's float32 roundings (`_compute_indices_min_size_weights_aa`). */
function axisWeights(inSize: number, outSize: number): AxisWeights {
  const fr = Math.fround;
  const scale = fr(inSize / outSize);
  const support = scale >= 1 ? scale : 1;
  const invscale = scale >= 1 ? fr(1 / scale) : 1;
  const stride = Math.ceil(support) * 2 + 1;
  const xmin = new Int32Array(outSize), xsize = new Int32Array(outSize);
  const w = new Float32Array(outSize * stride);
  for (let i = 0; i < outSize; i++) {
    const center = fr(scale * (i + 0.5));
    const lo = Math.max(Math.trunc(fr(center - support) + 0.5), 0);
    const n = Math.min(Math.trunc(fr(center + support) + 0.5), inSize) - lo;
    xmin[i] = lo;
    xsize[i] = n;
    let total = 0;
    for (let j = 0; j < n; j++) {
      const x = Math.abs(fr((fr(j + lo - center) + 0.5) * invscale));
      const v = x < 1 ? fr(1 - x) : 0;
      w[i * stride + j] = v;
      total = fr(total + v);
    }
    if (total !== 0) { for (let j = 0; j < n; j++) w[i * stride + j] = fr(w[i * stride + j] / total); }
  }
  return { xmin, xsize, w, stride };
}

/**
 * `torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True)` on a float32 CHW
 * image, as PyTorch's CPU kernel does it: horizontal pass first, then vertical, float32 accumulation
 * `t = src[lo]·w[0]; t += src[lo+j]·w[j]` with the multiply-add fused (PyTorch's AVX2 build contracts it to
 * an FMA; the product is exact in float64 here, so only the sum is rounded to float32).
 */
export function resizeBilinearAntialias(
  src: Float32Array<ArrayBuffer>,
  channels: number,
  inH: number,
  inW: number,
  outH: number,
  outW: number,
): Float32Array<ArrayBuffer> {
  const fr = Math.fround;
  let cur = src;
  let curW = inW;
  if (outW !== inW) {
    const { xmin, xsize, w, stride } = axisWeights(inW, outW);
    const tmp = new Float32Array(channels * inH * outW);
    for (let r = 0; r < channels * inH; r++) {
      const si = r * inW, di = r * outW;
      for (let x = 0; x < outW; x++) {
        const lo = si + xmin[x], n = xsize[x], wi = x * stride;
        let t = fr(cur[lo] * w[wi]);
        for (let j = 1; j < n; j++) t = fr(t + cur[lo + j] * w[wi + j]);
        tmp[di + x] = t;
      }
    }
    cur = tmp;
    curW = outW;
  }
  if (outH !== inH) {
    const { xmin, xsize, w, stride } = axisWeights(inH, outH);
    const out = new Float32Array(channels * outH * curW);
    const acc = new Float32Array(curW);
    for (let c = 0; c < channels; c++) {
      const plane = c * inH * curW;
      for (let y = 0; y < outH; y++) {
        const lo = xmin[y], n = xsize[y], wi = y * stride;
        const w0 = w[wi];
        let row = plane + lo * curW;
        for (let x = 0; x < curW; x++) acc[x] = cur[row + x] * w0;
        for (let j = 1; j < n; j++) {
          const wj = w[wi + j];
          row = plane + (lo + j) * curW;
          for (let x = 0; x < curW; x++) acc[x] = acc[x] + cur[row + x] * wj;
        }
        out.set(acc, (c * outH + y) * curW);
      }
    }
    cur = out;
  }
  return cur === src ? src.slice() : cur;
}

// ---------------------------------------------------------------------------------------------------------
// The transform

/**
 * torchtune's `CLIPImageTransform` (as `Llama3VisionTransform` builds it): RGB uint8 image → normalized tiles
 * `[n_tiles, 3, tile_size, tile_size]` plus the canvas aspect ratio in tiles.
 */
export class CLIPImageTransform {
  /** Per-channel mean, or null for no normalization. */
  readonly image_mean: readonly number[] | null;
  /** Per-channel std, or null for no normalization. */
  readonly image_std: readonly number[] | null;
  /** Tile side in pixels. */
  readonly tile_size: number;
  /** Candidate canvases `(h, w)` in pixels, in torchtune's order. */
  readonly possible_resolutions: [number, number][];
  /** Most tiles per image. */
  readonly max_num_tiles: number;
  /** Resampling filter. */
  readonly resample: "bilinear";
  /** Whether to upscale to the largest fitting canvas. */
  readonly resize_to_max_canvas: boolean;
  /** Output dtype. */
  readonly dtype: "float32" | "bfloat16";

  /** Validates the options and fills in torchtune's defaults. */
  constructor(options: CLIPImageTransformOptions) {
    const {
      image_mean = CLIP_IMAGE_MEAN,
      image_std = CLIP_IMAGE_STD,
      tile_size,
      possible_resolutions = null,
      max_num_tiles = 4,
      resample = "bilinear",
      resize_to_max_canvas = false,
      dtype = "bfloat16",
    } = options;
    if (!Number.isInteger(tile_size) || tile_size < 1) {
      throw new RangeError(`tile_size must be a positive integer, got ${tile_size}`);
    }
    if (resample !== "bilinear") {
      throw new RangeError(`resample "${resample}" is not supported (bilinear only)`);
    }
    if (dtype !== "float32" && dtype !== "bfloat16") {
      throw new RangeError(`dtype "${dtype}" is not supported`);
    }
    const hasMean = image_mean !== null && image_mean.length > 0;
    const hasStd = image_std !== null && image_std.length > 0;
    if (hasMean !== hasStd) throw new RangeError("image_mean and image_std must be given together");
    if (hasMean && (image_mean!.length !== 3 || image_std!.length !== 3)) {
      throw new RangeError("image_mean and image_std need 3 values (RGB)");
    }
    this.image_mean = hasMean ? [...image_mean!] : null;
    this.image_std = hasStd ? [...image_std!] : null;
    this.tile_size = tile_size;
    this.max_num_tiles = max_num_tiles;
    this.possible_resolutions = possible_resolutions
      ? possible_resolutions.map(([h, w]) => [h, w] as [number, number])
      : find_supported_resolutions(max_num_tiles, tile_size);
    for (const [h, w] of this.possible_resolutions) {
      if (h % tile_size !== 0 || w % tile_size !== 0 || h <= 0 || w <= 0) {
        throw new RangeError(
          `possible resolution ${h}×${w} is not a positive multiple of tile_size ${tile_size}`,
        );
      }
    }
    this.resample = resample;
    this.resize_to_max_canvas = resize_to_max_canvas;
    this.dtype = dtype;
  }

  /** Transforms one RGB image (HWC uint8) into tiles and an aspect ratio. */
  call(image: RgbImage): CLIPImageTransformOutput {
    const { data, height: H, width: W } = image;
    if (image.channels !== 3) {
      throw new RangeError(`expected an RGB image (3 channels), got ${image.channels}`);
    }
    if (!(H > 0 && W > 0) || !Number.isInteger(H) || !Number.isInteger(W)) {
      throw new RangeError(`image size ${H}×${W} must be positive integers`);
    }
    if (data.length !== H * W * 3) {
      throw new RangeError(`image data has ${data.length} bytes, expected ${H}·${W}·3 = ${H * W * 3}`);
    }
    const bf16 = this.dtype === "bfloat16";
    const round = bf16 ? roundBf16 : Math.fround;
    const T = this.tile_size;

    // 1. uint8 → dtype, then · (1/255) in that dtype (torchvision's to_dtype(scale=True)); HWC → CHW.
    const lut = new Float32Array(256);
    // torch casts the Python scalar 1/255 to the tensor's dtype first: in bf16 that is 129/32768 ≈ 0.0039368,
    // not 1/255 (the golden bf16 tiles need this; a float32 scalar misses ~half of them by 1–2 ulp).
    const inv255 = round(1 / 255);
    for (let v = 0; v < 256; v++) lut[v] = round(v * inv255);
    const plane = H * W;
    let img = new Float32Array(3 * plane);
    for (let p = 0, q = 0; p < plane; p++, q += 3) {
      img[p] = lut[data[q]];
      img[plane + p] = lut[data[q + 1]];
      img[2 * plane + p] = lut[data[q + 2]];
    }

    // 2. Canvas.
    const [Hc, Wc] = get_canvas_best_fit([H, W], this.possible_resolutions, this.resize_to_max_canvas);

    // 3. Resize without distortion (float32 compute; bf16 input is re-rounded afterwards).
    const [nh, nw] = resize_with_pad_size([H, W], [Hc, Wc], this.resize_to_max_canvas ? null : T);
    if (nh !== H || nw !== W) {
      img = resizeBilinearAntialias(img, 3, H, W, nh, nw);
      if (bf16) { for (let i = 0; i < img.length; i++) img[i] = roundBf16(img[i]); }
    }

    // 4. Pad right/bottom with zeros, 5. normalize, 6. tile — fused into one pass over the output.
    const nTh = Hc / T, nTw = Wc / T, nTiles = nTh * nTw;
    const out = new Float32Array(nTiles * 3 * T * T);
    const mean = this.image_mean, std = this.image_std;
    for (let c = 0; c < 3; c++) {
      const m = mean ? round(mean[c]) : 0, s = std ? round(std[c]) : 1;
      const norm = mean ? (x: number): number => round(round(x - m) / s) : (x: number): number => x;
      const padValue = norm(0);
      for (let y = 0; y < Hc; y++) {
        const ty = Math.floor(y / T), ry = y % T;
        for (let tx = 0; tx < nTw; tx++) {
          const base = (((ty * nTw + tx) * 3 + c) * T + ry) * T;
          for (let rx = 0; rx < T; rx++) {
            const x = tx * T + rx;
            out[base + rx] = y < nh && x < nw ? norm(img[(c * nh + y) * nw + x]) : padValue;
          }
        }
      }
    }
    const result: CLIPImageTransformOutput = {
      image: out,
      shape: [nTiles, 3, T, T],
      aspect_ratio: [nTh, nTw],
    };
    if (bf16) {
      const bits = new Uint16Array(out.length);
      for (let i = 0; i < out.length; i++) bits[i] = toBf16Bits(out[i]);
      result.bits = bits;
    }
    return result;
  }
}

/**
 * Image decoding for the vision pipeline: JPEG (`jpeg-js`), PNG (`fast-png`) and WebP (`@jsquash/webp`,
 * libwebp compiled to WebAssembly, loaded from the npm package — no network), converted to 8-bit RGB the way
 * PIL's `Image.open(...).convert("RGB")` does it, which is what torchtune's transform receives.
 *
 * PIL's conversion rules mirrored here: grayscale is replicated to three channels; palette images are
 * expanded through the palette; alpha is dropped without compositing; 16-bit RGB(A) and gray+alpha keep the
 * high byte; 16-bit grayscale (PIL mode `I;16`) is clipped to 255; 1/2/4-bit gray is scaled to 0…255.
 * EXIF orientation is not applied (PIL's `open` does not either).
 *
 * @module
 */

import decodeWebpLib from "@jsquash/webp/decode.js";
import { decode as decodePngLib } from "fast-png";
import jpeg from "jpeg-js";

/** An 8-bit RGB image, row-major HWC. */
export interface DecodedImage {
  /** `height · width · 3` bytes, HWC. */
  data: Uint8Array;
  /** Rows. */
  height: number;
  /** Columns. */
  width: number;
  /** Always 3 (RGB). */
  channels: 3;
}

/** Formats {@link decodeImage} reads. */
export type ImageFormat = "jpeg" | "png" | "webp";

/** The formats {@link decodeImage} supports, for messages. */
export const SUPPORTED_IMAGE_FORMATS: readonly string[] = ["JPEG", "PNG", "WebP"];

/** Limits checked from the file header, before any pixel memory is allocated. */
export interface DecodeImageOptions {
  /** Most pixels (`width · height`) accepted; 50 000 000 by default. */
  maxPixels?: number;
  /** Longest side accepted, in pixels; 20 000 by default. */
  maxSide?: number;
}

/** Default of {@link DecodeImageOptions.maxPixels}. */
export const DEFAULT_MAX_PIXELS = 50_000_000;
/** Default of {@link DecodeImageOptions.maxSide}. */
export const DEFAULT_MAX_SIDE = 20_000;

/** A file that cannot be decoded: empty, unsupported, corrupt, truncated, zero-sized or too large. */
export class ImageDecodeError extends Error {
  /** Sets the error's name. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ImageDecodeError";
  }
}

/** The format named by the file's first bytes (magic numbers), or null when it is none of the supported. */
export function detectImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "jpeg";
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return "webp";
  return null;
}

/** Recognised but unsupported formats, for a clearer message. */
function otherFormat(bytes: Uint8Array): string | null {
  const a4 = ascii(bytes, 0, 4);
  if (a4 === "GIF8") return "GIF";
  if (ascii(bytes, 0, 2) === "BM") return "BMP";
  if (a4 === "II*\0" || a4 === "MM\0*") return "TIFF";
  if (ascii(bytes, 4, 4) === "ftyp") {
    const brand = ascii(bytes, 8, 4);
    if (brand === "avif" || brand === "avis") return "AVIF";
    if (brand.startsWith("hei") || brand === "mif1" || brand === "msf1") return "HEIF/HEIC";
  }
  if (startsWith(bytes, [0x25, 0x50, 0x44, 0x46])) return "PDF";
  if (/^\s*<(\?xml|svg)/i.test(ascii(bytes, 0, 64))) return "SVG";
  return null;
}

/** Width and height from a file's header, without decoding pixels. */
export function readImageSize(
  bytes: Uint8Array,
  name = "image",
): { format: ImageFormat; width: number; height: number } {
  const format = detectFormatOrThrow(bytes, name);
  const size = format === "png"
    ? pngSize(bytes, name)
    : format === "jpeg"
    ? jpegSize(bytes, name)
    : webpSize(bytes, name);
  return { format, ...size };
}

/**
 * Decodes a JPEG, PNG or WebP file into 8-bit RGB (HWC), as PIL's `Image.open(f).convert("RGB")`.
 * Throws an {@link ImageDecodeError} naming `name` for an empty file, an unknown format, corrupt or truncated
 * data, a zero-sized image, or one over the size limits (checked from the header before decoding).
 */
export async function decodeImage(
  bytes: Uint8Array,
  name = "image",
  options: DecodeImageOptions = {},
): Promise<DecodedImage> {
  const { format, width, height } = readImageSize(bytes, name);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxSide = options.maxSide ?? DEFAULT_MAX_SIDE;
  if (width === 0 || height === 0) {
    throw new ImageDecodeError(
      `${name}: the ${format.toUpperCase()} image is empty (${width}×${height} pixels)`,
    );
  }
  if (width > maxSide || height > maxSide || width * height > maxPixels) {
    throw new ImageDecodeError(
      `${name}: the image is too large (${width}×${height} pixels; the limits are ${maxSide} pixels a side and ` +
        `${(maxPixels / 1e6).toLocaleString("en-US")} megapixels)`,
    );
  }
  let out: DecodedImage;
  try {
    out = format === "png"
      ? decodePng(bytes)
      : format === "jpeg"
      ? decodeJpeg(bytes, maxPixels)
      : await decodeWebp(bytes);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw new ImageDecodeError(`${name}: ${e.message}`, { cause: e });
    const why = e instanceof Error ? e.message : String(e);
    throw new ImageDecodeError(`${name}: corrupt or truncated ${label(format)} data (${why})`, { cause: e });
  }
  if (out.width !== width || out.height !== height) {
    throw new ImageDecodeError(
      `${name}: corrupt ${
        label(format)
      } data (header says ${width}×${height}, decoded ${out.width}×${out.height})`,
    );
  }
  return out;
}

/** Reads an image file and decodes it with {@link decodeImage}; a missing file is an error naming the path. */
export async function loadImage(path: string, options: DecodeImageOptions = {}): Promise<DecodedImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ImageDecodeError(`${path}: no such image file`, { cause: e });
    }
    if (e instanceof Deno.errors.IsADirectory) {
      throw new ImageDecodeError(`${path}: is a directory, not an image`);
    }
    const why = e instanceof Error ? e.message : String(e);
    throw new ImageDecodeError(`${path}: cannot read the image file (${why})`, { cause: e });
  }
  return await decodeImage(bytes, path, options);
}

// ---------------------------------------------------------------------------------------------------------
// Format detection and header sizes

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  if (bytes.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic[i]) return false;
  return true;
}

function ascii(bytes: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...bytes.subarray(at, Math.min(at + n, bytes.length)));
}

function label(format: ImageFormat): string {
  return format === "png" ? "PNG" : format === "jpeg" ? "JPEG" : "WebP";
}

function detectFormatOrThrow(bytes: Uint8Array, name: string): ImageFormat {
  if (bytes.length === 0) throw new ImageDecodeError(`${name}: the file is empty`);
  const format = detectImageFormat(bytes);
  if (format) return format;
  const supported = SUPPORTED_IMAGE_FORMATS.join(", ");
  const other = otherFormat(bytes);
  if (other) {
    throw new ImageDecodeError(`${name}: ${other} images are not supported (supported: ${supported})`);
  }
  throw new ImageDecodeError(`${name}: unknown image format (supported: ${supported})`);
}

function be16(b: Uint8Array, i: number): number {
  return (b[i] << 8) | b[i + 1];
}

function be32(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

function le16(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8);
}

function le24(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16);
}

function le32(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

/** PNG: IHDR size, and a walk over the chunks so that a truncated file is caught before inflating. */
function pngSize(b: Uint8Array, name: string): { width: number; height: number } {
  if (b.length < 33 || ascii(b, 12, 4) !== "IHDR") {
    throw new ImageDecodeError(`${name}: corrupt or truncated PNG data (no IHDR header)`);
  }
  const width = be32(b, 16), height = be32(b, 20);
  let at = 8, sawData = false;
  for (;;) {
    if (at + 12 > b.length) {
      throw new ImageDecodeError(`${name}: truncated PNG data (the file ends before the IEND chunk)`);
    }
    const len = be32(b, at), type = ascii(b, at + 4, 4);
    if (at + 12 + len > b.length) {
      throw new ImageDecodeError(`${name}: truncated PNG data (chunk ${JSON.stringify(type)} is cut short)`);
    }
    if (type === "IDAT") sawData = true;
    if (type === "IEND") break;
    at += 12 + len;
  }
  if (!sawData) throw new ImageDecodeError(`${name}: corrupt PNG data (no IDAT chunk)`);
  return { width, height };
}

/** JPEG: the size in the first SOFn marker segment. */
function jpegSize(b: Uint8Array, name: string): { width: number; height: number } {
  let at = 2;
  while (at < b.length) {
    if (b[at] !== 0xff) throw new ImageDecodeError(`${name}: corrupt JPEG data (bad marker at byte ${at})`);
    while (at < b.length && b[at] === 0xff) at++; // fill bytes
    if (at >= b.length) break;
    const marker = b[at++];
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) continue; // no length
    if (marker === 0xd9 || marker === 0xda) break; // EOI / SOS before any SOF
    if (at + 2 > b.length) break;
    const len = be16(b, at);
    if (len < 2) throw new ImageDecodeError(`${name}: corrupt JPEG data (bad segment length)`);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      if (at + 7 > b.length) break;
      return { height: be16(b, at + 3), width: be16(b, at + 5) };
    }
    at += len;
  }
  throw new ImageDecodeError(`${name}: corrupt or truncated JPEG data (no frame header)`);
}

/** WebP: the size in the VP8 / VP8L / VP8X chunk, and a RIFF length check for truncation. */
function webpSize(b: Uint8Array, name: string): { width: number; height: number } {
  if (b.length < 30) throw new ImageDecodeError(`${name}: truncated WebP data (${b.length} bytes)`);
  if (le32(b, 4) + 8 > b.length) {
    throw new ImageDecodeError(
      `${name}: truncated WebP data (RIFF header says ${le32(b, 4) + 8} bytes, the file has ${b.length})`,
    );
  }
  const chunk = ascii(b, 12, 4);
  if (chunk === "VP8 ") {
    if (b[23] !== 0x9d || b[24] !== 0x01 || b[25] !== 0x2a) {
      throw new ImageDecodeError(`${name}: corrupt WebP data (bad VP8 start code)`);
    }
    return { width: le16(b, 26) & 0x3fff, height: le16(b, 28) & 0x3fff };
  }
  if (chunk === "VP8L") {
    if (b[20] !== 0x2f) throw new ImageDecodeError(`${name}: corrupt WebP data (bad VP8L signature)`);
    const bits = le32(b, 21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === "VP8X") return { width: le24(b, 24) + 1, height: le24(b, 27) + 1 };
  throw new ImageDecodeError(`${name}: corrupt WebP data (unknown chunk ${JSON.stringify(chunk)})`);
}

// ---------------------------------------------------------------------------------------------------------
// Decoders → RGB

function decodePng(bytes: Uint8Array): DecodedImage {
  const png = decodePngLib(bytes, { checkCrc: true });
  const { width, height, depth, channels } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const src = png.data;
  if (png.palette) {
    // Indexed: expand through the palette (alpha from tRNS dropped). Indices past the palette's end read
    // Pillow's default palette entries, a gray ramp (i, i, i).
    const pal = png.palette;
    const indices = unpackBits(src as Uint8Array, width, height, depth);
    for (let p = 0; p < n; p++) {
      const i = indices[p], c = pal[i];
      out[3 * p] = c ? c[0] : i;
      out[3 * p + 1] = c ? c[1] : i;
      out[3 * p + 2] = c ? c[2] : i;
    }
    return { data: out, width, height, channels: 3 };
  }
  if (channels === 1) {
    let gray: Uint8Array;
    if (depth === 16) {
      // PIL opens 16-bit gray as mode I;16, and I;16 → RGB clips to 255 (it does not rescale).
      gray = new Uint8Array(n);
      for (let p = 0; p < n; p++) gray[p] = Math.min(src[p], 255);
    } else if (depth === 8) {
      gray = src as Uint8Array;
    } else {
      gray = unpackBits(src as Uint8Array, width, height, depth);
      const scale = 255 / ((1 << depth) - 1);
      for (let p = 0; p < n; p++) gray[p] = gray[p] * scale;
    }
    for (let p = 0; p < n; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = gray[p];
    return { data: out, width, height, channels: 3 };
  }
  // 2 = gray + alpha, 3 = RGB, 4 = RGBA; 16-bit samples keep their high byte (PIL's ";16B" unpackers).
  const shift = depth === 16 ? 8 : 0;
  if (channels === 2) {
    for (let p = 0; p < n; p++) out[3 * p] = out[3 * p + 1] = out[3 * p + 2] = src[2 * p] >> shift;
  } else if (channels === 3 || channels === 4) {
    for (let p = 0; p < n; p++) {
      out[3 * p] = src[channels * p] >> shift;
      out[3 * p + 1] = src[channels * p + 1] >> shift;
      out[3 * p + 2] = src[channels * p + 2] >> shift;
    }
  } else {
    throw new Error(`unsupported PNG layout (${channels} channels)`);
  }
  return { data: out, width, height, channels: 3 };
}

/** 1/2/4-bit samples (rows padded to a byte) → one byte per sample; 8-bit data is returned as is. */
function unpackBits(src: Uint8Array, width: number, height: number, depth: number): Uint8Array {
  if (depth === 8) return src;
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const mask = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const byte = src[y * rowBytes + (bit >> 3)];
      out[y * width + x] = (byte >> (8 - depth - (bit & 7))) & mask;
    }
  }
  return out;
}

function decodeJpeg(bytes: Uint8Array, maxPixels: number): DecodedImage {
  const opts = {
    useTArray: true as const,
    formatAsRGBA: true,
    tolerantDecoding: false,
    maxResolutionInMP: Math.max(1, maxPixels / 1e6),
    maxMemoryUsageInMB: Math.max(512, Math.ceil((maxPixels * 16) / 2 ** 20)),
  };
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, opts);
  } catch (e) {
    // Files that only lack the final EOI marker decode in libjpeg (PIL) with a warning: retry with it.
    const n = bytes.length;
    if (n >= 2 && bytes[n - 2] === 0xff && bytes[n - 1] === 0xd9) throw e;
    const fixed = new Uint8Array(n + 2);
    fixed.set(bytes);
    fixed[n] = 0xff;
    fixed[n + 1] = 0xd9;
    try {
      img = jpeg.decode(fixed, opts);
    } catch {
      throw e;
    }
  }
  return {
    data: rgbaToRgb(img.data, img.width * img.height),
    width: img.width,
    height: img.height,
    channels: 3,
  };
}

async function decodeWebp(bytes: Uint8Array): Promise<DecodedImage> {
  // libwebp (WebAssembly); the .wasm is read from the npm package on first use.
  const img = await decodeWebpLib(bytes.slice().buffer);
  const px = img.data as Uint8ClampedArray;
  const data = new Uint8Array(px.buffer, px.byteOffset, px.length);
  return { data: rgbaToRgb(data, img.width * img.height), width: img.width, height: img.height, channels: 3 };
}

function rgbaToRgb(rgba: Uint8Array, n: number): Uint8Array {
  if (rgba.length < n * 4) throw new Error(`decoder returned ${rgba.length} bytes for ${n} RGBA pixels`);
  const out = new Uint8Array(n * 3);
  for (let p = 0; p < n; p++) {
    out[3 * p] = rgba[4 * p];
    out[3 * p + 1] = rgba[4 * p + 1];
    out[3 * p + 2] = rgba[4 * p + 2];
  }
  return out;
}

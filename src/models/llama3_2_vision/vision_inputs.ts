/**
 * Images → the fusion model's `encoder_input` for one prompt: each image through the
 * {@link CLIPImageTransform}, tiles zero-padded to `max_num_tiles` as torchtune's
 * `padded_collate_tiled_images_and_mask` does, and the aspect ratios.
 *
 * @module
 */
import type { VisionEncoderInput } from "../../modules/decoder_inputs.ts";
import { CLIPImageTransform, type RgbImage } from "./image_transform.ts";

/** Encoder input for `[1, n_imgs]` images, plus each image's real tile count (for the mask). */
export interface PreparedImages {
  /** `{ images [1, n_imgs, max_num_tiles, 3, T, T], aspect_ratio [1, n_imgs, 2] }`. */
  encoder_input: VisionEncoderInput;
  /** Real tiles per image. */
  n_tiles: number[];
}

/** Transforms `images` (decoded RGB) for an encoder with `tile_size` and `max_num_tiles`. */
export function prepareImages(
  images: RgbImage[],
  opts: { tile_size: number; max_num_tiles: number; dtype?: "float32" | "bfloat16" },
): PreparedImages {
  const transform = new CLIPImageTransform({
    tile_size: opts.tile_size,
    max_num_tiles: opts.max_num_tiles,
    dtype: opts.dtype ?? "float32",
  });
  const T = opts.tile_size, M = opts.max_num_tiles;
  const tileSize = 3 * T * T;
  const data = new Float32Array(images.length * M * tileSize);
  const aspect = new Int32Array(images.length * 2);
  const n_tiles: number[] = [];
  images.forEach((img, k) => {
    const out = transform.call(img);
    data.set(out.image, k * M * tileSize);
    aspect.set(out.aspect_ratio, 2 * k);
    n_tiles.push(out.shape[0]);
  });
  return {
    encoder_input: {
      images: { data, shape: [1, images.length, M, 3, T, T] },
      aspect_ratio: { data: aspect, shape: [1, images.length, 2] },
    },
    n_tiles,
  };
}

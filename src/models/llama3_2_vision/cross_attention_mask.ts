/**
 * torchtune's `VisionCrossAttentionMask` followed by `padded_collate_tiled_images_and_mask` (one
 * sample): which encoder positions each text position may attend to.
 *
 * @module
 */
import type { HostTensor } from "../../gpu/tensor.ts";

/**
 * torchtune `VisionCrossAttentionMask._get_image_attention_intervals`: for each `<|image|>` token, the
 * text range `[start, end)` from it (inclusive) to the next `<|image|>` token or the end; consecutive
 * image tokens share the text that follows them.
 */
export function imageAttentionIntervals(tokens: ArrayLike<number>, imageTokenId: number): [number, number][] {
  const end = tokens.length;
  const at: number[] = [];
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === imageTokenId) at.push(i);
  if (at.length === 0) return [];
  const intervals: [number, number][] = at.map((s, k) => [s, k + 1 < at.length ? at[k + 1] : end]);
  let lastEnd = intervals[intervals.length - 1][1];
  for (let k = intervals.length - 1; k >= 0; k--) {
    if (intervals[k][0] === intervals[k][1] - 1) intervals[k][1] = lastEnd;
    lastEnd = intervals[k][1];
  }
  return intervals;
}

/**
 * The cross-attention mask `[1, s, n_imgs · max_num_tiles · tokens_per_tile]` of one prompt: text
 * positions in image k's interval attend to the `n_tiles[k] · tokens_per_tile` positions of image k's
 * real tiles; padding tiles and text before the first image attend to nothing. Images are laid out
 * image-major, then tile, then token, as the encoder output is. (For several images this is the
 * intended concatenation; torchtune's collate reinterprets memory there and is only right for one.)
 */
export function visionCrossAttentionMask(
  tokens: ArrayLike<number>,
  imageTokenId: number,
  nTiles: number[],
  maxNumTiles: number,
  tokensPerTile: number,
): HostTensor<Uint8Array> {
  const intervals = imageAttentionIntervals(tokens, imageTokenId);
  if (intervals.length !== nTiles.length) {
    throw new RangeError(
      `the prompt has ${intervals.length} <|image|> token(s) but ${nTiles.length} image(s) were given; ` +
        "each image needs exactly one <|image|> token where it belongs in the text",
    );
  }
  const s = tokens.length;
  const perImage = maxNumTiles * tokensPerTile;
  const width = nTiles.length * perImage;
  const data = new Uint8Array(s * width);
  intervals.forEach(([start, end], k) => {
    for (let i = start; i < end; i++) {
      data.fill(1, i * width + k * perImage, i * width + k * perImage + nTiles[k] * tokensPerTile);
    }
  });
  return { data, shape: [1, s, width] };
}

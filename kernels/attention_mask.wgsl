// Attention masks (True = attend), appended by kernels/sources.ts to the kernels that use them
// (attention.wgsl, attention_vec4.wgsl, attention_tiled.wgsl, softmax_rows.wgsl): mask_mode 0 none,
// 1 causal (key j ≤ qi, the query's position in its sequence), 2 explicit bits [rows, mask_words] packed
// 32 per u32 (query row `row` at mask_off + row · mask_words). Uses the kernel's `mask` binding
// (array<u32>) and its parameters p.mask_mode, p.mask_words and p.mask_off.
fn allowed(row: u32, qi: u32, j: u32) -> bool {
  if (p.mask_mode == 1u) {
    return j <= qi;
  }
  if (p.mask_mode == 2u) {
    return ((mask[p.mask_off + row * p.mask_words + (j >> 5u)] >> (j & 31u)) & 1u) == 1u;
  }
  return true;
}

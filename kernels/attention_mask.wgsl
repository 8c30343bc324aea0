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

// allowed() for keys j..j+3, j % 4 == 0 (one mask word holds all four).
fn allowed4(row: u32, qi: u32, j: u32) -> vec4<bool> {
  let js = vec4<u32>(j) + vec4<u32>(0u, 1u, 2u, 3u);
  if (p.mask_mode == 1u) {
    return js <= vec4<u32>(qi);
  }
  if (p.mask_mode == 2u) {
    let w = mask[p.mask_off + row * p.mask_words + (j >> 5u)];
    return ((vec4<u32>(w) >> (js & vec4<u32>(31u))) & vec4<u32>(1u)) == vec4<u32>(1u);
  }
  return vec4<bool>(true);
}

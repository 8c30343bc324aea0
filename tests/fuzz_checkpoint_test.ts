/**
 * Fuzzing of everything a model folder feeds the loader: thousands of damaged safetensors files derived from
 * the tiny_gqa fixture (seeded, so every run tries the same cases), damaged index files, `config.json`,
 * `tokenizer.json` and images. Each case must end in an `Error` that names the file (or the tensor), quickly
 * and without a big allocation: never a crash, a hang, an out-of-memory, or a model with garbage weights.
 *
 * What the format cannot catch: a flipped byte in the tensor *data* (safetensors has no checksum) loads as
 * slightly different weights; those cases are counted separately and expected to open. A byte flip in the
 * header that keeps it valid (a digit of `__metadata__`, a letter of a tensor name) opens too; the loader
 * then refuses the unknown / missing tensor name. Counts per category are printed at the end.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { Checkpoint, SafetensorsFile } from "../src/checkpoint/safetensors.ts";
import { readConfig } from "../src/models/llama3_2_vision/config.ts";
import { resolveDecoderArgs } from "../src/models/llama3_2_vision/decoder_args.ts";
import { LlamaTokenizer } from "../src/tokenizer/tokenizer.ts";
import { decodeImage } from "../src/image/decode.ts";
import { Gpu, loadCheckpoint } from "../mod.ts";
import { encode as encodePng } from "fast-png";
import jpeg from "jpeg-js";
import encodeWebp from "@jsquash/webp/encode.js";
import { fixtureDir } from "./helpers/golden.ts";

const FIXTURE = fixtureDir("tiny_gqa");
const WEIGHTS = await Deno.readFile(join(FIXTURE, "weights_hf.safetensors"));
const CONFIG_TEXT = await Deno.readTextFile(join(FIXTURE, "config.json"));
const TOKENIZER_TEXT = await Deno.readTextFile(
  new URL("../assets/tiny-random/tokenizer.json", import.meta.url).pathname,
);
const enc = new TextEncoder();

/** mulberry32: a tiny seeded PRNG. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(20240925);
const int = (n: number): number => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];

// The fixture's parts.
const HEADER_LEN = Number(new DataView(WEIGHTS.buffer).getBigUint64(0, true));
const HEADER_TEXT = new TextDecoder().decode(WEIGHTS.subarray(8, 8 + HEADER_LEN));
const HEADER = JSON.parse(HEADER_TEXT) as Record<string, Record<string, unknown>>;
const DATA = WEIGHTS.subarray(8 + HEADER_LEN);
const NAMES = Object.keys(HEADER).filter((k) => k !== "__metadata__");
/** dtype|shape|absolute offset of every fixture tensor: what a header flip that still opens must keep. */
const LAYOUT = new Set(
  NAMES.map((n) =>
    `${HEADER[n].dtype}|${HEADER[n].shape}|${8 + HEADER_LEN + (HEADER[n].data_offsets as number[])[0]}`
  ),
);

function assemble(headerBytes: Uint8Array, data: Uint8Array = DATA, claimed?: bigint): Uint8Array {
  const out = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(out.buffer).setBigUint64(0, claimed ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(data, 8 + headerBytes.length);
  return out;
}
const withHeaderText = (text: string, data?: Uint8Array): Uint8Array => assemble(enc.encode(text), data);
/** The header with one tensor's entry changed by `edit`. */
function editEntry(
  edit: (e: Record<string, unknown>, name: string) => void,
): { file: Uint8Array; tensor: string; note: string } {
  const h = structuredClone(HEADER);
  const tensor = pick(NAMES);
  edit(h[tensor], tensor);
  return { file: withHeaderText(JSON.stringify(h)), tensor, note: `${tensor}: ${JSON.stringify(h[tensor])}` };
}

interface Case {
  category: string;
  bytes: Uint8Array;
  /** Names that may identify the fault in the message besides the file name. */
  tensors?: string[];
  /** Data-section flips: expected to open (the format has no checksum). */
  mayOpen?: boolean;
  note?: string;
}

const HUGE_DIMS: number[][] = [
  [2 ** 40, 2 ** 40],
  [2 ** 53, 2 ** 53],
  [2 ** 26, 2 ** 26, 2 ** 26],
  [Number.MAX_SAFE_INTEGER],
  [Number.MAX_SAFE_INTEGER, 2],
  [2 ** 31, 2 ** 31, 2],
  [1e300],
  [2 ** 64],
  [4294967296, 4294967296],
];

function* safetensorsCases(): Generator<Case> {
  for (let i = 0; i < 300; i++) {
    yield { category: "truncated", bytes: WEIGHTS.slice(0, int(WEIGHTS.length)) };
  }
  for (let i = 0; i < 100; i++) {
    const claims = [
      BigInt(WEIGHTS.length - 8 + 1 + int(1000)),
      BigInt(WEIGHTS.length) * 2n,
      2n ** 64n - 1n,
      2n ** 53n + BigInt(int(1000)),
      BigInt(100 * 1024 * 1024 + int(1 << 20)),
      BigInt(HEADER_LEN + DATA.length + 1),
    ];
    const claimed = pick(claims);
    yield {
      category: "header length beyond the file",
      bytes: assemble(enc.encode(HEADER_TEXT), DATA, claimed),
    };
  }
  const junk = [
    "",
    "{",
    "}",
    "[]",
    "null",
    "42",
    '"str"',
    "{'a': 1}",
    '{"a":}',
    '{"a" 1}',
    "\u0000".repeat(8),
  ];
  for (let i = 0; i < 150; i++) {
    const r = int(4);
    const text = r === 0
      ? pick(junk)
      : r === 1
      ? HEADER_TEXT.slice(0, int(HEADER_TEXT.length)).padEnd(HEADER_TEXT.length, " ")
      : r === 2
      ? HEADER_TEXT.slice(0, 1 + int(HEADER_TEXT.length - 2)) + pick(["}", "]", ",", ":", "{"]) +
        HEADER_TEXT.slice(1 + int(HEADER_TEXT.length - 2))
      : Array.from({ length: 1 + int(200) }, () => String.fromCharCode(32 + int(95))).join("");
    yield { category: "invalid JSON", bytes: withHeaderText(text) };
  }
  const badUtf8 = [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [
    0x80,
  ]];
  for (let i = 0; i < 100; i++) {
    const h = enc.encode(HEADER_TEXT);
    const seq = pick(badUtf8);
    const at = int(h.length - seq.length);
    // Inside a string (a name or metadata) or anywhere.
    h.set(seq, at);
    yield { category: "non-UTF-8 header", bytes: assemble(h) };
  }
  for (let i = 0; i < 100; i++) {
    const { file, tensor } = editEntry((e) => {
      const [b, end] = e.data_offsets as number[];
      const shift = 1 + int(Math.max(1, end - b));
      e.data_offsets = [Math.max(0, b - shift), end - shift]; // same size, moved into its neighbour
    });
    yield { category: "overlapping offsets", bytes: file, tensors: [tensor] };
  }
  for (let i = 0; i < 100; i++) {
    const { file, tensor } = editEntry((e) => {
      const [b, end] = e.data_offsets as number[];
      e.data_offsets = b === end ? [b + 1, b] : [end, b];
    });
    yield { category: "reversed offsets", bytes: file, tensors: [tensor] };
  }
  const badOffsets: unknown[] = [
    [0, DATA.length + 1],
    [DATA.length, DATA.length + 4],
    [-4, 0],
    [0.5, 4],
    ["0", "4"],
    [0],
    [0, 4, 8],
    null,
    {},
    [2 ** 60, 2 ** 60 + 4],
    [0, Number.MAX_SAFE_INTEGER + 2],
  ];
  for (let i = 0; i < 100; i++) {
    const { file, tensor } = editEntry((e) => {
      e.data_offsets = pick(badOffsets);
    });
    yield { category: "out-of-range offsets", bytes: file, tensors: [tensor] };
  }
  for (let i = 0; i < 150; i++) {
    const { file, tensor, note } = editEntry((e) => {
      const shape = [...e.shape as number[]];
      const r = int(5);
      if (r === 0 && shape.length) shape[int(shape.length)] += pick([1, -1, 7]);
      else if (r === 1) shape.push(2 + int(3));
      else if (r === 2 && shape.length && shape[shape.length - 1] !== 1) shape.pop();
      else if (r === 2) shape.push(3); // [1] → [] would keep the size: a valid file
      else if (r === 3 && shape.length) shape[int(shape.length)] = pick([-1, 1.5, "8", null, NaN]) as number;
      else e.shape = pick(["64", null, {}, [[64]], 64]) as unknown as number[];
      if (r <= 3) e.shape = shape;
    });
    yield { category: "shape / byte-size mismatch", bytes: file, tensors: [tensor], note };
  }
  const dtypes = ["F64", "I8", "U8", "I32", "I64", "BOOL", "F8_E4M3", "bf16", "f32", "", 7, null, ["F32"]];
  for (let i = 0; i < 100; i++) {
    const { file, tensor } = editEntry((e) => {
      e.dtype = pick(dtypes);
    });
    yield { category: "unknown dtype", bytes: file, tensors: [tensor] };
  }
  for (let i = 0; i < 100; i++) {
    const { file, tensor } = editEntry((e) => {
      e.shape = pick(HUGE_DIMS);
      if (rand() < 0.5) e.data_offsets = [0, 2 ** 62];
    });
    yield { category: "huge shape", bytes: file, tensors: [tensor] };
  }
  for (let i = 0; i < 100; i++) {
    // A key written twice: JSON.parse would keep the last one silently.
    const name = pick(NAMES);
    const other = pick(NAMES);
    const entry = rand() < 0.5 ? HEADER[name] : HEADER[other];
    const text = HEADER_TEXT.replace(/}\s*$/, `,${JSON.stringify(name)}:${JSON.stringify(entry)}}`);
    const nested = rand() < 0.3;
    const t2 = nested
      ? HEADER_TEXT.replace(`${JSON.stringify(name)}:{`, `${JSON.stringify(name)}:{"dtype":"F16",`)
      : text;
    yield { category: "duplicate names", bytes: withHeaderText(t2), tensors: [name] };
  }
  for (let i = 0; i < 600; i++) {
    const bytes = WEIGHTS.slice();
    const flips = 1 + int(3);
    for (let k = 0; k < flips; k++) {
      const at = int(8 + HEADER_LEN);
      bytes[at] ^= 1 << int(8);
    }
    yield { category: "header byte flips", bytes, tensors: NAMES };
  }
  for (let i = 0; i < 20; i++) {
    const bytes = WEIGHTS.slice();
    bytes[8 + HEADER_LEN + int(DATA.length)] ^= 1 << int(8);
    yield { category: "data byte flips (undetectable)", bytes, mayOpen: true };
  }
}

interface Tally {
  tried: number;
  clearError: number;
  opened: number;
}
const tallies = new Map<string, Tally>();
let maxMs = 0;
let maxRssGrowth = 0;
function count(category: string, outcome: "clearError" | "opened"): void {
  const t = tallies.get(category) ?? { tried: 0, clearError: 0, opened: 0 };
  t.tried++;
  t[outcome]++;
  tallies.set(category, t);
}

/** Runs `fn`, which must throw an Error naming one of `names`; returns false when it did not throw. */
async function expectClearError(
  what: string,
  names: string[],
  fn: () => Promise<unknown>,
): Promise<boolean> {
  const rss0 = Deno.memoryUsage().rss;
  const t0 = performance.now();
  let error: unknown = null;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  const ms = performance.now() - t0;
  maxMs = Math.max(maxMs, ms);
  maxRssGrowth = Math.max(maxRssGrowth, Deno.memoryUsage().rss - rss0);
  assert.ok(ms < 20_000, `${what}: took ${ms.toFixed(0)} ms`);
  if (error === null) return false;
  assert.ok(error instanceof Error, `${what}: threw a non-Error ${String(error)}`);
  assert.ok(
    names.some((n) => error.message.includes(n)),
    `${what}: the message does not name the file: ${error.message}`,
  );
  return true;
}

const tmp = await Deno.makeTempDir({ prefix: "fuzz_ckpt_" });
let gpu: Gpu | undefined;

Deno.test({
  name: "fuzz: 2,000+ damaged safetensors files each end in a clear error naming the file",
  sanitizeResources: false,
  async fn() {
    const batch: { path: string; c: Case }[] = [];
    let n = 0;
    const flush = async (): Promise<void> => {
      await Promise.all(batch.map(({ path, c }) => Deno.writeFile(path, c.bytes)));
      for (const { path, c } of batch) {
        let opened: SafetensorsFile | undefined;
        const threw = await expectClearError(
          `${c.category} ${basename(path)}`,
          [basename(path)],
          async () => {
            opened = await SafetensorsFile.open(path);
          },
        );
        if (threw) {
          count(c.category, "clearError");
          continue;
        }
        // It opened: only a data flip, or a header flip that kept the header valid, may do that.
        assert.ok(opened);
        opened.close();
        if (!c.mayOpen) {
          assert.equal(
            c.category,
            "header byte flips",
            `${c.category} ${basename(path)} opened ${c.note ?? ""}`,
          );
          // Every tensor still tiles the data with a valid dtype and shape (checked by open): at most a name or
          // metadata changed; the loader's name check (below, in the sample) refuses renamed tensors.
          assert.equal(opened.tensors.size, NAMES.length);
          for (const e of opened.tensors.values()) {
            const key = `${e.dtype}|${e.shape}|${e.offset}`;
            assert.ok(
              LAYOUT.has(key),
              `${basename(path)}: "${e.name}" ${key} is not a fixture tensor's layout`,
            );
          }
          const renamed = [...opened.tensors.keys()].some((name) => !(name in HEADER));
          count(
            renamed
              ? "header byte flips: opened, a tensor renamed"
              : "header byte flips: opened, same tensors",
            "opened",
          );
        }
        count(c.category, "opened");
      }
      await Promise.all(batch.map(({ path }) => Deno.remove(path)));
      batch.length = 0;
    };
    for (const c of safetensorsCases()) {
      batch.push({ path: join(tmp, `case-${String(n++).padStart(4, "0")}.safetensors`), c });
      if (batch.length === 200) await flush();
    }
    await flush();
    assert.ok(n >= 2000, `only ${n} cases`);
    for (const [cat, t] of tallies) {
      if (cat.startsWith("data byte flips")) assert.equal(t.opened, t.tried, "data flips load (no checksum)");
      else if (!cat.startsWith("header byte flips")) {
        assert.equal(t.clearError, t.tried, `${cat}: ${JSON.stringify(t)}`);
      }
    }
  },
});

Deno.test({
  name: "fuzz: index.json pointing at missing shards, unlisted tensors or bad shard names",
  sanitizeResources: false,
  async fn() {
    const dir = join(tmp, "sharded");
    await Deno.mkdir(dir);
    await Deno.writeFile(join(dir, "model-00001-of-00001.safetensors"), WEIGHTS);
    const indexPath = join(dir, "model.safetensors.index.json");
    const good = Object.fromEntries(NAMES.map((n) => [n, "model-00001-of-00001.safetensors"]));
    const variants: (() => unknown)[] = [
      () => ({ weight_map: { ...good, [pick(NAMES)]: `model-0000${2 + int(8)}-of-00009.safetensors` } }),
      () => ({ weight_map: { ...good, [`ghost.${int(1000)}.weight`]: "model-00001-of-00001.safetensors" } }),
      () => {
        const m: Record<string, string> = { ...good };
        delete m[pick(NAMES)];
        return { weight_map: m };
      },
      () => ({
        weight_map: { ...good, [pick(NAMES)]: pick(["../x.safetensors", "/etc/passwd", "", 7, null]) },
      }),
      () => pick([{}, { weight_map: [] }, { weight_map: "x" }, null, [], { weight_map: null }]),
      () => JSON.stringify({ weight_map: good }).slice(0, 1 + int(200)),
    ];
    for (let i = 0; i < 120; i++) {
      const v = variants[i % variants.length]();
      await Deno.writeTextFile(indexPath, typeof v === "string" ? v : JSON.stringify(v));
      const threw = await expectClearError(`index case ${i}`, [indexPath, "model-0000"], async () => {
        (await Checkpoint.open(dir)).close();
      });
      assert.ok(threw, `index case ${i} opened`);
      count("index.json", "clearError");
    }
  },
});

/** A checkpoint folder with `config.json` and `model.safetensors` (the fixture unless given). */
async function writeFolder(dir: string, weights: Uint8Array, config = CONFIG_TEXT): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeFile(join(dir, "model.safetensors"), weights);
  await Deno.writeTextFile(join(dir, "config.json"), config);
}

Deno.test({
  name: "fuzz: a sample of 100 damaged checkpoints through loadCheckpoint (one GPU device)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    gpu = await Gpu.acquire({ quiet: true });
    const all = [...safetensorsCases()].filter((c) => !c.mayOpen);
    const dir = join(tmp, "load");
    let loaded = 0;
    for (let i = 0; i < 100; i++) {
      const c = all[(i * 97) % all.length];
      await writeFolder(dir, c.bytes);
      const path = join(dir, "model.safetensors");
      let model: { destroy(): void } | undefined;
      const threw = await expectClearError(`loader ${c.category}`, [path, ...(c.tensors ?? [])], async () => {
        model = await loadCheckpoint(dir, { gpu });
      });
      if (!threw) {
        // Only a header flip may load: the test above checks that such files keep every tensor's dtype, shape, offset.
        assert.equal(c.category, "header byte flips");
        loaded++;
        model!.destroy();
      }
      count(
        `loadCheckpoint (${c.category === "header byte flips" ? "header flips" : "structural"})`,
        threw ? "clearError" : "opened",
      );
    }
    console.log(`loadCheckpoint sample: ${100 - loaded} clear errors, ${loaded} loaded (valid header flips)`);
  },
});

Deno.test({
  name: "fuzz: damaged config.json fails with a clear message before any allocation",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const base = JSON.parse(CONFIG_TEXT) as Record<string, unknown>;
    const fields = [
      "vocab_size",
      "hidden_size",
      "num_hidden_layers",
      "num_attention_heads",
      "num_key_value_heads",
      "intermediate_size",
      "max_position_embeddings",
      "rope_theta",
      "cross_attention_layers",
      "rope_scaling",
    ];
    const absurd = [1e12, 2 ** 53, 1e308, 2 ** 31, 1 << 24, -1, 0, 1.5, "64", null, true, [64], {}];
    const dir = join(tmp, "config");
    await writeFolder(dir, WEIGHTS);
    const path = join(dir, "config.json");
    const cases: { category: string; text: string | Uint8Array; viaLoader?: boolean }[] = [];
    for (let i = 0; i < 60; i++) {
      cases.push({ category: "config: truncated", text: CONFIG_TEXT.slice(0, int(CONFIG_TEXT.length - 2)) });
    }
    for (let i = 0; i < 60; i++) {
      const field = pick(fields);
      // rope_theta may be any finite number > 1; optional fields may be null (their default applies).
      const values = field === "rope_theta" ? [-1, 0, 1, "64", true, [64], {}] : absurd;
      const value = pick(values);
      if (
        value === null && ["num_key_value_heads", "cross_attention_layers", "rope_scaling"].includes(field)
      ) continue;
      const c = { ...base, [field]: value };
      cases.push({ category: "config: wrong types / absurd sizes", text: JSON.stringify(c) });
    }
    for (const f of fields.slice(0, 7)) {
      const c = { ...base };
      delete c[f];
      if (f === "num_key_value_heads") c.num_attention_heads = 3; // absent kv heads default to num_heads
      cases.push({ category: "config: missing fields", text: JSON.stringify(c) });
    }
    for (const v of [1e12, 2 ** 40, 2 ** 31]) {
      cases.push({ category: "config: absurd sizes", text: JSON.stringify({ ...base, hidden_size: v }) });
      cases.push({
        category: "config: absurd sizes",
        text: JSON.stringify({ text_config: { ...base, vocab_size: v } }),
      });
    }
    const bad = enc.encode(CONFIG_TEXT);
    bad[int(bad.length)] = 0xff;
    cases.push({ category: "config: non-UTF-8", text: bad });
    for (const t of ["", "[]", "null", "42"]) cases.push({ category: "config: not an object", text: t });
    // Plausible but disagreeing with the weights: the loader must refuse (tensor shapes), not upload garbage.
    for (
      const [k, v] of [["hidden_size", 128], ["vocab_size", 321], ["intermediate_size", 512], [
        "num_key_value_heads",
        4,
      ]]
    ) {
      cases.push({
        category: "config: disagrees with the weights",
        text: JSON.stringify({ ...base, [k]: v }),
        viaLoader: true,
      });
    }
    for (const [i, c] of cases.entries()) {
      if (typeof c.text === "string") await Deno.writeTextFile(path, c.text);
      else await Deno.writeFile(path, c.text);
      const rss0 = Deno.memoryUsage().rss;
      const threw = await expectClearError(`${c.category} #${i}`, [path, "model.safetensors"], async () => {
        if (c.viaLoader) (await loadCheckpoint(dir, { gpu })).destroy();
        else resolveDecoderArgs((await readConfig(dir)).args);
      });
      assert.ok(
        threw,
        `${c.category} #${i} was accepted: ${typeof c.text === "string" ? c.text : "(bytes)"}`,
      );
      assert.ok(Deno.memoryUsage().rss - rss0 < 256 << 20, `${c.category} #${i} allocated too much`);
      count(c.category, "clearError");
    }
  },
});

Deno.test({
  name: "fuzz: damaged tokenizer.json ends in an error naming the file, or loads a valid tokenizer",
  sanitizeResources: false,
  async fn() {
    const dir = join(tmp, "tok");
    await Deno.mkdir(dir);
    const path = join(dir, "tokenizer.json");
    const base = JSON.parse(TOKENIZER_TEXT);
    const cases: { category: string; bytes: Uint8Array }[] = [];
    for (let i = 0; i < 60; i++) {
      cases.push({
        category: "tokenizer: truncated",
        bytes: enc.encode(TOKENIZER_TEXT.slice(0, int(TOKENIZER_TEXT.length - 1))),
      });
    }
    const wrong: unknown[] = [
      { ...base, model: null },
      { ...base, model: { ...base.model, vocab: [] } },
      { ...base, model: { ...base.model, vocab: "x" } },
      { ...base, added_tokens: {} },
      { ...base, added_tokens: [{ id: -1, content: "x" }] },
      { ...base, model: { ...base.model, vocab: { ...base.model.vocab, "zz": -5 } } },
      { ...base, model: { ...base.model, vocab: { ...base.model.vocab, "zz": 1.5 } } },
      { ...base, model: { ...base.model, vocab: { ...base.model.vocab, "zz": 2 ** 40 } } },
      [],
      null,
      "tokenizer",
    ];
    for (const w of wrong) {
      cases.push({ category: "tokenizer: wrong types", bytes: enc.encode(JSON.stringify(w)) });
    }
    for (let i = 0; i < 20; i++) {
      const b = enc.encode(TOKENIZER_TEXT);
      b[int(b.length)] = pick([0xff, 0xfe, 0xc0, 0xc1]); // never valid in UTF-8
      cases.push({ category: "tokenizer: non-UTF-8", bytes: b });
    }
    for (let i = 0; i < 60; i++) {
      const b = enc.encode(TOKENIZER_TEXT);
      b[int(b.length)] ^= 1 << int(7); // ASCII-range flips; a valid result may load
      cases.push({ category: "tokenizer: byte flips", bytes: b });
    }
    for (const c of cases) {
      await Deno.writeFile(path, c.bytes);
      const threw = await expectClearError(c.category, [path], () => LlamaTokenizer.load(dir));
      if (!threw) assert.equal(c.category, "tokenizer: byte flips", `${c.category} loaded`);
      count(c.category, threw ? "clearError" : "opened");
    }
  },
});

Deno.test({
  name: "fuzz: truncated / corrupt / absurdly sized PNG, JPEG and WebP end in an error naming the image",
  sanitizeResources: false,
  async fn() {
    const w = 24, h = 16;
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 37) & 0xff);
    const png = encodePng({ width: w, height: h, data: rgba, channels: 4 });
    const jpg = new Uint8Array(jpeg.encode({ width: w, height: h, data: rgba }, 90).data);
    const webp = new Uint8Array(await encodeWebp(new ImageData(new Uint8ClampedArray(rgba), w, h)));
    const sources: [string, Uint8Array][] = [["png", png], ["jpeg", jpg], ["webp", webp]];
    const cases: { category: string; bytes: Uint8Array; name: string }[] = [];
    for (const [fmt, src] of sources) {
      for (let i = 0; i < 40; i++) {
        cases.push({
          category: `image: truncated ${fmt}`,
          bytes: src.slice(0, int(src.length)),
          name: `t${i}.${fmt}`,
        });
      }
      for (let i = 0; i < 40; i++) {
        const b = src.slice();
        b[int(b.length)] ^= 1 << int(8);
        cases.push({ category: `image: byte flip ${fmt}`, bytes: b, name: `f${i}.${fmt}` });
      }
    }
    // Absurd dimensions written into the headers.
    for (
      const [wd, ht] of [[0x7fffffff, 0x7fffffff], [1 << 20, 1], [100000, 100000], [0, 16], [20000, 20000]]
    ) {
      const p = png.slice();
      new DataView(p.buffer).setUint32(16, wd);
      new DataView(p.buffer).setUint32(20, ht);
      cases.push({ category: "image: absurd dimensions", bytes: p, name: `huge-${wd}x${ht}.png` });
      const j = jpg.slice();
      for (let k = 2; k + 9 < j.length; k++) {
        if (j[k] === 0xff && (j[k + 1] === 0xc0 || j[k + 1] === 0xc2)) {
          new DataView(j.buffer).setUint16(k + 5, Math.min(ht, 0xffff));
          new DataView(j.buffer).setUint16(k + 7, Math.min(wd, 0xffff) || 0xffff);
          break;
        }
      }
      cases.push({ category: "image: absurd dimensions", bytes: j, name: `huge-${wd}x${ht}.jpg` });
    }
    for (const c of cases) {
      const threw = await expectClearError(c.category, [c.name], () => decodeImage(c.bytes, c.name));
      // A flip inside compressed pixel data can decode to a (wrong) image: the formats cannot tell.
      if (!threw) assert.match(c.category, /byte flip/, `${c.name} decoded`);
      count(c.category, threw ? "clearError" : "opened");
    }
  },
});

Deno.test({
  name: "fuzz: summary (cases per category, clear errors, max time per case, memory)",
  sanitizeResources: false,
  async fn() {
    await Deno.remove(tmp, { recursive: true });
    const rows = [...tallies].map(([cat, t]) =>
      `  ${cat.padEnd(44)} tried ${String(t.tried).padStart(4)}  clear error ${
        String(t.clearError).padStart(4)
      }  opened/loaded ${t.opened}`
    );
    console.log(
      `fuzz summary (max ${maxMs.toFixed(0)} ms per case, max RSS growth ${
        (maxRssGrowth / 2 ** 20).toFixed(1)
      } MiB):\n` +
        rows.join("\n"),
    );
    assert.ok(maxMs < 20_000);
    assert.ok(maxRssGrowth < 512 * 2 ** 20, `RSS grew by ${maxRssGrowth} bytes in one case`);
  },
});

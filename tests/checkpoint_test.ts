import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bf16ToF32,
  Checkpoint,
  f16ToF32,
  SafetensorsFile,
  toFloat32,
} from "../src/checkpoint/safetensors.ts";
import { type TensorSpec, writeRawSafetensors, writeSafetensors } from "./helpers/safetensors_writer.ts";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
const GQA_HF = join(FIXTURES, "tiny_gqa", "weights_hf.safetensors");

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

/** Reads every tensor of a file through the reader under test. */
async function readAll(path: string): Promise<Map<string, TensorSpec>> {
  const f = await SafetensorsFile.open(path);
  try {
    const out = new Map<string, TensorSpec>();
    for (const [name, e] of f.tensors) {
      out.set(name, { dtype: e.dtype, shape: e.shape, data: await f.read(e) });
    }
    return out;
  } finally {
    f.close();
  }
}

Deno.test("SafetensorsFile reads the fixture header, whole tensors and byte ranges", async () => {
  const f = await SafetensorsFile.open(GQA_HF);
  try {
    assert.equal(f.tensors.size, 65); // the embedding is one table in HF, two in torchtune
    assert.ok(!f.tensors.has("__metadata__"));
    const e = f.tensors.get("language_model.model.embed_tokens.weight")!;
    assert.deepEqual(e.shape, [328, 64]);
    assert.equal(e.dtype, "F32");
    assert.equal(e.byteLength, 328 * 64 * 4);
    const all = await f.read(e);
    assert.equal(all.length, e.byteLength);
    // A range read equals the same slice of a whole read, even when issued concurrently.
    const [part, part2] = await Promise.all([f.read(e, 320 * 256, 8 * 256), f.read(e, 3, 5)]);
    assert.deepEqual(part, all.slice(320 * 256));
    assert.deepEqual(part2, all.slice(3, 8));
    await assert.rejects(f.read(e, e.byteLength - 4, 8), /outside/);
  } finally {
    f.close();
  }
  await assert.rejects(f.read(f.tensors.values().next().value!), /after close/);
});

Deno.test("dtype helpers widen BF16/F16 exactly and handle unaligned input", () => {
  const bf = new Uint8Array([0, 0x12, 0x80, 0x3f, 0x00, 0xc0]); // unaligned view below
  const bfView = bf.subarray(2);
  assert.deepEqual([...bf16ToF32(bfView)], [1, -2]);
  const h = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00, 0x3555]);
  const hBytes = new Uint8Array(h.length * 2 + 1);
  hBytes.set(new Uint8Array(h.buffer), 1);
  const got = f16ToF32(hBytes.subarray(1));
  assert.deepEqual([...got], [1, -2, 2 ** -24, Infinity, Math.fround(0.333251953125)]);
  const f = new Uint8Array(9);
  f.set(f32Bytes([1.5, -3]), 1);
  assert.deepEqual([...toFloat32("F32", f.subarray(1))], [1.5, -3]);
  assert.throws(() => toFloat32("F32", new Uint8Array(6)), /multiple of 4/);
});

Deno.test("sharded checkpoint (index.json) reads the same tensors as the single file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const all = await readAll(GQA_HF);
    const names = [...all.keys()].sort();
    const half = Math.floor(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, file), new Map(shard.map((n) => [n, all.get(n)!])), { format: "pt" });
      for (const n of shard) weightMap[n] = file;
    }
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
    );
    const ckpt = await Checkpoint.open(dir);
    try {
      assert.deepEqual([...ckpt.tensors.keys()].sort(), names);
      for (const [name, spec] of all) {
        const e = ckpt.tensors.get(name)!;
        assert.deepEqual(e.shape, spec.shape);
        assert.deepEqual(await ckpt.read(e), spec.data, name);
      }
    } finally {
      ckpt.close();
    }

    // Missing shard, and a tensor the index puts in a shard that lacks it.
    const bad = { ...weightMap, "extra.weight": "model-00003-of-00003.safetensors" };
    await Deno.writeTextFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: bad }));
    await assert.rejects(Checkpoint.open(dir), /model-00003-of-00003\.safetensors.*missing/);
    const bad2 = { ...weightMap, "extra.weight": "model-00001-of-00002.safetensors" };
    await Deno.writeTextFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: bad2 }));
    await assert.rejects(Checkpoint.open(dir), /extra\.weight/);

    // The same tensor stored in two shards.
    const dup = names[0];
    const shard2 = new Map(shards[1].map((n) => [n, all.get(n)!]));
    shard2.set(dup, all.get(dup)!);
    await writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), shard2);
    await Deno.writeTextFile(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: weightMap }),
    );
    await assert.rejects(
      Checkpoint.open(dir),
      new RegExp(`"${dup.replaceAll(".", "\\.")}" is stored in both`),
    );

    await Deno.writeTextFile(join(dir, "model.safetensors.index.json"), "{not json");
    await assert.rejects(Checkpoint.open(dir), /model\.safetensors\.index\.json/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Checkpoint.open: single model.safetensors, lone *.safetensors, none, or a file path", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(Checkpoint.open(dir), /model\.safetensors\.index\.json.*found none/);
    const t = { "a.weight": { dtype: "F32", shape: [2], data: f32Bytes([1, 2]) } };
    await writeSafetensors(join(dir, "weights.safetensors"), t);
    let ckpt = await Checkpoint.open(dir);
    assert.deepEqual([...ckpt.tensors.keys()], ["a.weight"]);
    ckpt.close();
    await writeSafetensors(join(dir, "other.safetensors"), t);
    await assert.rejects(Checkpoint.open(dir), /found 2: other\.safetensors, weights\.safetensors/);
    await writeSafetensors(join(dir, "model.safetensors"), { "b.weight": t["a.weight"] });
    ckpt = await Checkpoint.open(dir);
    assert.deepEqual([...ckpt.tensors.keys()], ["b.weight"]);
    ckpt.close();
    ckpt = await Checkpoint.open(join(dir, "other.safetensors"));
    assert.deepEqual(
      toFloat32("F32", await ckpt.read(ckpt.tensors.get("a.weight")!)),
      new Float32Array([1, 2]),
    );
    ckpt.close();
    await assert.rejects(Checkpoint.open(join(dir, "nope")), /nope/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("malformed safetensors files give errors naming the file and tensor", async () => {
  const dir = await Deno.makeTempDir();
  const p = (name: string) => join(dir, name);
  const ok = { dtype: "F32", shape: [2, 2], data_offsets: [0, 16] };
  try {
    // Truncation at several positions of a real file: inside the length, inside the header, inside the data.
    const bytes = await Deno.readFile(GQA_HF);
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    for (const cut of [0, 5, 8, 8 + Math.floor(headerLen / 2), 8 + headerLen + 100, bytes.length - 1]) {
      await Deno.writeFile(p("cut.safetensors"), bytes.subarray(0, cut));
      await assert.rejects(SafetensorsFile.open(p("cut.safetensors")), /cut\.safetensors/, `cut at ${cut}`);
    }
    // A file that shrinks after open: the read itself must report truncation.
    await Deno.writeFile(p("shrink.safetensors"), bytes);
    const f = await SafetensorsFile.open(p("shrink.safetensors"));
    try {
      await Deno.truncate(p("shrink.safetensors"), 8 + headerLen + 10);
      const last = [...f.tensors.values()].sort((a, b) => b.offset - a.offset)[0];
      await assert.rejects(f.read(last), /shrink\.safetensors.*truncated/);
    } finally {
      f.close();
    }

    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setBigUint64(0, 0xffffffffffffn, true);
    await Deno.writeFile(p("huge.safetensors"), huge);
    await assert.rejects(SafetensorsFile.open(p("huge.safetensors")), /huge\.safetensors.*limit/);
    const beyond = new Uint8Array(16);
    new DataView(beyond.buffer).setBigUint64(0, 1000n, true);
    await Deno.writeFile(p("beyond.safetensors"), beyond);
    await assert.rejects(
      SafetensorsFile.open(p("beyond.safetensors")),
      /beyond\.safetensors.*beyond the end/,
    );

    const cases: [string, unknown, number, RegExp][] = [
      ["json", "{not json", 0, /json\.safetensors.*not valid JSON/],
      ["array", "[1,2]", 0, /array\.safetensors.*JSON object/],
      [
        "dtype",
        { "w.q": { ...ok, dtype: "I64", data_offsets: [0, 32] } },
        32,
        /dtype\.safetensors.*"w\.q".*"I64"/,
      ],
      ["shape", { "w.s": { ...ok, shape: [2, -1] } }, 16, /"w\.s".*shape/],
      ["order", { "w.o": { ...ok, data_offsets: [16, 0] } }, 16, /"w\.o".*begin > end/],
      ["past", { "w.p": { ...ok, data_offsets: [0, 16] } }, 8, /"w\.p".*beyond the data section/],
      ["size", { "w.z": { ...ok, data_offsets: [0, 12] } }, 16, /"w\.z".*needs 16/],
      ["offs", { "w.x": { ...ok, data_offsets: [0] } }, 16, /"w\.x".*data_offsets/],
      ["entry", { "w.e": 3 }, 16, /"w\.e"/],
      ["overlap", { "w.a": ok, "w.b": { ...ok, data_offsets: [8, 24] } }, 24, /"w\.a".*"w\.b".*overlap/],
    ];
    for (const [name, header, dataLen, re] of cases) {
      const path = p(`${name}.safetensors`);
      await writeRawSafetensors(path, header, new Uint8Array(dataLen));
      await assert.rejects(SafetensorsFile.open(path), re, name);
    }
    await Deno.writeFile(p("utf8.safetensors"), new Uint8Array([2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe]));
    await assert.rejects(SafetensorsFile.open(p("utf8.safetensors")), /utf8\.safetensors.*UTF-8/);
    // Metadata and zero-sized tensors are fine.
    await writeRawSafetensors(p("meta.safetensors"), {
      __metadata__: { format: "pt" },
      "w.empty": { dtype: "BF16", shape: [0, 4], data_offsets: [0, 0] },
      "w.a": ok,
    }, new Uint8Array(16));
    const m = await SafetensorsFile.open(p("meta.safetensors"));
    assert.deepEqual([...m.tensors.keys()].sort(), ["w.a", "w.empty"]);
    assert.equal((await m.read(m.tensors.get("w.empty")!)).length, 0);
    m.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Lazy reading of `.safetensors` files and of (sharded) Hugging Face checkpoint folders.
 *
 * Only the JSON header is read at open time; tensor bytes are read on demand, by byte range, so that a
 * multi-gigabyte shard never has to fit in memory. Every malformed input is reported as an `Error` that names
 * the file (and the tensor when one is involved), because a bad header must never become a crash, a hang or a
 * huge allocation.
 *
 * @module
 */

import { basename, isAbsolute, join } from "node:path";

/** The element types this reader accepts (the weights of every Llama 3.2 Vision checkpoint use these). */
export type SafetensorsDtype = "F32" | "BF16" | "F16";

/** One tensor's place in a safetensors file. */
export interface TensorEntry {
  /** Tensor name as written in the header. */
  name: string;
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Shape, outermost dimension first. */
  shape: number[];
  /** Path of the file that holds the bytes. */
  file: string;
  /** absolute byte offset in file */
  offset: number;
  /** `prod(shape) * itemsize`. */
  byteLength: number;
}

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, BF16: 2, F16: 2 };

/** A header larger than this is treated as corrupt rather than allocated. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Reads exactly `buf.length` bytes at `position`, looping over short reads; early EOF means a truncated file. */
async function readExact(file: Deno.FsFile, path: string, position: number, buf: Uint8Array): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  let done = 0;
  while (done < buf.length) {
    const n = await file.read(buf.subarray(done));
    if (n === null || n === 0) {
      throw new Error(
        `${path}: file is truncated: wanted ${buf.length} bytes at offset ${position}, got only ${done}`,
      );
    }
    done += n;
  }
}

/**
 * Throws when an object of the JSON `text` (already known to parse) repeats a key: `JSON.parse` silently keeps
 * the last one, which would drop a tensor (or a field of one) without a word. One linear scan, no allocation
 * beyond the key sets.
 */
function checkDuplicateKeys(text: string, path: string): void {
  const stack: (Set<string> | null)[] = [];
  let tensor = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const start = i;
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      const keys = stack[stack.length - 1];
      if (!keys) continue;
      let j = i + 1;
      while (
        j < text.length && (text[j] === " " || text[j] === "\n" || text[j] === "\r" || text[j] === "\t")
      ) j++;
      if (text[j] !== ":") continue;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      if (stack.length === 1) tensor = key;
      if (keys.has(key)) {
        throw new Error(
          stack.length === 1
            ? `${path}: tensor "${key}" appears twice in the safetensors header (a corrupt or hand-edited file)`
            : `${path}: tensor "${tensor}": key "${key}" appears twice in its header entry`,
        );
      }
      keys.add(key);
    } else if (c === 0x7b) stack.push(new Set());
    else if (c === 0x5b) stack.push(null);
    else if (c === 0x7d || c === 0x5d) stack.pop();
  }
}

function isDtype(value: unknown): value is SafetensorsDtype {
  return value === "F32" || value === "BF16" || value === "F16";
}

/** One open `.safetensors` file: its parsed header and a handle for ranged reads. */
export class SafetensorsFile {
  /** Path the file was opened with. */
  readonly path: string;
  /** Every tensor in the header (`__metadata__` excluded), by name. */
  readonly tensors: Map<string, TensorEntry>;
  #file: Deno.FsFile | null;
  /** Reads are serialised because seek + read on one handle is not atomic. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(path: string, file: Deno.FsFile, tensors: Map<string, TensorEntry>) {
    this.path = path;
    this.#file = file;
    this.tensors = tensors;
  }

  /** Opens `path` and validates its header; tensor data is not read. */
  static async open(path: string): Promise<SafetensorsFile> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(path, { read: true });
    } catch (e) {
      throw new Error(`${path}: cannot open safetensors file: ${(e as Error).message}`);
    }
    try {
      const tensors = await SafetensorsFile.#parseHeader(path, file);
      return new SafetensorsFile(path, file, tensors);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  static async #parseHeader(path: string, file: Deno.FsFile): Promise<Map<string, TensorEntry>> {
    const { size } = await file.stat();
    if (size < 8) {
      throw new Error(
        `${path}: not a safetensors file: ${size} bytes, shorter than the 8-byte header length`,
      );
    }
    const lenBytes = new Uint8Array(8);
    await readExact(file, path, 0, lenBytes);
    const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw new Error(`${path}: safetensors header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    }
    const headerLen = Number(n);
    if (8 + headerLen > size) {
      throw new Error(
        `${path}: safetensors header length ${headerLen} goes beyond the end of the file (${size} bytes); ` +
          "the file is truncated or not a safetensors file",
      );
    }
    const headerBytes = new Uint8Array(headerLen);
    await readExact(file, path, 8, headerBytes);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch {
      throw new Error(`${path}: safetensors header is not valid UTF-8`);
    }
    let header: unknown;
    try {
      header = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: safetensors header is not valid JSON: ${(e as Error).message}`);
    }
    if (header === null || typeof header !== "object" || Array.isArray(header)) {
      throw new Error(`${path}: safetensors header must be a JSON object`);
    }
    checkDuplicateKeys(text, path);
    const dataStart = 8 + headerLen;
    const dataSize = size - dataStart;
    const tensors = new Map<string, TensorEntry>();
    const spans: { name: string; begin: number; end: number }[] = [];
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") continue;
      const where = `${path}: tensor "${name}"`;
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
        throw new Error(`${where}: header entry must be an object with dtype, shape and data_offsets`);
      }
      const { dtype, shape, data_offsets } = raw as Record<string, unknown>;
      if (!isDtype(dtype)) {
        throw new Error(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: F32, BF16, F16)`);
      }
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        throw new Error(
          `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`,
        );
      }
      if (
        !Array.isArray(data_offsets) || data_offsets.length !== 2 ||
        !data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0)
      ) {
        throw new Error(
          `${where}: data_offsets must be [begin, end] integers, got ${JSON.stringify(data_offsets)}`,
        );
      }
      const [begin, end] = data_offsets as [number, number];
      if (begin > end) throw new Error(`${where}: data_offsets [${begin}, ${end}] has begin > end`);
      if (end > dataSize) {
        throw new Error(
          `${where}: data_offsets end ${end} is beyond the data section (${dataSize} bytes); file truncated?`,
        );
      }
      let expected = ITEM_SIZE[dtype];
      for (const d of shape as number[]) {
        expected *= d;
        if (!Number.isSafeInteger(expected)) {
          throw new Error(`${where}: shape ${JSON.stringify(shape)} is too large`);
        }
      }
      if (end - begin !== expected) {
        throw new Error(
          `${where}: data_offsets span ${end - begin} bytes but shape ${JSON.stringify(shape)} of ${dtype} ` +
            `needs ${expected}`,
        );
      }
      tensors.set(name, {
        name,
        dtype,
        shape: [...shape as number[]],
        file: path,
        offset: dataStart + begin,
        byteLength: expected,
      });
      if (end > begin) spans.push({ name, begin, end });
    }
    spans.sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i].begin < spans[i - 1].end) {
        throw new Error(
          `${path}: tensors "${spans[i - 1].name}" [${spans[i - 1].begin}, ${spans[i - 1].end}) and ` +
            `"${spans[i].name}" [${spans[i].begin}, ${spans[i].end}) overlap`,
        );
      }
    }
    // As the reference implementation requires: the tensors tile the data section exactly, with no hole and
    // nothing after the last one. A gap means an entry was lost or its offsets were altered.
    let at = 0;
    for (const s of spans) {
      if (s.begin !== at) {
        throw new Error(
          `${path}: tensor "${s.name}" starts at data offset ${s.begin}, but the previous tensor ends at ${at}: ` +
            "the header leaves a hole in the data section (corrupt header?)",
        );
      }
      at = s.end;
    }
    if (at !== dataSize) {
      throw new Error(
        `${path}: the tensors cover ${at} bytes of the ${dataSize}-byte data section` +
          (spans.length ? ` (the last is "${spans[spans.length - 1].name}")` : "") +
          ": the header and the data disagree (corrupt header, or bytes appended to the file)",
      );
    }
    return tensors;
  }

  /**
   * Reads bytes `[byteStart, byteStart + byteLength)` of `entry` (relative to the tensor's first byte; the
   * default is the whole tensor). Only that range is read from disk. With `into` (at least `byteLength`
   * bytes) the bytes land there and a view of it is returned, so a streaming loader allocates nothing per
   * read.
   */
  read(
    entry: TensorEntry,
    byteStart = 0,
    byteLength: number = entry.byteLength - byteStart,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    const file = this.#file;
    if (file === null) return Promise.reject(new Error(`${this.path}: read after close`));
    if (entry.file !== this.path) {
      return Promise.reject(new Error(`${this.path}: tensor "${entry.name}" belongs to ${entry.file}`));
    }
    if (
      !Number.isSafeInteger(byteStart) || !Number.isSafeInteger(byteLength) || byteStart < 0 ||
      byteLength < 0 ||
      byteStart + byteLength > entry.byteLength
    ) {
      return Promise.reject(
        new Error(
          `${this.path}: tensor "${entry.name}": byte range [${byteStart}, ${
            byteStart + byteLength
          }) is outside ` +
            `its ${entry.byteLength} bytes`,
        ),
      );
    }
    const out = into && into.byteLength >= byteLength
      ? into.subarray(0, byteLength)
      : new Uint8Array(byteLength);
    const job = this.#queue.then(() => readExact(file, this.path, entry.offset + byteStart, out)).then(() =>
      out
    );
    this.#queue = job.catch(() => {});
    return job;
  }

  /** Closes the file handle; later reads fail. Closing twice is harmless. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * A Hugging Face checkpoint: a sharded folder (`model.safetensors.index.json` + shards), a folder with one
 * `model.safetensors` (or exactly one `*.safetensors`), or a single `.safetensors` file path. All tensors of all
 * shards appear in one name → entry map; reads are dispatched to the right shard.
 */
export class Checkpoint {
  /** The folder (or file) the checkpoint was opened from. */
  readonly dir: string;
  /** Every tensor of the checkpoint by name. */
  readonly tensors: Map<string, TensorEntry>;
  #files: Map<string, SafetensorsFile>;

  private constructor(dir: string, files: Map<string, SafetensorsFile>, tensors: Map<string, TensorEntry>) {
    this.dir = dir;
    this.#files = files;
    this.tensors = tensors;
  }

  /** Opens a checkpoint folder (or one `.safetensors` file) and validates every shard's header. */
  static async open(dir: string): Promise<Checkpoint> {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(dir);
    } catch (e) {
      throw new Error(`${dir}: cannot open checkpoint: ${(e as Error).message}`);
    }
    if (info.isFile) {
      const f = await SafetensorsFile.open(dir);
      return new Checkpoint(dir, new Map([[f.path, f]]), new Map(f.tensors));
    }
    const indexPath = join(dir, "model.safetensors.index.json");
    if (await exists(indexPath)) return await Checkpoint.#openIndexed(dir, indexPath);
    let single = join(dir, "model.safetensors");
    if (!(await exists(single))) {
      const found: string[] = [];
      for await (const e of Deno.readDir(dir)) {
        if (e.isFile && e.name.endsWith(".safetensors")) found.push(e.name);
      }
      if (found.length !== 1) {
        throw new Error(
          `${dir}: expected model.safetensors.index.json, model.safetensors or exactly one *.safetensors file; ` +
            (found.length === 0 ? "found none" : `found ${found.length}: ${found.sort().join(", ")}`),
        );
      }
      single = join(dir, found[0]);
    }
    const f = await SafetensorsFile.open(single);
    return new Checkpoint(dir, new Map([[f.path, f]]), new Map(f.tensors));
  }

  static async #openIndexed(dir: string, indexPath: string): Promise<Checkpoint> {
    let index: unknown;
    try {
      index = JSON.parse(await Deno.readTextFile(indexPath));
    } catch (e) {
      throw new Error(`${indexPath}: cannot read index: ${(e as Error).message}`);
    }
    const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
    if (weightMap === null || typeof weightMap !== "object" || Array.isArray(weightMap)) {
      throw new Error(`${indexPath}: "weight_map" must be an object mapping tensor names to shard files`);
    }
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      if (
        typeof shard !== "string" || shard === "" || isAbsolute(shard) || shard.split(/[\\/]/).includes("..")
      ) {
        throw new Error(
          `${indexPath}: tensor "${name}" maps to an invalid shard name ${JSON.stringify(shard)}`,
        );
      }
      const list = byShard.get(shard) ?? [];
      list.push(name);
      byShard.set(shard, list);
    }
    const files = new Map<string, SafetensorsFile>();
    const tensors = new Map<string, TensorEntry>();
    const closeAll = () => files.forEach((f) => f.close());
    try {
      for (const shard of byShard.keys()) {
        const path = join(dir, shard);
        if (!(await exists(path))) {
          throw new Error(`${indexPath}: shard "${shard}" listed in weight_map is missing (${path})`);
        }
        files.set(path, await SafetensorsFile.open(path));
      }
      // A name stored in two shards would make the checkpoint ambiguous whatever the index says.
      const owner = new Map<string, string>();
      for (const f of files.values()) {
        for (const name of f.tensors.keys()) {
          const prev = owner.get(name);
          if (prev !== undefined) {
            throw new Error(`${dir}: tensor "${name}" is stored in both ${prev} and ${f.path}`);
          }
          owner.set(name, f.path);
        }
      }
      for (const [shard, names] of byShard) {
        const f = files.get(join(dir, shard))!;
        for (const name of names) {
          const entry = f.tensors.get(name);
          if (entry === undefined) {
            throw new Error(
              `${indexPath}: tensor "${name}" is listed in shard "${shard}" but ${f.path} lacks it`,
            );
          }
          tensors.set(name, entry);
        }
      }
      for (const [name, path] of owner) {
        if (!tensors.has(name)) {
          throw new Error(`${path}: tensor "${name}" is not listed in ${basename(indexPath)} (stale index?)`);
        }
      }
    } catch (e) {
      closeAll();
      throw e;
    }
    return new Checkpoint(dir, files, tensors);
  }

  /** Reads a byte range of `entry` from its shard; same contract as {@link SafetensorsFile.read}. */
  read(entry: TensorEntry, byteStart?: number, byteLength?: number, into?: Uint8Array): Promise<Uint8Array> {
    const f = this.#files.get(entry.file);
    if (f === undefined) {
      return Promise.reject(
        new Error(`${this.dir}: tensor "${entry.name}" is from ${entry.file}, not this checkpoint`),
      );
    }
    return f.read(entry, byteStart, byteLength, into);
  }

  /** Closes every shard. */
  close(): void {
    for (const f of this.#files.values()) f.close();
  }
}

/** A copy when `bytes` is not aligned to `align`, so typed-array views can be made on it. */
function aligned(bytes: Uint8Array, align: number): Uint8Array {
  return bytes.byteOffset % align === 0 ? bytes : bytes.slice();
}

function checkMultiple(bytes: Uint8Array, itemSize: number, what: string): void {
  if (bytes.byteLength % itemSize !== 0) {
    throw new Error(`${what}: ${bytes.byteLength} bytes is not a multiple of ${itemSize}`);
  }
}

/** Widens little-endian bfloat16 bytes to float32 (exact: bf16 is the top half of an f32). */
export function bf16ToF32(bytes: Uint8Array): Float32Array {
  checkMultiple(bytes, 2, "bf16ToF32");
  const src = aligned(bytes, 2);
  const u16 = new Uint16Array(src.buffer, src.byteOffset, src.byteLength / 2);
  const out = new Uint32Array(u16.length);
  for (let i = 0; i < u16.length; i++) out[i] = u16[i] << 16;
  return new Float32Array(out.buffer);
}

/** Widens little-endian IEEE half-precision bytes to float32 (exact, subnormals/inf/NaN included). */
export function f16ToF32(bytes: Uint8Array): Float32Array {
  checkMultiple(bytes, 2, "f16ToF32");
  const src = aligned(bytes, 2);
  const u16 = new Uint16Array(src.buffer, src.byteOffset, src.byteLength / 2);
  const out = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) {
    const h = u16[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 31) out[i] = frac ? NaN : sign * Infinity;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** Converts raw tensor bytes of `dtype` to float32; F32 input is viewed (or copied if unaligned), not converted. */
export function toFloat32(dtype: SafetensorsDtype, bytes: Uint8Array): Float32Array {
  switch (dtype) {
    case "F32": {
      checkMultiple(bytes, 4, "toFloat32(F32)");
      const src = aligned(bytes, 4);
      return new Float32Array(src.buffer, src.byteOffset, src.byteLength / 4);
    }
    case "BF16":
      return bf16ToF32(bytes);
    case "F16":
      return f16ToF32(bytes);
    default:
      throw new Error(`toFloat32: unsupported dtype ${JSON.stringify(dtype)}`);
  }
}

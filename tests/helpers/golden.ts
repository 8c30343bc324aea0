/**
 * Reads the golden fixtures (copied from torchtune's outputs into tests/fixtures): a minimal
 * safetensors parser for the small I32/U8/F32/BF16 tensor files.
 */
import { fileURLToPath } from "node:url";

/** Absolute path of a fixture case folder. */
export function fixtureDir(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));
}

/** A golden tensor. */
export interface GoldenTensor {
  dtype: string;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
  /** BF16 only: the raw bfloat16 bit patterns (`data` holds them widened to float32). */
  bits?: Uint16Array;
}

/** Every tensor of a small safetensors file. */
export async function readGolden(path: string): Promise<Map<string, GoldenTensor>> {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const out = new Map<string, GoldenTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets } = info as {
      dtype: string;
      shape: number[];
      data_offsets: [number, number];
    };
    const raw = bytes.slice(8 + n + data_offsets[0], 8 + n + data_offsets[1]);
    if (dtype === "BF16") {
      const bits = new Uint16Array(raw.buffer);
      const wide = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) wide[i] = bits[i] << 16;
      out.set(name, { dtype, shape, data: new Float32Array(wide.buffer), bits });
      continue;
    }
    const data = dtype === "F32"
      ? new Float32Array(raw.buffer)
      : dtype === "I32"
      ? new Int32Array(raw.buffer)
      : dtype === "U8"
      ? raw
      : (() => {
        throw new Error(`unsupported golden dtype ${dtype}`);
      })();
    out.set(name, { dtype, shape, data });
  }
  return out;
}

/** Max |a − b| over two equal-length arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Index of the largest value in row `r` of a `[rows, n]` array. */
export function argmaxRow(data: ArrayLike<number>, r: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (data[r * n + j] > data[r * n + best]) best = j;
  return best;
}

/**
 * Builds `.safetensors` files for tests, including deliberately malformed ones.
 *
 * @module
 */

/** One tensor to write: any dtype string is accepted so that tests can write unsupported ones too. */
export interface TensorSpec {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Writes an 8-byte header length, the given header (object or raw text) and the data section as is. */
export async function writeRawSafetensors(path: string, header: unknown, data: Uint8Array): Promise<void> {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  await Deno.writeFile(path, out);
}

/** Writes a well-formed safetensors file with the tensors packed in iteration order. */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, TensorSpec> | Record<string, TensorSpec>,
  metadata?: Record<string, string>,
): Promise<void> {
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const data = new Uint8Array(offset);
  offset = 0;
  for (const [, t] of entries) {
    data.set(t.data, offset);
    offset += t.data.length;
  }
  await writeRawSafetensors(path, header, data);
}

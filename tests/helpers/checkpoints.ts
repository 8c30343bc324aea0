/** Builds Hub-style checkpoint folders (config.json + model.safetensors) from the fixtures in a temp dir. */
import { loadCheckpoint, type LoadCheckpointOptions, TransformerDecoder } from "../../mod.ts";
import { join } from "node:path";
import { fixtureDir } from "./golden.ts";

/** A temp folder laid out like a Hub checkpoint for fixture `name` (weights file `weights`). */
export async function checkpointDir(name: string, weights = "weights_hf.safetensors"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `ckpt_${name}_` });
  await Deno.copyFile(join(fixtureDir(name), weights), join(dir, "model.safetensors"));
  await Deno.copyFile(join(fixtureDir(name), "config.json"), join(dir, "config.json"));
  return dir;
}

/** `loadCheckpoint` for a decoder-only checkpoint, typed as the decoder. */
export async function loadDecoder(
  dir: string,
  options: LoadCheckpointOptions = {},
): Promise<TransformerDecoder> {
  const model = await loadCheckpoint(dir, options);
  if (!(model instanceof TransformerDecoder)) {
    throw new Error(`${dir} loaded as a fusion model, not a decoder`);
  }
  return model;
}

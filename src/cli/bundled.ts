/**
 * The bundled default model: tiny_gqa's random weights with a tiny byte-level tokenizer, small
 * enough for the repository, so `generate` runs offline on a fresh machine.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** Folder of the bundled model. */
export const BUNDLED_MODEL: string = fileURLToPath(new URL("../../assets/tiny-random", import.meta.url));

/** The `--model` value that selects the bundled model. */
export const BUNDLED_NAME = "tiny-random";

/** Whether `--model` names the bundled model. */
export function isBundledModel(model: string): boolean {
  return model === BUNDLED_NAME || model === BUNDLED_MODEL;
}

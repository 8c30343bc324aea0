/**
 * Hugging Face Hub settings from the environment, with the same names and defaults as Python's
 * `huggingface_hub`, so that both tools share one cache and one login.
 *
 * @module
 */
import { join } from "node:path";

/** The public Hub, used when `HF_ENDPOINT` is not set. */
export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** `Deno.env.get` that reads a missing permission as "not set" instead of throwing. */
function env(name: string): string | undefined {
  try {
    const value = Deno.env.get(name);
    return value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

function homeDir(): string {
  const home = env("HOME") ?? env("USERPROFILE");
  if (!home) throw new Error("Cannot find the home directory: set HF_HOME or HF_HUB_CACHE.");
  return home;
}

/** `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(): string {
  return env("HF_HOME") ?? join(env("XDG_CACHE_HOME") ?? join(homeDir(), ".cache"), "huggingface");
}

/**
 * The Hub cache folder (the one holding `models--org--name/`): `HF_HUB_CACHE`, else the legacy
 * `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
 */
export function hubCacheDir(): string {
  return env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE") ?? join(hfHome(), "hub");
}

/** The Hub's base URL: `HF_ENDPOINT` (a mirror or a test server) without a trailing slash, else huggingface.co. */
export function hubEndpoint(): string {
  return (env("HF_ENDPOINT") ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
}

/**
 * The access token: `HF_TOKEN`, else the legacy `HUGGING_FACE_HUB_TOKEN`, else the file written by
 * `hf auth login` (`HF_TOKEN_PATH`, default `$HF_HOME/token`); undefined when there is none.
 */
export function hubToken(): string | undefined {
  const fromEnv = env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN");
  if (fromEnv) return fromEnv.trim();
  try {
    const token = Deno.readTextFileSync(env("HF_TOKEN_PATH") ?? join(hfHome(), "token")).trim();
    return token || undefined;
  } catch {
    return undefined;
  }
}

/** True when `HF_HUB_OFFLINE` is `1`, `true`, `yes` or `on` (any case), as in Python. */
export function hubOffline(): boolean {
  return ["1", "true", "yes", "on"].includes((env("HF_HUB_OFFLINE") ?? "").trim().toLowerCase());
}

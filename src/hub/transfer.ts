/**
 * One file's transfer into the Hugging Face cache: `blobs/<etag>.incomplete` is written (resumed with an HTTP
 * `Range` request when an earlier run left part of it), checked (size, and sha256 for LFS files / git's sha1
 * for small ones) and only then renamed to `blobs/<etag>`, so a snapshot never links to a file that is not
 * whole. Network errors, 5xx / 429 answers and stalled transfers are retried with exponential backoff, a
 * bounded number of times, each retry continuing where the last one stopped.
 *
 * `npm:@huggingface/hub`'s `downloadFileToCacheDir` is not used for the bytes: it truncates `.incomplete` on
 * every try (no resume), never retries and checks neither size nor hash.
 *
 * @module
 */
import { HubApiError } from "@huggingface/hub";
import { createHash, type Hash } from "node:crypto";
import { dirname, relative } from "node:path";

/** Retry policy of a download (see {@link DownloadOptions.retry}). */
export interface RetryOptions {
  /** Tries per request, the first included (default 5). */
  attempts?: number;
  /** Wait before the first retry, doubled for each further one (default 1000 ms). */
  baseDelayMs?: number;
  /** Longest wait between tries (default 30 s). */
  maxDelayMs?: number;
  /** A transfer that receives no byte for this long is dropped and retried (default 60 s). */
  stallTimeoutMs?: number;
}

/** {@link RetryOptions} with every default filled in. */
export type RetryPolicy = Required<RetryOptions>;

/** The policy with defaults applied (attempts at least 1). */
export function retryPolicy(o: RetryOptions = {}): RetryPolicy {
  return {
    attempts: Math.max(1, Math.floor(o.attempts ?? 5)),
    baseDelayMs: o.baseDelayMs ?? 1000,
    maxDelayMs: o.maxDelayMs ?? 30_000,
    stallTimeoutMs: o.stallTimeoutMs ?? 60_000,
  };
}

/** A failure that another try may fix (a 5xx answer, a dropped connection, a stall). */
export class RetryableError extends Error {}

/** True for answers worth retrying: 5xx and 429 (rate limited). */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429;
}

/** The wait before retry number `retry` (1-based): exponential, capped, with ±25 % jitter. */
export function backoffDelay(policy: RetryPolicy, retry: number): number {
  const base = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs `fn` up to `policy.attempts` times while it fails with a retryable error (a {@link RetryableError}, a
 * {@link HubApiError} with a 5xx / 429 status, or a network `TypeError`), waiting {@link backoffDelay} between
 * tries. The last error is thrown, with the number of tries in its message when there was more than one.
 */
export async function withRetries<T>(
  policy: RetryPolicy,
  fn: (attempt: number) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      if (signal?.aborted) throw e;
      const retryable = e instanceof RetryableError ||
        (e instanceof HubApiError && isRetryableStatus(e.statusCode)) ||
        // A network TypeError ("fetch failed"), except when the host cannot be reached at all: no server
        // there is not a transient fault worth waiting for.
        (e instanceof TypeError &&
          !/sending request|connect error|refused|dns|lookup/i.test(`${e.message} ${errorText(e.cause)}`));
      if (!retryable || attempt >= policy.attempts) {
        if (attempt > 1 && e instanceof Error) e.message += ` (gave up after ${attempt} attempts)`;
        throw e;
      }
      await sleep(backoffDelay(policy, attempt), signal);
    }
  }
}

/** What {@link transferBlob} fetches and how it checks it. */
export interface BlobTransfer {
  /** The `resolve` URL of the file. */
  url: string;
  /** The file's path in the repo (for messages). */
  file: string;
  /** `<storage>/blobs/<etag>`; the bytes go to `<blob>.incomplete` first. */
  blob: string;
  /** The size the listing gives. */
  size: number;
  /** The LFS sha256 (64 hex digits) the content must hash to, if known. */
  sha256?: string;
  /** Git's blob sha1 (40 hex digits) of a non-LFS file, if known. */
  gitSha1?: string;
  /** Request headers (authorization). */
  headers: Record<string, string>;
  fetch: typeof fetch;
  policy: RetryPolicy;
  signal?: AbortSignal;
}

const HEX64 = /^[0-9a-f]{64}$/;

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function isDiskFull(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return code === "ENOSPC" || /ENOSPC|No space left on device|os error 28/i.test(errorText(e));
}

/** The etag of a response without quotes or weak prefix (`X-Linked-ETag` first, as the Hub sets it). */
function responseEtag(r: Response): string | null {
  const raw = r.headers.get("x-linked-etag") ?? r.headers.get("etag");
  return raw ? raw.replace(/^W\//, "").replace(/"/g, "").trim() : null;
}

async function sizeOf(path: string): Promise<number | null> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return null;
  }
}

/** Feeds the first `length` bytes of `path` to `hash` (the part kept from an earlier run). */
async function hashPrefix(path: string, length: number, hash: Hash): Promise<void> {
  const f = await Deno.open(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    let left = length;
    while (left > 0) {
      const n = await f.read(buf.subarray(0, Math.min(buf.length, left)));
      if (n === null || n === 0) break;
      hash.update(buf.subarray(0, n));
      left -= n;
    }
  } finally {
    f.close();
  }
}

function newHashes(t: BlobTransfer): { sha256?: Hash; sha1?: Hash } {
  const out: { sha256?: Hash; sha1?: Hash } = {};
  if (t.sha256) out.sha256 = createHash("sha256");
  if (t.gitSha1) out.sha1 = createHash("sha1").update(`blob ${t.size}\0`);
  return out;
}

/** One try: continues `.incomplete` from its current size (Range) or starts it over. */
async function attempt(t: BlobTransfer): Promise<void> {
  const incomplete = `${t.blob}.incomplete`;
  let start = (await sizeOf(incomplete)) ?? 0;
  if (start > t.size) start = 0;
  const headers: Record<string, string> = { ...t.headers };
  if (start > 0) headers["range"] = `bytes=${start}-`;

  // Our own controller: the caller's abort, or a stall (no byte for stallTimeoutMs), ends the request.
  const ctrl = new AbortController();
  const onAbort = (): void => ctrl.abort(t.signal!.reason);
  t.signal?.addEventListener("abort", onAbort, { once: true });
  let stalled = false;
  let stallTimer: ReturnType<typeof setTimeout> | undefined;
  const armStall = (): void => {
    clearTimeout(stallTimer);
    stallTimer = setTimeout(() => {
      stalled = true;
      ctrl.abort(new RetryableError(`no data for ${t.policy.stallTimeoutMs} ms`));
    }, t.policy.stallTimeoutMs);
  };
  let file: Deno.FsFile | undefined;
  try {
    armStall();
    const response = await t.fetch(t.url, { headers, signal: ctrl.signal, redirect: "follow" });
    if (response.status === 416 && start > 0) {
      // The server refuses the range (the kept part is not a prefix of this file): start over.
      await response.body?.cancel();
      await Deno.remove(incomplete).catch(() => {});
      throw new RetryableError(`${t.file}: the server refused to resume at byte ${start}`);
    }
    if (!response.ok) {
      await response.body?.cancel();
      const e = new HubApiError(t.url, response.status, response.headers.get("x-request-id") ?? undefined);
      e.message = `${t.file}: the server answered ${response.status}`;
      throw e;
    }
    const etag = responseEtag(response);
    if (t.sha256 && etag && HEX64.test(etag) && etag !== t.sha256) {
      await response.body?.cancel();
      throw new Error(
        `${t.file}: the server's etag ${etag} is not the sha256 ${t.sha256} the file listing gives: the file ` +
          `changed or the server is wrong; not cached, run again to retry.`,
      );
    }
    let offset = 0;
    if (response.status === 206) {
      const m = response.headers.get("content-range")?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
      if (!m || Number(m[1]) !== start || (m[3] !== "*" && Number(m[3]) !== t.size)) {
        await response.body?.cancel();
        await Deno.remove(incomplete).catch(() => {});
        throw new RetryableError(
          `${t.file}: the server resumed with Content-Range ${
            response.headers.get("content-range")
          } for a ${t.size}-byte file from byte ${start}; starting over`,
        );
      }
      offset = start;
    } else {
      // 200: the whole file (a server without Range support): start over.
      const length = response.headers.get("content-length");
      if (length !== null && Number(length) !== t.size) {
        await response.body?.cancel();
        await Deno.remove(incomplete).catch(() => {});
        throw new Error(
          `${t.file}: the server sends ${length} bytes (Content-Length) but the file listing says ${t.size}: ` +
            `not cached, run again to retry.`,
        );
      }
    }
    const hashes = newHashes(t);
    if (offset > 0) {
      if (hashes.sha256) await hashPrefix(incomplete, offset, hashes.sha256);
      if (hashes.sha1) await hashPrefix(incomplete, offset, hashes.sha1);
    }
    await Deno.mkdir(dirname(t.blob), { recursive: true });
    file = await Deno.open(
      incomplete,
      offset > 0 ? { append: true } : { write: true, create: true, truncate: true },
    );
    let done = offset;
    let overflow = false;
    try {
      for await (const chunk of response.body ?? []) {
        armStall();
        if (done + chunk.length > t.size) {
          overflow = true;
          break;
        }
        let w = 0;
        while (w < chunk.length) w += await file.write(chunk.subarray(w));
        hashes.sha256?.update(chunk);
        hashes.sha1?.update(chunk);
        done += chunk.length;
      }
    } catch (e) {
      // Deno's "error reading a body from connection" and the like: the connection dropped mid-file.
      if (isDiskFull(e) || t.signal?.aborted || stalled) throw e;
      throw new RetryableError(`${t.file}: ${errorText(e)} after ${done} of ${t.size} bytes`, { cause: e });
    }
    if (overflow) {
      await Deno.remove(incomplete).catch(() => {});
      throw new Error(
        `${t.file}: the server sent more than the ${t.size} bytes the file listing gives: not cached, run ` +
          `again to retry.`,
      );
    }
    file.close();
    file = undefined;
    if (done < t.size) {
      throw new RetryableError(`${t.file}: the transfer ended after ${done} of ${t.size} bytes`);
    }
    const got256 = hashes.sha256?.digest("hex");
    const got1 = hashes.sha1?.digest("hex");
    if ((got256 !== undefined && got256 !== t.sha256) || (got1 !== undefined && got1 !== t.gitSha1)) {
      await Deno.remove(incomplete).catch(() => {});
      throw new Error(
        `${t.file}: the downloaded bytes hash to ${got256 ?? got1}, not ${t.sha256 ?? t.gitSha1} as the ` +
          `file listing says: corrupted in transfer; not cached, run again to retry.`,
      );
    }
    await Deno.rename(incomplete, t.blob);
  } catch (e) {
    if (t.signal?.aborted) {
      throw new Error(
        `${t.file}: download aborted; the part fetched is kept in ${incomplete} and the next run resumes it`,
        { cause: t.signal.reason },
      );
    }
    if (stalled) {
      throw new RetryableError(`${t.file}: no data for ${t.policy.stallTimeoutMs} ms`, { cause: e });
    }
    throw e;
  } finally {
    clearTimeout(stallTimer);
    t.signal?.removeEventListener("abort", onAbort);
    file?.close();
  }
}

/** Fetches `t.url` into `t.blob` (see the module doc); retries per `t.policy`. */
export async function transferBlob(t: BlobTransfer): Promise<void> {
  await withRetries(t.policy, () => attempt(t), t.signal);
}

/** Points `link` at `target` with a relative symlink (as huggingface_hub does), or copies where links fail. */
export async function linkBlob(target: string, link: string): Promise<void> {
  await Deno.mkdir(dirname(link), { recursive: true });
  await Deno.remove(link).catch(() => {});
  try {
    await Deno.symlink(relative(dirname(link), target), link);
  } catch {
    await Deno.copyFile(target, link);
  }
}

/**
 * Download faults against the fake Hub on 127.0.0.1: connections dropped at random points (resumed with
 * Range), 5xx answers (retried with backoff, then a clear error), a slow and a stalling server, a wrong size,
 * a wrong sha256 or etag (rejected, not cached), a server without Range support, and an aborted download
 * (Ctrl-C): never a file in `snapshots/` that is not whole, and the next run continues.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { downloadModel, type DownloadOptions } from "../src/hub/download.ts";
import { type FakeHub, type FakeRepo, startFakeHub } from "./helpers/fake_hub.ts";
import { rejects } from "./helpers/assertions.ts";
import { fixtureDir } from "./helpers/golden.ts";

const SHA = "0123456789abcdef0123456789abcdef01234567";
const WEIGHTS = await Deno.readFile(join(fixtureDir("tiny_gqa"), "weights_hf.safetensors"));
const CONFIG = await Deno.readFile(join(fixtureDir("tiny_gqa"), "config.json"));
const FILE = "model.safetensors";
const SNAPSHOT = (cache: string): string => join(cache, "models--org--tiny", "snapshots", SHA);
const BLOBS = (cache: string): string => join(cache, "models--org--tiny", "blobs");

function repo(): FakeRepo {
  return {
    sha: SHA,
    files: {
      "config.json": CONFIG,
      [FILE]: WEIGHTS,
      "tokenizer_config.json": new TextEncoder().encode('{"bos_token":"<|begin_of_text|>"}'),
    },
  };
}

/** Fast retries for tests: 4 tries, 10 ms doubling. */
const RETRY = { attempts: 4, baseDelayMs: 10, maxDelayMs: 100 };

function faultTest(
  name: string,
  fn: (hub: FakeHub, opts: DownloadOptions, cache: string) => Promise<void>,
): void {
  Deno.test(name, async () => {
    const hub = await startFakeHub({ "org/tiny": repo() });
    const cache = await Deno.makeTempDir({ prefix: "hub_faults_" });
    try {
      await fn(hub, { endpoint: hub.url, cacheDir: cache, offline: false, token: "", retry: RETRY }, cache);
    } finally {
      await hub.close();
      await Deno.remove(cache, { recursive: true });
    }
  });
}

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) out.push(e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** Nothing that is not whole in the snapshot: every file there has the repo's exact bytes. */
async function snapshotIsWhole(cache: string): Promise<string[]> {
  const files = await names(SNAPSHOT(cache));
  for (const f of files) assert.deepEqual(await Deno.readFile(join(SNAPSHOT(cache), f)), repo().files[f], f);
  return files;
}

const rangeRequests = (hub: FakeHub): (string | null)[] =>
  hub.requests.filter((r) => r.path.endsWith(`/${FILE}`)).map((r) => r.range);

faultTest("dropped connections at random points: each retry resumes with Range", async (hub, opts, cache) => {
  let seed = 7;
  const rand = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 3; round++) {
    // Cut the full download and the next resumed range at random points.
    hub.fault(FILE, { cutRanges: { after: 1 + Math.floor(rand() * 400_000), times: 2 } });
    hub.requests.length = 0;
    const r = await downloadModel("org/tiny", opts);
    assert.deepEqual(await Deno.readFile(join(r.dir, FILE)), WEIGHTS);
    const ranges = rangeRequests(hub);
    assert.equal(ranges[0], null);
    assert.ok(ranges.slice(1).every((x) => x !== null && /^bytes=\d+-$/.test(x)), JSON.stringify(ranges));
    assert.equal(ranges.length, 3, JSON.stringify(ranges));
    assert.deepEqual((await names(BLOBS(cache))).filter((b) => b.endsWith(".incomplete")), []);
    await Deno.remove(join(cache, "models--org--tiny"), { recursive: true });
  }
  // Cut more times than the retries allow: a clear error, nothing partial in the snapshot, the next run resumes.
  hub.fault(FILE, { cutRanges: { after: 100_000, times: 10 } });
  await rejects(
    downloadModel("org/tiny", opts),
    /model\.safetensors/,
    /interrupted/,
    /run again/,
    /4 attempts/,
  );
  assert.ok(!(await snapshotIsWhole(cache)).includes(FILE));
  assert.equal((await names(join(cache, "models--org--tiny", "refs"))).length, 0);
  hub.fault(FILE, {});
  hub.requests.length = 0;
  await downloadModel("org/tiny", opts);
  assert.deepEqual(rangeRequests(hub), [`bytes=${4 * 100_000}-`]);
  assert.ok((await snapshotIsWhole(cache)).includes(FILE));
});

faultTest("5xx answers are retried with backoff, then end in a clear error", async (hub, opts, cache) => {
  hub.fail(503, 3); // the model info request fails 3 times, then succeeds
  const t0 = performance.now();
  const r = await downloadModel("org/tiny", opts);
  assert.ok(performance.now() - t0 >= 10 + 20 + 40 - 20, "backoff waited"); // ±25 % jitter
  assert.deepEqual(await Deno.readFile(join(r.dir, FILE)), WEIGHTS);
  await Deno.remove(join(cache, "models--org--tiny"), { recursive: true });

  hub.fail(500, 1000);
  await rejects(
    downloadModel("org/tiny", opts),
    /answered 500/,
    /gave up after 4 attempts/,
    /try again later/,
  );
  hub.fail(500, 0);
  // 502 on every request, with 2 tries: a clear error, nothing partial in the snapshot, no ref.
  await downloadModel("org/tiny", opts); // metadata and weights cached
  await Deno.remove(join(cache, "models--org--tiny"), { recursive: true });
  const first = downloadModel("org/tiny", { ...opts, retry: { ...RETRY, attempts: 2 } });
  hub.fail(502, 1000);
  await rejects(first, /answered 502/);
  assert.equal((await names(join(cache, "models--org--tiny", "refs"))).length, 0);
  await snapshotIsWhole(cache);
});

faultTest("a slow server completes; a stalled transfer is dropped and resumed", async (hub, opts, cache) => {
  hub.fault(FILE, { chunk: 128 * 1024, delayMs: 15 });
  const r = await downloadModel("org/tiny", opts);
  assert.deepEqual(await Deno.readFile(join(r.dir, FILE)), WEIGHTS);
  await Deno.remove(join(cache, "models--org--tiny"), { recursive: true });

  hub.fault(FILE, { chunk: 64 * 1024, stallAfter: 500_000, stallTimes: 1 });
  hub.requests.length = 0;
  const t0 = performance.now();
  const again = await downloadModel("org/tiny", { ...opts, retry: { ...RETRY, stallTimeoutMs: 300 } });
  assert.ok(performance.now() - t0 < 10_000);
  assert.deepEqual(await Deno.readFile(join(again.dir, FILE)), WEIGHTS);
  assert.deepEqual(rangeRequests(hub), [null, "bytes=500000-"]);
});

faultTest("a wrong size, sha256 or etag is rejected and not cached", async (hub, opts, cache) => {
  const blob = join(BLOBS(cache), await sha256(WEIGHTS));
  for (
    const [fault, pattern] of [
      [{ contentLength: WEIGHTS.length + 10 }, /Content-Length/],
      [{ contentLength: WEIGHTS.length - 10 }, /Content-Length/],
      [{ corrupt: true }, /hash to .* not [0-9a-f]{64}/],
      [{ etag: "f".repeat(64) }, /etag f{64} is not the sha256/],
    ] as const
  ) {
    hub.fault(FILE, fault);
    await rejects(downloadModel("org/tiny", opts), /model\.safetensors/, pattern, /not cached/);
    assert.ok(!(await snapshotIsWhole(cache)).includes(FILE));
    await assert.rejects(Deno.stat(blob), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(`${blob}.incomplete`), Deno.errors.NotFound);
    assert.equal((await names(join(cache, "models--org--tiny", "refs"))).length, 0);
  }
  // A corrupted small (git) file is caught by git's sha1.
  hub.fault(FILE, {});
  await Deno.remove(join(cache, "models--org--tiny"), { recursive: true }); // config.json was cached above
  hub.fault("config.json", { corrupt: true });
  await rejects(downloadModel("org/tiny", opts), /config\.json/, /hash to/, /not cached/);
  hub.fault("config.json", {});
  const r = await downloadModel("org/tiny", opts);
  assert.deepEqual(await Deno.readFile(join(r.dir, FILE)), WEIGHTS);
});

faultTest("a server without Range support: the retry starts over cleanly", async (hub, opts) => {
  hub.fault(FILE, { noRange: true, cutRanges: { after: 700_000, times: 1 } });
  hub.requests.length = 0;
  const r = await downloadModel("org/tiny", opts);
  assert.deepEqual(await Deno.readFile(join(r.dir, FILE)), WEIGHTS);
  assert.deepEqual(rangeRequests(hub), [null, "bytes=700000-"]); // asked, got 200, rewrote from byte 0
});

faultTest(
  "an aborted download (Ctrl-C) leaves no partial file in snapshots/; the next run resumes",
  async (hub, opts, cache) => {
    hub.fault(FILE, { chunk: 64 * 1024, delayMs: 40 });
    const ctrl = new AbortController();
    const p = downloadModel("org/tiny", { ...opts, signal: ctrl.signal });
    // Abort once part of the weights has arrived.
    const incomplete = join(BLOBS(cache), `${await sha256(WEIGHTS)}.incomplete`);
    for (let i = 0; i < 200; i++) {
      const size = await Deno.stat(incomplete).then((s) => s.size, () => 0);
      if (size >= 256 * 1024) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    ctrl.abort();
    await rejects(p, /aborted/);
    assert.ok(!(await snapshotIsWhole(cache)).includes(FILE));
    const kept = (await Deno.stat(incomplete)).size;
    assert.ok(kept > 0 && kept < WEIGHTS.length, `kept ${kept}`);
    assert.equal((await names(join(cache, "models--org--tiny", "refs"))).length, 0);

    hub.fault(FILE, {});
    hub.requests.length = 0;
    const r = await downloadModel("org/tiny", opts);
    assert.deepEqual(await Deno.readFile(join(r.dir, FILE)), WEIGHTS);
    assert.deepEqual(rangeRequests(hub), [`bytes=${kept}-`]);
    assert.equal(await Deno.readTextFile(join(cache, "models--org--tiny", "refs", "main")), SHA);
  },
);

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

faultTest(
  "Ctrl-C: main.ts download killed by SIGINT mid-file leaves a whole snapshot or none; the rerun resumes",
  async (
    hub,
    _opts,
    cache,
  ) => {
    // A slow server (64 KiB every 40 ms) so that the signal arrives in the middle of model.safetensors.
    hub.fault(FILE, { chunk: 65536, delayMs: 40 });
    const main = new URL("../main.ts", import.meta.url).pathname;
    const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN: "hf_test", NO_COLOR: "1" };
    const args = ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-net", "--no-prompt", main];
    const child = new Deno.Command(Deno.execPath(), {
      args: [...args, "download", "org/tiny"],
      env,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // Wait until part of the weights has arrived, then interrupt as a terminal's Ctrl-C would.
    // Only the weights' partial blob: the small files' ones are renamed as soon as they are whole, so a
    // stat of theirs could race with the rename.
    const incomplete = join(BLOBS(cache), `${await sha256(WEIGHTS)}.incomplete`);
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      const size = await Deno.stat(incomplete).then((s) => s.size, () => 0);
      if (size > 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    const first = await child.output();
    assert.notEqual(first.code, 0, "the interrupted run must not report success");
    await snapshotIsWhole(cache);
    assert.ok(!(await names(SNAPSHOT(cache))).includes(FILE), "no partial weights in snapshots/");

    hub.fault(FILE, {});
    const rerun = await new Deno.Command(Deno.execPath(), { args: [...args, "download", "org/tiny"], env })
      .output();
    assert.equal(rerun.code, 0, new TextDecoder().decode(rerun.stderr));
    assert.deepEqual(await snapshotIsWhole(cache), ["config.json", FILE, "tokenizer_config.json"]);
    assert.ok(
      rangeRequests(hub).some((r) => r !== null && !r.startsWith("bytes=0-")),
      "the rerun resumed with Range",
    );
  },
);

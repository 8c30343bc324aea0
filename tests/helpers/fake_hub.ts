/**
 * A fake Hugging Face Hub on 127.0.0.1 for the download tests. It answers exactly the endpoints that
 * `npm:@huggingface/hub` 2.17 calls (see docs/dependencies.md), the way huggingface.co does:
 *
 * - `GET /api/models/{repo}/revision/{rev}`: model info with `sha` (404 `RepoNotFound` / `RevisionNotFound`).
 * - `GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=`: the file listing (one page).
 * - `POST /api/models/{repo}/paths-info/{rev}`: `{ paths, expand }` → entries with `lastCommit`.
 * - `GET /{repo}/resolve/{rev}/{path}`: the bytes, honouring `Range` (206 + `Content-Range`), with `ETag`
 *   and `X-Linked-ETag`; 404 `EntryNotFound` for a missing file; 401/403 `GatedRepo` for gated repos.
 *
 * Files named `*.safetensors`, `*.bin`, `*.pth` are served as LFS files (etag = sha256 of the content), the
 * others as plain git blobs (etag = git's sha1), as on the real Hub. Every request is logged in `requests`.
 */

/** One repo: its commit sha (the `main` branch), its files, and optional gating. */
export interface FakeRepo {
  sha: string;
  files: Record<string, Uint8Array>;
  /** Files are refused without `Authorization: Bearer <token>` (401) or with another token (403). */
  gated?: boolean;
  token?: string;
}

/** A request the fake Hub received. */
export interface LoggedRequest {
  method: string;
  path: string;
  range: string | null;
  authorization: string | null;
}

/** The running fake Hub. */
export interface FakeHub {
  /** `http://127.0.0.1:<port>`, to pass as `endpoint` / `HF_ENDPOINT`. */
  url: string;
  requests: LoggedRequest[];
  /**
   * The next full (non-Range) download of `path` sends `after` bytes of the body, then drops the
   * connection. `times` (default 1) downloads are cut.
   */
  cut(path: string, after: number, times?: number): void;
  /** The next `times` (default 1) requests of any kind answer `status` (e.g. 500). */
  fail(status: number, times?: number): void;
  /**
   * Faults of the downloads of `path` (each until cleared with `fault(path, {})`):
   * `cutRanges` cuts Range answers too (`after` bytes into the range; the next `times` of them);
   * `chunk` / `delayMs`: the body is sent `chunk` bytes at a time, `delayMs` apart (a slow server);
   * `stallAfter`: after that many bytes the body stalls (never ends) for the next `stallTimes` downloads;
   * `contentLength`: a wrong `Content-Length` (the body follows it: padded or cut);
   * `etag`: a wrong `ETag` / `X-Linked-ETag`; `corrupt`: one byte of the body flipped;
   * `noRange`: `Range` is ignored (200 with the whole file).
   */
  fault(path: string, f: FileFault): void;
  /** Stops the server and waits for it to close. */
  close(): Promise<void>;
}

/** See {@link FakeHub.fault}. */
export interface FileFault {
  cutRanges?: { after: number; times: number };
  chunk?: number;
  delayMs?: number;
  stallAfter?: number;
  stallTimes?: number;
  contentLength?: number;
  etag?: string;
  corrupt?: boolean;
  noRange?: boolean;
}

const LFS = /\.(safetensors|bin|pth|pt|gguf)$/;

async function hex(algo: "SHA-1" | "SHA-256", data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest(algo, data));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

interface FileEntry {
  path: string;
  data: Uint8Array<ArrayBuffer>;
  oid: string;
  lfs?: { oid: string; size: number; pointerSize: number };
}

async function entryFor(path: string, source: Uint8Array): Promise<FileEntry> {
  const data = new Uint8Array(source);
  const header = new TextEncoder().encode(`blob ${data.length}\0`);
  const gitBlob = new Uint8Array(header.length + data.length);
  gitBlob.set(header);
  gitBlob.set(data, header.length);
  const oid = await hex("SHA-1", gitBlob);
  if (!LFS.test(path)) return { path, data, oid };
  return { path, data, oid, lfs: { oid: await hex("SHA-256", data), size: data.length, pointerSize: 134 } };
}

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

function hubError(status: number, code: string, message: string): Response {
  return json({ error: message }, status, { "x-error-code": code });
}

/** The first `after` bytes of `data`, then the body ends short of its Content-Length (a dropped connection). */
function cutBody(data: Uint8Array, after: number): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller): void {
      if (after > 0) controller.enqueue(data.slice(0, after));
    },
    async pull(controller): Promise<void> {
      await new Promise((r) => setTimeout(r, 20));
      controller.close();
    },
  });
}

/** Starts a fake Hub serving `repos` (keyed `org/name`) on a free port of 127.0.0.1. */
export async function startFakeHub(repos: Record<string, FakeRepo>): Promise<FakeHub> {
  const entries = new Map<string, Map<string, FileEntry>>();
  for (const [name, repo] of Object.entries(repos)) {
    const files = new Map<string, FileEntry>();
    for (const [path, data] of Object.entries(repo.files)) files.set(path, await entryFor(path, data));
    entries.set(name, files);
  }
  const requests: LoggedRequest[] = [];
  const cuts = new Map<string, { after: number; times: number }>();
  let failures: { status: number; times: number } | undefined;
  const faults = new Map<string, FileFault>();
  const pending = new Set<ReadableStreamDefaultController<Uint8Array>>();
  /** A body sent `chunk` bytes every `delayMs`, stalling for good after `stallAfter` bytes if set. */
  const paced = (data: Uint8Array, chunk: number, delayMs: number, stallAfter?: number): ReadableStream => {
    let at = 0;
    let ctl: ReadableStreamDefaultController<Uint8Array>;
    return new ReadableStream<Uint8Array>({
      start(c): void {
        ctl = c;
        pending.add(c);
      },
      async pull(c): Promise<void> {
        if (stallAfter !== undefined && at >= stallAfter) return await new Promise(() => {}); // never resolves
        if (at >= data.length) {
          pending.delete(c);
          return c.close();
        }
        if (at > 0 && delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        const end = Math.min(data.length, at + chunk, stallAfter ?? Infinity);
        c.enqueue(data.slice(at, end));
        at = end;
      },
      cancel(): void {
        pending.delete(ctl);
      },
    });
  };

  const treeEntry = (e: FileEntry, sha: string, expand: boolean): Record<string, unknown> => ({
    type: "file",
    oid: e.oid,
    size: e.data.length,
    path: e.path,
    ...(e.lfs && { lfs: e.lfs }),
    ...(expand && { lastCommit: { id: sha, title: "Upload", date: "2024-09-25T00:00:00.000Z" } }),
  });

  // Parses `/{org}/{name}/{rest}` against the known repos; the repo name is always two segments.
  const splitRepo = (parts: string[]): { name: string; repo: FakeRepo; rest: string[] } | undefined => {
    const name = `${parts[0]}/${parts[1]}`;
    const repo = repos[name];
    return repo && { name, repo, rest: parts.slice(2) };
  };

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    requests.push({
      method: req.method,
      path: decodeURIComponent(url.pathname),
      range: req.headers.get("range"),
      authorization: req.headers.get("authorization"),
    });
    if (failures && failures.times > 0) {
      failures.times--;
      return hubError(failures.status, "InternalError", "injected failure");
    }
    const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    const api = parts[0] === "api" && parts[1] === "models";
    const found = splitRepo(api ? parts.slice(2) : parts);
    if (!found) return hubError(404, "RepoNotFound", "Repository not found");
    const { name, repo, rest } = found;
    const files = entries.get(name)!;
    const [kind, rev, ...pathParts] = rest;
    if (rev !== undefined && rev !== "main" && rev !== repo.sha) {
      return hubError(404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    }

    if (api && kind === "revision" && req.method === "GET" && pathParts.length === 0) {
      return json({
        _id: `id-${name}`,
        id: name,
        sha: repo.sha,
        private: false,
        gated: repo.gated ? "manual" : false,
        downloads: 0,
        likes: 0,
        lastModified: "2024-09-25T00:00:00.000Z",
        siblings: [...files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    if (api && kind === "tree" && req.method === "GET") {
      const prefix = pathParts.length ? pathParts.join("/") + "/" : "";
      const recursive = url.searchParams.get("recursive") === "true";
      const expand = url.searchParams.get("expand") === "true";
      const out: Record<string, unknown>[] = [];
      const dirs = new Set<string>();
      for (const e of files.values()) {
        if (!e.path.startsWith(prefix)) continue;
        const sub = e.path.slice(prefix.length).split("/");
        for (let i = 1; i < sub.length && (recursive || i === 1); i++) {
          dirs.add(prefix + sub.slice(0, i).join("/"));
        }
        if (recursive || sub.length === 1) out.push(treeEntry(e, repo.sha, expand));
      }
      for (const d of dirs) out.push({ type: "directory", oid: "0".repeat(40), size: 0, path: d });
      return json(out);
    }
    if (api && kind === "paths-info" && req.method === "POST") {
      const body = await req.json() as { paths: string[]; expand?: boolean };
      return json(body.paths.flatMap((p) => {
        const e = files.get(p);
        return e ? [treeEntry(e, repo.sha, !!body.expand)] : [];
      }));
    }
    if (!api && kind === "resolve" && (req.method === "GET" || req.method === "HEAD")) {
      const path = pathParts.join("/");
      const e = files.get(path);
      if (!e) return hubError(404, "EntryNotFound", `${path} does not exist on "${rev}"`);
      if (repo.gated) {
        const auth = req.headers.get("authorization");
        if (!auth) return hubError(401, "GatedRepo", `Access to model ${name} is restricted.`);
        if (auth !== `Bearer ${repo.token}`) {
          return hubError(
            403,
            "GatedRepo",
            `Access to model ${name} is restricted and you are not in the authorized list.`,
          );
        }
      }
      const f = faults.get(path) ?? {};
      const etag = `"${f.etag ?? e.lfs?.oid ?? e.oid}"`;
      let data = e.data;
      if (f.corrupt) {
        data = data.slice();
        data[data.length >> 1] ^= 0x40;
      }
      if (f.contentLength !== undefined) {
        const d = new Uint8Array(f.contentLength);
        d.set(data.subarray(0, Math.min(data.length, f.contentLength)));
        data = d;
      }
      const headers: Record<string, string> = {
        "content-type": "application/octet-stream",
        "accept-ranges": "bytes",
        "etag": etag,
        "x-linked-etag": etag,
        "x-linked-size": String(e.data.length),
        "x-repo-commit": repo.sha,
      };
      const range = f.noRange ? null : req.headers.get("range")?.match(/^bytes=(\d+)-(\d*)$/);
      const stall = f.stallAfter !== undefined && (f.stallTimes ?? 1) > 0;
      if (stall) f.stallTimes = (f.stallTimes ?? 1) - 1;
      if (range) {
        const start = Number(range[1]);
        if (start >= data.length) {
          return new Response(null, { status: 416, headers: { "content-range": `bytes */${data.length}` } });
        }
        const end = Math.min(range[2] ? Number(range[2]) : data.length - 1, data.length - 1);
        headers["content-range"] = `bytes ${start}-${end}/${data.length}`;
        const part = data.slice(start, end + 1);
        const rc = f.cutRanges;
        if (rc && rc.times > 0 && rc.after < part.length) {
          rc.times--;
          headers["content-length"] = String(part.length);
          return new Response(cutBody(part, rc.after), { status: 206, headers });
        }
        if (f.chunk || stall) {
          return new Response(
            paced(part, f.chunk ?? 65536, f.delayMs ?? 0, stall ? f.stallAfter : undefined),
            {
              status: 206,
              headers,
            },
          );
        }
        return new Response(part, { status: 206, headers });
      }
      headers["content-length"] = String(data.length);
      if (req.method !== "HEAD" && (f.chunk || stall)) {
        return new Response(paced(data, f.chunk ?? 65536, f.delayMs ?? 0, stall ? f.stallAfter : undefined), {
          headers,
        });
      }
      if (f.cutRanges && f.cutRanges.times > 0 && f.cutRanges.after < data.length && req.method !== "HEAD") {
        f.cutRanges.times--;
        return new Response(cutBody(data, f.cutRanges.after), { headers });
      }
      const cut = cuts.get(path);
      if (cut && cut.times > 0) {
        cut.times--;
        // Sends the first `after` bytes, then ends the body short of its Content-Length: the client
        // sees the connection drop mid-file ("error reading a body from connection").
        const body = new ReadableStream<Uint8Array>({
          start(controller): void {
            controller.enqueue(e.data.slice(0, cut.after));
          },
          async pull(controller): Promise<void> {
            await new Promise((r) => setTimeout(r, 20));
            controller.close();
          },
        });
        return new Response(body, { headers });
      }
      return new Response(req.method === "HEAD" ? null : data, { headers });
    }
    return hubError(404, "NotFound", `fake hub: no route for ${req.method} ${url.pathname}`);
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handle);
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    cut(path: string, after: number, times = 1): void {
      cuts.set(path, { after, times });
    },
    fail(status: number, times = 1): void {
      failures = { status, times };
    },
    fault(path: string, f: FileFault): void {
      faults.set(path, f);
    },
    async close(): Promise<void> {
      for (const c of pending) c.error(new Error("fake hub closing"));
      pending.clear();
      await server.shutdown();
    },
  };
}

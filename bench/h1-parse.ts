/**
 * Micro-benchmark (not a test): our HTTP/1.1 codec vs undici's llhttp (WASM)
 * on the same pipelined byte streams, reported as ns per message.
 *
 *   bun bench/h1-parse.ts [path/to/llhttp-wasm.js]
 *
 * llhttp is optional and never a dependency: get it with
 * `cd /tmp && npm pack undici && tar xzf undici-*.tgz` and pass
 * `/tmp/package/lib/llhttp/llhttp-wasm.js` (or set LLHTTP_WASM). Both sides
 * produce the same output: method/URL or status, every name (lower-cased) and
 * value as strings, body bytes as views. "llhttp raw" skips the strings —
 * the floor for any llhttp glue.
 */
import { latin1 } from "../src/l7/h1/bytes.ts";
import { ChunkedDecoder, LengthDecoder, parseRequestHead, parseResponseHead, serializeRequestHead } from "../src/l7/h1/codec.ts";

const PIPELINE = 16; // messages per buffer, like wrk with a pipelining script
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const MESSAGES = Number(process.env.MESSAGES ?? 400_000);

const request =
  "GET /index.html?page=2 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: wrk/4.2.0\r\nAccept: */*\r\n" +
  "Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";
const response =
  "HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Sun, 22 Nov 2026 10:00:00 GMT\r\nContent-Type: text/html; charset=utf-8\r\n" +
  "Content-Length: 13\r\nConnection: keep-alive\r\nCache-Control: no-cache\r\nETag: \"5f8e-13\"\r\nVary: Accept-Encoding\r\n\r\nHello, World!";
const chunked =
  "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\n\r\n" +
  "11\r\n\x00\x00\x00\x00\x0c\x0a\x0aHello grpc\r\n0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n";

const reqStream = Buffer.from(request.repeat(PIPELINE), "latin1");
const resStream = Buffer.from(response.repeat(PIPELINE), "latin1");
const chunkedStream = Buffer.from(chunked.repeat(PIPELINE), "latin1");

let sink = 0;
const onData = (d: Uint8Array): void => {
  sink += d.length;
};

function oursRequests(buf: Buffer): number {
  let pos = 0;
  let n = 0;
  while (pos < buf.length) {
    const h = parseRequestHead(buf, pos, buf.length);
    if (h.kind !== "request") throw new Error("ours: " + JSON.stringify(h));
    sink += h.headers.length;
    pos += h.length;
    n++;
  }
  return n;
}

function oursResponses(buf: Buffer): number {
  let pos = 0;
  let n = 0;
  while (pos < buf.length) {
    const h = parseResponseHead(buf, pos, buf.length, "GET");
    if (h.kind !== "response") throw new Error("ours: " + JSON.stringify(h));
    pos += h.length;
    if (h.framing === "length") pos += new LengthDecoder(h.contentLength).push(buf, pos, buf.length, onData);
    else if (h.framing === "chunked") {
      const d = new ChunkedDecoder(undefined, 502);
      const r = d.push(buf, pos, buf.length, onData);
      if (typeof r !== "number" || !d.done) throw new Error("ours chunked: " + JSON.stringify(r));
      pos += r;
      sink += d.trailers.length;
    }
    n++;
  }
  return n;
}

interface LlhttpExports {
  memory: WebAssembly.Memory;
  _initialize(): void;
  llhttp_alloc(type: number): number;
  llhttp_execute(parser: number, ptr: number, len: number): number;
  llhttp_get_method(parser: number): number;
  llhttp_get_status_code(parser: number): number;
  llhttp_get_error_reason(parser: number): number;
  malloc(n: number): number;
}

/** The ~40 lines of glue an llhttp integration needs: copy in, execute, decode callbacks. */
function makeLlhttp(wasm: Uint8Array, type: 1 | 2, strings: boolean) {
  let mem: Buffer = Buffer.alloc(0);
  let messages = 0;
  let url = "";
  let field = "";
  let headers: string[] = [];
  let inValue = false;
  const str = (at: number, len: number): string => latin1(mem, at, at + len);
  const mod = new WebAssembly.Module(wasm);
  const inst = new WebAssembly.Instance(mod, {
    env: {
      wasm_on_message_begin: () => {
        url = "";
        headers = [];
        return 0;
      },
      wasm_on_url: (_p: number, at: number, len: number) => {
        if (strings) url += str(at, len);
        return 0;
      },
      wasm_on_status: () => 0,
      wasm_on_header_field: (_p: number, at: number, len: number) => {
        if (!strings) return 0;
        if (inValue) {
          inValue = false;
          field = "";
        }
        field += str(at, len);
        return 0;
      },
      wasm_on_header_value: (_p: number, at: number, len: number) => {
        if (!strings) return 0;
        if (!inValue) {
          inValue = true;
          headers.push(field.toLowerCase(), "");
        }
        headers[headers.length - 1] += str(at, len);
        return 0;
      },
      wasm_on_headers_complete: () => {
        sink += headers.length + url.length;
        inValue = false;
        field = "";
        return 0;
      },
      wasm_on_body: (_p: number, at: number, len: number) => {
        onData(mem.subarray(at, at + len));
        return 0;
      },
      wasm_on_message_complete: () => {
        messages++;
        return 0;
      },
    },
  });
  const ex = inst.exports as unknown as LlhttpExports;
  ex._initialize();
  const parser = ex.llhttp_alloc(type);
  const cap = 64 * 1024;
  const ptr = ex.malloc(cap);
  return (buf: Buffer): number => {
    messages = 0;
    mem = Buffer.from(ex.memory.buffer); // re-view: memory may have grown
    mem.set(buf, ptr);
    const rc = ex.llhttp_execute(parser, ptr, buf.length);
    if (rc !== 0) throw new Error("llhttp error " + rc);
    return messages;
  };
}

function measure(name: string, buf: Buffer, run: (b: Buffer) => number): number {
  const per = run(buf);
  if (per !== PIPELINE) throw new Error(`${name}: parsed ${per} of ${PIPELINE}`);
  const iters = Math.ceil(MESSAGES / PIPELINE);
  for (let i = 0; i < iters / 4; i++) run(buf); // warm-up
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = Bun.nanoseconds();
    for (let i = 0; i < iters; i++) run(buf);
    best = Math.min(best, (Bun.nanoseconds() - t0) / (iters * PIPELINE));
  }
  console.log(`${name.padEnd(34)} ${best.toFixed(0).padStart(6)} ns/msg`);
  return best;
}

const wasmPath = process.argv[2] ?? process.env.LLHTTP_WASM;
let wasm: Uint8Array | undefined;
if (wasmPath) {
  const mod = (await import(wasmPath)) as { default: Uint8Array };
  wasm = mod.default;
}

console.log(`Bun ${Bun.version}, ${PIPELINE} pipelined messages per buffer, best of ${ROUNDS}`);
measure("ours     request  (GET, 5 fields)", reqStream, oursRequests);
if (wasm) {
  measure("llhttp   request  + strings", reqStream, makeLlhttp(wasm, 1, true));
  measure("llhttp   request  raw", reqStream, makeLlhttp(wasm, 1, false));
}
measure("ours     response (CL, 8 fields)", resStream, oursResponses);
if (wasm) {
  measure("llhttp   response + strings", resStream, makeLlhttp(wasm, 2, true));
  measure("llhttp   response raw", resStream, makeLlhttp(wasm, 2, false));
}
measure("ours     chunked + trailers", chunkedStream, oursResponses);
if (wasm) {
  measure("llhttp   chunked + strings", chunkedStream, makeLlhttp(wasm, 2, true));
  measure("llhttp   chunked raw", chunkedStream, makeLlhttp(wasm, 2, false));
}
const fields = ["host", "example.com", "user-agent", "wrk/4.2.0", "accept", "*/*", "x-forwarded-for", "203.0.113.7", "x-forwarded-proto", "https"];
measure("ours     serialize request head", reqStream, () => {
  for (let i = 0; i < PIPELINE; i++) {
    const out = serializeRequestHead("GET", "/index.html?page=2", fields);
    if (!(out instanceof Uint8Array)) throw new Error("serialize: " + out.reason);
    sink += out.length;
  }
  return PIPELINE;
});
if (!wasm) console.log("(llhttp skipped: pass the path of undici's lib/llhttp/llhttp-wasm.js)");
if (sink === 0.5) console.log(sink);

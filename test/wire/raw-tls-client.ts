/**
 * Real TLS handshakes with unusual first flights, for tests.
 *
 * - opensslHandshake: runs `openssl s_client` and reports whether the
 *   handshake completed and which ALPN was chosen.
 * - startMangler: a local TCP relay that rewrites the client's ClientHello
 *   records (e.g. reframeHello(bytes, 3)) before forwarding them, then
 *   relays everything else unchanged. Re-framing keeps the handshake bytes
 *   identical, so the handshake still completes; changing the content (e.g.
 *   padHello) breaks the TLS 1.3 transcript and fails at Finished.
 * - bigHelloClient: s_client sending a genuinely big ClientHello (long ALPN
 *   list) that a server can accept.
 */
import net from "node:net";
import { bigHelloArgs, helloRecordsEnd } from "./hello-fixtures.ts";

export interface HandshakeOutcome {
  /** The handshake finished: cipher negotiated, server certificate decrypted, no OpenSSL error. */
  ok: boolean;
  /** "ALPN protocol: x" from s_client, or null. */
  alpn: string | null;
  /** s_client stdout + stderr, for failure messages. */
  output: string;
}

/**
 * Runs `openssl s_client -connect host:port -servername sni [args]` until it
 * reports the negotiated session (or exits, or `timeoutMs` passes), then kills it.
 */
export async function opensslHandshake(opts: { host?: string; port: number; sni?: string; args?: string[]; timeoutMs?: number }): Promise<HandshakeOutcome> {
  const host = opts.host ?? "127.0.0.1";
  const args = ["openssl", "s_client", "-connect", `${host.includes(":") ? `[${host}]` : host}:${opts.port}`];
  args.push(...(opts.sni ? ["-servername", opts.sni] : ["-noservername"]), ...(opts.args ?? []));
  const p = Bun.spawn(args, { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  let output = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    for await (const chunk of s) output += dec.decode(chunk, { stream: true });
  };
  const done = Promise.all([pump(p.stdout), pump(p.stderr)]);
  const deadline = Date.now() + (opts.timeoutMs ?? 15000);
  try {
    // Bounded poll: the session summary ends with "Verify return code" (after the ALPN line).
    while (Date.now() < deadline && p.exitCode === null && !/Verify return code/.test(output)) await Bun.sleep(25);
    await Bun.sleep(50); // stderr (error lines) may trail stdout slightly
  } finally {
    p.kill();
    await Promise.race([done, Bun.sleep(2000)]);
  }
  // "Cipher is" alone is not proof: s_client prints it after ServerHello even
  // when decrypting the server's next flight then fails. The certificate
  // travels in that encrypted flight, so require it and no OpenSSL error line.
  const ok = /New, TLSv1\.[0-3], Cipher is (?!\(NONE\))/.test(output) && /Server certificate/.test(output) && !/:error:/.test(output);
  const m = /ALPN protocol: (\S+)/.exec(output);
  return { ok, alpn: m ? m[1] : null, output };
}

/** s_client with a ClientHello of about `targetBytes` (see bigHelloArgs); `realAlpn` is what the server should pick. */
export function bigHelloClient(host: string, port: number, sni: string, targetBytes: number, realAlpn = "http/1.1"): Promise<HandshakeOutcome> {
  return opensslHandshake({ host, port, sni, args: bigHelloArgs(targetBytes, realAlpn) });
}

/**
 * Listens on 127.0.0.1:0; for each connection, waits for the full ClientHello
 * records, forwards `transform(helloRecords)` plus any bytes after them to
 * targetHost:targetPort, then relays both directions unchanged.
 * `seen` collects each original hello.
 */
export async function startMangler(
  targetPort: number,
  transform: (hello: Uint8Array) => Uint8Array,
  targetHost = "127.0.0.1",
): Promise<{ port: number; seen: Uint8Array[]; close: () => void }> {
  const seen: Uint8Array[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = helloRecordsEnd(buf);
      if (end < 0) {
        if (buf.length > 256 * 1024) client.destroy(); // bounded: never buffer forever
        return;
      }
      client.off("data", onData);
      client.pause();
      const hello = new Uint8Array(buf.subarray(0, end));
      seen.push(hello);
      const upstream = net.connect(targetPort, targetHost, () => {
        upstream.write(transform(hello));
        if (buf.length > end) upstream.write(buf.subarray(end));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      sockets.add(upstream);
      upstream.on("close", () => {
        sockets.delete(upstream);
        client.destroy();
      });
      upstream.on("error", () => client.destroy());
      client.on("close", () => upstream.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((res) => server.listen(0, "127.0.0.1", res));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    seen,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * The L7 side as one object the server creates, passes to its connections
 * and closes at shutdown. Its shared parts (HTTP servers, backend pools and
 * probe caches) still live in module state in this round's L7 code; this is
 * the interface they are reached through, so that replacing them changes no
 * caller.
 */
import type { L7Conn } from "./context.ts";
import type { NativeSocketDuplex } from "./duplex.ts";
import { serveL7, type L7Context } from "./handler.ts";
import { closeSharedBackends } from "./proxy.ts";

export class L7Runtime {
  /** Serves one client connection whose ClientHello is still unread in `duplex` (see serveL7). */
  serve(duplex: NativeSocketDuplex, ctx: L7Context): L7Conn {
    return serveL7(duplex, ctx);
  }

  /** Closes every shared backend connection (after the drain). */
  close(): void {
    closeSharedBackends();
  }
}

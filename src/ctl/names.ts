/**
 * What the top-level command line needs of the admin client without loading
 * it: the client pulls in @grpc/grpc-js, which `mc-proxy server` must not pay
 * for (src/main.ts imports the client only for `ctl` and `status`).
 */

/** The name under which mc-proxy behaves as the admin client (a link named so, see src/main.ts). */
export const CTL_NAME = "mcproxyctl";

/** Flags for `mc-proxy status` (citty arg definitions the lead's CLI can spread in). */
export const statusArgs = {
  cacert: { type: "string", description: "TCP admin: CA bundle for the server certificate (default: [grpc] tls_cert)" },
  cert: { type: "string", description: "TCP admin with client_ca: client certificate (PEM)" },
  key: { type: "string", description: "TCP admin with client_ca: client key (PEM)" },
  "server-name": { type: "string", description: "TCP admin: name to verify in the server certificate" },
  json: { type: "boolean", description: "print one JSON document" },
} as const;

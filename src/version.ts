/**
 * The version string. `scripts/build.ts` injects MC_PROXY_VERSION with
 * `--define`; running from source falls back to package.json's version + "-dev".
 */
import pkg from "../package.json" with { type: "json" };

declare const MC_PROXY_VERSION: string | undefined;

export const VERSION: string =
  typeof MC_PROXY_VERSION === "string" ? MC_PROXY_VERSION : `${pkg.version}-dev`;

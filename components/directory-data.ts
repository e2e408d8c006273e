// The directory ConfigMap's contents, pure. directory.json lists every meshed service (about
// 490 bytes each), and every member namespace holds a copy (a ConfigMap volume cannot reach into
// another namespace). A ConfigMap holds at most 1 MiB, which plain JSON passes at about 2,100
// services. So: readable JSON while it is small enough to review in `pulumi preview --diff`;
// past DIRECTORY_TEXT_LIMIT, gzip in binaryData (10,000 services ≈ 0.15 MB). Pods mount every key of
// the ConfigMap, so the switch never changes a pod template, and the proxy reads either form.
import * as zlib from "node:zlib";
import { FILE_NAMES } from "../proxy/wellknown";

/** Up to here the directory stays text (half the ConfigMap limit: room for growth between runs). */
export const DIRECTORY_TEXT_LIMIT = 512 * 1024;
/** The compressed directory must leave room below the 1 MiB ConfigMap limit (metadata, base64 in transit). */
export const DIRECTORY_GZIP_LIMIT = 900 * 1024;

export interface DirectoryData {
  data: Record<string, string>;
  binaryData: Record<string, string>;
}

export class DirectoryTooLargeError extends Error {}

/** `text` (directory.json) as ConfigMap data, or gzipped as binaryData (base64) when large. */
export function directoryData(text: string, services: number): DirectoryData {
  if (Buffer.byteLength(text) <= DIRECTORY_TEXT_LIMIT) return { data: { [FILE_NAMES.directory]: text }, binaryData: {} };
  // Level 9, no file name, mtime 0, and the header's OS byte fixed (zlib writes the build's OS
  // there): the same text gives the same bytes on this zlib, so a re-run previews no change. A
  // machine with another zlib build may still compress differently: then the directory ConfigMaps
  // show a harmless in-place update.
  const gzipped = zlib.gzipSync(text, { level: 9 });
  gzipped[9] = 255; // RFC 1952: 255 = unknown OS
  if (gzipped.length > DIRECTORY_GZIP_LIMIT) {
    throw new DirectoryTooLargeError(
      `the directory of ${services} services is ${gzipped.length} bytes compressed, over the ${DIRECTORY_GZIP_LIMIT} a ConfigMap can hold; split the services across meshes (importedServices)`,
    );
  }
  return { data: {}, binaryData: { [FILE_NAMES.directoryGzip]: gzipped.toString("base64") } };
}

// One test PKI for every system: root → issuer → client and server leaves, ECDSA P-256, with the
// SPIFFE URI SANs the mesh issues. Written as files because every peer reads files.
import * as fs from "node:fs";
import * as path from "node:path";
import { createTestMesh } from "../test/support/pki";

export const TRUST_DOMAIN = "cluster.local";
export const NAMESPACE = "bench";

export interface BenchPki {
  dir: string;
  caFile: string;
  client: LeafFiles;
  server: LeafFiles;
}

export interface LeafFiles {
  spiffeId: string;
  /** Subject CN; peers without SPIFFE support verify the server by this name. */
  commonName: string;
  /** Leaf + issuer chain. */
  certFile: string;
  keyFile: string;
  /** Chain and key in one file (HAProxy's `crt`). */
  pemFile: string;
}

export async function writePki(dir: string): Promise<BenchPki> {
  fs.mkdirSync(dir, { recursive: true });
  const mesh = await createTestMesh(TRUST_DOMAIN, "bench");
  const caFile = path.join(dir, "ca.crt");
  fs.writeFileSync(caFile, mesh.bundlePem);
  const leafFiles = async (sa: string): Promise<LeafFiles> => {
    const leaf = await mesh.leaf(NAMESPACE, sa);
    const files = {
      spiffeId: `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${sa}`,
      commonName: `${sa}.${NAMESPACE}`,
      certFile: path.join(dir, `${sa}.crt`),
      keyFile: path.join(dir, `${sa}.key`),
      pemFile: path.join(dir, `${sa}.pem`),
    };
    fs.writeFileSync(files.certFile, leaf.chainPem);
    fs.writeFileSync(files.keyFile, leaf.keyPem, { mode: 0o600 });
    fs.writeFileSync(files.pemFile, leaf.chainPem + leaf.keyPem, { mode: 0o600 });
    return files;
  };
  return { dir, caFile, client: await leafFiles("client"), server: await leafFiles("server") };
}

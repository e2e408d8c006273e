// The images the harness can run, and how: each maps a container (image, command, args) to a
// program on this machine, with the image's default user. Anything else is reported as unknown
// rather than faked.
import * as path from "node:path";
import type { CodeRoots } from "./code";

export const REPO_ROOT = path.resolve(__dirname, "..", "..", "..", "..");
/** The repository and node as they are (code.ts stages a copy when pod UIDs cannot read them). */
export const HOST_CODE: CodeRoots = { root: REPO_ROOT, node: process.execPath };

export interface ImageRun {
  argv: string[];
  /** The image's USER, used when the pod spec sets no runAsUser/runAsGroup. */
  defaultUid: number;
  defaultGid: number;
  kind: "proxy" | "http-echo" | "curl" | "agnhost";
}

export interface ContainerLike {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
}

export class UnknownImageError extends Error {
  constructor(readonly image: string, readonly container: string) {
    super(`container "${container}": image ${image} is not one the e2e harness can run (known: the mesh proxy image, hashicorp/http-echo, curlimages/curl, registry.k8s.io/e2e-test-images/agnhost)`);
  }
}

const repoName = (image: string) => image.replace(/@sha256:[0-9a-f]+$/, "").replace(/:[^/:]+$/, "");

/**
 * Kubernetes semantics: `command` replaces the image ENTRYPOINT, `args` its CMD.
 * `proxyImages`: the images the mesh uses for its init container and sidecar. `code`: where the
 * pod's processes find the repository and node (see code.ts).
 */
export function resolveImage(
  container: ContainerLike,
  proxyImages: ReadonlySet<string>,
  code: CodeRoots = HOST_CODE,
): ImageRun {
  const image = container.image ?? "";
  const { node } = code;
  const DIST = path.join(code.root, "dist");
  if (proxyImages.has(image)) {
    // ENTRYPOINT ["mesh-proxy"]; an explicit command naming it is the same program.
    const cmd = container.command ?? ["mesh-proxy"];
    if (cmd.length !== 1 || path.basename(cmd[0]) !== "mesh-proxy") {
      throw new Error(`container "${container.name}": command ${JSON.stringify(cmd)} is not the proxy image's mesh-proxy entrypoint`);
    }
    // As the image's ENTRYPOINT runs it: with proxy/openssl.cnf (no TLS session tickets).
    const opensslConfig = `--openssl-config=${path.join(code.root, "proxy", "openssl.cnf")}`;
    return { kind: "proxy", argv: [node, opensslConfig, path.join(DIST, "proxy", "cli.js"), ...(container.args ?? [])], defaultUid: 1337, defaultGid: 1337 };
  }
  switch (repoName(image)) {
    case "hashicorp/http-echo":
    case "docker.io/hashicorp/http-echo":
      if (container.command) throw new Error(`container "${container.name}": http-echo is run through its entrypoint; command is not supported`);
      return { kind: "http-echo", argv: [node, path.join(DIST, "test", "e2e", "images", "http-echo.js"), ...(container.args ?? [])], defaultUid: 65532, defaultGid: 65532 };
    case "registry.k8s.io/e2e-test-images/agnhost": {
      // ENTRYPOINT ["/agnhost"], no USER (root); the subcommand comes first in command or args.
      const argv = [...(container.command ?? ["/agnhost"]), ...(container.args ?? [])];
      if (path.basename(argv[0]) !== "agnhost") throw new Error(`container "${container.name}": command ${JSON.stringify(container.command)} is not agnhost's entrypoint`);
      return { kind: "agnhost", argv: [node, path.join(DIST, "test", "e2e", "images", "agnhost.js"), ...argv.slice(1)], defaultUid: 0, defaultGid: 0 };
    }
    case "curlimages/curl":
    case "docker.io/curlimages/curl": {
      // ENTRYPOINT ["/entrypoint.sh"] which runs curl with the args; USER curl_user (100:101).
      const argv = container.command ? [...container.command, ...(container.args ?? [])] : ["curl", ...(container.args ?? [])];
      return { kind: "curl", argv, defaultUid: 100, defaultGid: 101 };
    }
  }
  throw new UnknownImageError(image, container.name);
}

/** Replaces container paths under a volume mount with the mount's directory on this machine. */
export function rewritePaths(argv: string[], mounts: { mountPath: string; hostPath: string }[]): string[] {
  const sorted = [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
  return argv.map((arg) => {
    for (const m of sorted) {
      const mp = m.mountPath.replace(/\/+$/, "");
      if (arg === mp) return m.hostPath;
      if (arg.startsWith(mp + "/")) return path.join(m.hostPath, arg.slice(mp.length + 1));
      const eq = arg.indexOf("=");
      if (eq > 0 && (arg.slice(eq + 1) === mp || arg.slice(eq + 1).startsWith(mp + "/"))) {
        return arg.slice(0, eq + 1) + path.join(m.hostPath, arg.slice(eq + 1 + mp.length));
      }
    }
    return arg;
  });
}

// Mode precedence: the most specific level that sets a mode wins (port > workload > namespace >
// mesh default), like Istio's port-level PeerAuthentication overriding the namespace policy.
import { Mode } from "../proxy/wellknown";

export interface ModeLevels {
  /** The Mesh default; always set. */
  mesh: Mode;
  /** Mesh.namespaceModes[namespace]. */
  namespace?: Mode;
  /** MeshedWorkload.mode. */
  workload?: Mode;
  /** MeshedWorkload.ports[].mode. */
  port?: Mode;
}

export function resolveMode(levels: ModeLevels): Mode {
  return levels.port ?? levels.workload ?? levels.namespace ?? levels.mesh;
}

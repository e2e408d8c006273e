// The public API of pulumi-mtls-mesh: `import * as mesh from "pulumi-mtls-mesh"`.
export { CertificateAuthority, CertificateAuthorityArgs, ExistingCertificateAuthority } from "./ca";
export { WorkloadIdentity, WorkloadIdentityArgs, identitySecretName } from "./workload-identity";
export { Mesh, MeshArgs, PodSecurity, ProxyBuildArgs, DEFAULT_PROXY_IMAGE } from "./mesh";
export { MeshedWorkload, MeshedWorkloadArgs, MeshWorkloadRef, WorkloadPort } from "./meshed-workload";
export { AuthorizationPolicy, AuthorizationPolicyArgs, AuthorizationRuleArgs } from "./authorization-policy";
export { UnmeshedClient, UnmeshedClientArgs } from "./unmeshed-client";
export { meshTransform, MeshTransform, MeshTransformOptions, TransformWorkload, TransformedWorkload, INJECT_LABEL } from "./transform";
export { MeshInputError } from "./validate";

// Pure building blocks, for programs that assemble their own resources and for tests.
export { resolveMode, ModeLevels } from "./mode";
export { injectSidecar, initArgs, InjectOptions, InjectResult } from "./inject";
export { renderAuthorizationRules, renderNetworkPolicySpec } from "./policy";
export { renderWorkloadConfig, renderDirectoryConfig } from "./render";
export { planPorts } from "./ports";
export {
  resolveReachability, renderReachability, parseReachability, breakingEdges, edgeKey, edgeLine,
  ReachabilityEdge, MatrixClient, MatrixServer, MatrixRule, ClientExpectation, BreakingEdge,
} from "./reachability";
export { LEAF_ALLOWED_USES, CA_ALLOWED_USES, renewalGeneration, nextRenewalAt } from "./identity";
export { spiffeId } from "../proxy/spiffe";
export { MODES, Mode } from "../proxy/wellknown";
export type { DirectoryService, Transport } from "../proxy/config";

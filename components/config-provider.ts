// The Kubernetes provider the mesh's ConfigMaps and Secrets are registered with.
//
// pulumi-kubernetes replaces a ConfigMap whose `data` changes, and a Secret whose `data` or
// `stringData` changes, unless its provider sets `enableConfigMapMutable` / `enableSecretMutable`
// (provider/pkg/provider/diff.go `forceNewProperties`; pulumi-kubernetes issue 1567). Our objects
// have fixed names, so that replace is delete-before-replace: on every mode flip, policy edit,
// directory change and leaf renewal the object would be gone for a moment, and a pod starting then
// fails to mount it. So the Mesh registers them with a provider that sets both flags, and takes
// every other setting from the stack's `kubernetes:*` config, like the default provider does, so
// they land in the same cluster as everything else. Moving existing objects to it is no replace:
// the engine asks the provider's DiffConfig (pulumi PR 18509), which replaces only when the cluster
// changes.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";

/** Stack config keys of the default Kubernetes provider that the mesh's provider copies. */
export const COPIED_STRING_SETTINGS = ["context", "cluster", "namespace", "clusterIdentifier", "renderYamlToDirectory"] as const;
export const COPIED_BOOLEAN_SETTINGS = ["enableServerSideApply", "deleteUnreachable", "skipUpdateUnreachable", "enablePatchForce", "upsertExistingObjects", "suppressDeprecationWarnings", "alwaysRender"] as const;

/**
 * The mesh provider's settings from the stack's `kubernetes:*` config (`get` reads one key, as
 * `new pulumi.Config("kubernetes").get`), plus the two flags that make data changes updates.
 */
export function configProviderArgs(get: (key: string) => string | undefined): k8s.ProviderArgs {
  const args: Record<string, unknown> = {};
  for (const key of COPIED_STRING_SETTINGS) {
    const value = get(key);
    if (value !== undefined) args[key] = value;
  }
  for (const key of COPIED_BOOLEAN_SETTINGS) {
    const value = get(key);
    if (value !== undefined) args[key] = value === "true";
  }
  return { ...args, enableConfigMapMutable: true, enableSecretMutable: true };
}

/** A provider for `parent`'s ConfigMaps and Secrets, on the stack's cluster settings. */
export function makeConfigProvider(name: string, parent: pulumi.Resource): k8s.Provider {
  const config = new pulumi.Config("kubernetes");
  // The kubeconfig is often a secret: getSecret keeps it one (get would warn and print it plain).
  // Without one, "" rather than nothing: the SDK's Provider would otherwise copy $KUBECONFIG into
  // its inputs and the state (provider.js), and the provider reads a path list such as a.yaml:b.yaml
  // as kubeconfig contents (provider.go Configure), and another machine lacks the path (DiffConfig);
  // "" makes it use client-go's loading rules, as the default provider does.
  const kubeconfig = config.getSecret("kubeconfig") ?? "";
  const kubeClientSettings = config.getObject<k8s.types.input.KubeClientSettings>("kubeClientSettings");
  return new k8s.Provider(name, { ...configProviderArgs((key) => config.get(key)), kubeconfig, ...(kubeClientSettings ? { kubeClientSettings } : {}) }, { parent });
}

// Renewal needs the engine to honour `replacementTrigger` (added in Pulumi 3.208): an older engine
// ignores the option, so no key, CSR or leaf is ever replaced, the leaves expire after 30 days and
// a strict mesh stops. The engine answers this exactly: its resource monitor reports the feature
// "replacementTrigger" (pulumi pkg/resource/deploy/source_eval.go, SupportsFeature; first in
// pkg/v3.208.0), and an engine that predates it answers false. We fail the update then, rather than
// warn about a slow outage: with a ResourceError, since `pulumi.log.error` alone does not fail it
// (sdk/nodejs log: "Calling error does not by itself stop processing").
import * as pulumi from "@pulumi/pulumi";
import * as resproto from "@pulumi/pulumi/proto/resource_pb";

export const MINIMUM_PULUMI_CLI = "3.208.0";

/** The error for an engine without replacementTrigger, or undefined when renewal works. */
export function renewalProblem(supportsReplacementTrigger: boolean): string | undefined {
  if (supportsReplacementTrigger) return undefined;
  return (
    `this Pulumi CLI's engine ignores the replacementTrigger option (it predates Pulumi ${MINIMUM_PULUMI_CLI}), ` +
    "so workload certificates would never renew and a strict mesh would stop when they expire. " +
    `Fix: upgrade the Pulumi CLI to ${MINIMUM_PULUMI_CLI} or later (pulumi version shows yours)`
  );
}

interface FeatureMonitor {
  supportsFeature(req: resproto.SupportsFeatureRequest, cb: (err: Error | null, res?: { getHassupport(): boolean }) => void): void;
}

/** Asks the engine whether it supports `feature`; an engine too old to answer supports none. */
export function engineSupports(feature: string): Promise<boolean> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const monitor = require("@pulumi/pulumi/runtime/settings").getMonitor() as FeatureMonitor | undefined;
  if (!monitor) return Promise.resolve(false);
  const req = new resproto.SupportsFeatureRequest();
  req.setId(feature);
  return new Promise((resolve) => monitor.supportsFeature(req, (err, res) => resolve(!err && !!res?.getHassupport())));
}

/**
 * Rejects with a ResourceError on `resource` when the engine cannot renew leaves. The Mesh leaves
 * the rejection unhandled on purpose: the language host then prints the message (no stack trace)
 * and exits non-zero, which fails `pulumi up`.
 */
export async function checkRenewalSupport(resource: pulumi.Resource, ask: (feature: string) => Promise<boolean> = engineSupports): Promise<void> {
  const problem = renewalProblem(await ask("replacementTrigger"));
  if (problem) throw new pulumi.ResourceError(problem, resource, true);
}

// examples/quickstart evaluated unmodified under the shared mocks: what it registers, the pod
// contract it renders, the certificates it asks for, and the config it hands the proxies.
import { EXAMPLE_PROXY_IMAGE, Resources, descendants, directoryJson, find, object, renderQuickstart, workloadJson } from "./harness";
import "reflect-metadata";
import * as assert from "node:assert/strict";
import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import * as x509 from "@peculiar/x509";
import { parseDirectoryConfig, parseWorkloadConfig } from "../../proxy/config";
import { clusterIpFor } from "../support/pulumi-mocks";
import { LEAF_ALLOWED_USES } from "../../components/identity";

describe("components/quickstart example under mocks", function () {
  let resources: Resources;
  let exported: Record<string, any>;
  before(async () => {
    ({ resources, result: exported } = await renderQuickstart());
  });

  it("gives every MeshedWorkload exactly: ServiceAccount, identity (key, CSR, cert, Secret), ConfigMap, Service when it has ports, Deployment", () => {
    const summary = (name: string) =>
      descendants(resources, find(resources, "MeshedWorkload", name))
        .map((r) => r.type.replace(/^kubernetes:|^tls:index\/|^mtls-mesh:index:/, "").replace(/^[a-z]+\//, ""))
        .sort();
    assert.deepEqual(summary("api"), [
      "apps/v1:Deployment", "core/v1:ConfigMap", "core/v1:Secret", "core/v1:Service", "core/v1:ServiceAccount",
      "WorkloadIdentity", "certRequest:CertRequest", "locallySignedCert:LocallySignedCert", "privateKey:PrivateKey",
    ].map((t) => t.replace(/^[a-z]+\//, "")).sort());
    assert.ok(!summary("web").includes("core/v1:Service"), "a client without ports gets no Service");
  });

  it("creates the namespaces explicitly: mesh-system and shop by the Mesh, legacy by the example", () => {
    const namespaces = resources.filter((r) => r.inputs.kind === "Namespace").map((r) => r.outputs.metadata.name).sort();
    assert.deepEqual(namespaces, ["legacy", "mesh-system", "shop"]);
    // A member namespace is patched (created or adopted, never deleted), labelled for Pod Security.
    const shop = find(resources, "NamespacePatch", "mesh-ns-shop");
    assert.equal(shop.inputs.metadata.labels["pod-security.kubernetes.io/enforce"], "privileged");
    for (const kind of ["Deployment", "ConfigMap", "Secret", "Service", "ServiceAccount"]) {
      const inShop = resources.filter((r) => r.inputs.kind === kind && r.outputs.metadata?.namespace === "shop");
      const nsUrn = find(resources, "NamespacePatch", "mesh-ns-shop").urn;
      for (const r of inShop) assert.ok(r.dependencies.includes(nsUrn) || descendantOfNamespaceDependent(r), `${kind} ${r.name} waits for namespace shop`);
    }
  });

  function descendantOfNamespaceDependent(r: { parent: string }): boolean {
    const parent = resources.find((x) => x.urn === r.parent);
    return !!parent && parent.dependencies.includes(find(resources, "NamespacePatch", "mesh-ns-shop").urn);
  }

  it("renders api's pod exactly as the pod contract says", () => {
    const deploy = object(resources, "Deployment", "api", "shop").inputs;
    assert.equal(deploy.spec.replicas, 2);
    const pod = deploy.spec.template.spec;
    assert.equal(pod.serviceAccountName, "api");
    assert.deepEqual(pod.initContainers.map((c: any) => c.name), ["mesh-init", "mesh-proxy"]);
    assert.deepEqual(pod.initContainers[0].args, ["init", "--inbound-ports", "8080", "--proxy-uid", "1337"]);
    assert.equal(pod.initContainers[0].image, EXAMPLE_PROXY_IMAGE);
    assert.equal(pod.initContainers[1].image, EXAMPLE_PROXY_IMAGE);
    assert.equal(pod.initContainers[1].restartPolicy, "Always");
    assert.equal(pod.initContainers[1].securityContext.runAsUser, 1337);
    assert.deepEqual(pod.volumes.map((v: any) => v.name), ["mesh-identity", "mesh-config"]);
    assert.equal(pod.volumes[0].secret.secretName, "mesh-identity-api");
    assert.deepEqual(pod.containers, [
      {
        name: "api",
        image: "hashicorp/http-echo:1.0",
        args: ["-listen=:8080", "-text=hello from api"],
        ports: [{ name: "http", containerPort: 8080 }],
        readinessProbe: { httpGet: { path: "/app-health/api/readyz", port: 15021, scheme: "HTTP" }, periodSeconds: 5 },
      },
    ]);
    assert.deepEqual(deploy.spec.template.metadata.labels, {
      "mtls-mesh.io/meshed": "true", "mtls-mesh.io/workload": "api", "mtls-mesh.io/service-account": "api",
    });
    const web = object(resources, "Deployment", "web", "shop").inputs.spec.template.spec;
    assert.deepEqual(web.initContainers[0].args, ["init", "--proxy-uid", "1337"], "a client has no inbound ports");
    assert.deepEqual(web.containers[0].command, ["sleep", "infinity"]);
  });

  it("leaves the legacy client alone: no proxy, its own namespace", () => {
    const legacy = object(resources, "Deployment", "legacy-client", "legacy").inputs.spec.template.spec;
    assert.equal(legacy.initContainers, undefined);
    assert.deepEqual(legacy.containers, [{ name: "legacy-client", image: "curlimages/curl:8.11.1", command: ["sleep", "infinity"] }]);
  });

  it("starts pods only after their identity Secret and both ConfigMaps exist", () => {
    const deploy = object(resources, "Deployment", "api", "shop");
    for (const [kind, name] of [["Secret", "mesh-identity-api"], ["ConfigMap", "api-mesh-config"], ["ConfigMap", "mesh-directory"], ["ServiceAccount", "api"]]) {
      assert.ok(deploy.dependencies.includes(object(resources, kind, name, "shop").urn), `Deployment api depends on ${kind} ${name}`);
    }
  });

  it("lists api in the directory with its ClusterIP, DNS names, port mode and SPIFFE ID, in every namespace", () => {
    const dir = parseDirectoryConfig(directoryJson(resources, "shop"));
    assert.deepEqual(dir.services, [
      {
        namespace: "shop",
        name: "api",
        spiffeId: "spiffe://cluster.local/ns/shop/sa/api",
        addresses: [clusterIpFor("shop", "api")],
        hostnames: ["api.shop", "api.shop.svc", "api.shop.svc.cluster.local"],
        ports: [{ port: 8080, targetPort: 8080, mode: "strict" }],
      },
    ]);
    assert.equal(
      object(resources, "ConfigMap", "mesh-directory", "mesh-system").outputs.data["directory.json"],
      object(resources, "ConfigMap", "mesh-directory", "shop").outputs.data["directory.json"],
    );
  });

  it("renders api's workload.json: strict inbound, only shop/web allowed, the rewritten probe", () => {
    const api = parseWorkloadConfig(workloadJson(resources, "api-mesh-config", "shop"));
    assert.deepEqual(api.inbound, { defaultMode: "strict", ports: [{ port: 8080, mode: "strict" }] });
    assert.deepEqual(api.authorization, { rules: [{ ports: [8080], principals: ["spiffe://cluster.local/ns/shop/sa/web"] }] });
    assert.deepEqual(api.probes, [{ path: "/app-health/api/readyz", port: 8080, targetPath: "/", scheme: "HTTP" }]);
    assert.equal(api.workload.spiffeId, "spiffe://cluster.local/ns/shop/sa/api");
    const reports = parseWorkloadConfig(workloadJson(resources, "reports-mesh-config", "shop"));
    assert.equal(reports.authorization, null, "no policy targets reports");
  });

  it("mirrors the policy in a NetworkPolicy for the same peer and port", () => {
    const np = object(resources, "NetworkPolicy", "api-allow", "shop").inputs.spec;
    assert.deepEqual(np, {
      podSelector: { matchLabels: { "mtls-mesh.io/workload": "api" } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "shop" } }, podSelector: { matchLabels: { "mtls-mesh.io/service-account": "web" } } }],
          ports: [{ protocol: "TCP", port: 8080 }],
        },
        { ports: [{ protocol: "TCP", port: 15021 }] }, // the admin port: health and metrics for everyone
      ],
    });
  });

  it("asks for a leaf with exactly one URI SAN (the SPIFFE ID), an ECDSA P-256 key, server+client EKU, not a CA", async () => {
    const key = find(resources, "PrivateKey", "api-identity-key");
    assert.deepEqual({ algorithm: key.inputs.algorithm, ecdsaCurve: key.inputs.ecdsaCurve }, { algorithm: "ECDSA", ecdsaCurve: "P256" });
    const csrResource = find(resources, "CertRequest", "api-identity-csr");
    assert.deepEqual(csrResource.inputs.uris, ["spiffe://cluster.local/ns/shop/sa/api"]);
    assert.equal(csrResource.inputs.dnsNames, undefined);
    const csr = new x509.Pkcs10CertificateRequest(csrResource.outputs.certRequestPem);
    const san = csr.extensions.find((e) => e instanceof x509.SubjectAlternativeNameExtension) as x509.SubjectAlternativeNameExtension;
    assert.deepEqual(san.names.toJSON(), [{ type: "url", value: "spiffe://cluster.local/ns/shop/sa/api" }]);

    const certResource = find(resources, "LocallySignedCert", "api-identity-cert");
    assert.deepEqual(certResource.inputs.allowedUses, [...LEAF_ALLOWED_USES]);
    assert.equal(certResource.inputs.isCaCertificate, false);
    const cert = new X509Certificate(certResource.outputs.certPem);
    assert.equal(cert.ca, false);
    assert.equal(cert.subjectAltName, "URI:spiffe://cluster.local/ns/shop/sa/api");
    assert.deepEqual(cert.keyUsage?.sort(), ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]);
    const pub = createPublicKey(cert.publicKey.export({ format: "pem", type: "spki" }));
    assert.equal(pub.asymmetricKeyType, "ec");
    assert.equal(pub.asymmetricKeyDetails?.namedCurve, "prime256v1");
    const parsed = new x509.X509Certificate(certResource.outputs.certPem);
    const ku = parsed.getExtension(x509.KeyUsagesExtension)!;
    assert.equal(ku.usages, x509.KeyUsageFlags.digitalSignature);
  });

  it("stores tls.crt (leaf + issuer), tls.key and ca.crt (the root) in a kubernetes.io/tls Secret that chains", () => {
    const secret = object(resources, "Secret", "mesh-identity-api", "shop");
    assert.equal(secret.inputs.type, "kubernetes.io/tls");
    const chain = secret.inputs.stringData["tls.crt"].match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g);
    assert.equal(chain.length, 2);
    const [leaf, issuer] = chain.map((pem: string) => new X509Certificate(pem));
    const root = new X509Certificate(secret.inputs.stringData["ca.crt"]);
    assert.ok(leaf.verify(issuer.publicKey), "leaf signed by the issuer");
    assert.ok(issuer.verify(root.publicKey), "issuer signed by the root");
    assert.ok(issuer.ca && root.ca);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(secret.inputs.stringData["tls.key"])));
  });

  it("keeps private keys secret: Pulumi secrets only, never in a ConfigMap, an annotation or a plain input", () => {
    const secret = object(resources, "Secret", "mesh-identity-api", "shop");
    const secretAt = (r: { secretInputs: string[] }, path: string) => r.secretInputs.some((p) => path === p || path.startsWith(p + "."));
    assert.ok(secretAt(secret, "stringData.tls.key"), `tls.key must arrive as a secret, got ${secret.secretInputs}`);
    for (const r of resources) {
      if (!r.type.startsWith("kubernetes:")) continue;
      const plain = JSON.stringify(r.inputs, (k, v) => (r.type.endsWith("Secret") && k === "stringData" ? undefined : v));
      assert.ok(!/PRIVATE KEY/.test(plain), `${r.type} ${r.name} carries a private key outside Secret data`);
    }
    for (const r of resources.filter((x) => x.type === "tls:index/certRequest:CertRequest" || x.type === "tls:index/locallySignedCert:LocallySignedCert")) {
      const keyFields = Object.keys(r.inputs).filter((k) => /privateKeyPem/i.test(k));
      for (const f of keyFields) assert.ok(secretAt(r, f), `${r.name}.${f} is a secret`);
    }
  });

  it("renews on a schedule: key, CSR and leaf carry a replacementTrigger; the Secret keeps its name and is updated in place", () => {
    for (const type of ["PrivateKey", "CertRequest", "LocallySignedCert"]) {
      const r = find(resources, type, `api-identity-${{ PrivateKey: "key", CertRequest: "csr", LocallySignedCert: "cert" }[type]}`);
      assert.match(String(r.replacementTrigger), /^\d+$/, `${type} has a generation trigger`);
    }
    const secret = find(resources, "Secret", "api-identity-secret");
    assert.equal(secret.replacementTrigger, undefined);
    assert.equal(secret.inputs.metadata.name, "mesh-identity-api");
    assert.match(String(exported.apiCertificateRenewsAt), /^\d{4}-\d\d-\d\dT/);
  });

  it("guards the root: protected on request, and edits of its settings are ignored rather than replacing it", () => {
    const root = find(resources, "SelfSignedCert", "mesh-ca-root");
    assert.ok(root.ignoreChanges.includes("validityPeriodHours") && root.ignoreChanges.includes("subject"));
    assert.equal(root.replacementTrigger, undefined, "the root never renews by itself");
    assert.deepEqual(root.inputs.allowedUses, ["cert_signing", "crl_signing", "digital_signature"]);
    const issuer = find(resources, "LocallySignedCert", "mesh-ca-issuer");
    assert.equal(issuer.inputs.isCaCertificate, true);
    assert.equal(issuer.inputs.maxPathLength, 0);
  });

  it("runs the node proxy as an unprivileged DaemonSet with its own identity, no API access, no extra tolerations, a rollout sized to the cluster", () => {
    const daemonSet = object(resources, "DaemonSet", "mesh-proxy", "mesh-system").inputs.spec;
    const ds = daemonSet.template.spec;
    assert.equal(ds.hostNetwork, undefined);
    assert.equal(ds.serviceAccountName, "mesh-proxy");
    assert.equal(ds.containers[0].securityContext.runAsUser, 1337);
    assert.equal(ds.containers[0].restartPolicy, undefined);
    // It reads nothing from the API server: no token, no (Cluster)Role.
    assert.equal(ds.automountServiceAccountToken, false);
    assert.equal(object(resources, "ServiceAccount", "mesh-proxy", "mesh-system").inputs.automountServiceAccountToken, false);
    assert.deepEqual(resources.filter((r) => /Role/.test(r.inputs.kind ?? "")).map((r) => r.name), []);
    assert.equal(ds.tolerations, undefined, "only the node conditions the DaemonSet controller tolerates by itself");
    assert.equal(daemonSet.updateStrategy.rollingUpdate.maxUnavailable, "10%");
    object(resources, "Secret", "mesh-identity-mesh-proxy", "mesh-system");
  });

  it("exports the mode, the proxy image, the trust bundle and the identities", async () => {
    const { valueOf } = await import("../support/pulumi-mocks");
    assert.equal(await valueOf(exported.mode), "strict");
    assert.equal(await valueOf(exported.proxyImageRef), EXAMPLE_PROXY_IMAGE);
    assert.match(await valueOf(exported.trustBundle), /BEGIN CERTIFICATE/);
    assert.deepEqual(exported.identities, {
      api: "spiffe://cluster.local/ns/shop/sa/api",
      web: "spiffe://cluster.local/ns/shop/sa/web",
      reports: "spiffe://cluster.local/ns/shop/sa/reports",
    });
    assert.equal(exported.apiUrl, "http://api.shop.svc.cluster.local:8080/");
  });
});

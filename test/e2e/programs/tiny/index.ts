// The harness's own fixture program: plain @pulumi/kubernetes objects (no mesh) and a @pulumi/tls
// CA + leaf, enough to exercise the engine stand-in and the pod runtime on their own: an echo
// Deployment with two replicas behind a Service, a client Deployment, a Secret and a ConfigMap
// mounted as volumes (one of them projected), and an HTTP readiness probe.
import * as pulumi from "@pulumi/pulumi";
import * as k8s from "@pulumi/kubernetes";
import * as tls from "@pulumi/tls";

const config = new pulumi.Config();
const text = config.get("text") ?? "hello from tiny";

const caKey = new tls.PrivateKey("ca-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
const ca = new tls.SelfSignedCert("ca", {
  privateKeyPem: caKey.privateKeyPem,
  subject: { commonName: "tiny root", organization: "e2e" },
  isCaCertificate: true,
  allowedUses: ["cert_signing", "crl_signing"],
  validityPeriodHours: 24,
});
const leafKey = new tls.PrivateKey("leaf-key", { algorithm: "ECDSA", ecdsaCurve: "P256" });
const csr = new tls.CertRequest("leaf-csr", {
  privateKeyPem: leafKey.privateKeyPem,
  subject: { commonName: "echo" },
  uris: ["spiffe://tiny.local/ns/tiny/sa/echo"],
  dnsNames: ["echo.tiny.svc"],
});
const leaf = new tls.LocallySignedCert("leaf", {
  certRequestPem: csr.certRequestPem,
  caCertPem: ca.certPem,
  caPrivateKeyPem: caKey.privateKeyPem,
  allowedUses: ["digital_signature", "server_auth", "client_auth"],
  validityPeriodHours: 2,
});

const ns = new k8s.core.v1.Namespace("tiny", { metadata: { name: "tiny" } });
const namespace = ns.metadata.name;
new k8s.core.v1.Secret("echo-tls", {
  metadata: { name: "echo-tls", namespace },
  type: "kubernetes.io/tls",
  stringData: { "tls.crt": leaf.certPem, "tls.key": leafKey.privateKeyPem, "ca.crt": ca.certPem },
});
new k8s.core.v1.ConfigMap("echo-config", { metadata: { name: "echo-config", namespace }, data: { "text.txt": text } });

const echoLabels = { app: "echo" };
new k8s.apps.v1.Deployment("echo", {
  metadata: { name: "echo", namespace },
  spec: {
    replicas: 2,
    selector: { matchLabels: echoLabels },
    template: {
      metadata: { labels: echoLabels },
      spec: {
        securityContext: { fsGroup: 2000 },
        containers: [
          {
            name: "echo",
            image: "hashicorp/http-echo:1.0",
            args: ["-listen=:8080", `-text=${text}`],
            ports: [{ name: "http", containerPort: 8080 }],
            readinessProbe: { httpGet: { path: "/health", port: "http" } },
            securityContext: { runAsUser: 4000, runAsNonRoot: true },
            volumeMounts: [
              { name: "tls", mountPath: "/etc/tls", readOnly: true },
              { name: "all", mountPath: "/etc/all", readOnly: true },
            ],
          },
        ],
        volumes: [
          { name: "tls", secret: { secretName: "echo-tls", defaultMode: 0o440 } },
          {
            name: "all",
            projected: {
              sources: [
                { configMap: { name: "echo-config" } },
                { secret: { name: "echo-tls", items: [{ key: "ca.crt", path: "bundle/ca.pem" }] } },
              ],
            },
          },
        ],
      },
    },
  },
});
new k8s.core.v1.Service("echo", {
  metadata: { name: "echo", namespace },
  spec: { selector: echoLabels, ports: [{ name: "http", port: 80, targetPort: "http" }] },
});

const clientLabels = { app: "client" };
new k8s.apps.v1.Deployment("client", {
  metadata: { name: "client", namespace },
  spec: {
    selector: { matchLabels: clientLabels },
    template: {
      metadata: { labels: clientLabels },
      spec: { containers: [{ name: "curl", image: "curlimages/curl:8.11.1", command: ["sleep", "infinity"] }] },
    },
  },
});

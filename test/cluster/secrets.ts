// Where a private key may appear in what the engine stores and prints: only inside a Pulumi
// secret (the `4dabf…` signature object, whose value the passphrase provider encrypts).
export const PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----/;
export const SIG = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

/** Paths of the strings holding a private key that are not inside a secret. */
export function keysInClear(v: any, at = "$"): string[] {
  if (typeof v === "string") return PRIVATE_KEY.test(v) ? [at] : [];
  if (v === null || typeof v !== "object") return [];
  if (v[SIG] === SECRET_SIG) return [];
  return Object.entries(v).flatMap(([k, x]) => keysInClear(x, `${at}.${k}`));
}

/** How many secrets hold a private key. */
export function keysInSecrets(v: any): number {
  if (v === null || typeof v !== "object") return 0;
  if (v[SIG] === SECRET_SIG) return PRIVATE_KEY.test(JSON.stringify(v)) ? 1 : 0;
  return Object.values(v).reduce((n: number, x) => n + keysInSecrets(x), 0);
}

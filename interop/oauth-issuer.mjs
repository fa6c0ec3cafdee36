// A real OpenID Connect issuer for tests/test_oauth.py: oauth2-mock-server on 127.0.0.1, with a fresh RS256 key.
//
//   node interop/oauth-issuer.mjs [--well-known /.well-known/oauth-authorization-server]
//
// Prints one JSON line, {"issuer": URL, "kid": KEY_ID}, once it listens. Then each JSON line read on stdin
// is a request, answered by one JSON line on stdout:
//   {"claims": {...}, "forge": false}  -> {"token": JWT}: a token signed by the issuer, its claims (iss, iat,
//                                          exp, nbf) overridden by `claims` (null removes one); with "forge":
//                                          true, signed instead by another key that claims the same key id;
//                                          with "kid", naming that key id in the header instead of its own
//   {"hits": true}                     -> {"hits": {PATH: COUNT}}: the requests the issuer has answered
// It stops when stdin closes.
import { createInterface } from 'node:readline';
import { HttpServer, OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const HOST = '127.0.0.1';
const flag = process.argv.indexOf('--well-known');
const endpoints = flag > 0 ? { wellKnownDocument: process.argv[flag + 1] } : undefined;

const issuer = new OAuth2Issuer();
const { kid } = await issuer.keys.generate('RS256');
const forger = new OAuth2Issuer();
await forger.keys.generate('RS256', { kid }); // another key pair under the same key id: a forgery

const service = new OAuth2Service(issuer, endpoints);
const hits = {};
const server = new HttpServer((req, res) => {
  const path = new URL(req.url ?? '/', `http://${HOST}`).pathname;
  hits[path] = (hits[path] ?? 0) + 1;
  return service.requestHandler(req, res);
});
await server.start(0, HOST);
issuer.url = forger.url = `http://${HOST}:${server.address().port}`;

async function answer(request) {
  if (request.hits) return { hits };
  const signer = request.forge ? forger : issuer;
  const token = await signer.buildToken({
    scopesOrTransform: (header, payload) => {
      if (request.kid) header.kid = request.kid;
      for (const [name, value] of Object.entries(request.claims ?? {})) {
        if (value === null) delete payload[name];
        else payload[name] = value;
      }
    },
  });
  return { token };
}

console.log(JSON.stringify({ issuer: issuer.url, kid }));
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  try {
    console.log(JSON.stringify(await answer(JSON.parse(line))));
  } catch (error) {
    console.log(JSON.stringify({ error: String(error) }));
  }
}
await server.stop();

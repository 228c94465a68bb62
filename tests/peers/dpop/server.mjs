// An authorization server (oidc-provider, client_credentials, DPoP-bound JWT access
// tokens, DPoP nonces required) and a resource server that checks the access token, the
// DPoP proof, `ath` and `cnf.jkt` with oauth4webapi. Both on one HTTPS port, chosen by
// Host. A peer for Excalibur's e2e tests, not Excalibur code.
//
// usage: node server.mjs PORT CERT_PEM KEY_PEM AUTH_HOST API_HOST CLIENT_SECRET
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

import * as oauth from 'oauth4webapi';
import Provider from 'oidc-provider';

const [port, certFile, keyFile, authHost, apiHost, clientSecret] = process.argv.slice(2);
const issuer = `https://${authHost}`;
const audience = `https://${apiHost}/`;
const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'as-1', alg: 'ES256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'excalibur-dpop',
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    token_endpoint_auth_method: 'client_secret_post',
  }],
  jwks: { keys: [jwk] },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'read',
        audience,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});
const callback = provider.callback();

// The resource server's view of the AS: its issuer and keys, read in process.
const as = { issuer, jwks_uri: `${issuer}/jwks` };
const jwksFetch = async () => new Response(JSON.stringify({ keys: [{ ...privateKey.export({ format: 'jwk' }), d: undefined, kid: 'as-1', alg: 'ES256', use: 'sig' }] }),
  { headers: { 'content-type': 'application/json' } });

async function resource(req, res) {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  const request = new Request(`https://${apiHost}${req.url}`, { method: req.method, headers });
  try {
    const claims = await oauth.validateJwtAccessToken(as, request, audience, {
      [oauth.customFetch]: jwksFetch,
      requireDPoP: true,
    });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, client_id: claims.client_id, jkt: claims.cnf?.jkt, scope: claims.scope }));
  } catch (e) {
    res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'DPoP error="invalid_token"' });
    res.end(JSON.stringify({ error: 'invalid_token', detail: String(e.message ?? e), code: e.code }));
  }
}

https.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, (req, res) => {
  const host = (req.headers.host ?? '').split(':')[0];
  if (host === apiHost) return void resource(req, res);
  return callback(req, res);
}).listen(Number(port), '127.0.0.1');

// Runs panva's oidc-provider (a certified OpenID Provider with a FAPI 2.0
// profile) over HTTPS for Cloakroom's Go integration tests. TEST SUPPORT ONLY.
//
//   node provider.mjs CONFIG.json      (or OIDC_PROVIDER_CONFIG=CONFIG.json)
//
// The JSON file is written by internal/oidctest/nodeop; its fields are listed
// in that package's config.go. Logs go to stderr; once both listeners accept
// connections one line "ready <issuer>" is printed on stdout.
//
// Two HTTPS listeners serve the same provider:
//   - the issuer's port, for browsers: it never asks for a client certificate;
//   - with mtls on, a second port that requests one (requestCert, not
//     rejectUnauthorized: the provider decides what a certificate is worth,
//     see mtlsHelpers).
//     Discovery lists it as mtls_endpoint_aliases (RFC 8705 section 5), so a
//     client that ignores the aliases has no certificate seen at all.
//
// Deliberate departures from the library's defaults, each for the tests:
//   - outgoing requests (jwks_uri, back-channel logout) may reach 127.0.0.1:
//     every party of a test listens there, so the library's protection against
//     requests to special-use addresses is switched off;
//   - a refresh token is issued whenever the client may use the refresh_token
//     grant, without the offline_access + prompt=consent dance;
//   - ID tokens carry the profile and email claims (conformIdTokenClaims off);
//   - with fapi2 on, the provider is configured as a FAPI 2.0 Security Profile
//     authorization server: PAR required, only private_key_jwt and the mTLS
//     methods, PS256/ES256/EdDSA only, and every client must have
//     sender-constrained tokens (dpop_bound_access_tokens or
//     tls_client_certificate_bound_access_tokens) or the start fails;
//   - static clients are validated at start (the library waits for their
//     first use), so a bad registration fails the start with its reason;
//   - with a resource configured, every access token is a JWT for it
//     (RFC 9068, with cnf when bound), else tokens are opaque.
// The login page (devInteractions) accepts any login name and password; the
// name becomes the "sub". A consent page follows it.
//
// oidc-provider 9.x names Node.js 22 LTS as its minimum and prints an
// "Unsupported runtime" warning on Node.js 20; everything used here works
// on 20 (the Go self-tests run on it).

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

const FAPI_ALGS = ['PS256', 'ES256', 'EdDSA'];

const routes = {
  authorization: '/auth',
  end_session: '/session/end',
  introspection: '/token/introspection',
  jwks: '/jwks',
  pushed_authorization_request: '/request',
  revocation: '/token/revocation',
  token: '/token',
  userinfo: '/me',
};

function log(...args) {
  console.error('oidc-provider:', ...args);
}

function fail(message) {
  log(message);
  process.exit(1);
}

function loadConfig() {
  const path = process.argv[2] || process.env.OIDC_PROVIDER_CONFIG;
  if (!path) {
    fail('usage: node provider.mjs CONFIG.json (or set OIDC_PROVIDER_CONFIG)');
  }
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return fail(`reading config ${path}: ${err.message}`);
  }
}

function listen(server, host, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address().port);
    });
  });
}

// signingKeys makes the provider's own keys: RSA for PS256 (and RS256) and
// P-256 for ES256, new on every start.
function signingKeys() {
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const ed = crypto.generateKeyPairSync('ed25519').privateKey;
  return {
    keys: [
      { ...rsa.export({ format: 'jwk' }), kid: 'rsa-1', use: 'sig' },
      { ...ec.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig' },
      { ...ed.export({ format: 'jwk' }), kid: 'ed-1', use: 'sig' },
    ],
  };
}

// dnAttributes splits an RFC 4514 distinguished name ("CN=a,O=b") or the
// newline-separated form node:crypto uses for X509Certificate.subject into a
// sorted list of "TYPE=value" strings, so that the two compare regardless of
// RDN order. Test certificates use plain values (no escaped commas).
function dnAttributes(dn) {
  return dn
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      const i = s.indexOf('=');
      return `${s.slice(0, i).trim().toUpperCase()}=${s.slice(i + 1).trim()}`;
    })
    .sort();
}

function sameDN(a, b) {
  const x = dnAttributes(a);
  const y = dnAttributes(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

// sanValues lists the certificate's subjectAltName entries of one kind
// ("DNS", "URI", "IP Address", "email").
function sanValues(cert, kind) {
  return (cert.subjectAltName || '')
    .split(', ')
    .filter((s) => s.startsWith(`${kind}:`))
    .map((s) => s.slice(kind.length + 1));
}

// mtlsHelpers reads the client certificate from the TLS socket. The mTLS
// listener has no `ca` option, so it sends no list of acceptable CAs and
// clients (Go's crypto/tls included) present self-signed certificates too;
// certificateAuthorized checks instead that the certificate was issued by
// the test CA directly and is within its validity period.
function mtlsHelpers(caPem) {
  const ca = new crypto.X509Certificate(caPem);
  return {
    getCertificate(ctx) {
      const socket = ctx.socket;
      if (typeof socket.getPeerX509Certificate !== 'function') {
        return undefined;
      }
      return socket.getPeerX509Certificate();
    },
    certificateAuthorized(ctx) {
      const cert = ctx.socket.getPeerX509Certificate();
      const now = Date.now();
      return !!cert
        && cert.checkIssued(ca)
        && cert.verify(ca.publicKey)
        && Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
    },
    certificateSubjectMatches(ctx, property, expected) {
      const cert = ctx.socket.getPeerX509Certificate();
      switch (property) {
        case 'tls_client_auth_subject_dn':
          return sameDN(cert.subject, expected);
        case 'tls_client_auth_san_dns':
          return sanValues(cert, 'DNS').includes(expected);
        case 'tls_client_auth_san_uri':
          return sanValues(cert, 'URI').includes(expected);
        case 'tls_client_auth_san_ip':
          return sanValues(cert, 'IP Address').includes(expected);
        case 'tls_client_auth_san_email':
          return sanValues(cert, 'email').includes(expected);
        default:
          throw new errors.InvalidClientAuth(`unsupported certificate subject property ${property}`);
      }
    },
  };
}

function checkFapiClients(clients) {
  // The library itself refuses clients with other authentication methods
  // (clientAuthMethods below); it leaves sender-constraining to the deployer.
  for (const c of clients) {
    if (!c.dpop_bound_access_tokens && !c.tls_client_certificate_bound_access_tokens) {
      fail(`fapi2: client ${c.client_id}: needs dpop_bound_access_tokens or tls_client_certificate_bound_access_tokens`);
    }
  }
}

function accountFinder(accounts) {
  return async (ctx, id) => {
    const known = accounts[id] || {};
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: known.email || `${id}@example.test`,
          email_verified: true,
          name: known.name || id,
        };
      },
    };
  };
}

async function main() {
  const cfg = loadConfig();
  const host = cfg.host || '127.0.0.1';
  const f = cfg.features || {};
  const clients = cfg.clients || [];
  const ttl = cfg.ttl || {};

  const tls = {
    cert: readFileSync(cfg.tls.cert),
    key: readFileSync(cfg.tls.key),
    ca: readFileSync(cfg.tls.ca),
  };

  // Listen first so that the issuer and the mTLS origin, port 0 included,
  // are known when the provider is built; requests wait for the handler.
  let handler = (req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const serve = (req, res) => handler(req, res);
  const main = https.createServer({ cert: tls.cert, key: tls.key }, serve);
  const port = await listen(main, host, cfg.port || 0);
  const issuer = `https://${host}:${port}`;

  let mtlsOrigin;
  let mtlsServer;
  if (f.mtls) {
    mtlsServer = https.createServer({
      cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: false,
    }, serve);
    const mtlsPort = await listen(mtlsServer, host, cfg.mtlsPort || 0);
    mtlsOrigin = `https://${host}:${mtlsPort}`;
  }

  if (f.fapi2) {
    checkFapiClients(clients);
  }

  const scopes = ['openid', 'offline_access', 'profile', 'email'];
  if (cfg.resource) {
    for (const s of (cfg.resource.scope || '').split(' ').filter(Boolean)) {
      scopes.push(s);
    }
  }

  const discovery = {};
  if (mtlsOrigin) {
    const aliases = {
      token_endpoint: routes.token,
      userinfo_endpoint: routes.userinfo,
    };
    if (f.par) aliases.pushed_authorization_request_endpoint = routes.pushed_authorization_request;
    if (f.revocation) aliases.revocation_endpoint = routes.revocation;
    if (f.introspection) aliases.introspection_endpoint = routes.introspection;
    discovery.mtls_endpoint_aliases = Object.fromEntries(
      Object.entries(aliases).map(([k, path]) => [k, mtlsOrigin + path]),
    );
  }

  const configuration = {
    clients,
    jwks: signingKeys(),
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    findAccount: accountFinder(cfg.accounts || {}),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes,
    routes,
    discovery,
    responseTypes: ['code'],
    conformIdTokenClaims: false,
    rotateRefreshToken: true,
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: ttl.accessToken || 300,
      IdToken: ttl.idToken || 300,
      RefreshToken: ttl.refreshToken || 3600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      id_token_signed_response_alg: 'PS256',
      response_types: ['code'],
    },
    // Every party of a test is on 127.0.0.1; see the header comment.
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: !!f.clientCredentials },
      introspection: { enabled: !!f.introspection },
      revocation: { enabled: !!f.revocation },
      rpInitiatedLogout: { enabled: true },
      backchannelLogout: { enabled: !!f.backchannelLogout },
      pushedAuthorizationRequests: {
        enabled: !!f.par || !!f.fapi2,
        requirePushedAuthorizationRequests: !!f.requirePar || !!f.fapi2,
      },
      dPoP: f.dpop
        ? {
          enabled: true,
          nonceSecret: crypto.randomBytes(32),
          requireNonce: () => !!f.dpopNonce,
        }
        : { enabled: false },
      mTLS: f.mtls
        ? {
          enabled: true,
          certificateBoundAccessTokens: true,
          tlsClientAuth: true,
          selfSignedTlsClientAuth: true,
          ...mtlsHelpers(tls.ca),
        }
        : { enabled: false },
      fapi: f.fapi2 ? { enabled: true, profile: '2.0' } : { enabled: false },
    },
  };

  const mtlsMethods = f.mtls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : [];
  configuration.clientAuthMethods = [
    'none', 'client_secret_basic', 'client_secret_post', 'client_secret_jwt', 'private_key_jwt',
    ...mtlsMethods,
  ];
  if (f.fapi2) {
    configuration.clientAuthMethods = ['private_key_jwt', ...mtlsMethods];
    configuration.enabledJWA = {
      clientAuthSigningAlgValues: FAPI_ALGS,
      idTokenSigningAlgValues: FAPI_ALGS,
      requestObjectSigningAlgValues: FAPI_ALGS,
      dPoPSigningAlgValues: FAPI_ALGS,
    };
  }

  if (cfg.resource) {
    const { uri } = cfg.resource;
    configuration.features.resourceIndicators = {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf || uri,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator) => {
        if (indicator !== uri) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: cfg.resource.scope || '',
          audience: uri,
          accessTokenFormat: 'jwt',
          accessTokenTTL: ttl.accessToken || 300,
          jwt: { sign: { alg: 'PS256' } },
        };
      },
    };
  }

  let provider;
  try {
    provider = new Provider(issuer, configuration);
  } catch (err) {
    return fail(`configuration: ${err.message}`);
  }
  // Static clients are otherwise validated on first use: a bad registration
  // should fail the start, not the first token request.
  for (const c of clients) {
    try {
      await provider.Client.find(c.client_id);
    } catch (err) {
      return fail(`client ${c.client_id}: ${err.message}: ${err.error_description || ''}`);
    }
  }
  provider.on('server_error', (ctx, err) => log('server_error', ctx.method, ctx.path, err));
  for (const event of ['grant.error', 'authorization.error', 'pushed_authorization_request.error',
    'introspection.error', 'revocation.error', 'end_session.error', 'backchannel.error']) {
    provider.on(event, (ctx, err) => log(event, ctx.method, ctx.path, `${err.message}: ${err.error_description || ''}`, err.error_detail || ''));
  }
  handler = provider.callback();

  const stop = () => {
    main.close();
    mtlsServer?.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  log(`listening on ${issuer}${mtlsOrigin ? ` (mTLS ${mtlsOrigin})` : ''}`);
  process.stdout.write(`ready ${issuer}\n`);
  return undefined;
}

main().catch((err) => fail(err.stack || String(err)));

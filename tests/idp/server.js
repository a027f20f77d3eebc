// tapline test identity provider: a real oidc-provider with a few test-only admin routes.
// See README.md. stdout carries exactly one line (the ready line); everything else goes to stderr.

// oidc-provider prints its NOTICE lines with console.info (stdout); keep stdout clean.
console.log = console.info = console.debug = console.error;

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const DEFAULT_RESOURCE = 'https://api.tapline.test';
const DEFAULT_TOKEN_TTL = 3600;
// The audience Azure workload identity assertions carry (the projected service-account token).
const WORKLOAD_IDENTITY_AUDIENCE = 'api://AzureADTokenExchange';
// The one person who "signs in" in the interactive flows (device code, authorization code).
const TEST_ACCOUNT = 'test-user';
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];
const TOKEN_ALIASES = new Set(['/v1/auth/oauth/token']); // Kognic's token path

// ---------------------------------------------------------------------------------------------
// Test state (all in memory, lost on exit).
const store = new Map(); // oidc-provider adapter storage: "Model:id" -> { payload, expiresAt }
const tokenTtl = new Map(); // client_id -> access-token lifetime in seconds
const issued = new Map(); // client_id -> number of successful token responses
const faults = new Map(); // fault key -> [{status?, body?, headers?, hang_ms?}, ...]
const arrivals = new Map(); // fault key -> [ms since epoch, ...]
const deviceInterval = new Map(); // client_id -> `interval` advertised by /device/auth (seconds)
const assertions = new Map(); // client_id -> [{jti, aud, iat, exp}] of accepted client assertions
const refreshes = new Map(); // client_id -> number of successful refresh_token grants

// Minimal in-memory adapter (no LRU eviction, unlike oidc-provider's built-in one).
class MemoryAdapter {
  constructor(model) { this.model = model; }

  key(id) { return `${this.model}:${id}`; }

  async upsert(id, payload, expiresIn) {
    const expiresAt = expiresIn ? Date.now() + expiresIn * 1000 : undefined;
    store.set(this.key(id), { payload, expiresAt });
  }

  async find(id) {
    const entry = store.get(this.key(id));
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt < Date.now()) {
      store.delete(this.key(id));
      return undefined;
    }
    return entry.payload;
  }

  async consume(id) {
    const entry = store.get(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) { store.delete(this.key(id)); }

  // Sessions are looked up by uid, device codes by user code; a scan is fine for a test server.
  findBy(field, value) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload[field] === value) {
        return this.find(key.slice(this.model.length + 1));
      }
    }
    return undefined;
  }

  async findByUid(uid) { return this.findBy('uid', uid); }

  async findByUserCode(userCode) { return this.findBy('userCode', userCode); }

  // Test-only: used by POST /__test/refresh-tokens/<client_id>/revoke.
  async revokeByClientId(clientId) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.clientId === clientId) store.delete(key);
    }
  }

  async revokeByGrantId(grantId) {
    for (const [key, entry] of store) {
      if (key.startsWith(`${this.model}:`) && entry.payload.grantId === grantId) store.delete(key);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Provider configuration.
function signingJwks() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' }] };
}

function createProvider(issuer) {
  const provider = new Provider(issuer, {
    adapter: MemoryAdapter,
    jwks: signingJwks(),
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    clients: [],
    clientBasedCORS: () => true,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // A request without `resource` still gets a JWT for the default API.
        defaultResource: () => DEFAULT_RESOURCE,
        // Device code, authorization code and refresh grants: issue the token for the API the
        // login was granted for, even when `openid` was asked for too (else it would be an opaque
        // userinfo token), as Entra ID does.
        useGrantedResource: () => true,
        // Any absolute resource URI is accepted and becomes the token's `aud`. The resource
        // server "supports" exactly the scopes requested, so arbitrary scope strings
        // (e.g. `api.read api.write`, `https://api.tapline.test/.default`) are granted as is.
        // In the device_code and authorization_code grants the scopes come from the code, not
        // from a `scope` parameter.
        // OIDC scopes (openid, offline_access, ...) are the provider's own, never the API's.
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          audience: resourceIndicator,
          scope: (ctx.oidc.params.scope
            || ctx.oidc.entities.DeviceCode?.scope
            || ctx.oidc.entities.AuthorizationCode?.scope
            || '').split(' ').filter((scope) => !OIDC_SCOPES.includes(scope)).join(' '),
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
      // Device authorization grant (RFC 8628): /device/auth; approved through the test-only
      // /__test/device/approve route instead of the HTML pages.
      deviceFlow: { enabled: true },
    },
    // Authorization code flow: the interaction pages are replaced by a test-only route that
    // signs TEST_ACCOUNT in and consents at once (see interactions() below).
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // A refresh token for every client allowed the refresh_token grant that asked for
    // offline_access. oidc-provider drops offline_access from an authorization request without
    // prompt=consent (OIDC Core 11); Entra ID does not, so public native clients get one anyway.
    issueRefreshToken: async (ctx, client, code) => client.grantTypeAllowed('refresh_token')
      && (code.scopes.has('offline_access') || client.applicationType === 'native'),
    ttl: {
      ClientCredentials: (ctx, token, client) => tokenTtl.get(client.clientId) ?? DEFAULT_TOKEN_TTL,
      AccessToken: (ctx, token, client) => tokenTtl.get(client.clientId) ?? DEFAULT_TOKEN_TTL,
    },
  });

  // Client assertions (private_key_jwt): besides the issuer and `<issuer>/token`, also accept
  // the URL the client actually posted to (aliases and /fault/<key>/ prefixes).
  const proto = provider.OIDCContext.prototype;
  const expectedAudience = proto.clientJwtAuthExpectedAudience;
  proto.clientJwtAuthExpectedAudience = function clientJwtAuthExpectedAudience() {
    const accepted = expectedAudience.call(this);
    const original = new URL(this.ctx.originalUrl, this.ctx.href);
    original.search = '';
    accepted.add(original.href);
    accepted.add(new URL(original.pathname, this.issuer).href);
    // Azure workload identity: the assertion is the projected service-account token, whose
    // audience is Entra ID's token exchange audience, not the token URL.
    accepted.add(WORKLOAD_IDENTITY_AUDIENCE);
    return accepted;
  };

  provider.on('grant.success', (ctx) => {
    const id = ctx.oidc.client?.clientId;
    if (!id) return;
    issued.set(id, (issued.get(id) ?? 0) + 1);
    if (ctx.oidc.params.grant_type === 'refresh_token') refreshes.set(id, (refreshes.get(id) ?? 0) + 1);
    // Evidence of which client assertion was used (the tests check that a replaced assertion
    // file is read again): its jti and times, never the assertion itself.
    const assertion = ctx.oidc.params.client_assertion;
    if (assertion) {
      const claims = JSON.parse(Buffer.from(assertion.split('.')[1], 'base64url').toString('utf8'));
      if (!assertions.has(id)) assertions.set(id, []);
      assertions.get(id).push({ jti: claims.jti, aud: claims.aud, iat: claims.iat, exp: claims.exp });
    }
  });
  // Token errors carry their real reason only in error_detail; log it (never secrets) to stderr.
  provider.on('grant.error', (ctx, err) => {
    console.error(`idp grant.error ${ctx.oidc?.client?.clientId ?? '-'}: ${err.error}: ${err.error_detail ?? err.error_description}`);
  });
  provider.on('server_error', (ctx, err) => console.error('idp server_error:', err));

  return provider;
}

// ---------------------------------------------------------------------------------------------
// Koa middleware, run before oidc-provider's own routes (in registration order).
const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function json(ctx, status, body) {
  ctx.status = status;
  ctx.body = body;
}

async function readJson(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

// Client metadata accepted by POST /__test/clients -> oidc-provider client metadata.
function clientMetadata(body) {
  const grantTypes = body.grant_types ?? ['client_credentials'];
  const metadata = {
    client_id: body.client_id,
    token_endpoint_auth_method: body.token_endpoint_auth_method ?? 'client_secret_basic',
    grant_types: grantTypes,
    response_types: grantTypes.includes('authorization_code') ? ['code'] : [],
    redirect_uris: body.redirect_uris ?? [],
  };
  if (body.application_type !== undefined) metadata.application_type = body.application_type;
  if (body.client_secret !== undefined) metadata.client_secret = body.client_secret;
  if (body.jwks !== undefined) metadata.jwks = body.jwks;
  return metadata;
}

// /__test/... admin routes.
function adminRoutes(provider) {
  const clientAdapter = new MemoryAdapter('Client');
  return async (ctx, next) => {
    if (!ctx.path.startsWith('/__test/')) return next();
    const parts = ctx.path.split('/').slice(2).map(decodeURIComponent); // ['clients'] etc.
    const route = `${ctx.method} ${parts[0]}`;
    try {
      if (route === 'POST clients' && parts.length === 1) {
        const body = await readJson(ctx);
        if (typeof body.client_id !== 'string' || !body.client_id) {
          return json(ctx, 400, { error: 'client_id is required' });
        }
        const metadata = clientMetadata(body);
        await provider.Client.validate(metadata);
        await clientAdapter.upsert(metadata.client_id, metadata);
        tokenTtl.set(metadata.client_id, body.token_ttl ?? DEFAULT_TOKEN_TTL);
        if (body.device_interval !== undefined) deviceInterval.set(metadata.client_id, body.device_interval);
        return json(ctx, 201, { client_id: metadata.client_id });
      }
      if (route === 'GET counts' && parts.length === 2) {
        return json(ctx, 200, {
          issued: issued.get(parts[1]) ?? 0,
          refreshed: refreshes.get(parts[1]) ?? 0,
        });
      }
      if (route === 'GET assertions' && parts.length === 2) {
        return json(ctx, 200, { assertions: assertions.get(parts[1]) ?? [] });
      }
      if (route === 'POST device' && parts.length === 2 && ['approve', 'deny'].includes(parts[1])) {
        const body = await readJson(ctx);
        return json(ctx, 200, await decideDeviceCode(provider, body.user_code, parts[1] === 'approve'));
      }
      if (route === 'POST refresh-tokens' && parts.length === 3 && parts[2] === 'revoke') {
        // Drops every refresh token of the client, as an admin revoking sessions would.
        await new MemoryAdapter('RefreshToken').revokeByClientId(parts[1]);
        return json(ctx, 200, { revoked: true });
      }
      if (route === 'POST faults' && parts.length === 2) {
        const body = await readJson(ctx);
        if (!Array.isArray(body.faults)) return json(ctx, 400, { error: 'faults must be an array' });
        const queue = faults.get(parts[1]) ?? [];
        queue.push(...body.faults);
        faults.set(parts[1], queue);
        return json(ctx, 200, { queued: queue.length });
      }
      if (route === 'DELETE faults' && parts.length === 2) {
        faults.delete(parts[1]);
        arrivals.delete(parts[1]);
        return json(ctx, 200, { cleared: true });
      }
      if (route === 'GET faults' && parts.length === 3 && parts[2] === 'arrivals') {
        return json(ctx, 200, { arrivals: arrivals.get(parts[1]) ?? [] });
      }
      return json(ctx, 404, { error: 'unknown admin route' });
    } catch (err) {
      return json(ctx, 400, { error: err.message, error_description: err.error_description });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Device flow (test only): approve or deny a pending device code by its user code, standing in
// for a person who opens the verification URI, signs in and consents.
async function decideDeviceCode(provider, userCode, approve) {
  const normalized = String(userCode ?? '').replace(/[^a-zA-Z]/g, '').toUpperCase();
  const code = await provider.DeviceCode.findByUserCode(normalized);
  if (!code) return { error: 'no pending device code with that user code' };
  if (!approve) {
    Object.assign(code, { error: 'access_denied', errorDescription: 'the test user denied the request' });
    await code.save();
    return { denied: true };
  }
  const requested = (code.params.scope ?? '').split(' ').filter(Boolean);
  const oidcScopes = requested.filter((scope) => OIDC_SCOPES.includes(scope));
  const apiScopes = requested.filter((scope) => !oidcScopes.includes(scope));
  const resource = code.params.resource ?? DEFAULT_RESOURCE;
  const grant = new provider.Grant({ accountId: TEST_ACCOUNT, clientId: code.clientId });
  grant.addOIDCScope(oidcScopes.join(' '));
  grant.addResourceScope(resource, apiScopes.join(' '));
  Object.assign(code, {
    accountId: TEST_ACCOUNT,
    authTime: Math.floor(Date.now() / 1000),
    grantId: await grant.save(),
    scope: requested.join(' '),
    resource,
  });
  await code.save();
  return { approved: true };
}

// The device authorization response carries no `interval` (clients default to 5 s); tests set a
// shorter one per client so polling tests stay fast.
async function advertiseDeviceInterval(ctx, next) {
  await next();
  if (ctx.path === '/device/auth' && ctx.body?.device_code && ctx.oidc?.client) {
    const interval = deviceInterval.get(ctx.oidc.client.clientId);
    if (interval !== undefined) ctx.body = { ...ctx.body, interval };
  }
}

// Authorization code flow (test only): every interaction signs TEST_ACCOUNT in, then consents to
// everything asked for, and redirects back to oidc-provider, which redirects to the client's
// redirect_uri. A test drives this with plain HTTP requests, carrying cookies like a browser.
function interactions(provider) {
  return async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!match || ctx.method !== 'GET') return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let result;
    if (details.prompt.name === 'login') {
      result = { login: { accountId: TEST_ACCOUNT } };
    } else {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
      const missing = details.prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      result = { consent: { grantId: await grant.save() } };
    }
    const target = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true });
    ctx.redirect(target);
    return undefined;
  };
}

// /fault/<key>/<rest>: record the arrival, then either serve the next queued fault or pass the
// request through as /<rest>.
async function faultInjection(ctx, next) {
  const match = /^\/fault\/([^/]+)(\/.*)?$/.exec(ctx.path);
  if (!match) return next();
  const key = decodeURIComponent(match[1]);
  if (!arrivals.has(key)) arrivals.set(key, []);
  arrivals.get(key).push(Date.now());

  const fault = faults.get(key)?.shift();
  if (fault?.hang_ms) {
    await sleep(fault.hang_ms);
    if (ctx.req.socket.destroyed) { // the client gave up; do not act on its request
      ctx.respond = false;
      return undefined;
    }
  }
  if (fault?.status !== undefined) {
    ctx.status = fault.status;
    ctx.set('content-type', 'application/json');
    ctx.set(fault.headers ?? {});
    ctx.body = typeof fault.body === 'string' ? fault.body : JSON.stringify(fault.body ?? {});
    return undefined;
  }
  ctx.path = match[2] ?? '/';
  return next();
}

// Path aliases for the token endpoint.
async function aliases(ctx, next) {
  if (TOKEN_ALIASES.has(ctx.path)) ctx.path = '/token';
  return next();
}

// ---------------------------------------------------------------------------------------------
// Startup and shutdown.
function shutdown() { process.exit(0); }
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
// Exit when the parent goes away: it holds our stdin open, EOF means it is gone.
process.stdin.on('end', shutdown);
process.stdin.on('close', shutdown);
process.stdin.on('error', shutdown);
process.stdin.resume();

let handler = (req, res) => { res.statusCode = 503; res.end(); };
const server = http.createServer((req, res) => handler(req, res));
server.listen(Number(process.env.IDP_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = createProvider(issuer);
  provider.use(adminRoutes(provider));
  provider.use(faultInjection);
  provider.use(aliases);
  provider.use(advertiseDeviceInterval);
  provider.use(interactions(provider));
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ ready: true, port, issuer })}\n`);
});
server.on('error', (err) => {
  console.error('idp failed to start:', err.message);
  process.exit(1);
});

// tapline test identity provider: a real oidc-provider with a few test-only admin routes.
// See README.md. stdout carries exactly one line (the ready line); everything else goes to stderr.

// oidc-provider prints its NOTICE lines with console.info (stdout); keep stdout clean.
console.log = console.info = console.debug = console.error;

import crypto from 'node:crypto';
import http from 'node:http';
import Provider from 'oidc-provider';

const DEFAULT_RESOURCE = 'https://api.tapline.test';
const DEFAULT_TOKEN_TTL = 3600;
const TOKEN_ALIASES = new Set(['/v1/auth/oauth/token']); // Kognic's token path

// ---------------------------------------------------------------------------------------------
// Test state (all in memory, lost on exit).
const store = new Map(); // oidc-provider adapter storage: "Model:id" -> { payload, expiresAt }
const tokenTtl = new Map(); // client_id -> access-token lifetime in seconds
const issued = new Map(); // client_id -> number of successful token responses
const faults = new Map(); // fault key -> [{status?, body?, headers?, hang_ms?}, ...]
const arrivals = new Map(); // fault key -> [ms since epoch, ...]

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

  // Only needed by flows we do not enable (sessions, device flow, grants).
  async findByUid() { return undefined; }

  async findByUserCode() { return undefined; }

  async revokeByGrantId() {}
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
        // Any absolute resource URI is accepted and becomes the token's `aud`. The resource
        // server "supports" exactly the scopes requested, so arbitrary scope strings
        // (e.g. `api.read api.write`, `https://api.tapline.test/.default`) are granted as is.
        getResourceServerInfo: (ctx, resourceIndicator) => ({
          audience: resourceIndicator,
          scope: ctx.oidc.params.scope || '',
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        }),
      },
    },
    ttl: {
      ClientCredentials: (ctx, token, client) => tokenTtl.get(client.clientId) ?? DEFAULT_TOKEN_TTL,
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
    return accepted;
  };

  provider.on('grant.success', (ctx) => {
    const id = ctx.oidc.client?.clientId;
    if (id) issued.set(id, (issued.get(id) ?? 0) + 1);
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
  const metadata = {
    client_id: body.client_id,
    token_endpoint_auth_method: body.token_endpoint_auth_method ?? 'client_secret_basic',
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  };
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
        return json(ctx, 201, { client_id: metadata.client_id });
      }
      if (route === 'GET counts' && parts.length === 2) {
        return json(ctx, 200, { issued: issued.get(parts[1]) ?? 0 });
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
  handler = provider.callback();
  process.stdout.write(`${JSON.stringify({ ready: true, port, issuer })}\n`);
});
server.on('error', (err) => {
  console.error('idp failed to start:', err.message);
  process.exit(1);
});

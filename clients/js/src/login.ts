// The example login service's HTTP API (examples/login): POST /login for a
// ticket, GET /gateway for a gateway to resume at. A game's own login
// service may differ: the Client only needs a Ticket and, to resume after a
// gateway died, a function that names a gateway.

import { LoginError } from './errors.js';
import type { GatewayAddress } from './transport.js';

/** What a login service returns: everything a client needs to log in at a gateway (PROTOCOL.md §3.1). */
export interface Ticket extends GatewayAddress {
  /** The account, as the login service accepted it. */
  account: string;
  /** The login token: 43 characters, valid for a minute, reusable within that time. */
  token: string;
  /** Node bindings (type → node id), for information. */
  bindings?: Record<string, string>;
  /** When the token expires (RFC 3339), for information. */
  expires_at?: string;
}

/** The fetch function the helpers use (default: globalThis.fetch). */
export type Fetch = typeof fetch;

/** Options of login() and lookupGateway(). */
export interface LoginOptions {
  fetch?: Fetch;
  /** Aborts the request. */
  signal?: AbortSignal;
}

function endpoint(base: string, path: string): string {
  // Resolved against the page in a browser ("" = this origin).
  const origin = typeof location !== 'undefined' ? location.href : undefined;
  const b = base === '' && origin ? origin : base;
  return new URL(path, b.endsWith('/') ? b : `${b}/`).toString();
}

async function call<T>(url: string, init: RequestInit, opts: LoginOptions): Promise<T> {
  const f = opts.fetch ?? globalThis.fetch;
  if (!f) throw new LoginError(0, 'no fetch here: pass options.fetch');
  const resp = await f(url, { ...init, signal: opts.signal ?? null });
  const body = (await resp.json().catch(() => ({}))) as Record<string, unknown>;
  if (!resp.ok) {
    const ra = Number(resp.headers.get('Retry-After'));
    throw new LoginError(resp.status, typeof body.error === 'string' ? body.error : resp.statusText, Number.isFinite(ra) && ra > 0 ? ra : undefined);
  }
  return body as T;
}

/**
 * login posts {account, password} to `${base}/login` (the example login
 * service) and returns the ticket. base is the service's URL, such as
 * "http://127.0.0.1:8080" ("" in a page the service serves). A refusal is a
 * LoginError: 400 bad account, 401 bad password, 503 try again later.
 */
export async function login(base: string, account: string, password: string, opts: LoginOptions = {}): Promise<Ticket> {
  const t = await call<Ticket>(endpoint(base, 'login'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ account, password }),
  }, opts);
  if (typeof t.token !== 'string' || typeof t.gateway !== 'string' || typeof t.account !== 'string') {
    throw new LoginError(200, 'the answer is not a ticket');
  }
  return t;
}

/**
 * lookupGateway asks `${base}/gateway` (the example login service) for a
 * gateway to resume a session at, after the last one could not be reached.
 */
export async function lookupGateway(base: string, opts: LoginOptions = {}): Promise<GatewayAddress> {
  const a = await call<GatewayAddress>(endpoint(base, 'gateway'), { method: 'GET' }, opts);
  if (typeof a.gateway !== 'string') throw new LoginError(200, 'the answer names no gateway');
  return a;
}

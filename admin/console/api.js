// The admin API client: the bearer token (kept in sessionStorage, so it dies with the tab),
// the selected connector, JSON calls and Device2 operations. Every failure is an ApiError
// carrying the server's {status, code, message}; a 401 also calls the unauthorized handler
// (the app returns to the login form).

const TOKEN_KEY = "fleetgate.token";
const CONNECTOR_KEY = "fleetgate.connector";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  // "404 not_found: identity 'x' does not exist"
  toString() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : this.message;
  }
}

export const session = {
  get token() { return sessionStorage.getItem(TOKEN_KEY); },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  get connector() { return sessionStorage.getItem(CONNECTOR_KEY); },
  set connector(value) {
    if (value) sessionStorage.setItem(CONNECTOR_KEY, value);
    else sessionStorage.removeItem(CONNECTOR_KEY);
  },
};

let unauthorized = () => {};

export function onUnauthorized(handler) {
  unauthorized = handler;
}

// The URL of the selected connector's routes: connectorPath("/device2/x").
export function connectorPath(rest = "") {
  return `/api/v1/connectors/${encodeURIComponent(session.connector || "")}${rest}`;
}

export function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  headers.set("Authorization", `Bearer ${session.token || ""}`);
  return headers;
}

async function errorFrom(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object" && body.code) {
      return new ApiError(body.status || response.status, body.code, body.message || "");
    }
  } catch (_) { /* not JSON: fall through */ }
  const code = (response.statusText || "error").toLowerCase().replace(/ /g, "_");
  return new ApiError(response.status, code, text.trim() || response.statusText);
}

// fetch() with the token; resolves to the Response when it is 2xx, else throws ApiError.
export async function send(method, path, { json, body, headers, signal } = {}) {
  const all = authHeaders(headers);
  if (json !== undefined) {
    all.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: all, body, signal, cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "unreachable", `cannot reach the server: ${error.message}`);
  }
  if (response.ok) return response;
  const error = await errorFrom(response);
  if (response.status === 401) unauthorized(error);
  throw error;
}

// A JSON call: the decoded body (null when empty).
export async function call(method, path, options = {}) {
  const response = await send(method, path, options);
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// A Device2 operation of the selected connector (connector-spec §11) with a JSON object.
export function device2(operation, args = {}) {
  return call("POST", connectorPath(`/device2/${encodeURIComponent(operation)}`), { json: args });
}

export function listConnectors() {
  return call("GET", "/api/v1/connectors");
}

// Drop empty values from a filter object ({a: "", b: "x"} -> {b: "x"}).
export function compact(object) {
  const out = {};
  for (const [key, value] of Object.entries(object)) {
    if (value !== "" && value !== null && value !== undefined) out[key] = value;
  }
  return out;
}

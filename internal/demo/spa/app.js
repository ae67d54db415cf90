// Cloakroom demo SPA. No framework and no build step; it runs under a strict
// Content-Security-Policy, so everything is wired up here, never inline.
//
// It talks only to its own origin: the gateway answers /bff/* itself and
// forwards /api/demo/* to the demo API with the user's access token. Every
// call sends the X-CSRF header the gateway requires.
'use strict';

(() => {
  const CSRF = { 'X-CSRF': '1' };
  const LOGOUT_CLAIM = 'bff:logout_url';

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    login: $('login'),
    logout: $('logout'),
    callAPI: $('call-api'),
    callExchange: $('call-exchange'),
    dashboard: $('dashboard'),
    dashboardMobile: $('dashboard-mobile'),
    stream: $('stream'),
    error: $('error'),
    claimsCard: $('claims-card'),
    claimsBody: document.querySelector('#claims tbody'),
    apiCard: $('api-card'),
    apiResult: $('api-result'),
    streamResult: $('stream-result'),
  };

  let logoutURL = null;

  // setState shows the buttons and panels that fit state, one of
  // "loading", "signed-in", "signed-out" or "error".
  function setState(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
    const signedIn = state === 'signed-in';
    el.login.hidden = state !== 'signed-out' && state !== 'error';
    el.logout.hidden = !signedIn;
    el.callAPI.hidden = !signedIn;
    el.callExchange.hidden = !signedIn;
    el.dashboard.hidden = !signedIn;
    el.dashboardMobile.hidden = !signedIn;
    el.stream.hidden = !signedIn;
    el.claimsCard.hidden = !signedIn;
    el.apiCard.hidden = !signedIn;
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = !message;
  }

  // A local path only: the page never navigates off-origin on a server's say-so.
  function isLocalPath(p) {
    return typeof p === 'string' && p.startsWith('/') && !p.startsWith('//') && !p.startsWith('/\\');
  }

  function claimValue(claims, type) {
    const c = claims.find((x) => x && x.type === type);
    return c ? c.value : undefined;
  }

  function display(value) {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  function renderClaims(claims) {
    const rows = claims.map((c) => {
      const tr = document.createElement('tr');
      const type = document.createElement('td');
      const value = document.createElement('td');
      type.textContent = display(c.type);
      value.textContent = display(c.value);
      tr.append(type, value);
      return tr;
    });
    el.claimsBody.replaceChildren(...rows);
  }

  async function loadUser() {
    setState('loading', 'Checking your session…');
    showError('');
    let res;
    try {
      res = await fetch('/bff/user', { headers: CSRF, credentials: 'same-origin', cache: 'no-store' });
    } catch (err) {
      setState('error', 'Could not reach the gateway');
      showError(String(err));
      return;
    }
    if (res.status === 401) {
      logoutURL = null;
      el.claimsBody.replaceChildren();
      setState('signed-out', 'Signed out');
      return;
    }
    if (!res.ok) {
      setState('error', `Could not check the session (HTTP ${res.status})`);
      return;
    }
    let claims;
    try {
      claims = await res.json();
    } catch (err) {
      setState('error', 'The gateway sent a user document that is not JSON');
      return;
    }
    if (!Array.isArray(claims)) {
      setState('error', 'The gateway sent a user document that is not a claim list');
      return;
    }
    const name = claimValue(claims, 'name') ?? claimValue(claims, 'preferred_username') ?? claimValue(claims, 'sub') ?? 'someone';
    logoutURL = claimValue(claims, LOGOUT_CLAIM) ?? null;
    renderClaims(claims);
    setState('signed-in', `Signed in as ${display(name)}`);
  }

  // callAPI calls the demo API through the gateway: /api/demo/ forwards the
  // user's own access token, /api/inventory/ one the gateway obtained by
  // token exchange (RFC 8693) for the inventory audience.
  async function callAPI(path, button) {
    button.disabled = true;
    el.apiResult.removeAttribute('data-status');
    el.apiResult.textContent = 'Calling…';
    let status = 0;
    let text;
    try {
      const res = await fetch(path, { headers: CSRF, credentials: 'same-origin', cache: 'no-store' });
      status = res.status;
      text = await res.text();
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // not JSON (an empty 401, say): show it as it came
      }
      if (!text) text = `(empty body, HTTP ${status})`;
    } catch (err) {
      text = `Request failed: ${err}`;
    } finally {
      button.disabled = false;
    }
    el.apiResult.textContent = text;
    el.apiResult.dataset.status = String(status);
    if (status === 401) {
      // The session ended (expired, or logged out elsewhere): show it.
      loadUser();
    }
  }

  // Reads the API's event stream with fetch rather than EventSource, which
  // cannot send the X-CSRF header.
  async function stream() {
    el.stream.disabled = true;
    el.streamResult.hidden = false;
    el.streamResult.removeAttribute('data-status');
    el.streamResult.textContent = '';
    let status = 0;
    try {
      const res = await fetch('/api/demo/time/stream', { headers: { ...CSRF, Accept: 'text/event-stream' }, cache: 'no-store' });
      status = res.status;
      if (!res.ok || !res.body) {
        el.streamResult.textContent = `HTTP ${status}`;
        return;
      }
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        el.streamResult.textContent += value;
      }
    } catch (err) {
      el.streamResult.textContent += `\nStream failed: ${err}`;
    } finally {
      el.streamResult.dataset.status = String(status);
      el.stream.disabled = false;
    }
  }

  function login() {
    window.location.assign('/bff/login?returnUrl=/');
  }

  function logout() {
    if (!isLocalPath(logoutURL)) {
      showError('The session has no usable logout URL; reload the page.');
      return;
    }
    el.logout.disabled = true;
    window.location.assign(logoutURL);
  }

  el.login.addEventListener('click', login);
  el.logout.addEventListener('click', logout);
  el.callAPI.addEventListener('click', () => callAPI('/api/demo/whoami', el.callAPI));
  el.callExchange.addEventListener('click', () => callAPI('/api/inventory/whoami', el.callExchange));
  // /bff/dashboard fans out to both APIs and merges the answers; the mobile
  // profile keeps only a few fields.
  el.dashboard.addEventListener('click', () => callAPI('/bff/dashboard', el.dashboard));
  el.dashboardMobile.addEventListener('click', () => callAPI('/bff/dashboard?profile=mobile', el.dashboardMobile));
  el.stream.addEventListener('click', stream);
  // Coming back with the Back button shows a page from the cache: re-check.
  window.addEventListener('pageshow', (e) => { if (e.persisted) loadUser(); });

  loadUser();
})();

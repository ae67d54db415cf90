// Cloakroom demo admin console: the second frontend of the demo gateway,
// at /admin/. Like the shop's app.js it has no framework, no build step and
// no inline code, and it never sees a token.
//
// Every path it calls lies under /admin/, its frontend's base path: the
// gateway answers /admin/bff/* with this console's own session, and
// forwards /admin/api/* to the demo API's admin routes only for a session
// whose role claim is admin (403 otherwise). Every call sends X-CSRF.
'use strict';

(() => {
  const BASE = '/admin/';
  const CSRF = { 'X-CSRF': '1' };
  const LOGOUT_CLAIM = 'bff:logout_url';
  const SHOWN_CLAIMS = ['name', 'email', 'role', 'sub'];

  const $ = (id) => document.getElementById(id);
  const el = {
    status: $('status'),
    login: $('login'),
    logout: $('logout'),
    callAPI: $('call-api'),
    error: $('error'),
    whoCard: $('who-card'),
    claimsBody: document.querySelector('#claims tbody'),
    apiCard: $('api-card'),
    apiResult: $('api-result'),
  };

  let logoutURL = null;

  function setState(state, text) {
    el.status.dataset.state = state;
    el.status.textContent = text;
    const signedIn = state === 'signed-in';
    el.login.hidden = state !== 'signed-out' && state !== 'error';
    el.logout.hidden = !signedIn;
    el.callAPI.hidden = !signedIn;
    el.whoCard.hidden = !signedIn;
    el.apiCard.hidden = !signedIn;
  }

  function showError(message) {
    el.error.textContent = message;
    el.error.hidden = !message;
  }

  // Only a path of this console: the page never navigates elsewhere on a
  // server's say-so.
  function isOwnPath(p) {
    return typeof p === 'string' && p.startsWith(BASE) && !p.includes('\\');
  }

  function claimValue(claims, type) {
    const c = claims.find((x) => x && x.type === type);
    return c ? c.value : undefined;
  }

  function display(value) {
    return typeof value === 'string' ? value : JSON.stringify(value);
  }

  // renderWho shows the few claims that say who is signed in.
  function renderWho(claims) {
    const rows = SHOWN_CLAIMS.filter((type) => claimValue(claims, type) !== undefined).map((type) => {
      const tr = document.createElement('tr');
      const name = document.createElement('td');
      const value = document.createElement('td');
      name.textContent = type;
      value.textContent = display(claimValue(claims, type));
      tr.append(name, value);
      return tr;
    });
    el.claimsBody.replaceChildren(...rows);
  }

  async function loadUser() {
    setState('loading', 'Checking your admin session…');
    showError('');
    let res;
    try {
      res = await fetch('/admin/bff/user', { headers: CSRF, credentials: 'same-origin', cache: 'no-store' });
    } catch (err) {
      setState('error', 'Could not reach the gateway');
      showError(String(err));
      return;
    }
    if (res.status === 401) {
      logoutURL = null;
      el.claimsBody.replaceChildren();
      setState('signed-out', 'Not signed in to the admin console');
      return;
    }
    let claims;
    try {
      claims = res.ok ? await res.json() : null;
    } catch {
      claims = null;
    }
    if (!Array.isArray(claims)) {
      setState('error', `Could not check the admin session (HTTP ${res.status})`);
      return;
    }
    const name = claimValue(claims, 'name') ?? claimValue(claims, 'sub') ?? 'someone';
    logoutURL = claimValue(claims, LOGOUT_CLAIM) ?? null;
    renderWho(claims);
    setState('signed-in', `Signed in to the admin console as ${display(name)}`);
  }

  async function callAPI() {
    el.callAPI.disabled = true;
    el.apiResult.removeAttribute('data-status');
    el.apiResult.textContent = 'Calling…';
    let status = 0;
    let text;
    try {
      const res = await fetch('/admin/api/overview', { headers: CSRF, credentials: 'same-origin', cache: 'no-store' });
      status = res.status;
      text = await res.text();
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // not JSON: show it as it came
      }
      if (status === 403) text = `403: the gateway lets only the role admin through.\n${text}`;
      if (!text) text = `(empty body, HTTP ${status})`;
    } catch (err) {
      text = `Request failed: ${err}`;
    } finally {
      el.callAPI.disabled = false;
    }
    el.apiResult.textContent = text;
    el.apiResult.dataset.status = String(status);
    if (status === 401) loadUser();
  }

  el.login.addEventListener('click', () => window.location.assign('/admin/bff/login?returnUrl=/admin/'));
  el.logout.addEventListener('click', () => {
    if (!isOwnPath(logoutURL)) {
      showError('The session has no usable logout URL; reload the page.');
      return;
    }
    el.logout.disabled = true;
    window.location.assign(logoutURL);
  });
  el.callAPI.addEventListener('click', callAPI);
  window.addEventListener('pageshow', (e) => { if (e.persisted) loadUser(); });

  loadUser();
})();

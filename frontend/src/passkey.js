// Passkeys (WebAuthn): add one on the security page, sign in with one on the
// second step of logging in. Buttons carry data-passkey="enrol" or "sign-in"
// and the URLs of the server's options and verify endpoints; the server's
// options are JSON with base64url strings where the browser wants bytes.

/** base64url text -> ArrayBuffer. */
export function fromBase64url(text) {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

/** ArrayBuffer (or a view) -> base64url text without padding. */
export function toBase64url(buffer) {
  const bytes =
    buffer instanceof ArrayBuffer
      ? new Uint8Array(buffer)
      : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

/** POST JSON with the session's CSRF token; the parsed answer, or an Error with the server's words. */
async function postJson(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: {
      "Content-Type": "application/json",
      Accept: "application/json",
      "X-CSRF-Token": csrfToken(),
    },
    body: JSON.stringify(body || {}),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch {
    answer = null;
  }
  if (!response.ok) {
    const detail = answer && answer.detail;
    throw new Error(typeof detail === "string" ? detail : `The server answered ${response.status}.`);
  }
  return answer;
}

function descriptors(list) {
  return (list || []).map((c) => ({ ...c, id: fromBase64url(c.id) }));
}

/** The server's registration options as navigator.credentials.create() takes them. */
export function creationOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    user: { ...json.user, id: fromBase64url(json.user.id) },
    excludeCredentials: descriptors(json.excludeCredentials),
  };
}

/** The server's authentication options as navigator.credentials.get() takes them. */
export function requestOptions(json) {
  return {
    ...json,
    challenge: fromBase64url(json.challenge),
    allowCredentials: descriptors(json.allowCredentials),
  };
}

function registrationJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: {
      clientDataJSON: toBase64url(r.clientDataJSON),
      attestationObject: toBase64url(r.attestationObject),
      transports: typeof r.getTransports === "function" ? r.getTransports() : [],
    },
  };
}

function authenticationJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: toBase64url(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response: {
      clientDataJSON: toBase64url(r.clientDataJSON),
      authenticatorData: toBase64url(r.authenticatorData),
      signature: toBase64url(r.signature),
      userHandle: r.userHandle ? toBase64url(r.userHandle) : undefined,
    },
  };
}

async function enrol(button) {
  const options = await postJson(button.dataset.options);
  const credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  const nameInput = document.getElementById(button.dataset.nameInput || "");
  return postJson(button.dataset.verify, {
    credential: registrationJson(credential),
    name: nameInput ? nameInput.value : "",
  });
}

async function signIn(button) {
  const options = await postJson(button.dataset.options);
  const credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  return postJson(button.dataset.verify, { credential: authenticationJson(credential) });
}

function attach(button) {
  const status = button.parentElement.querySelector("[data-passkey-status]");
  const say = (text) => {
    if (status) status.textContent = text;
  };
  if (!window.PublicKeyCredential) {
    button.disabled = true;
    say("This browser cannot use passkeys here; use a code instead.");
    return;
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    say("Waiting for your passkey…");
    try {
      const answer = button.dataset.passkey === "enrol" ? await enrol(button) : await signIn(button);
      say("Done.");
      window.location.assign(answer && answer.next ? answer.next : window.location.href);
    } catch (error) {
      // NotAllowedError: the person cancelled, or the prompt timed out.
      const cancelled = error && error.name === "NotAllowedError";
      say(cancelled ? "No passkey was used; try again." : error.message || String(error));
      button.disabled = false;
    }
  });
}

document.querySelectorAll("[data-passkey]").forEach(attach);

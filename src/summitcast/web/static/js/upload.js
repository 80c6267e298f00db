// Resumable upload of a speaker's recording: chunks with offsets, a progress bar, and
// resumption after a dropped connection or a closed tab (the upload id is kept in
// localStorage; the server's own record of an unfinished upload works in any browser).
// Protocol: see summitcast/domain/uploads.py.
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form) return;
  var bar = document.getElementById("upload-progress");
  var status = document.getElementById("upload-status");
  var createUrl = form.getAttribute("data-create-url");
  var chunkSize = parseInt(form.getAttribute("data-chunk-size"), 10) || 8 * 1024 * 1024;
  var pending = document.getElementById("pending");
  var FINAL = { ready: 1, rejected: 1, failed: 1, expired: 1 };

  function say(text) { status.textContent = text; }
  function sleep(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function storageKey(file, kind, language) {
    // The same file chosen again (same name, size, date) maps to the same upload.
    return "summitcast-upload:" + createUrl + ":" + kind + ":" + language + ":" +
      file.name + ":" + file.size + ":" + file.lastModified;
  }
  function showProgress(offset, size) {
    bar.hidden = false;
    bar.value = size ? offset / size : 0;
    say("Sent " + Math.floor(100 * offset / size) + "% (" + (offset / 1e6).toFixed(1) +
        " of " + (size / 1e6).toFixed(1) + " MB)");
  }

  async function sha256Base64(buffer) {
    // crypto.subtle exists only on https:// and localhost; without it the server still
    // checks the whole file's SHA-256 at the end.
    if (!(window.crypto && window.crypto.subtle)) return null;
    var digest = new Uint8Array(await crypto.subtle.digest("SHA-256", buffer));
    var text = "";
    for (var i = 0; i < digest.length; i++) text += String.fromCharCode(digest[i]);
    return btoa(text);
  }

  async function statusOf(url) {
    var response = await fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" });
    if (!response.ok) return null;
    return response.json();
  }

  async function create(file, kind, language) {
    var response = await fetch(createUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ size: file.size, kind: kind, language: language, filename: file.name })
    });
    var body = await response.json();
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
    return body;
  }

  async function findResumable(file, kind, language, key) {
    var url = localStorage.getItem(key);
    if (!url && pending && pending.getAttribute("data-filename") === file.name &&
        parseInt(pending.getAttribute("data-size"), 10) === file.size &&
        pending.getAttribute("data-kind") === kind) {
      // Another browser (or a cleared storage) started it: the server remembers it.
      url = createUrl + "/" + pending.getAttribute("data-upload-id");
    }
    if (!url) return null;
    var found = await statusOf(url);
    if (!found || found.state !== "receiving") { localStorage.removeItem(key); return null; }
    found.url = url;
    return found;
  }

  function prepare(file, offset) {
    // Read and hash one chunk; a failure shows up when the chunk is needed, not before.
    var end = Math.min(offset + chunkSize, file.size);
    var ready = file.slice(offset, end).arrayBuffer().then(async function (buffer) {
      return { buffer: buffer, digest: await sha256Base64(buffer) };
    });
    ready.catch(function () {});  // awaited later; no "unhandled rejection" meanwhile
    return { offset: offset, end: end, ready: ready };
  }

  async function send(file, url, offset) {
    var failures = 0;
    var next = null;
    while (offset < file.size) {
      var response;
      try {
        var chunk = next && next.offset === offset ? next : prepare(file, offset);
        // Read and hash the following chunk while this one travels: the two overlap.
        next = chunk.end < file.size ? prepare(file, chunk.end) : null;
        var prepared = await chunk.ready;
        var headers = { "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" };
        if (prepared.digest) headers["Upload-Checksum"] = "sha256 " + prepared.digest;
        response = await fetch(url, { method: "PATCH", headers: headers, body: prepared.buffer });
      } catch (err) {
        // The connection dropped: wait (longer each time), ask where we are, go on.
        failures += 1;
        say("Connection lost; retrying in " + Math.min(30, failures * 2) + " s…");
        await sleep(Math.min(30000, failures * 2000));
        var where = await statusOf(url).catch(function () { return null; });
        if (where) offset = where.offset;
        continue;
      }
      if (response.status === 204) {
        failures = 0;
        offset = parseInt(response.headers.get("Upload-Offset"), 10);
        showProgress(offset, file.size);
      } else if (response.status === 409) {
        var body = await response.json();
        offset = body.offset;  // another tab or a lost answer moved it: follow the server
      } else {
        var problem = await response.json().catch(function () { return {}; });
        throw new Error(problem.detail || ("The server answered " + response.status));
      }
    }
  }

  async function waitForChecks(url) {
    say("All sent. Checking your file…");
    for (var i = 0; i < 600; i++) {
      var found = await statusOf(url);
      if (found && FINAL[found.state]) return found;
      if (found && found.state === "processing") say("Your file passed the checks; preparing it for the broadcast…");
      await sleep(1000);
    }
    return null;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    var file = document.getElementById("upload-file").files[0];
    var kind = document.getElementById("upload-kind").value;
    var language = document.getElementById("upload-language").value.trim();
    if (!file) return;
    var key = storageKey(file, kind, language);
    var button = document.getElementById("upload-start");
    button.disabled = true;
    try {
      var upload = await findResumable(file, kind, language, key);
      if (upload) {
        say("Continuing your earlier upload from " + Math.floor(100 * upload.offset / file.size) + "%…");
      } else {
        upload = await create(file, kind, language);
        localStorage.setItem(key, upload.url);
      }
      showProgress(upload.offset, file.size);
      await send(file, upload.url, upload.offset);
      var done = await waitForChecks(upload.url);
      localStorage.removeItem(key);
      if (done && done.state === "ready") {
        say("Done: your file is ready.");
        location.reload();
      } else if (done) {
        var problems = (done.findings || []).filter(function (f) { return f.level === "problem"; })
          .map(function (f) { return f.message; });
        say(problems.join(" ") || "We could not use your file.");
        document.body.setAttribute("data-upload-result", done.state);
      }
    } catch (err) {
      say(err.message);
      localStorage.removeItem(key);
    } finally {
      button.disabled = false;
    }
  });
})();

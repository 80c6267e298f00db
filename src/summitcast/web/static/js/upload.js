// Resumable upload of a speaker's recording: chunks with offsets, a progress bar, and
// resumption after a dropped connection or a closed tab (the upload id is kept in
// localStorage; the server's own record of an unfinished upload works in any browser).
// Protocol: see summitcast/domain/uploads.py. Chunks are fixed blocks of the upload's
// chunk_size; each is sent with its CRC-32C, which the server checks before it keeps the
// chunk (damage on the way is refused and the chunk sent again). The server then hashes
// the whole file (SHA-256) in its checks.
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

  function base64(bytes) {
    var text = "";
    for (var i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text);
  }
  // CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), eight bytes per step with
  // eight tables ("slicing by 8"): ~10-20 ms for an 8 MB chunk. Unlike crypto.subtle it
  // works on plain http:// too, so every chunk is checked wherever the page is served.
  var CRC_TABLES = (function () {
    var table = new Int32Array(8 * 256);
    for (var n = 0; n < 256; n++) {
      var c = n;
      for (var k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82F63B78 : c >>> 1;
      table[n] = c;
    }
    for (var m = 0; m < 256; m++) {
      var d = table[m];
      for (var s = 1; s < 8; s++) {
        d = table[d & 0xff] ^ (d >>> 8);
        table[s * 256 + m] = d;
      }
    }
    return table;
  })();
  function crc32c(buffer) {
    var b = new Uint8Array(buffer);
    var t = CRC_TABLES;
    var crc = -1;
    var i = 0;
    for (var n = b.length - 8; i <= n; i += 8) {
      var a = crc ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24));
      crc = t[1792 + (a & 0xff)] ^ t[1536 + ((a >>> 8) & 0xff)] ^ t[1280 + ((a >>> 16) & 0xff)] ^
        t[1024 + (a >>> 24)] ^ t[768 + b[i + 4]] ^ t[512 + b[i + 5]] ^ t[256 + b[i + 6]] ^ t[b[i + 7]];
    }
    for (; i < b.length; i++) crc = t[(crc ^ b[i]) & 0xff] ^ (crc >>> 8);
    crc = (crc ^ -1) >>> 0;
    // As the protocol carries it: four bytes, most significant first.
    return new Uint8Array([crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff]);
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
    // chunk_size 0: started before fixed chunks; it cannot be continued, so start anew.
    if (!found || found.state !== "receiving" || !found.chunk_size) { localStorage.removeItem(key); return null; }
    found.url = url;
    return found;
  }

  function prepare(file, offset, size) {
    // Read and checksum one chunk; a failure shows up when the chunk is needed, not before.
    var end = Math.min(offset + size, file.size);
    var ready = file.slice(offset, end).arrayBuffer().then(function (buffer) {
      return { buffer: buffer, digest: crc32c(buffer) };
    });
    ready.catch(function () {});  // awaited later; no "unhandled rejection" meanwhile
    return { offset: offset, end: end, ready: ready };
  }

  async function send(file, url, offset, size) {
    var failures = 0;
    var next = null;
    while (offset < file.size) {
      var response;
      try {
        var chunk = next && next.offset === offset ? next : prepare(file, offset, size);
        // Read and checksum the following chunk while this one travels: the two overlap.
        next = chunk.end < file.size ? prepare(file, chunk.end, size) : null;
        var prepared = await chunk.ready;
        var headers = {
          "Upload-Offset": String(offset),
          "Upload-Checksum": "crc32c " + base64(prepared.digest),
          "Content-Type": "application/offset+octet-stream"
        };
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
        if (typeof body.offset !== "number") throw new Error(body.detail);  // not the same file
        if (body.retry_after_s) {
          say(body.detail);  // another tab is sending this chunk right now
          await sleep(1000 * body.retry_after_s);
        }
        offset = body.offset;  // another tab or a lost answer moved it: follow the server
      } else if (response.status === 503) {
        // The server is without its database for a moment (a restart): wait as it says.
        var wait = parseInt(response.headers.get("Retry-After"), 10) || 5;
        say("The server is busy for a moment; retrying in " + wait + " s…");
        await sleep(1000 * wait);
        var now = await statusOf(url).catch(function () { return null; });
        if (now) offset = now.offset;
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
      var size = (upload && upload.chunk_size) || chunkSize;
      var start = 0;
      if (upload) {
        say("Continuing your earlier upload from " + Math.floor(100 * upload.offset / file.size) + "%…");
        // Send the last stored chunk again: the server compares it with what it has, so
        // a different file chosen by mistake is refused instead of being spliced on.
        start = Math.max(0, upload.offset - size);
      } else {
        upload = await create(file, kind, language);
        size = upload.chunk_size || chunkSize;
        localStorage.setItem(key, upload.url);
      }
      showProgress(upload.offset, file.size);
      await send(file, upload.url, start, size);
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

// Going live from the browser: camera + microphone preview, a WebRTC offer to
// summitcast, and a clean end when the speaker stops or closes the tab.
//
// The server answers with its own peer (aiortc), which sends the picture to the
// speaker's green room like OBS would; the producer decides when it goes on air.
// No STUN/TURN unless the organisers configured their own (data-ice-servers):
// host candidates only, nothing leaves for a third party.

const GATHER_TIMEOUT_MS = 5000; // host candidates take milliseconds; STUN may take longer
const POLL_MS = 2000;

/** Wait until the peer has gathered its candidates (the offer is sent whole, not trickled). */
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** A JSON answer's message for the speaker, whatever the server sent. */
async function problem(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.join(" ");
  } catch {
    // not JSON: fall through
  }
  return `The server refused (${response.status}).`;
}

/** Wire the go-live page whose root element carries the URLs in data attributes. */
export function goLive(root) {
  const video = root.querySelector("#golive-preview");
  const level = root.querySelector("#golive-level");
  const startCamera = root.querySelector("#golive-camera");
  const start = root.querySelector("#golive-start");
  const stop = root.querySelector("#golive-stop");
  const status = root.querySelector("#golive-status");
  const onAir = root.querySelector("#golive-on-air");
  const sessionsUrl = root.dataset.sessionsUrl;
  const iceServers = JSON.parse(root.dataset.iceServers || "[]");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const headers = { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf };

  let stream = null;
  let pc = null;
  let sessionUrl = null;
  let poller = null;
  let meterFrame = null;

  const say = (text, state) => {
    status.textContent = text;
    root.dataset.state = state;
  };

  function showLevel() {
    // A simple VU meter: the speaker sees their microphone works before going live.
    const track = stream.getAudioTracks()[0];
    if (!track || !window.AudioContext) return;
    const audio = new AudioContext();
    const analyser = audio.createAnalyser();
    analyser.fftSize = 1024;
    audio.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      level.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      meterFrame = requestAnimationFrame(tick);
    };
    tick();
  }

  async function openCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say("This browser cannot share a camera (it needs a secure https:// page).", "error");
      return;
    }
    const camera = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
    let noMicrophone = false;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: camera,
        audio: { echoCancellation: true, noiseSuppression: true },
      });
    } catch {
      // No microphone, or it was refused: the picture alone is still worth sending.
      try {
        stream = await navigator.mediaDevices.getUserMedia({ video: camera });
        noMicrophone = true;
      } catch (err) {
        say(`The camera could not be opened: ${err.message || err.name}.`, "error");
        return;
      }
    }
    video.srcObject = stream;
    startCamera.hidden = true;
    start.disabled = false;
    showLevel();
    say(
      noMicrophone
        ? "No microphone: the producer will see you but not hear you. Allow the microphone and reload to fix it."
        : "This is what the producer will see. Press “Go live” when you are ready.",
      "preview",
    );
  }

  async function goOn() {
    start.disabled = true;
    say("Connecting…", "connecting");
    pc = new RTCPeerConnection({ iceServers });
    for (const track of stream.getTracks()) {
      pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
    }
    pc.addEventListener("connectionstatechange", () => {
      if (pc && (pc.connectionState === "failed" || pc.connectionState === "closed")) {
        end("The connection was lost. Press “Go live” to try again.");
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    let response;
    try {
      response = await fetch(sessionsUrl, {
        method: "POST",
        headers,
        credentials: "same-origin",
        body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
      });
    } catch {
      end("The server could not be reached. Check your connection and try again.");
      return;
    }
    if (response.status !== 201) {
      end(await problem(response));
      return;
    }
    const answer = await response.json();
    sessionUrl = answer.url;
    await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
    stop.hidden = false;
    say("Connecting to the green room…", "connecting");
    poller = setInterval(poll, POLL_MS);
  }

  async function poll() {
    if (!sessionUrl) return;
    let body;
    try {
      const response = await fetch(sessionUrl, { headers: { Accept: "application/json" } });
      body = await response.json();
    } catch {
      return; // a moment without the server: the picture may still flow
    }
    if (body.state === "ended") {
      end(body.reason);
      return;
    }
    onAir.hidden = !body.on_air;
    if (body.state === "sending" && body.green_room) {
      say(body.on_air ? "You are ON AIR." : "The producer sees you in the green room.", body.on_air ? "on-air" : "green-room");
    } else {
      say("Connecting to the green room…", "connecting");
    }
  }

  function end(reason) {
    if (poller) clearInterval(poller);
    poller = null;
    if (pc) {
      const closing = pc;
      pc = null;
      closing.close();
    }
    release();
    onAir.hidden = true;
    stop.hidden = true;
    start.disabled = !stream;
    say(reason, "ended");
  }

  /** Tell the server this page's session is over (also as the tab closes). */
  function release() {
    if (!sessionUrl) return;
    const url = sessionUrl;
    sessionUrl = null;
    // keepalive: the request outlives a closing tab.
    fetch(url, { method: "DELETE", headers, credentials: "same-origin", keepalive: true }).catch(() => {});
  }

  startCamera.addEventListener("click", openCamera);
  start.addEventListener("click", () => {
    goOn().catch((err) => end(`Going live failed: ${err.message || err}`));
  });
  stop.addEventListener("click", () => end("You stopped. Press “Go live” to start again."));
  window.addEventListener("pagehide", () => {
    release();
    if (meterFrame) cancelAnimationFrame(meterFrame);
  });
  start.disabled = true;
  stop.hidden = true;
}

/** Before the producer opens the green room: reload once they have (the page then offers to go live). */
function waitForGreenRoom(root) {
  const url = root.dataset.statusUrl;
  if (!url) return;
  setInterval(async () => {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if ((await response.json()).feed_open) location.reload();
    } catch {
      // try again at the next tick
    }
  }, 5000);
}

const root = document.getElementById("golive");
if (root && root.dataset.sessionsUrl) goLive(root);
else if (root) waitForGreenRoom(root);

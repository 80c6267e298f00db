// The HLS player: hls.js with quality, audio-only, language and caption menus,
// a "behind live" indicator, and recovery from network and media errors.
import Hls from "hls.js";

import { backoffMs, namespace } from "./common.js";

const LIVE_SLACK_S = 3; // closer than this to the sync point counts as "live"
// After a live stream's buffer runs dry, play on only once one segment plus this
// much is buffered (see refill() below).
const REFILL_MARGIN_S = 1;
const REFILL_GIVE_UP_S = 8; // resume anyway after this long (a stream that stopped growing)
const MAX_SOFT_RECOVERIES = 4; // startLoad/recoverMediaError tries before re-creating
const MAX_ERROR_LOG = 200;
// Poor link (opts.autoAudioOnly): this many stalls within STALL_WINDOW_MS at the lowest
// video rung, or a measured bandwidth below that rung for POOR_BANDWIDTH_S, switch to
// sound only; video is tried again after VIDEO_RETRY_MS if the estimate allows it.
const STALLS_FOR_AUDIO_ONLY = 3;
const STALL_WINDOW_MS = 120000;
const POOR_BANDWIDTH_S = 15;
const VIDEO_RETRY_MS = 300000;
const VIDEO_RETRY_HEADROOM = 1.5; // the estimate must beat the lowest rung by this much
const CUE_KEEP_S = 120; // cues further behind the playhead are dropped (a day-long screen)

// Subtitle TextTracks made per <video> with addTextTrack, kept across players on the
// same element (they cannot be removed, so they are re-used).
const elementTracks = new WeakMap();

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function menu(label, className) {
  const select = h("select", { class: className });
  const wrap = h("label", { class: `${className}-label`, hidden: "" }, h("span", { text: label }), select);
  return { wrap, select };
}

function fill(select, options, selected) {
  select.replaceChildren(
    ...options.map(([value, text]) => {
      const o = h("option", { value: String(value), text });
      if (String(value) === String(selected)) o.selected = true;
      return o;
    }),
  );
  select.parentElement.hidden = options.length < 2;
}

// ffmpeg names renditions "audio_2", "subtitle_0"…: show the language instead.
const GENERATED_NAME = /^(audio|subtitles?|subs?|text)[ _-]?\d*$/i;

function languageName(lang) {
  try {
    const names = new Intl.DisplayNames([navigator.language || "en"], { type: "language" });
    return names.of(lang);
  } catch {
    return lang;
  }
}

function trackName(t, index) {
  if (t.name && !GENERATED_NAME.test(t.name)) return t.name;
  if (t.lang) return languageName(t.lang);
  return `Track ${index + 1}`;
}

function levelName(level) {
  if (level.height) return `${level.height}p`;
  if (level.bitrate) return `${Math.round(level.bitrate / 1000)} kb/s`;
  return "Video";
}

/** A variant with no video: no video codec and no resolution, but audio. */
function isAudioOnlyVariant(level) {
  const codecs = (level.attrs && level.attrs.CODECS) || level.audioCodec || "";
  return !level.videoCodec && !level.width && !level.height && /mp4a|opus|ac-3|ec-3|flac/i.test(codecs);
}

// A live playlist answers 404 until the encoder has written its first segment (a
// viewer who opens the page as the session starts, or an encoder restarting). hls.js
// does not retry 4xx by default and gives up at once; retry 404s for ~8 s instead,
// after which the player starts over by itself (onError), for ever.
const retry404 = (cfg, count, _isTimeout, response, retry) =>
  retry || (count < cfg.maxNumRetry && !!response && response.code === 404);
const PATIENT = {
  default: {
    maxTimeToFirstByteMs: 10000,
    maxLoadTimeMs: 20000,
    timeoutRetry: { maxNumRetry: 2, retryDelayMs: 0, maxRetryDelayMs: 0 },
    errorRetry: { maxNumRetry: 8, retryDelayMs: 1000, maxRetryDelayMs: 2000, shouldRetry: retry404 },
  },
};

// Redundant encoders (docs/deploy.md) list every rendition twice, once per encoder.
// hls.js makes them pathways and moves to the other on an error it gives up on; the
// buffer holds ~3.5 s, so a dead encoder is left after one quick retry, not after the
// ~12 s of PATIENT's retries.
const FAILOVER = {
  default: {
    maxTimeToFirstByteMs: 3000,
    maxLoadTimeMs: 6000,
    timeoutRetry: { maxNumRetry: 0, retryDelayMs: 0, maxRetryDelayMs: 0 },
    errorRetry: { maxNumRetry: 1, retryDelayMs: 200, maxRetryDelayMs: 200, shouldRetry: retry404 },
  },
};

const UNCHANGED_RELOADS = 3;

/** Whether the master lists some variant twice (same attributes, another URI). */
function hasRedundantVariants(levels) {
  const seen = new Map();
  for (const level of levels || []) {
    const a = level.attrs || {};
    const key = [a.BANDWIDTH, a.RESOLUTION, a.CODECS, a["FRAME-RATE"]].join("|");
    if (seen.has(key) && seen.get(key) !== level.url) return true;
    seen.set(key, level.url);
  }
  return false;
}

/**
 * Mount a player on a <video> element.
 * opts: {src, controlsEl, autoplay = true, muted = true, hlsConfig = {},
 *   nativeControls = true, unmuteButton = true, audioLang, subtitleLang ("" = off),
 *   autoAudioOnly = false, maxRetryDelayMs = 30000,
 *   onChoice({audioLang, subtitleLang, quality}) when the viewer picks from a menu,
 *   onAudioOnly(on, reason) when the player switches to or from sound only by itself}
 * Returns a controller; the same object is exposed as window.summitcastPlayer.
 */
export function mountPlayer(videoEl, opts = {}) {
  const src = opts.src || videoEl.dataset.src;
  if (!src) throw new Error("mountPlayer: no src");
  // Browsers only autoplay muted video; the viewer unmutes with the controls.
  videoEl.muted = opts.muted !== false;
  videoEl.autoplay = opts.autoplay !== false;
  videoEl.playsInline = true;
  videoEl.controls = opts.nativeControls !== false;

  const errors = [];
  const ui = buildControls(opts.controlsEl);
  const unmuteButton = opts.unmuteButton === false ? null : buildUnmuteButton(videoEl);
  const player = {
    hls: null,
    errors,
    mode: "auto", // "auto" | level index | "audio"
    audioOnly: null, // {url, group} of the master's audio-only variant, which hls.js drops
    native: false,
    destroy,
    jumpToLive,
    setQuality,
    setAudioTrack,
    setSubtitleTrack,
    unmute,
    autoAudioOnly: !!opts.autoAudioOnly,
    audioOnlyReason: null, // why the player chose sound only by itself, else null
    behindLiveS: () => behindLive(),
  };
  window.summitcastPlayer = player;

  let softRecoveries = 0;
  let recreateTimer = null;
  let recoverTimer = null;
  let tick = null;
  let preferredLang = opts.audioLang || null; // audio language chosen, kept across re-creation
  // Captions are kept by language, so the choice survives a new session's master.
  let preferredSubtitleLang = opts.subtitleLang || null;
  let preferredSubtitle = -1;
  let refillingSince = null; // performance.now() when refill() paused a dry live buffer
  let hasPlayed = false;
  let manifestAudioTracks = []; // every audio rendition of the master, all groups
  let videoLevels = []; // [[hls level index, label]] of the master, best first
  let lowestVideoBitrate = 0; // bits/s of the lowest video rung (for the poor-link rule)
  let stalls = []; // performance.now() of recent stalls at the lowest rung
  let poorSince = null; // performance.now() since the estimate is below the lowest rung
  let audioOnlySince = null; // when the poor-link rule switched to sound only
  let fragmentsLoaded = 0; // the bandwidth estimate means something after a few
  let cuesPrunedAt = 0;
  const maxRetryDelayMs = opts.maxRetryDelayMs || 30000;
  const tracks = elementTracks.get(videoEl) || new Map(); // "lang|name" -> TextTrack
  elementTracks.set(videoEl, tracks);

  function log(entry) {
    errors.push({ at: new Date().toISOString(), ...entry });
    if (errors.length > MAX_ERROR_LOG) errors.splice(0, errors.length - MAX_ERROR_LOG);
  }

  function say(text) {
    if (ui) ui.message.textContent = text || "";
  }

  function play() {
    if (!videoEl.autoplay) return;
    const p = videoEl.play();
    if (p && p.catch) p.catch((e) => log({ type: "play", details: String(e && e.name), fatal: false }));
  }

  /** Audio renditions playable in audio-only mode: one per language. */
  function audioOnlyTracks() {
    // The audio-only variant names its own group (e.g. low-bitrate mono); with
    // none, the renditions of the first group are audio-only playlists too.
    const group = player.audioOnly ? player.audioOnly.group : manifestAudioTracks[0]?.groupId;
    const seen = new Set();
    return manifestAudioTracks.filter((t) => {
      if (!t.url || t.groupId !== group || seen.has(t.lang)) return false;
      seen.add(t.lang);
      return true;
    });
  }

  function currentUrl() {
    if (player.mode !== "audio") return src;
    const tracks = audioOnlyTracks();
    const track = tracks.find((t) => t.lang === preferredLang) || tracks.find((t) => t.isDefault) || tracks[0];
    return (track && track.url) || (player.audioOnly && player.audioOnly.url) || src;
  }

  function create(startPosition = -1) {
    clearTimeout(recreateTimer);
    const hls = new Hls({
      startPosition,
      // Sit 1.75 segments (3.5 s) behind the newest listed segment. Glass to glass
      // adds ~0.4 s until a segment is listed and up to ~1 s until hls.js's polling
      // sees it: 4.9-5.9 s measured at 2 segments (worst reading 6.1 s), 5.1-5.5 s at
      // 1.75 (benchmarks/README.md). Between playlist updates the buffer then still
      // holds ~1.5 s minus the segment's download: closer would stall.
      liveSyncDurationCount: 1.75,
      // A player that fell behind (it started while the chain was late, or stalled)
      // plays at up to 1.1x until it is back at that distance, instead of staying
      // late for the rest of the session. hls.js does this only while the player is
      // less than the target plus one segment too far back; a viewer who rewound
      // the event further is left alone.
      maxLiveSyncPlaybackRate: 1.1,
      liveMaxLatencyDurationCount: 10,
      backBufferLength: 30,
      capLevelToPlayerSize: true,
      // hls.js's own text tracks are <track src="data:,WEBVTT"> elements, a load the
      // strict CSP (media-src 'self' blob:) refuses with a console error. We take the
      // parsed cues instead and put them on TextTracks made with addTextTrack, which
      // load nothing; Chromium still draws them in the picture (see showCues).
      renderTextTracksNatively: false,
      enableCEA708Captions: false, // our streams carry WebVTT, no 608/708 in the video
      enableID3MetadataCues: false, // would make a <track src="data:..."> too
      manifestLoadPolicy: PATIENT,
      playlistLoadPolicy: PATIENT,
      // hls.js picks these itself when the renditions are listed (a later choice of
      // ours in SUBTITLE_TRACKS_UPDATED would be undone by its own default one).
      subtitlePreference: preferredSubtitleLang ? { lang: preferredSubtitleLang } : undefined,
      audioPreference: preferredLang ? { lang: preferredLang } : undefined,
      ...opts.hlsConfig,
    });
    player.hls = hls;
    hls.on(Hls.Events.MANIFEST_LOADED, (_e, data) => {
      player.redundant = hasRedundantVariants(data.levels);
      if (player.redundant) {
        hls.config.playlistLoadPolicy = FAILOVER;
        hls.config.fragLoadPolicy = FAILOVER;
        // An encoder that stopped while its origin still answers leaves a live playlist
        // that never changes (200, not an error): after this many unchanged reloads
        // (~1 s apart) hls.js leaves that pathway too. Edges may hold a playlist up to 2 s,
        // so fewer would leave a healthy encoder now and then.
        hls.config.liveMaxUnchangedPlaylistRefresh = UNCHANGED_RELOADS;
      }
      if (player.mode === "audio") return; // keep what the master told us
      const variant = (data.levels || []).find(isAudioOnlyVariant);
      player.audioOnly = variant ? { url: variant.url, group: variant.attrs && variant.attrs.AUDIO } : null;
      manifestAudioTracks = (data.audioTracks || []).map((t) => ({
        name: t.name,
        lang: t.lang,
        url: t.url,
        groupId: t.groupId,
        isDefault: !!t.default,
      }));
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      if (player.mode !== "audio") {
        hls.currentLevel = player.mode === "auto" ? -1 : player.mode;
        hls.loadLevel = hls.currentLevel;
      }
      selectPreferredLanguage();
      selectPreferredSubtitle();
      refreshMenus();
      play();
    });
    // After hls.js's own choice, which follows this event.
    hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, () => setTimeout(selectPreferredSubtitle, 0));
    hls.on(Hls.Events.SUBTITLE_TRACK_SWITCH, showCues);
    hls.on(Hls.Events.CUES_PARSED, onCues);
    hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
      if (data.frag && data.frag.type === "main") fragmentsLoaded += 1;
    });
    // A level from another audio group brings its own track list.
    hls.on(Hls.Events.AUDIO_TRACKS_UPDATED, selectPreferredLanguage);
    for (const ev of [
      Hls.Events.LEVEL_SWITCHED,
      Hls.Events.AUDIO_TRACKS_UPDATED,
      Hls.Events.AUDIO_TRACK_SWITCHED,
      Hls.Events.SUBTITLE_TRACKS_UPDATED,
      Hls.Events.SUBTITLE_TRACK_SWITCH,
    ]) {
      hls.on(ev, refreshMenus);
    }
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      // Media flows again: the next failure starts its backoff from scratch.
      softRecoveries = 0;
      say("");
      refill();
    });
    hls.on(Hls.Events.ERROR, onError);
    fragmentsLoaded = 0;
    hls.attachMedia(videoEl);
    hls.loadSource(currentUrl());
  }

  function selectPreferredLanguage() {
    const hls = player.hls;
    if (!hls || preferredLang == null) return;
    const i = hls.audioTracks.findIndex((t) => t.lang === preferredLang);
    if (i >= 0 && i !== hls.audioTrack) hls.audioTrack = i;
  }

  function selectPreferredSubtitle() {
    const hls = player.hls;
    if (!hls) return;
    if (preferredSubtitleLang) {
      const i = hls.subtitleTracks.findIndex((t) => t.lang === preferredSubtitleLang);
      if (i >= 0) preferredSubtitle = i;
    } else if (preferredSubtitleLang === "") {
      preferredSubtitle = -1;
    }
    if (hls.subtitleTrack !== preferredSubtitle) hls.subtitleTrack = preferredSubtitle;
    showCues();
  }

  function trackKey(t) {
    return `${t.lang || ""}|${t.name || ""}`;
  }

  /** Our TextTrack for one subtitle rendition, made on first use. */
  function textTrackFor(rendition) {
    const key = trackKey(rendition);
    let track = tracks.get(key);
    if (!track) {
      const index = player.hls ? player.hls.subtitleTracks.indexOf(rendition) : 0;
      track = videoEl.addTextTrack("subtitles", trackName(rendition, Math.max(0, index)), rendition.lang || "");
      track.mode = "disabled";
      tracks.set(key, track);
    }
    return track;
  }

  function onCues(_e, data) {
    if (data.type !== "subtitles" || !data.subtitleTrack) return;
    const track = textTrackFor(data.subtitleTrack);
    if (track.mode === "disabled") track.mode = "hidden"; // a disabled track lists no cues
    const known = Array.from(track.cues || []);
    for (const cue of data.cues) {
      // Segmented WebVTT repeats a cue that spans two segments: add it once. A new
      // hls.js instance (after an error) maps times a little differently, so the same
      // cue may come back with another id and start a few hundredths later.
      const same = (c) =>
        c.id === cue.id ||
        (c.text === cue.text && Math.abs(c.startTime - cue.startTime) < 0.5 && Math.abs(c.endTime - cue.endTime) < 0.5);
      if (known.some(same)) continue;
      known.push(cue);
      try {
        track.addCue(cue);
      } catch (e) {
        log({ type: "cue", details: String(e && e.message), fatal: false });
      }
    }
    showCues();
  }

  /** Show the chosen rendition's track in the picture, hide the others. */
  function showCues() {
    const hls = player.hls;
    const chosen = hls && hls.subtitleTrack >= 0 ? hls.subtitleTracks[hls.subtitleTrack] : null;
    const key = chosen ? trackKey(chosen) : null;
    if (chosen) textTrackFor(chosen);
    for (const [k, track] of tracks) {
      const mode = k === key ? "showing" : "disabled";
      if (track.mode !== mode) track.mode = mode;
    }
  }

  function pruneCues() {
    const before = videoEl.currentTime - CUE_KEEP_S;
    for (const track of tracks.values()) {
      if (!track.cues) continue;
      for (const cue of Array.from(track.cues)) if (cue.endTime < before) track.removeCue(cue);
    }
  }

  function clearCues() {
    for (const track of tracks.values()) {
      if (track.mode === "disabled") track.mode = "hidden";
      for (const cue of Array.from(track.cues || [])) track.removeCue(cue);
      track.mode = "disabled";
    }
  }

  function onError(_e, data) {
    log({ type: data.type, details: data.details, fatal: !!data.fatal, response: data.response && data.response.code });
    if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) noteStall();
    if (!data.fatal) return;
    const hls = player.hls;
    clearTimeout(recoverTimer);
    const delay = backoffMs(softRecoveries, 1000, maxRetryDelayMs);
    const manifestFailed = /^manifest/i.test(data.details || "");
    if (softRecoveries >= MAX_SOFT_RECOVERIES || manifestFailed || data.type === Hls.ErrorTypes.OTHER_ERROR) {
      // A manifest that never loaded (stream not started yet, origin down) or a
      // stuck pipeline: start over with a new instance after a pause.
      say(`Connection lost. Trying again in ${Math.round(delay / 1000)} s…`);
      recreate(delay);
      return;
    }
    softRecoveries += 1;
    if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
      say(`Network problem. Retrying in ${Math.round(delay / 1000)} s…`);
      recoverTimer = setTimeout(() => player.hls === hls && hls.startLoad(), delay);
    } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
      // recoverMediaError right away the first time (hls.js's advice), then
      // swap the audio codec in case the container lied about it.
      if (softRecoveries > 1) hls.swapAudioCodec();
      recoverTimer = setTimeout(() => player.hls === hls && hls.recoverMediaError(), softRecoveries > 1 ? delay : 0);
    } else {
      recreate(delay);
    }
  }

  function recreate(delayMs) {
    clearTimeout(recreateTimer);
    clearTimeout(recoverTimer);
    if (player.hls) {
      player.hls.destroy();
      player.hls = null;
    }
    softRecoveries += 1;
    recreateTimer = setTimeout(create, delayMs);
  }

  /** The browser says the network is back: run a waiting recovery now, not after its backoff. */
  function onOnline() {
    if (player.hls === null && recreateTimer !== null) {
      clearTimeout(recreateTimer);
      create();
    } else if (player.hls && softRecoveries > 0) {
      clearTimeout(recoverTimer);
      player.hls.startLoad();
    }
  }

  function atLowestRung() {
    const hls = player.hls;
    if (!hls || player.mode === "audio" || !hls.levels.length) return false;
    const level = hls.levels[hls.currentLevel];
    return !level || level.bitrate <= lowestVideoBitrate;
  }

  function noteStall() {
    if (!player.autoAudioOnly || !hasPlayed || !atLowestRung()) return;
    const now = performance.now();
    stalls = stalls.filter((t) => now - t < STALL_WINDOW_MS);
    stalls.push(now);
    if (stalls.length >= STALLS_FOR_AUDIO_ONLY) goAudioOnly("stalls");
  }

  // The poor-link rule, once a second: sound only when the link cannot carry the lowest
  // video rung; video again after a while if the estimate (made on audio fragments,
  // which are small, so it errs low) has room above that rung.
  function checkLink() {
    const hls = player.hls;
    if (!player.autoAudioOnly || !hls || !lowestVideoBitrate) return;
    const now = performance.now();
    if (player.mode === "audio") {
      if (
        player.audioOnlyReason &&
        now - audioOnlySince > VIDEO_RETRY_MS &&
        hls.bandwidthEstimate > VIDEO_RETRY_HEADROOM * lowestVideoBitrate
      ) {
        player.audioOnlyReason = null;
        stalls = [];
        setQuality("auto");
        if (opts.onAudioOnly) opts.onAudioOnly(false, null);
      }
      return;
    }
    const poor = fragmentsLoaded >= 3 && hls.bandwidthEstimate < lowestVideoBitrate;
    if (!poor) {
      poorSince = null;
    } else if (poorSince === null) {
      poorSince = now;
    } else if (now - poorSince > POOR_BANDWIDTH_S * 1000) {
      goAudioOnly("bandwidth");
    }
  }

  function goAudioOnly(reason) {
    if (player.mode === "audio" || !(player.audioOnly || manifestAudioTracks.some((t) => t.url))) return;
    player.audioOnlyReason = reason;
    audioOnlySince = performance.now();
    poorSince = null;
    stalls = [];
    log({ type: "audio-only", details: reason, fatal: false });
    setQuality("audio");
    if (opts.onAudioOnly) opts.onAudioOnly(true, reason);
  }

  function unmute() {
    videoEl.muted = false;
    if (videoEl.volume === 0) videoEl.volume = 1;
    const p = videoEl.play();
    if (p && p.catch) p.catch((e) => log({ type: "play", details: String(e && e.name), fatal: false }));
  }

  function choice() {
    return {
      audioLang: preferredLang,
      subtitleLang: preferredSubtitle >= 0 ? preferredSubtitleLang : "",
      quality: player.mode,
    };
  }

  function behindLive() {
    const hls = player.hls;
    if (!hls || hls.liveSyncPosition == null || !Number.isFinite(videoEl.currentTime)) return null;
    return Math.max(0, hls.liveSyncPosition - videoEl.currentTime);
  }

  function jumpToLive() {
    const hls = player.hls;
    if (hls && hls.liveSyncPosition != null) {
      videoEl.currentTime = hls.liveSyncPosition;
      play();
    } else if (player.native && videoEl.seekable.length) {
      videoEl.currentTime = videoEl.seekable.end(videoEl.seekable.length - 1) - 6;
    }
  }

  /** Seconds of media buffered ahead of the playhead (to the end of the last range). */
  function bufferedAhead() {
    const b = videoEl.buffered;
    return b.length ? Math.max(0, b.end(b.length - 1) - videoEl.currentTime) : 0;
  }

  function liveDetails() {
    const details = player.hls && player.hls.latestLevelDetails;
    return details && details.live ? details : null;
  }

  // Why refill: when a live buffer runs dry (the encoder was restarted, a segment
  // came late), Chromium plays on as soon as ONE segment has arrived. The player then
  // sits a single segment behind the live edge, the next segment must land within
  // one segment's duration, and the playlist reload's jitter (up to half a segment)
  // or a slow encoder makes it stall a second time (~1 run in 6 after an encoder
  // kill, 2026-11-28). Holding the picture until one segment plus a margin is
  // buffered turns that into one longer stall (~2 s longer: one more segment).
  function onWaiting() {
    if (!hasPlayed || videoEl.seeking || videoEl.paused || refillingSince !== null) return;
    const details = liveDetails();
    if (!details || bufferedAhead() > 0.5) return; // a hole, not a dry buffer: hls.js jumps it
    // Only at the live edge: a stall with listed segments still to fetch (a language
    // or quality switch) ends as soon as they arrive.
    if (details.edge - videoEl.currentTime > details.targetduration + REFILL_MARGIN_S) return;
    refillingSince = performance.now();
    videoEl.pause();
  }

  function refill() {
    if (refillingSince === null) return;
    const details = liveDetails();
    const goal = details ? details.targetduration + REFILL_MARGIN_S : 0;
    const waited = (performance.now() - refillingSince) / 1000;
    if (bufferedAhead() < goal && waited < REFILL_GIVE_UP_S) return;
    refillingSince = null;
    const p = videoEl.play();
    if (p && p.catch) p.catch((e) => log({ type: "play", details: String(e && e.name), fatal: false }));
  }

  function setQuality(value) {
    const v = value === "auto" || value === "audio" ? value : Number(value);
    const wasAudio = player.mode === "audio";
    player.mode = v;
    if (ui) ui.root.classList.toggle("sc-audio-only", v === "audio");
    videoEl.closest(".sc-player")?.classList.toggle("sc-audio-only", v === "audio");
    if (v === "audio" || wasAudio) {
      // Audio only is a different playlist. A live one starts at its live
      // edge by itself; a recording resumes where the viewer was.
      const details = player.hls && player.hls.latestLevelDetails;
      const resumeAt = details && !details.live ? videoEl.currentTime : -1;
      if (player.hls) player.hls.destroy();
      create(resumeAt);
      return;
    }
    // -1 = automatic; nextLevel switches at the next fragment without a stall.
    if (player.hls) player.hls.nextLevel = v === "auto" ? -1 : v;
    refreshMenus();
  }

  /** Choose an audio language by its index in the language menu. */
  function setAudioTrack(id) {
    const list = languageChoices();
    const track = list[Number(id)];
    if (!track) return;
    preferredLang = track.lang;
    if (player.mode === "audio") {
      if (player.hls) player.hls.destroy();
      create();
    } else {
      selectPreferredLanguage();
    }
  }

  /** The language menu's entries: hls.js's tracks, or ours in audio-only mode. */
  function languageChoices() {
    if (player.mode === "audio") return audioOnlyTracks();
    return player.hls ? player.hls.audioTracks : [];
  }

  function setSubtitleTrack(id) {
    preferredSubtitle = Number(id);
    if (player.hls) {
      const t = player.hls.subtitleTracks[preferredSubtitle];
      preferredSubtitleLang = t ? t.lang || null : "";
      player.hls.subtitleTrack = preferredSubtitle;
      showCues();
    } else if (player.native) {
      Array.from(videoEl.textTracks).forEach((t, i) => {
        t.mode = i === preferredSubtitle ? "showing" : "disabled";
      });
    }
  }

  function refreshMenus() {
    if (!ui) return;
    const hls = player.hls;
    if (hls && player.mode !== "audio") {
      // Remember the video rungs: in audio-only mode hls.js holds one level.
      videoLevels = hls.levels
        .map((l, i) => [i, l])
        .sort((a, b) => (b[1].height || 0) - (a[1].height || 0) || b[1].bitrate - a[1].bitrate)
        .map(([i, l]) => [i, levelName(l)]);
      const bitrates = hls.levels.filter((l) => !isAudioOnlyVariant(l)).map((l) => l.bitrate || 0);
      lowestVideoBitrate = bitrates.length ? Math.min(...bitrates) : 0;
    }
    if (hls || videoLevels.length) {
      const current = hls && hls.currentLevel >= 0 && hls.levels[hls.currentLevel];
      const auto = current && player.mode === "auto" ? `Auto (${levelName(current)})` : "Auto";
      const options = [["auto", auto], ...videoLevels];
      if (player.audioOnly || manifestAudioTracks.some((t) => t.url)) {
        options.push(["audio", "Audio only (saves data)"]);
      }
      fill(ui.quality.select, options, player.mode);
    }
    const languages = languageChoices();
    let selected = languages.findIndex((t) => t.lang === preferredLang);
    if (selected < 0 && player.mode !== "audio" && hls) selected = hls.audioTrack;
    if (selected < 0) selected = Math.max(0, languages.findIndex((t) => t.isDefault || t.default));
    fill(ui.language.select, languages.map((t, i) => [i, trackName(t, i)]), selected);
    const subs = hls ? hls.subtitleTracks : Array.from(videoEl.textTracks || []);
    const subOptions = [[-1, "Off"], ...subs.map((t, i) => [i, trackName(t, i)])];
    fill(ui.captions.select, subOptions, hls ? hls.subtitleTrack : preferredSubtitle);
  }

  function updateLiveStatus() {
    if (!ui) return;
    const behind = behindLive();
    const isLive = behind != null;
    ui.live.hidden = !isLive;
    if (!isLive) return;
    const atEdge = behind < LIVE_SLACK_S;
    ui.live.dataset.live = String(atEdge);
    ui.liveText.textContent = atEdge ? "Live" : `Behind live by ${Math.round(behind)} s`;
    ui.jump.hidden = atEdge;
  }

  function destroy() {
    clearTimeout(recreateTimer);
    clearTimeout(recoverTimer);
    clearInterval(tick);
    videoEl.removeEventListener("waiting", onWaiting);
    videoEl.removeEventListener("volumechange", showUnmute);
    window.removeEventListener("online", onOnline);
    if (player.hls) player.hls.destroy();
    player.hls = null;
    clearCues();
    if (ui) ui.root.remove();
    if (unmuteButton) unmuteButton.remove();
  }

  function showUnmute() {
    if (unmuteButton) unmuteButton.hidden = !videoEl.muted && videoEl.volume > 0;
  }

  videoEl.addEventListener("playing", () => {
    hasPlayed = true;
  });
  videoEl.addEventListener("waiting", onWaiting);
  videoEl.addEventListener("volumechange", showUnmute);
  window.addEventListener("online", onOnline);
  if (unmuteButton) {
    unmuteButton.addEventListener("click", unmute);
    showUnmute();
  }
  // The viewer pressed play during a refill: play on at once.
  videoEl.addEventListener("play", () => {
    refillingSince = null;
  });

  function chosen(action) {
    return (e) => {
      action(e.target.value);
      if (opts.onChoice) opts.onChoice(choice());
    };
  }

  if (ui) {
    ui.quality.select.addEventListener(
      "change",
      chosen((v) => {
        // A quality the viewer picks overrides the poor-link rule until they pick Auto.
        player.autoAudioOnly = !!opts.autoAudioOnly && v === "auto";
        player.audioOnlyReason = null;
        setQuality(v);
      }),
    );
    ui.language.select.addEventListener("change", chosen(setAudioTrack));
    ui.captions.select.addEventListener("change", chosen(setSubtitleTrack));
    ui.jump.addEventListener("click", jumpToLive);
  }

  if (Hls.isSupported()) {
    create();
  } else if (videoEl.canPlayType("application/vnd.apple.mpegurl")) {
    // Safari on iOS has no MediaSource: its own HLS stack does ABR, audio
    // groups and captions; we keep the captions menu and the live indicator.
    player.native = true;
    videoEl.src = src;
    videoEl.addEventListener("loadedmetadata", () => {
      refreshMenus();
      play();
    });
    videoEl.addEventListener("error", () => log({ type: "native", details: String(videoEl.error && videoEl.error.code), fatal: true }));
  } else {
    say("This browser cannot play the stream. Please try a current Firefox, Chrome or Safari.");
    log({ type: "unsupported", details: "no MediaSource and no native HLS", fatal: true });
  }
  tick = setInterval(() => {
    updateLiveStatus();
    refill(); // also when the stream stopped growing and no fragment arrives
    checkLink();
    if (performance.now() - cuesPrunedAt > 60000) {
      cuesPrunedAt = performance.now();
      pruneCues();
    }
  }, 1000);
  return player;
}

/** The big "Turn sound on" button over the picture: browsers start video muted. */
function buildUnmuteButton(videoEl) {
  const button = h("button", { type: "button", class: "sc-unmute", "data-action": "unmute", text: "Turn sound on" });
  videoEl.after(button);
  return button;
}

function buildControls(controlsEl) {
  if (!controlsEl) return null;
  const quality = menu("Quality", "sc-quality");
  const language = menu("Language", "sc-language");
  const captions = menu("Captions", "sc-captions");
  const liveText = h("span", { class: "sc-live-text" });
  const jump = h("button", { type: "button", class: "sc-jump-live secondary", hidden: "", text: "Jump to live" });
  const live = h("span", { class: "sc-live-status", role: "status", hidden: "" }, liveText, " ", jump);
  const bar = h("div", { class: "sc-player-controls" }, quality.wrap, language.wrap, captions.wrap, live);
  const message = h("div", { class: "sc-player-message", role: "alert" });
  const root = h("div", { class: "sc-player-ui" }, bar, message);
  controlsEl.replaceChildren(root);
  return { root, quality, language, captions, live, liveText, jump, message };
}

Object.assign(namespace, { mountPlayer, Hls });

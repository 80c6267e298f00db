"""The jobs behind speaker uploads: check (probe + loudness), normalise (+ poster), e-mail.

Each handler reads its upload, does the slow part outside any database transaction,
then records the outcome in one short transaction. A bad file is a verdict, never a
crash: anything unexpected becomes the job's visible failure reason.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from summitcast.config import Settings
from summitcast.domain.media_checks import (
    MediaFacts,
    Verdict,
    check_media,
    check_subtitles,
    slot_limit_s,
)
from summitcast.domain.uploads import UploadKind, UploadState
from summitcast.media import normalise
from summitcast.media.upload_probe import Loudness, measure_loudness, probe_upload
from summitcast.runtime.job_worker import PeriodicChore
from summitcast.services import Database, jobs, notifications, upload_results, uploads
from summitcast.services.upload_results import JobUpload
from summitcast.storage.chunks import DiskChunkFiles

logger = logging.getLogger(__name__)


def programme_format(settings: Settings) -> normalise.ProgrammeFormat:
    """The programme format from the settings."""
    return normalise.ProgrammeFormat(
        width=settings.programme_width,
        height=settings.programme_height,
        fps=settings.programme_fps,
        loudness_lufs=settings.programme_loudness_lufs,
        preset=settings.normalise_preset,
    )


def chunk_store(settings: Settings) -> uploads.ChunkStore:
    """The upload folder with this settings' limits."""
    # A chunk must fit under the request body cap (BodyLimitMiddleware) with room for headers.
    chunk = min(settings.upload_chunk_bytes, settings.max_import_bytes)
    return uploads.ChunkStore(
        DiskChunkFiles(settings.effective_upload_dir),
        uploads.UploadLimits(
            max_bytes=settings.max_upload_bytes,
            chunk_bytes=chunk,
            partial_expiry_s=settings.upload_partial_expiry_s,
        ),
    )


class UploadJobs:
    """Handlers of the upload jobs, bound to the app's settings and database."""

    def __init__(self, settings: Settings, database: Database, store: uploads.ChunkStore) -> None:
        self.settings = settings
        self.database = database
        self.store = store
        self.ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        self.format = programme_format(settings)

    def handlers(self) -> dict[str, jobs.Handler]:
        """Job kind → handler, for JobWorker."""
        return {
            uploads.JOB_CHECK: self.check,
            uploads.JOB_NORMALISE: self.normalise,
            notifications.JOB_KIND_EMAIL: self.email,
        }

    def failure_hooks(self) -> dict[str, jobs.Handler]:
        """Job kind → what to do once it failed for good."""
        return {uploads.JOB_CHECK: self.failed, uploads.JOB_NORMALISE: self.failed}

    def periodic(self) -> list[PeriodicChore]:
        """The cleanup of expired partial uploads."""
        return [
            PeriodicChore(
                "expire-partial-uploads", self.settings.upload_sweep_interval_s, self.expire
            )
        ]

    def check(self, context: jobs.JobContext) -> None:
        """Probe the upload and judge it; a usable file goes on to normalisation."""
        upload = upload_results.load_for_job(self.database, self.store, context.upload_id)
        if upload.state != UploadState.CHECKING:
            return  # checked already (a retry after a lost acknowledgement)
        if not upload.sha256 and not self._record_file_checksum(upload):
            return  # not the file the speaker declared: rejected, said why
        context.progress(0.2)
        if upload.kind == UploadKind.SUBTITLES:
            verdict, _text = check_subtitles(upload.path.read_bytes())
            facts_json: dict[str, Any] = {"container": upload.sniffed}
        else:
            verdict, facts_json = self._check_media(upload, context)
        upload_results.record_check_for_job(
            self.database, self.store, upload.id, verdict, facts_json
        )

    def _check_media(
        self, upload: JobUpload, context: jobs.JobContext
    ) -> tuple[Verdict, dict[str, Any]]:
        """Probe a video or audio upload, measure its loudness, and judge it."""
        path, slot_s = upload.path, upload.slot_s
        facts = probe_upload(path)
        if facts.unreadable:
            # The tools' words, for whoever looks into it; the speaker reads plain ones.
            logger.info("upload %s unreadable: %s", upload.public_id, facts.unreadable)
        context.progress(0.5)
        loudness: Loudness | None = None
        if facts.audio is not None and not facts.unreadable:
            loudness = measure_loudness(
                self.ffmpeg,
                path,
                target_lufs=self.format.loudness_lufs,
                timeout_s=max(120.0, slot_limit_s(slot_s) * 2),
            )
        facts = MediaFacts(
            container=facts.container,
            duration_s=facts.duration_s,
            video=facts.video,
            audio=facts.audio,
            readable_s=facts.readable_s,
            loudness_lufs=loudness.input_i if loudness else None,
            unreadable=facts.unreadable,
        )
        verdict = check_media(
            facts,
            kind=UploadKind(upload.kind),
            slot_s=slot_s,
            programme_size=(self.format.width, self.format.height),
            programme_fps=self.format.fps,
        )
        return verdict, _facts_json(facts, loudness)

    def _record_file_checksum(self, upload: JobUpload) -> bool:
        """Hash the whole file (SHA-256) and keep it; False when the upload was rejected for it."""
        # Here rather than as chunks arrive: the chunks' CRC-32C caught damage on the way
        # at a tenth of the cost, and this pass reads the file once, on a job worker.
        with upload.path.open("rb") as handle:
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        return upload_results.record_file_checksum_for_job(
            self.database, self.store, upload.id, sha256
        )

    def normalise(self, context: jobs.JobContext) -> None:
        """Conform the upload to the programme, grab a poster, and mark the item ready."""
        upload = upload_results.load_for_job(self.database, self.store, context.upload_id)
        if upload.state != UploadState.PROCESSING:
            return
        source = upload.path
        folder = self.settings.effective_media_dir / f"item-{upload.item_id}"
        folder.mkdir(parents=True, exist_ok=True)
        poster: Path | None = None
        info: dict[str, Any] = {"upload": upload.public_id, "sha256": upload.sha256}
        if upload.kind == UploadKind.SUBTITLES:
            output = folder / f"{upload.public_id}.{upload.language}.vtt"
            _verdict, text = check_subtitles(source.read_bytes())
            if text is None:
                raise jobs.PermanentJobError("the subtitles stopped being readable")
            output.write_text(_as_webvtt(text), encoding="utf-8")
        else:
            facts = upload.facts
            measured = _loudness_from(facts.get("loudness"))
            duration = float(facts.get("duration_s") or 0.0)
            has_audio = bool(facts.get("audio"))
            suffix = "mp4" if upload.kind == UploadKind.PROGRAMME else "m4a"
            output = folder / f"{upload.public_id}.{suffix}"
            if upload.kind == UploadKind.PROGRAMME:
                argv = normalise.normalise_argv(
                    self.ffmpeg, source, output, self.format, measured=measured, has_audio=has_audio
                )
            else:
                argv = normalise.audio_argv(self.ffmpeg, source, output, self.format, measured)
            try:
                normalise.run(
                    argv, duration_s=duration, on_progress=context.progress, cancel=context.cancel
                )
            except normalise.NormaliseError:
                if context.cancel.is_set():
                    raise jobs.JobCancelledError("stopping") from None
                raise
            if upload.kind == UploadKind.PROGRAMME:
                poster = normalise.make_poster(
                    self.ffmpeg, output, folder / f"{upload.public_id}.jpg", duration_s=duration
                )
            info["duration_s"] = duration
        upload_results.record_normalised_for_job(
            self.database, upload.id, output=output, poster=poster, info=info
        )

    def failed(self, context: jobs.JobContext) -> None:
        """A check or normalisation failed for good: the speaker and the run of show see it."""
        upload_results.record_failure_for_job(self.database, context.upload_id, context.failure)

    def email(self, context: jobs.JobContext) -> None:
        """Send one notice by e-mail (a no-op without SMTP settings)."""
        with self.database.session() as db:
            notifications.send_email(db, self.settings, int(context.payload["notice_id"]))

    def expire(self) -> None:
        """Delete the bytes of partial uploads past their expiry."""
        count = upload_results.expire_partials_now(self.database, self.store)
        if count:
            logger.info("expired %d partial uploads", count)


def _facts_json(facts: MediaFacts, loudness: Loudness | None) -> dict[str, Any]:
    video = facts.video
    return {
        "container": facts.container,
        "duration_s": facts.duration_s,
        "readable_s": facts.readable_s,
        "video": None
        if video is None
        else {
            "codec": video.codec,
            "width": video.width,
            "height": video.height,
            "fps": video.fps,
            "rotation": video.rotation,
            "variable_frame_rate": video.variable_frame_rate,
        },
        "audio": None
        if facts.audio is None
        else {
            "codec": facts.audio.codec,
            "channels": facts.audio.channels,
            "sample_rate": facts.audio.sample_rate,
        },
        "loudness": loudness.as_dict() if loudness else None,
        "unreadable": facts.unreadable,
    }


def _loudness_from(data: object) -> Loudness | None:
    if not isinstance(data, dict):
        return None
    try:
        return Loudness(**{k: float(v) for k, v in data.items()})
    except (TypeError, ValueError):
        return None


def _as_webvtt(text: str) -> str:
    """SRT → WebVTT (the cue times' comma becomes a dot); WebVTT passes through."""
    if text.startswith("WEBVTT"):
        return text
    body = re.sub(r"(\d{2}:\d{2}:\d{2}),(\d{3})", r"\1.\2", text)
    return "WEBVTT\n\n" + body.strip() + "\n"

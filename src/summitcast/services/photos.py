"""Speaker photos: sniff the bytes, refuse bombs, re-encode without metadata."""

from __future__ import annotations

import io
import secrets
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from summitcast.errors import ValidationError

# Magic numbers of the formats we accept; the file name and declared type are never trusted.
SIGNATURES = {
    b"\xff\xd8\xff": "JPEG",
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"RIFF": "WEBP",  # followed by 4 size bytes and b"WEBP", checked below
}
MAX_PIXELS = 40_000_000  # 40 megapixels: larger is a decompression bomb, not a portrait
MAX_SIDE = 800


def sniff_image(data: bytes) -> str:
    """Name the image format from its first bytes, or refuse."""
    for magic, name in SIGNATURES.items():
        if data.startswith(magic):
            if name == "WEBP" and data[8:12] != b"WEBP":
                break
            return name
    raise ValidationError("The photo must be a JPEG, PNG or WebP image.", field="photo")


def sanitise_photo(data: bytes, *, max_bytes: int) -> bytes:
    """Return a re-encoded JPEG (≤ 800 px, no metadata) made from an uploaded image."""
    if not data:
        raise ValidationError("The photo file is empty.", field="photo")
    if len(data) > max_bytes:
        raise ValidationError(
            f"The photo is {len(data) // 1024} KiB; the limit is {max_bytes // 1024} KiB.",
            field="photo",
        )
    declared = sniff_image(data)
    try:
        with warnings.catch_warnings():
            # Pillow warns before it raises on big images; we refuse on our own limit first.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format != declared:
                    raise ValidationError("The photo's contents do not match its format.")
                if probe.width * probe.height > MAX_PIXELS:
                    raise ValidationError(
                        f"The photo is {probe.width}×{probe.height} pixels; "
                        "at most 40 megapixels are accepted.",
                        field="photo",
                    )
                probe.verify()
            with Image.open(io.BytesIO(data)) as image:
                image.load()
                picture = image.convert("RGB")
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValidationError(
            "The photo has too many pixels; at most 40 megapixels are accepted.", field="photo"
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValidationError(f"The photo cannot be read ({exc}).", field="photo") from exc
    picture.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    # A fresh JPEG carries no EXIF, GPS or comments from the original.
    picture.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def store_photo(folder: Path, data: bytes, *, max_bytes: int) -> str:
    """Sanitise and save a photo under a random name; return that name."""
    clean = sanitise_photo(data, max_bytes=max_bytes)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{secrets.token_urlsafe(16)}.jpg"
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(clean)
    tmp.replace(folder / name)
    return name

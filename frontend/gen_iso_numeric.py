"""Write frontend/iso-numeric.json: ISO 3166-1 numeric id -> alpha-2 code, from pycountry.

world-atlas names its country features by zero-padded numeric id ("004"); the site
counts locations by alpha-2 code ("AF"). Run once when pycountry changes:
    .venv/bin/python frontend/gen_iso_numeric.py
"""

import json
from pathlib import Path

import pycountry


def numeric_to_alpha2() -> dict[str, str]:
    """Map every ISO 3166-1 numeric code known to pycountry to its alpha-2 code."""
    return {c.numeric: c.alpha_2 for c in sorted(pycountry.countries, key=lambda c: c.numeric)}


if __name__ == "__main__":
    out = Path(__file__).with_name("iso-numeric.json")
    out.write_text(json.dumps(numeric_to_alpha2(), indent=0, sort_keys=True) + "\n")

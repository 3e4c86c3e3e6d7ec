"""Checks the SDK's bounding against cases the room's own definition computed
(`strongroom-contract`'s FixedPoint): `python check_bounding.py CASES.json`.

Each case is [value, lower, upper, decimals, fixed, clamped], numbers as text so none is rounded
on the way. The room's test suite writes the cases (cli/tests/cli/other_languages.rs).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strongroom_guest.cells import FixedPoint  # noqa: E402


def main(path: str) -> int:
    cases = json.loads(Path(path).read_text())
    wrong = []
    for value, lower, upper, decimals, fixed, clamped in cases:
        got = FixedPoint(float(lower), float(upper), decimals).bound(float(value))
        if (str(got[0]), got[1]) != (fixed, clamped):
            wrong.append(f"{value} in [{lower}, {upper}] at {decimals}: {got} against ({fixed}, {clamped})")
    if wrong:
        print(f"{len(wrong)} of {len(cases)} cases disagree, first: {wrong[:5]}")
        return 1
    print(f"{len(cases)} cases agree")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

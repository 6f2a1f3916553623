"""``python -m agent_coherence_shm diagnose --graph FILE.py:FACTORY ...``: see
:mod:`agent_coherence_shm.diagnose`."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "diagnose":
        print(
            "usage: python -m agent_coherence_shm diagnose --graph FILE.py:FACTORY "
            "[--input JSON] [--json FILE] [--html FILE]",
            file=sys.stderr,
        )
        return 2
    from agent_coherence_shm.diagnose import main as diagnose

    return diagnose(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

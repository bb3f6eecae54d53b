"""The batched command path of one code tree, for counting instructions.

Wall-clock figures on these shared 2-core machines swing by 2x within an
hour; valgrind's instruction count does not. Run this under callgrind twice
per tree, with and without the measured waves, and divide the difference by
the events (the second run's count minus the first is the waves alone):

    git worktree add /tmp/base <old-revision>
    for tree in /tmp/base $PWD; do for waves in 0 39; do
      valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/instructions.py $tree 200 $waves 2>&1 | grep -E 'Collected|events'
    done; done

Arguments: TREE (the code to import), CALLS_IN_FLIGHT, WAVES.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    tree, in_flight, waves = argv[0], int(argv[1]), int(argv[2])
    sys.path.insert(0, tree)
    from bench._common import bench_settings
    from bench.append import waves_in_flight
    from lianxin.wiring import build

    with bench_settings("sqlite") as settings:
        lx = build(settings)
        try:
            waves_in_flight(lx, 50, 13, tag="warm")  # imports, caches, first pages
            if waves:
                print("events", waves_in_flight(lx, in_flight, waves)[1])
        finally:
            lx.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

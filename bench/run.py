#!/usr/bin/env python3
"""`python bench/run.py [options]` is `lstm-c bench [options]`.

The benchmark lives in the package (lstm_c/bench.py) so it also runs from an
installed wheel; this file is the entry point from a source checkout. Example,
the numbers in bench/RESULTS.md:

    python bench/run.py --md bench/RESULTS.md --json bench/results.json

and the perf-anchors grid (22 LSTM points x infer/train + 5 streaming points,
1 and 2 threads; about 14 minutes on the 2-core project machine):

    python bench/run.py --grid anchors --md anchors.md --json anchors.json --plot anchors.png
"""
import sys

from lstm_c.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))

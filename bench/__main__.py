"""``python -m bench [--quick] [--large] [--only NAME ...]``: run the suite, write results."""

from bench.suite import main

raise SystemExit(main())

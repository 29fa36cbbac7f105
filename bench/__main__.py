"""`python -m bench ...`: the benchmark runner (same as `bench/run`)."""

from __future__ import annotations

from bench.runner import main

raise SystemExit(main())

"""`python -m readygate`."""

from __future__ import annotations

from readygate.cli import main

raise SystemExit(main())

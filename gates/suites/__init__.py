"""Gate suites: pytest files with custom checks, run with `pytest gates/suites`."""

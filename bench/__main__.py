"""``python -m bench [--quick] [--only SECTION ...]``: see bench/runner.py."""

from bench.runner import main

if __name__ == "__main__":
    raise SystemExit(main())

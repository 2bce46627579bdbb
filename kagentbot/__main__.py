"""`python -m kagentbot`, as the `kagentbot` script."""

from kagentbot.cli.main import main

if __name__ == "__main__":  # importing the module (as the install test does) runs nothing
    raise SystemExit(main())

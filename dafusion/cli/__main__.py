"""``python -m dafusion.cli``: the ``cycler`` command."""

from dafusion.cli import main

if __name__ == "__main__":
    main()

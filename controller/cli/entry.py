"""``python -m controller.cli.entry``: the fsfarm command without the installed console script."""

from controller.cli import main

if __name__ == "__main__":
    main()

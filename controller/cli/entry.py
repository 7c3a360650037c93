"""``python -m controller.cli.entry``: the fsfarm command without the installed console script."""

from controller.cli.launcher import main

if __name__ == "__main__":
    main()

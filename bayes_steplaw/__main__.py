"""``python -m bayes_steplaw``: the ``bayes-steplaw`` command line."""

from .cli import main

if __name__ == "__main__":
    main()

"""``python -m services.redirect``: see :mod:`services.redirect.launcher`."""

from services.redirect.launcher import main

if __name__ == "__main__":
    main()

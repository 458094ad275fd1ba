#!/usr/bin/env python
"""Django's command-line utility (`python3 visionaire.py manage …` sets up the environment first)."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "visionaire_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

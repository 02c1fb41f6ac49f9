"""``python -m precal`` (also what ``torchrun -m precal train ...`` runs)."""

import sys

from precal.cli import main

sys.exit(main())

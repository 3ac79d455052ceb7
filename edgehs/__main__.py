import sys

from edgehs.cli import main

sys.exit(main())

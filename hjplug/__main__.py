import sys

from hjplug.cli import main

sys.exit(main())

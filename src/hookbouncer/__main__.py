import sys

from hookbouncer.cli.main import main

sys.exit(main())

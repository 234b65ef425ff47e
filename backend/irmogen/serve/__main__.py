"""`python -m irmogen.serve [--model DIR] [--device auto] [--log-level info]`: the server."""
import sys

from .server import main

sys.exit(main())

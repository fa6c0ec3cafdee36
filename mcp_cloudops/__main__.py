"""`python -m mcp_cloudops` is the `mcp-cloudops` command."""

import sys

from mcp_cloudops.cli import main

sys.exit(main())

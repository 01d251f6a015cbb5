"""``python -m stc_ext``: the ``stc`` command."""

from stc_ext.cli import main

raise SystemExit(main())

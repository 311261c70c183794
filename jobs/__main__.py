from streamlake.cli import main

raise SystemExit(main())

"""The entry point of the PyInstaller bundle (see aptviewer.spec).

It runs ``aptviewer``'s command line. One extra: batch mode draws each overview PNG in a
child process, ``sys.executable -m aptviewer.ui.overview_png ...``; in the bundle
``sys.executable`` is this program, so ``-m aptviewer.<module>`` runs that module here.
"""

import multiprocessing
import runpy
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()
    if len(sys.argv) > 2 and sys.argv[1] == "-m" and sys.argv[2].startswith("aptviewer."):
        module = sys.argv[2]
        sys.argv = [module, *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        from aptviewer.__main__ import main

        sys.exit(main())

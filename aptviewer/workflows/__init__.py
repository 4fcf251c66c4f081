"""Qt-free user-level jobs built from the core, shared by the window, ``--batch`` and notebooks."""

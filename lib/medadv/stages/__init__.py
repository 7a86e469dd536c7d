"""Stage modules: one per notebook, each with its config dataclass and the functions its notebook calls."""
